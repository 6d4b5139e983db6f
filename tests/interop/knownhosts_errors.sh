#!/usr/bin/env bash
# A known_hosts file that exists but cannot be read must fail the
# connection before authentication, naming the file and the error, under
# every StrictHostKeyChecking policy -- never be taken for "no such host"
# (which `accept-new` would turn into logging in to an impostor, and `ask`
# into calling a changed key unknown: CVE-2025-26465's class, an error
# turned into acceptance). `shoal exec` (one file at a time) and `shoal run`
# (the files read once into memory) behave the same.
#
# Error kinds: permission denied (a file the user may not read), an I/O
# error (/proc/self/mem gives EIO on read), a file over the 64 MiB cap, a
# directory, and out of memory (an address-space limit; not under ASan,
# which needs terabytes of address space). A missing file is still just
# empty. Proof that nothing was sent: sshd logs no authentication attempt.
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_sshd "LogLevel DEBUG1"

EXEC=("$SHOAL_BIN" exec -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o BatchMode=yes
    -o GlobalKnownHostsFile=/dev/null)
RUN=("$SHOAL_BIN" run -p "$SSHD_PORT" -i "$T/keys/id_ed25519" --no-progress -t 30
    -o GlobalKnownHostsFile=/dev/null)

# expect_refused LABEL KHFILE WHY_ERE [runner...]: every policy fails with
# 255 (exec) / exit 1 or 2 (run), the message names the file and WHY_ERE,
# and sshd saw no userauth request.
expect_refused() {
    local label=$1 kh=$2 why=$3 pol mark
    shift 3
    local -a pre=("$@")
    for pol in accept-new ask yes no; do
        mark=$(log_mark "$SSHD_LOG")
        RC=0
        timeout -k 5 60 ${pre[@]+"${pre[@]}"} "${EXEC[@]}" -o "StrictHostKeyChecking=$pol" \
            -o "UserKnownHostsFile=$kh" "$PEER_USER@127.0.0.1" echo logged-in \
            </dev/null >"$T/out" 2>"$T/err" || RC=$?
        check_rc 255 "exec, $label, $pol: exit 255"
        check "exec, $label, $pol: nothing ran" test ! -s "$T/out"
        check_err_has "cannot read known_hosts file $kh: $why" "exec, $label, $pol: names the file and the error"
        sleep 0.2
        check "exec, $label, $pol: no authentication attempt reached sshd" \
            sh -c "! tail -c +$((mark + 1)) '$SSHD_LOG' | grep -Eq 'userauth-request|Accepted|Failed|Postponed'"
    done
    RC=0
    timeout -k 5 60 ${pre[@]+"${pre[@]}"} "${RUN[@]}" -o "UserKnownHostsFile=$kh" -H 127.0.0.1 -- echo logged-in \
        </dev/null >"$T/out" 2>"$T/err" || RC=$?
    check "run, $label: fails (exit $RC)" test "$RC" -ne 0
    check "run, $label: nothing ran" sh -c "! grep -q logged-in '$T/out'"
    check_err_has "cannot read known_hosts file $kh: $why" "run, $label: names the file and the error"
}

# ---- a good file and a missing one still work (the baseline) ----
run_shoal -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o "UserKnownHostsFile=$T/known_hosts" "$PEER_USER@127.0.0.1" echo ok </dev/null
check_out ok "readable known_hosts: logs in"
run_shoal -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=accept-new \
    -o "UserKnownHostsFile=$T/absent/known_hosts" "$PEER_USER@127.0.0.1" echo ok </dev/null
check_out ok "missing known_hosts (accept-new): logs in and records the key"
check "missing known_hosts: the key was recorded" test -s "$T/absent/known_hosts"

# ---- I/O error ----
expect_refused "I/O error" /proc/self/mem "Input/output error"

# ---- a directory ----
mkdir -p "$T/khdir"
expect_refused "a directory" "$T/khdir" "Is a directory"

# ---- over the size cap (sparse: costs no disk) ----
truncate -s $((65 << 20)) "$T/kh_big"
expect_refused "over 64 MiB" "$T/kh_big" "larger than the 64 MiB limit"

