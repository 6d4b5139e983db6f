#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: descriptors `shoal serve` inherits from its parent (here a file
# opened by this shell as fd 7) never reach what it runs: a user's command
# (exec), a login shell with a pty, or the AuthorizedKeysCommand; nor do
# the server's own sockets. After a graceful restart (SIGHUP: the new
# process inherits the listening socket on purpose) the same holds in the
# new process. Checked from inside, with a real OpenSSH ssh, by listing
# /proc/PID/fd of the process that runs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_cmd ssh
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys
KEY=$T/keys/id_ed25519
DEST=$PEER_USER@127.0.0.1

# What each process lists: "fd -> target" for every descriptor it holds.
# (find runs as a child of the shell, so what it lists is the shell's own;
# the ":" after it keeps the shell from exec'ing find in its place.)
FDS='find /proc/$$/fd -mindepth 1 -printf "%f -> %l\n"; :'
# leaks FILE: the descriptors in FILE beyond stdin/stdout/stderr that point
# at the inherited file or at a socket.
leaks() { grep -E "inherited-secret|socket:" "$1" | grep -vE '^[012] ->' || true; }

mkdir -p "$T/akc"
chmod 1777 "$T/akc"
if [ "$(id -u)" = 0 ] && getent passwd nobody >/dev/null; then AKC_USER=nobody; else AKC_USER=$PEER_USER; fi
cat >"$T/akc/akc" <<EOF
#!/bin/sh
# (In a pipeline the redirection is cat's alone: the shell keeps its stdio.)
find /proc/\$\$/fd -mindepth 1 -printf "%f -> %l\\n" | cat >"$T/akc/fds.\$\$"
exit 0
EOF
chmod 755 "$T/akc/akc"
echo secret >"$T/inherited-secret"

# The server's parent (this shell) holds fd 7; start_shoal_serve's server
# inherits it.
exec 7<"$T/inherited-secret"
start_shoal_serve "AuthorizedKeysCommand $T/akc/akc" "AuthorizedKeysCommandUser $AKC_USER"
exec 7<&-
check "the server itself did inherit fd 7 (the test's premise)" \
    sh -c "readlink /proc/$SERVE_PID/fd/7 | grep -q inherited-secret"

SSH0=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o IdentitiesOnly=yes)
SSH=("${SSH0[@]}" -i "$KEY")
# check_session LABEL: an exec and a pty shell list their descriptors.
check_session() {
    run_cmd "${SSH[@]}" -p "$SERVE_PORT" "$DEST" "$FDS" </dev/null
    check_rc 0 "$1: exec runs"
    cp "$T/out" "$T/fds.exec"
    sed 's/^/#   /' "$T/fds.exec"
    check "$1: exec: no inherited descriptor, no server socket ($(leaks "$T/fds.exec" | tr '\n' ' '))" \
        test -z "$(leaks "$T/fds.exec")"
    check "$1: exec: nothing above 2 at all" sh -c "! grep -vE '^[012] ->' '$T/fds.exec'"
    run_cmd "${SSH[@]}" -p "$SERVE_PORT" -tt "$DEST" "$FDS" </dev/null
    tr -d '\r' <"$T/out" >"$T/fds.pty"
    check "$1: pty: the shell runs on a terminal" grep -q '^0 -> /dev/pts/' "$T/fds.pty"
    check "$1: pty: no inherited descriptor, no server socket ($(leaks "$T/fds.pty" | tr '\n' ' '))" \
        test -z "$(leaks "$T/fds.pty")"
}
check_session "first process"

# The AuthorizedKeysCommand runs for a key in no file.
ssh-keygen -q -t ed25519 -N '' -C stranger -f "$T/keys/id_stranger"
run_cmd "${SSH0[@]}" -p "$SERVE_PORT" -i "$T/keys/id_stranger" "$DEST" true </dev/null
check "the AuthorizedKeysCommand ran" sh -c "ls '$T'/akc/fds.* >/dev/null 2>&1"
cat "$T"/akc/fds.* >"$T/fds.akc" 2>/dev/null || true
sed 's/^/#   akc: /' "$T/fds.akc"
check "AuthorizedKeysCommand: no inherited descriptor, no server socket ($(leaks "$T/fds.akc" | tr '\n' ' '))" \
    test -z "$(leaks "$T/fds.akc")"

# ---- graceful restart: the new process gets the listening socket, and
# must keep it (and everything else) away from sessions too.
old=$SERVE_PID
mark=$(log_mark "$SERVE_LOG")
kill -HUP "$old"
new_listening() { log_since "$SERVE_LOG" "$mark" | grep -q "listening on port $SERVE_PORT "; }
check "SIGHUP: a new process listens" wait_for 30 new_listening
new=$(log_since "$SERVE_LOG" "$mark" | sed -n "s/.*shoal\[\([0-9]*\)\]: listening on port $SERVE_PORT .*/\1/p" | tail -n 1)
[ -n "$new" ] && peers_track "$new"
check "the new process did not inherit fd 7" sh -c "! readlink /proc/$new/fd/7 2>/dev/null | grep -q inherited-secret"
# Wait until the old one no longer accepts, so the next logins reach the new one.
check "the old process stops accepting" wait_for 30 sh -c "grep -q 'no longer accepting here' '$SERVE_LOG'"
check_session "after a graceful restart"
kill "$new" 2>/dev/null || true

finish
