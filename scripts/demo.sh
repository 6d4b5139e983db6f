#!/bin/sh
# shellcheck shell=bash # (re-executes itself with bash right away)
# Demo: `sh scripts/demo.sh path/to/shoal` (what `make demo` runs).
# Starts a private OpenSSH sshd on 127.0.0.1 with throwaway keys, runs a few
# commands through `shoal exec`, shows each command, its output and its exit
# code, then stops sshd and removes every file it made. Touches nothing in
# ~/.ssh. Needs openssh-server (`make deps`); meant to be run as root, as on a
# fresh Debian 12 after `make` (as another user it logs in as that user).
#
# The work is done in bash with tests/lib/peers.sh, the same helpers the
# interop tests use; `sh` is only the front door.
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi
set -euo pipefail

usage() { echo "usage: sh scripts/demo.sh path/to/shoal" >&2; exit 2; }
[ $# -eq 1 ] || usage
[ -x "$1" ] || { echo "demo: $1 is not an executable (run 'make' first)" >&2; exit 2; }
SHOAL_BIN=$(cd -- "$(dirname -- "$1")" && pwd)/$(basename -- "$1")
HERE=$(cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/lib/peers.sh
. "$HERE/../tests/lib/peers.sh"

# peers.sh's skip() exits 77 for ctest; here a missing piece is an error.
skip() { echo "demo: $*" >&2; exit 1; }

if [ -t 1 ]; then B=$(printf '\033[1m'); D=$(printf '\033[2m'); N=$(printf '\033[0m'); else B='' D='' N=''; fi

echo "${B}shoal demo${N}: a private sshd on 127.0.0.1, throwaway keys, $SHOAL_BIN"
peers_init
gen_user_keys
start_sshd
echo "${D}sshd (pid $SSHD_PID) listens on 127.0.0.1:$SSHD_PORT; keys and logs in $T${N}"
echo

DEST=$PEER_USER@127.0.0.1
OPTS=(-p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/known_hosts"
    -o StrictHostKeyChecking=yes -o BatchMode=yes)

# demo CMD: run CMD remotely, show stdout, stderr and the exit code.
demo() {
    local rc=0
    echo "${B}\$ shoal exec -p $SSHD_PORT -i keys/id_ed25519 $DEST '$1'${N}"
    "$SHOAL_BIN" exec "${OPTS[@]}" "$DEST" "$1" </dev/null >"$T/demo.out" 2>"$T/demo.err" || rc=$?
    sed 's/^/  stdout | /' "$T/demo.out"
    sed 's/^/  stderr | /' "$T/demo.err"
    echo "  exit code: ${B}$rc${N}"
    echo
}

demo 'uname -a'
# shellcheck disable=SC2016 # expanded by the remote shell
demo 'echo "hello from shoal, running as $(id -un) on $(hostname)"'
demo 'echo "about to fail" >&2; exit 3'

echo "${D}stopping sshd and cleaning up${N}"
