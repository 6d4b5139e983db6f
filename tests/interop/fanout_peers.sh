#!/usr/bin/env bash
# `shoal run`, `shoal put` and `shoal agent` against servers that are not
# ours: OpenSSH's sshd (SFTP with internal-sftp, then forced SCP and cat)
# and dropbear (SFTP through the sftp-server it finds, else SCP).
# Bad input on the command line gets a clear error and exit code 2.
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
mkdir -p "$T/updir"
chown "$TEST_USER" "$T/updir"
head -c 200000 /dev/urandom >"$T/src"
chmod 640 "$T/src"
check_re() { check "$1" grep -Eq -- "$3" "$2"; }

ssh-keygen -q -t ed25519 -N '' -C stranger -f "$T/keys/stranger"

# common PORT: options for one server.
common() {
    COMMON=(-l "$TEST_USER" -p "$1" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/fan_kh" --no-progress)
}

# pipelined PEER PORT [no]: with one key and nothing else to try, the
# command's CHANNEL_OPEN goes out with the signed auth request (RFC 4252
# 5.1, a round trip saved) to servers known to take it: the command must
# run; and when the server refuses the key, the result must still say
# authentication (the open is dropped, or the server disconnects after its
# USERAUTH_FAILURE). With "no" (a server that would disconnect), the open
# must wait for the auth success.
pipelined() {
    local peer=$1 port=$2 want=${3:-yes} rc=0 sent=
    [ "$want" = yes ] || sent=!
    env -u SSH_AUTH_SOCK HOME="$T" "$SHOAL_BIN" run -l "$TEST_USER" -p "$port" -i "$T/keys/id_ed25519" \
        -o "UserKnownHostsFile=$T/fan_kh" -o LogLevel=VERBOSE --no-progress -H 127.0.0.1 -- "echo piped-$peer" \
        >"$T/pl_$peer" 2>&1 || rc=$?
    check "$peer: channel open ${sent:+not }sent with the auth request, command ran" sh -c "test $rc -eq 0 &&
        $sent grep -q 'open sent with the final auth request' '$T/pl_$peer' && grep -qx 'piped-$peer' '$T/pl_$peer'"
    rc=0
    env -u SSH_AUTH_SOCK HOME="$T" "$SHOAL_BIN" run --json -l "$TEST_USER" -p "$port" -i "$T/keys/stranger" \
        -o "UserKnownHostsFile=$T/fan_kh" -o LogLevel=VERBOSE -H 127.0.0.1 -- true >"$T/plf_$peer" 2>"$T/plf_$peer.err" ||
        rc=$?
    check "$peer: a refused key is an auth failure" sh -c "test $rc -eq 1 &&
        $sent grep -q 'open sent with the final auth request' '$T/plf_$peer.err' &&
        grep -q '\"ErrorClass\":\"auth\"' '$T/plf_$peer'"
}

# ---- OpenSSH sshd ----
start_sshd
common "$SSHD_PORT"
pipelined sshd "$SSHD_PORT"
rc=0
"$SHOAL_BIN" run "${COMMON[@]}" -H 127.0.0.1 -H 127.0.0.250 -- 'echo from-sshd; exit 4' >"$T/s1" 2>&1 || rc=$?
check "sshd: run exits 1 when a host fails" test "$rc" -eq 1
check_re "sshd: output and exit status grouped" "$T/s1" '^127\.0\.0\.1 \(1\) exit status 4$'
check_re "sshd: the output" "$T/s1" '^from-sshd$'
check_re "sshd: the dead host classified" "$T/s1" '^  refused \(connect\): 1: 127\.0\.0\.250$'
for via in auto scp cat; do
    args=(--verify --mode 0600)
    [ "$via" = auto ] || args+=(--via "$via")
    rc=0
    "$SHOAL_BIN" put --json "${COMMON[@]}" "${args[@]}" -H 127.0.0.1 "$T/src" "$T/updir/sshd_$via" >"$T/p_$via" 2>&1 ||
        rc=$?
    want=$([ "$via" = auto ] && echo sftp || echo "$via")
    check "sshd: put ($via) succeeds over $want" grep -q "\"Success\":true.*\"Via\":\"$want\"" "$T/p_$via"
    check "sshd: put ($via): same bytes, mode 0600" sh -c "cmp '$T/src' '$T/updir/sshd_$via' &&
        test \$(stat -c %a '$T/updir/sshd_$via') = 600"
done
rc=0
"$SHOAL_BIN" put "${COMMON[@]}" -H 127.0.0.1 "$T/src" "$T/updir/no/such/dir/f" >"$T/pfail" 2>&1 || rc=$?
check "sshd: a failed upload exits 1" test "$rc" -eq 1
check "sshd: a failed upload leaves no temporary file" test -z "$(find "$T/updir" -name '.*.shoal-*')"
printf '%s\n' "{\"Action\":\"ssh\",\"Cmd\":\"echo agent\",\"Hosts\":[\"127.0.0.1:$SSHD_PORT\"],\"Id\":1}" \
    "{\"Action\":\"scp\",\"Source\":\"$T/src\",\"Target\":\"$T/updir/agent_sshd\",\"Hosts\":[\"127.0.0.1:$SSHD_PORT\"],\"Id\":2}" |
    env HOME="$T" "$SHOAL_BIN" agent -l "$TEST_USER" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/fan_kh" \
        >"$T/agent.out" 2>&1
check "sshd: agent ssh and scp requests" /usr/bin/python3 -c '
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1])]
r = {l["Id"]: l for l in ls if l["Type"] == "Reply"}
assert r[1]["Success"] and r[1]["Stdout"] == "agent\n", ls
assert r[2]["Success"] and r[2]["Via"] == "sftp", ls
assert sum(l["Type"] == "FinalReply" for l in ls) == 2, ls
' "$T/agent.out"
check "sshd: agent upload landed" cmp "$T/src" "$T/updir/agent_sshd"

