#!/usr/bin/env bash
# Interop: graceful restart of shoal serve. While a loop of OpenSSH
# connections runs, SIGHUP makes the server re-execute itself with its
# listening socket: no connection of the loop fails, and a session opened
# before the restart completes after it (in the old process, which exits
# once it is done).
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys

ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
PORT=$(free_port)
"$SHOAL_BIN" serve -p "$PORT" -h "$T/hostkey" -o ListenAddress=127.0.0.1 -o PerSourcePenalties=no \
    -o "AuthorizedKeysFile=$T/keys/authorized_keys" -o StrictModes=no -o PermitRootLogin=yes \
    >"$T/serve.log" 2>&1 &
OLD_PID=$!
peers_track "$OLD_PID" "$T/serve.log"
new_pid() { sed -n 's/.*shoal\[\([0-9]*\)\]: listening on port.*/\1/p' "$T/serve.log" | grep -v "^$OLD_PID$" | tail -1; }
cleanup_new() { local p; p=$(new_pid); [ -n "$p" ] && kill "$p" 2>/dev/null || true; }
trap 'cleanup_new; _peers_cleanup' EXIT
wait_for 10 port_open "$PORT" || die "shoal serve did not start"
echo "[127.0.0.1]:$PORT $(cat "$T/hostkey.pub")" >"$T/kh"
SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/kh" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o LogLevel=ERROR -i "$T/keys/id_ed25519" -p "$PORT" "$PEER_USER@127.0.0.1")

# A session opened before the restart, still running across it.
"${SSH[@]}" 'sleep 3; echo long-session-done' >"$T/long.out" 2>&1 &
long_pid=$!
sleep 0.5

ok_count=0 fail_count=0
for i in $(seq 1 60); do
    if [ "$i" = 15 ]; then
        kill -HUP "$OLD_PID"
    fi
    if timeout 20 "${SSH[@]}" 'echo ok' >"$T/loop.out" 2>&1 && [ "$(cat "$T/loop.out")" = ok ]; then
        ok_count=$((ok_count + 1))
    else
        fail_count=$((fail_count + 1))
        sed 's/^/    | /' "$T/loop.out"
    fi
done
echo "# connections during the restart: $ok_count ok, $fail_count failed"
check "every connection during the restart succeeded ($ok_count/60)" [ "$fail_count" -eq 0 ]

RC=0
wait "$long_pid" || RC=$?
check_rc 0 "the session opened before the restart: exits 0"
check "the session opened before the restart: completed after it" grep -qx "long-session-done" "$T/long.out"

wait_for 15 sh -c "! kill -0 $OLD_PID 2>/dev/null" || true
check "the old process exited after its last session" sh -c "! kill -0 $OLD_PID 2>/dev/null"
NEW=$(new_pid)
check "a new process took over (pid ${NEW:-none})" [ -n "$NEW" ]
check "the new process serves" timeout 20 "${SSH[@]}" true
check "the log tells the story" grep -q "restart: new process is listening" "$T/serve.log"

finish
