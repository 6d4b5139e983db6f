#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: `shoal exec` against OpenSSH's sshd -- the basics of running one
# command: exit codes, stdout vs stderr, stdin, exit signals, 64 MiB each way,
# option spellings, and host key checking (mismatch, unknown, accept-new).
#
# Exit-signal convention (shoal's choice, differs from ssh): when the remote
# command is killed by a signal, ssh exits 255; shoal prints
# "remote command killed by signal TERM" on stderr and exits 128+signo (143).
# SHOAL_COMPAT_SSH=1 switches the checks that depend on shoal's own wording
# or conventions to OpenSSH's, to trial this script with ssh standing in for
# shoal.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_sshd

DEST=$PEER_USER@127.0.0.1
KEY=$T/keys/id_ed25519
COMMON=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -p "$SSHD_PORT" -i "$KEY")

# ---- exit codes
run_shoal "${COMMON[@]}" "$DEST" true </dev/null
check_rc 0 "true exits 0"
check_out "" "true prints nothing"
run_shoal "${COMMON[@]}" "$DEST" false </dev/null
check_rc 1 "false exits 1"
run_shoal "${COMMON[@]}" "$DEST" 'exit 42' </dev/null
check_rc 42 "'exit 42' exits 42"

# ---- stdout and stderr stay separate; arguments are joined like ssh does
run_shoal "${COMMON[@]}" "$DEST" 'echo out1; echo err1 >&2; echo out2; echo err2 >&2' </dev/null
check_rc 0 "mixed output exits 0"
check_out $'out1\nout2' "stdout carries only stdout"
check_err $'err1\nerr2' "stderr carries only stderr"
run_shoal "${COMMON[@]}" "$DEST" echo one two '  three' </dev/null
check_out "one two three" "command words are joined with spaces (then split by the remote shell)"

# ---- stdin
run_shoal "${COMMON[@]}" "$DEST" cat < <(printf 'a\nb\n')
check_rc 0 "cat of piped stdin exits 0"
check_out $'a\nb' "stdin is forwarded"
run_shoal "${COMMON[@]}" "$DEST" 'wc -c' </dev/null
check_out "0" "EOF on stdin reaches the remote command"

# ---- exit signal
run_shoal "${COMMON[@]}" "$DEST" 'kill -TERM $$' </dev/null
if [ "${SHOAL_COMPAT_SSH:-0}" = 1 ]; then
    check_rc 255 "killed by TERM: ssh exits 255"
else
    check_rc 143 "killed by TERM: exit code 128+15"
    check_err_has "remote command killed by signal TERM" "killed by TERM: message on stderr"
fi

# ---- 64 MiB download, checked by sha256 (generated the same way locally)
gen64() { dd if=/dev/zero bs=1M count=64 2>/dev/null | tr '\0' 'x'; }
want=$(gen64 | sha256sum | cut -d' ' -f1)
run_shoal "${COMMON[@]}" "$DEST" "dd if=/dev/zero bs=1M count=64 2>/dev/null | tr '\\0' 'x'" </dev/null
check_rc 0 "64 MiB download exits 0"
check_sha256 "$want" "64 MiB download arrives intact"

# ---- 64 MiB upload, checked by sha256 computed remotely
head -c 67108864 /dev/urandom >"$T/up"
want=$(sha256sum <"$T/up" | cut -d' ' -f1)
run_shoal "${COMMON[@]}" "$DEST" sha256sum <"$T/up"
rm -f "$T/up"
check_rc 0 "64 MiB upload exits 0"
check_out "$want  -" "64 MiB upload arrives intact"

# ---- option spellings: -l, and -o Port/User/IdentityFile
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$SSHD_PORT" -i "$KEY" -l "$PEER_USER" 127.0.0.1 'id -un' </dev/null
check_rc 0 "-l user works"
check_out "$PEER_USER" "-l user logs in as that user"
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o "Port=$SSHD_PORT" -o "User=$PEER_USER" -o "IdentityFile=$T/keys/id_ecdsa" 127.0.0.1 'echo viaopts' </dev/null
check_rc 0 "-o Port= -o User= -o IdentityFile= work"
check_out "viaopts" "-o Port/User/IdentityFile: command ran"