# ---- permission denied: run as a user who may not read the file ----
if make_test_user && runuser -u "$TEST_USER" -- test -x "$SHOAL_BIN"; then
    install -d -m 755 "$T/tu"
    install -m 600 -o "$TEST_USER" "$T/keys/id_ed25519" "$T/tu/id"
    cp "$T/known_hosts" "$T/kh_locked"
    chmod 600 "$T/kh_locked" # root's; the test user cannot read it
    EXEC_SAVE=("${EXEC[@]}")
    RUN_SAVE=("${RUN[@]}")
    EXEC=("$SHOAL_BIN" exec -p "$SSHD_PORT" -i "$T/tu/id" -o BatchMode=yes -o GlobalKnownHostsFile=/dev/null)
    RUN=("$SHOAL_BIN" run -p "$SSHD_PORT" -i "$T/tu/id" --no-progress -t 30 -o GlobalKnownHostsFile=/dev/null)
    expect_refused "permission denied" "$T/kh_locked" "Permission denied" runuser -u "$TEST_USER" -- env HOME="$T/tu"
    EXEC=("${EXEC_SAVE[@]}")
    RUN=("${RUN_SAVE[@]}")
else
    not_ok "permission denied case: cannot run shoal as the test user"
fi

# ---- out of memory (the file is under the cap, the address space is not) ----
if grep -qa __asan_report "$SHOAL_BIN"; then
    ok "out of memory case skipped under ASan (it reserves terabytes of address space)"
else
    # A real known_hosts of ~60 MiB: the reader needs 64 MiB at once.
    /usr/bin/python3 - "$T/kh_60m" <<'EOF'
import sys
line = b"host%07d.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n"
with open(sys.argv[1], "wb") as f:
    size = i = 0
    while size < 60 << 20:
        size += f.write(line % i)
        i += 1
EOF
    # The smallest address-space limit (KiB) under which shoal exec still
    # logs in with a small file; above it, limits in 4 MiB steps: each run
    # with the big file must either read it (and log in) or fail cleanly
    # with "out of memory" -- never crash, never accept without reading.
    lim=""
    crashed=""
    for kib in $(seq 8192 4096 524288); do
        RC=0
        (ulimit -v "$kib" && ulimit -c 0 && exec "${EXEC[@]}" -o StrictHostKeyChecking=yes \
            -o "UserKnownHostsFile=$T/known_hosts" "$PEER_USER@127.0.0.1" true) </dev/null >/dev/null 2>&1 || RC=$?
        if [ "$RC" = 0 ]; then lim=$kib; break; fi
        # 127: the loader could not map a library; 255: our clean error.
        if [ "$RC" != 127 ] && [ "$RC" != 255 ]; then crashed="$crashed $kib:$RC"; fi
    done
    check "out of memory: shoal exec never crashes under a small address space (${crashed:-none})" test -z "$crashed"
    cat "$T/known_hosts" >>"$T/kh_60m"
    oom=""
    bad=0
    for kib in $(seq "${lim:-0}" 4096 $((${lim:-0} + 98304))); do
        [ -n "$lim" ] || break
        RC=0
        (ulimit -v "$kib" && exec "${EXEC[@]}" -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$T/kh_60m" \
            "$PEER_USER@127.0.0.1" echo logged-in) </dev/null >"$T/out" 2>"$T/err" || RC=$?
        if [ "$RC" = 255 ] && grep -q "cannot read known_hosts file $T/kh_60m: out of memory" "$T/err" &&
            [ ! -s "$T/out" ]; then
            oom=${oom:-$kib}
        elif [ "$RC" != 0 ] || [ "$(cat "$T/out")" != logged-in ]; then
            bad=1
            echo "limit $kib KiB: exit $RC: $(head -c 300 "$T/err")"
        fi
    done
    check "out of memory: every limit gives a clean error or a login after reading the file" test "$bad" = 0
    if [ -n "$oom" ]; then
        ok "out of memory: seen at an address-space limit of $oom KiB (shoal exec needs $lim KiB)"
        expect_refused "out of memory" "$T/kh_60m" "out of memory" sh -c 'ulimit -v "$0" && exec "$@"' "$oom"
    else
        not_ok "out of memory: no address-space limit made reading the 60 MiB file fail"
    fi
fi
finish
