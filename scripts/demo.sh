#!/bin/sh
# shellcheck shell=bash # (re-executes itself with bash right away)
# Demo: `sh scripts/demo.sh path/to/shoal` (what `make demo` runs).
# Starts `shoal serve` on 200 loopback addresses (127.0.0.1-100 and
# 127.0.1.1-100, one port) with throwaway host and user keys, then fans out
# with `shoal run` and `shoal put` and prints the grouped results. Touches
# nothing in ~/.ssh; every file lives in a temp dir removed at the end.
# Run as root (as on a fresh Debian 12 after `make`), commands run as the
# test account `shoaltest` (created if missing, as the tests do) so the
# demo does not depend on root's shell start-up files; as another user they
# run as that user.
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

peers_init
gen_user_keys
LOGIN=$PEER_USER
if make_test_user 2>/dev/null; then LOGIN=$TEST_USER; fi

lines=()
for i in $(seq 1 100); do lines+=("ListenAddress 127.0.0.$i" "ListenAddress 127.0.1.$i"); done
echo "${B}shoal demo${N}: shoal serve on 200 loopback addresses, throwaway keys, $SHOAL_BIN"
start_shoal_serve "${lines[@]}" "MaxStartups 1000" >/dev/null
echo "${D}shoal serve (pid $SERVE_PID) listens on 127.0.0.[1-100]:$SERVE_PORT and 127.0.1.[1-100]:$SERVE_PORT;" \
    "keys and logs in $T${N}"
echo

OPTS=(-l "$LOGIN" -p "$SERVE_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/demo_known_hosts")
HOSTS=(-H '127.0.0.[1-100]' -H '127.0.1.[1-100]')

# show TITLE CMD...: print the command line, run it, show its exit code.
show() {
    local title=$1 rc=0
    shift
    echo "${B}# $title${N}"
    echo "${B}\$ shoal ${*}${N}"
    "$SHOAL_BIN" "$@" </dev/null || rc=$?
    echo "${D}exit code: $rc${N}"
    echo
}

# shellcheck disable=SC2016 # expanded by the remote shell
show "the same command on 200 hosts; identical output is folded into one group" \
    run "${OPTS[@]}" "${HOSTS[@]}" -- 'echo "hello from $(hostname), running as $(id -un)"'
# shellcheck disable=SC2016
show "different results are grouped apart; failures are classified (127.0.2.1 has no server)" \
    run "${OPTS[@]}" "${HOSTS[@]}" -H 127.0.2.1 -t 5 -- \
    'case $(echo $SSH_CONNECTION | cut -d" " -f3) in 127.0.0.*) echo "in 127.0.0.0/24";; *) echo "in 127.0.1.0/24"; exit 3;; esac'
head -c 1048576 /dev/urandom >"$T/payload"
mkdir -p "$T/updir"
chown "$LOGIN" "$T/updir"
show "upload 1 MiB to 200 hosts (SFTP, temporary name, rename; %h = the host)" \
    put "${OPTS[@]}" "${HOSTS[@]}" --verify "$T/payload" "$T/updir/payload.%h"
echo "${D}$(find "$T/updir" -name 'payload.*' | wc -l) files written, sha256:" \
    "$(sha256sum "$T"/updir/payload.* | cut -d' ' -f1 | sort -u | wc -l) distinct value(s)${N}"
echo
echo "${B}# for programs: the agent's JSON lines${N}"
REQ="{\"Action\":\"ssh\",\"Cmd\":\"uptime -p\",\"Hosts\":[\"127.0.0.1:$SERVE_PORT\",\"127.0.0.2:$SERVE_PORT\"]}"
echo "${B}\$ echo '$REQ' | shoal agent -l $LOGIN -i keys/id_ed25519 ...${N}"
echo "$REQ" |
    "$SHOAL_BIN" agent -l "$LOGIN" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/demo_known_hosts"
echo
echo "${D}stopping shoal serve and cleaning up${N}"