# ---- connection refused: 255 and one line naming the host
dead_port=$(free_port)
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$dead_port" -i "$KEY" "$DEST" true </dev/null
check_rc 255 "connection refused exits 255"
check_err_has "127\\.0\\.0\\.1" "connection refused: message names the host"
check "connection refused: message is one line" [ "$(wc -l <"$T/err")" -eq 1 ]

# ---- host key checks
# no_auth_since MARK: sshd saw the connection end, and no authentication
# attempt in it (the client must stop before sending any credential).
no_auth_since() {
    wait_for 5 _conn_over "$1" || true
    if log_since "$SSHD_LOG" "$1" | grep -Eq "authenticating user|Accepted |Failed |Postponed |Invalid user"; then
        echo "sshd log shows an authentication attempt:"
        log_since "$SSHD_LOG" "$1" | sed 's/^/| /'
        return 1
    fi
}
_conn_over() { log_since "$SSHD_LOG" "$1" | grep -Eq "Connection (closed|reset) by|Disconnected|disconnect"; }

# A known_hosts whose entry for the server (line 2) holds another key.
ssh-keygen -q -t ed25519 -N '' -C impostor -f "$T/impostor"
{
    echo "unrelated.invalid $(cut -d' ' -f1,2 "$T/impostor.pub")"
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$T/impostor.pub")"
} >"$T/kh_bad"
mark=$(log_mark "$SSHD_LOG")
run_shoal -o "UserKnownHostsFile=$T/kh_bad" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o HostKeyAlgorithms=ssh-ed25519 -p "$SSHD_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "changed host key exits 255"
check_out "" "changed host key: the command did not run"
check_err_has "$T/kh_bad" "changed host key: message names the known_hosts file"
check_err_has "(:|line |line: )2([^0-9]|\$)" "changed host key: message names line 2"
check_err_has "127\\.0\\.0\\.1" "changed host key: message names the host"
check "changed host key: no authentication attempted" no_auth_since "$mark"

# Same, letting shoal pick the host key algorithm: still refused.
mark=$(log_mark "$SSHD_LOG")
run_shoal -o "UserKnownHostsFile=$T/kh_bad" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$SSHD_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "changed host key (any algorithm) exits 255"
check "changed host key (any algorithm): no authentication attempted" no_auth_since "$mark"

# Unknown host, StrictHostKeyChecking=yes: refused.
: >"$T/kh_empty"
mark=$(log_mark "$SSHD_LOG")
run_shoal -o "UserKnownHostsFile=$T/kh_empty" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$SSHD_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "unknown host with StrictHostKeyChecking=yes exits 255"
check_err_has "127\\.0\\.0\\.1" "unknown host: message names the host"
check "unknown host: no authentication attempted" no_auth_since "$mark"
check "unknown host with =yes: known_hosts left alone" [ ! -s "$T/kh_empty" ]

# Unknown host, StrictHostKeyChecking=accept-new: added, then trusted.
: >"$T/kh_new"
run_shoal -o "UserKnownHostsFile=$T/kh_new" -o StrictHostKeyChecking=accept-new -o BatchMode=yes \
    -p "$SSHD_PORT" -i "$KEY" "$DEST" 'echo accepted' </dev/null
check_rc 0 "accept-new: unknown host accepted"
check_out "accepted" "accept-new: command ran"
# The entry is for [127.0.0.1]:PORT (ssh-keygen -F also finds hashed ones)
# and holds one of the server's real host keys.
added_key_ok() {
    local line blob
    line=$(ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$T/kh_new" | grep -v '^#' | head -n 1)
    [ -n "$line" ] || { echo "no entry for [127.0.0.1]:$SSHD_PORT in kh_new"; return 1; }
    blob=$(echo "$line" | awk '{ print $3 }')
    cat "$T"/hostkeys/*.pub | awk '{ print $2 }' | grep -qxF -- "$blob"
}
check "accept-new: entry for [127.0.0.1]:$SSHD_PORT with the server's key added" added_key_ok
run_shoal -o "UserKnownHostsFile=$T/kh_new" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$SSHD_PORT" -i "$KEY" "$DEST" 'echo again' </dev/null
check_rc 0 "accept-new: the added entry is trusted with StrictHostKeyChecking=yes"

finish