# ---- dropbear: no SFTP subsystem ----
if start_dropbear; then
    common "$DROPBEAR_PORT"
    pipelined dropbear "$DROPBEAR_PORT"
    "$SHOAL_BIN" run "${COMMON[@]}" -H 127.0.0.1 -- 'echo from-dropbear' >"$T/d1" 2>&1 || true
    check_re "dropbear: run" "$T/d1" '^1 hosts in [0-9.]+ s: 1 ok, 0 failed$'
    check_re "dropbear: the output" "$T/d1" '^from-dropbear$'
    "$SHOAL_BIN" put --json "${COMMON[@]}" --verify -H 127.0.0.1 "$T/src" "$T/updir/dropbear" >"$T/dp" 2>&1 || true
    check "dropbear: put succeeds (over $(grep -o '"Via":"[a-z]*"' "$T/dp" | cut -d'"' -f4))" \
        grep -Eq '"Success":true.*"Via":"(sftp|scp)"' "$T/dp"
    check "dropbear: same bytes, source mode kept" sh -c "cmp '$T/src' '$T/updir/dropbear' &&
        test \$(stat -c %a '$T/updir/dropbear') = 640"
else
    echo "# dropbear not available: skipped its part"
fi

# ---- the Python servers (exec only) ----
for py in asyncssh paramiko; do
    if "$PEERS_PYTHON" -c "import $py" 2>/dev/null; then
        "start_${py}_server"
        port_var=${py^^}_PORT
        pipelined "$py" "${!port_var}" "$([ "$py" = asyncssh ] && echo no || echo yes)"
    else
        echo "# python3-$py not installed: skipped its part"
    fi
done

