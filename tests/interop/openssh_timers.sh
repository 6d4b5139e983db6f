#!/usr/bin/env bash
# Interop: the session's own timers against OpenSSH's sshd.
#  - ServerAliveInterval: keepalive@openssh.com requests go out while the
#    command is silent, and a server that stops answering (its session
#    process frozen with SIGSTOP) is given up after ServerAliveCountMax
#    unanswered requests, with a message saying so;
#  - RekeyLimit with a time: key re-exchange happens on an idle connection.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_sshd "LogLevel DEBUG3"
COMMON=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -p "$SSHD_PORT" -i "$T/keys/id_ed25519")
DEST=$PEER_USER@127.0.0.1

# ---- keepalives while the command is silent
mark=$(log_mark "$SSHD_LOG")
run_shoal "${COMMON[@]}" -o ServerAliveInterval=1 "$DEST" 'sleep 3; echo done'
check_rc 0 "ServerAliveInterval=1 over a silent 3 s command: exits 0"
check_out done "ServerAliveInterval=1: command output intact"
n=$(log_since "$SSHD_LOG" "$mark" | grep -c "keepalive@openssh.com" || true)
check "ServerAliveInterval=1: sshd received keepalive requests (saw $n)" [ "$n" -ge 2 ]

# ---- rekey by time on an idle connection
mark=$(log_mark "$SSHD_LOG")
run_shoal "${COMMON[@]}" -o "RekeyLimit=default 1s" "$DEST" 'sleep 3; echo rekeyed'
check_rc 0 "RekeyLimit=default 1s: exits 0"
check_out rekeyed "RekeyLimit=default 1s: output intact"
n=$(log_since "$SSHD_LOG" "$mark" | grep "SSH2_MSG_KEXINIT received" | grep -vc "\[preauth\]" || true)
check "RekeyLimit=default 1s: re-keyed while idle (saw $n)" [ "$n" -ge 1 ]

# ---- a server that stops answering: keepalives give up
"$SHOAL_BIN" exec "${COMMON[@]}" -o ServerAliveInterval=1 -o ServerAliveCountMax=2 "$DEST" \
    'echo started; sleep 60' >"$T/ka.out" 2>"$T/ka.err" &
shoal_pid=$!
wait_for 20 grep -q started "$T/ka.out" || die "the command did not start"
# The per-connection sshd process that serves this session: a child of the
# listener whose command line names the user (privilege separation or not).
frozen=""
for p in $(pgrep -P "$SSHD_PID"); do
    frozen="$frozen $p $(pgrep -P "$p" -f 'sshd:' || true)"
done
# shellcheck disable=SC2086
kill -STOP $frozen
rc=0
timeout 30 tail --pid="$shoal_pid" -f /dev/null || true
wait "$shoal_pid" || rc=$?
# shellcheck disable=SC2086
kill -CONT $frozen 2>/dev/null || true
RC=$rc
cp "$T/ka.err" "$T/err"
check_rc 255 "unanswered keepalives: exits 255"
check_err_has "did not answer 2 keepalives" "unanswered keepalives: message says why"
check_err_has "127\.0\.0\.1:$SSHD_PORT" "unanswered keepalives: message names the host"

finish
