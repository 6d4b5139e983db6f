#!/usr/bin/env bash
# Uploads at the sizes users send, through every transport, against every
# server: `shoal put --via sftp|scp|cat` with 0 B, 1 B, 1 MiB - 1, 1 MiB + 1
# and 64 MiB files to OpenSSH's sshd, dropbear and shoal serve, the sha256
# of every landed file compared with the source's; the same files as the
# stdin of `shoal exec ... sha256sum`; auto mode on a server
# without SFTP (falls back to scp) at 1 MiB + 1; and `shoal agent`'s scp
# action with each transport. Regression test for uploads that never ended
# above ~1 MiB (the scp/cat feeder stopped when the channel was full and
# was never told it had room again; the scp end-of-file byte was dropped
# when the channel was full at the very end).
#
# Every upload has a deadline (-t) so a hang shows as a failure, not as a
# test that never ends.
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
require_shoal
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"

BIG_MIB=64
# Sizes around 1 MiB are where the hang began (the channel windows and the
# output high-water mark); 64 MiB is a size users send.
SIZES=(0 1 $((1048576 - 1)) $((1048576 + 1)) $((BIG_MIB << 20)))
for size in "${SIZES[@]}"; do
    head -c "$size" /dev/urandom >"$T/src_$size"
    chmod 640 "$T/src_$size"
    sha256sum <"$T/src_$size" | cut -d' ' -f1 >"$T/sha_$size"
done
mkdir -p "$T/updir"
chown "$TEST_USER" "$T/updir"
KH=$T/kh
# sha_of FILE: its sha256, or "missing".
sha_of() { if [ -f "$1" ]; then sha256sum <"$1" | cut -d' ' -f1; else echo missing; fi; }

# upload_matrix LABEL PORT VIAS...: every size through every transport.
upload_matrix() {
    local label=$1 port=$2 via size rc f
    shift 2
    for via in "$@"; do
        for size in "${SIZES[@]}"; do
            f=$T/updir/$label.$via.$size
            rc=0
            timeout -k 5 300 "$SHOAL_BIN" put -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$port" \
                -o "UserKnownHostsFile=$KH" --no-progress -t 240 --via "$via" -H 127.0.0.1 \
                "$T/src_$size" "$f" >"$T/out" 2>&1 || rc=$?
            check "$label: put --via $via $size B: exit 0 (got $rc)" test "$rc" -eq 0
            check "$label: put --via $via $size B: sha256 equal" test "$(sha_of "$f")" = "$(cat "$T/sha_$size")"
            check "$label: put --via $via $size B: mode kept" test "$(stat -c %a "$f" 2>/dev/null)" = 640
            if [ "$rc" -ne 0 ]; then sed 's/^/    | /' "$T/out" | head -5; fi
            rm -f "$f"
        done
    done
    check "$label: no temporary file left" test -z "$(find "$T/updir" -name '.*.shoal-*')"
}

# stdin_matrix LABEL PORT: `shoal exec host sha256sum < file` at every size
# (a regular file as stdin is read on the loop thread, as the channel takes it).
stdin_matrix() {
    local label=$1 port=$2 size
    for size in "${SIZES[@]}"; do
        run_shoal -p "$port" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/known_hosts" \
            -o StrictHostKeyChecking=yes -o BatchMode=yes "$TEST_USER@127.0.0.1" 'sha256sum' <"$T/src_$size"
        check_out "$(cat "$T/sha_$size")  -" "$label: exec with a $size B file as stdin: sha256 equal"
    done
}

# ---- OpenSSH sshd (internal-sftp, scp and cat through the shell) ----
start_sshd
upload_matrix sshd "$SSHD_PORT" sftp scp cat
stdin_matrix sshd "$SSHD_PORT"
# The sink's error reply (scp's "2" + message) is reported, not hung on.
for via in sftp scp cat; do
    rc=0
    timeout -k 5 120 "$SHOAL_BIN" put -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SSHD_PORT" \
        -o "UserKnownHostsFile=$KH" --no-progress -t 60 --via "$via" -H 127.0.0.1 \
        "$T/src_1" "$T/updir/missing/x" >"$T/out" 2>&1 || rc=$?
    check "sshd: put --via $via into a missing directory: exit 1 (got $rc)" test "$rc" -eq 1
    check "sshd: put --via $via into a missing directory: the server's reason" \
        grep -qi "no such file" "$T/out"
done
SSHD_PORT1=$SSHD_PORT

# ---- dropbear (SFTP only when it finds an sftp-server) ----
if start_dropbear; then
    vias=(scp cat)
    # dropbear runs OpenSSH's sftp-server for the sftp subsystem when installed.
    if [ -x /usr/lib/openssh/sftp-server ] || [ -x /usr/lib/sftp-server ]; then vias=(sftp scp cat); fi
    upload_matrix dropbear "$DROPBEAR_PORT" "${vias[@]}"
    stdin_matrix dropbear "$DROPBEAR_PORT"
else
    not_ok "dropbear could not be started"
fi

# ---- shoal serve ----
start_shoal_serve
upload_matrix serve "$SERVE_PORT" sftp scp cat
stdin_matrix serve "$SERVE_PORT"
stop_shoal_serve

# ---- auto mode on a server without SFTP: falls back to scp ----
start_shoal_serve "Subsystem other /bin/false"
size=$((1048576 + 1))
rc=0
timeout -k 5 300 "$SHOAL_BIN" put --json -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" \
    -o "UserKnownHostsFile=$KH" -t 240 -H 127.0.0.1 "$T/src_$size" "$T/updir/auto" >"$T/auto" 2>&1 || rc=$?
check "no SFTP, auto mode, $size B: exit 0 (got $rc)" test "$rc" -eq 0
check "no SFTP, auto mode: over scp" grep -q '"Via":"scp"' "$T/auto"
check "no SFTP, auto mode: sha256 equal" test "$(sha_of "$T/updir/auto")" = "$(cat "$T/sha_$size")"
stop_shoal_serve

# ---- shoal agent's scp action, each transport, 1 MiB + 1 and 64 MiB, sshd ----
for via in sftp scp cat; do
    for size in $((1048576 + 1)) $((BIG_MIB << 20)); do
        printf '{"Action":"scp","Source":"%s","Target":"%s","Hosts":["127.0.0.1:%s"],"Via":"%s","Timeout":240000}\n' \
            "$T/src_$size" "$T/updir/agent.$via.$size" "$SSHD_PORT1" "$via" >"$T/areq"
        rc=0
        timeout -k 5 300 "$SHOAL_BIN" agent -l "$TEST_USER" -i "$T/keys/id_ed25519" \
            -o "UserKnownHostsFile=$KH" <"$T/areq" >"$T/aout" 2>"$T/aerr" || rc=$?
        check "agent scp action via $via, $size B: FinalReply" grep -q '"Type":"FinalReply"' "$T/aout"
        check "agent scp action via $via, $size B: Success" grep -q '"Success":true' "$T/aout"
        check "agent scp action via $via, $size B: sha256 equal" \
            test "$(sha_of "$T/updir/agent.$via.$size")" = "$(cat "$T/sha_$size")"
        rm -f "$T/updir/agent.$via.$size"
    done
done
finish