# ---- bad input ----
bad() { # DESC ERE ARGS...: exit code 2 and a message matching ERE
    local desc=$1 re=$2 rc=0
    shift 2
    "$SHOAL_BIN" "$@" >"$T/bad" 2>&1 </dev/null || rc=$?
    check "bad input: $desc: exit 2" test "$rc" -eq 2
    check_re "bad input: $desc: says what" "$T/bad" "$re"
}
printf 'good1\nweb[3-1]\n' >"$T/badhosts"
bad "reversed range in a hosts file" "badhosts:2" run -h "$T/badhosts" -- true
bad "missing hosts file" "cannot|No such" run -h "$T/nope" -- true
bad "bad -H pattern" "web\[" run -H 'web[' -- true
bad "unknown -o keyword" "Bogus" run -o Bogus=1 -H h -- true
bad "invalid host" "blank or control character" run -H 'a b' -- true
bad "put of a missing file" "cannot open .*missing" put -H 127.0.0.1 "$T/missing" /tmp/x
bad "no command" "usage" run -H h
# Numbers are parsed strictly, with units, and the flag is named.
bad "-t abc" "^shoal: -t abc: expected a duration" run -t abc -H h -- true
bad "-t -5" "^shoal: -t -5: expected a duration" run -t -5 -H h -- true
bad "-t 5x" "^shoal: -t 5x: expected a duration" run -t 5x -H h -- true
bad "-m abc" "^shoal: -m abc: expected a number of hosts" run -m abc -H h -- true
bad "-m -1" "^shoal: -m -1: expected a number of hosts" run -m -1 -H h -- true
bad "--threads abc" "^shoal: --threads abc: expected a number of worker threads" run --threads abc -H h -- true
bad "--threads 0" "^shoal: --threads 0: expected" run --threads 0 -H h -- true
bad "--threads 65" "^shoal: --threads 65: expected" run --threads 65 -H h -- true
bad "-p 70000" "^shoal: -p 70000: expected a port number" run -p 70000 -H h -- true
bad "-p abc" "^shoal: -p abc: expected a port number" run -p abc -H h -- true
bad "--output-cap abc" "^shoal: --output-cap abc: expected a size" run --output-cap abc -H h -- true
bad "--output-cap 1X" "^shoal: --output-cap 1X: expected a size" run --output-cap 1X -H h -- true
bad "--via bogus" "^shoal: --via bogus: expected sftp, scp or cat" put --via bogus -H h "$T/src" /tmp/x
bad "--mode rwx" "^shoal: --mode rwx: expected permission bits" put --mode rwx -H h "$T/src" /tmp/x
bad "--mode 9999" "^shoal: --mode 9999: expected permission bits" put --mode 9999 -H h "$T/src" /tmp/x
bad "--rate 10X" "^shoal: --rate 10X: expected bytes per second" put --rate 10X -H h "$T/src" /tmp/x
bad "--host-rate abc" "^shoal: --host-rate abc: expected bytes per second" put --host-rate abc -H h "$T/src" /tmp/x
bad "--stdin with put" "--stdin and -I are for shoal run" put --stdin "$T/src" -H h "$T/src" /tmp/x
bad "--stdin and -I together" "cannot be used together" run --stdin "$T/src" -I -H h -- true
bad "agent -c abc" "^shoal agent: -c abc: expected a whole number" agent -c abc
bad "agent -m x" "^shoal agent: -m x: expected a whole number" agent -m x
bad "agent --threads abc" "^shoal agent: --threads abc: expected a whole number from 1 to 64" agent --threads abc
bad "agent -w (no longer the thread count)" "usage" agent -w 2
# "--rate 10M" is 10 MiB/s (it used to be 10 bytes/s: this upload would
# have hit its deadline).
common "$SSHD_PORT"
rc=0
"$SHOAL_BIN" put "${COMMON[@]}" -t 60 --rate 10M --host-rate 5MiB/s -H 127.0.0.1 "$T/src" "$T/updir/rate10m" \
    >"$T/rate10m" 2>&1 </dev/null || rc=$?
check "put --rate 10M --host-rate 5MiB/s: units understood, upload done" sh -c "test $rc -eq 0 &&
    cmp '$T/src' '$T/updir/rate10m'"
finish
