#!/usr/bin/env bash
# `shoal run`, `shoal put` and `shoal agent` with almost no file
# descriptors (ulimit -n 16, 8, 5): libuv's set-up results used to go
# unchecked (a crash, or an abort inside libuv): now one clear line says
# what is missing, and the exit code is 1. With enough descriptors for one
# worker thread, the same run works (the host is refused, as it should).
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
: >"$T/empty"
PORT=$(free_port)   # nothing listens there
REQ="{\"Action\":\"ssh\",\"Cmd\":\"true\",\"Hosts\":[\"127.0.0.1:$PORT\"]}"

# limited N CMD...: run CMD with both limits at N (descriptors above N-1
# that this shell inherited are closed first: they would not count
# against the limit but fill no slot below it either).
limited() {
    local n=$1
    shift
    (
        for fd in $(ls /proc/self/fd); do
            [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
        done
        ulimit -n "$n"
        exec "$@"
    )
}

for n in 16 8 5; do
    for what in run put agent; do
        rc=0
        case $what in
        run) limited "$n" "$SHOAL_BIN" run -H 127.0.0.1 -p "$PORT" -o "UserKnownHostsFile=$T/kh" -- true \
            </dev/null >"$T/out" 2>"$T/err" || rc=$? ;;
        put) limited "$n" "$SHOAL_BIN" put -H 127.0.0.1 -p "$PORT" -o "UserKnownHostsFile=$T/kh" "$T/empty" /tmp/x \
            </dev/null >"$T/out" 2>"$T/err" || rc=$? ;;
        agent) limited "$n" env -u SSH_AUTH_SOCK "$SHOAL_BIN" agent -o "UserKnownHostsFile=$T/kh" \
            < <(echo "$REQ") >"$T/out" 2>"$T/err" || rc=$? ;;
        esac
        check "ulimit -n $n, $what: exit code 1, not a crash (rc $rc)" test "$rc" -eq 1
        check "ulimit -n $n, $what: one line on stderr saying why" sh -c "test \$(wc -l <'$T/err') -eq 1 &&
            grep -Eq '^shoal( agent)?: .*(too few file descriptors|too many open files)' '$T/err'"
        if [ "$what" = agent ]; then
            check "ulimit -n $n, agent: a critical UserError on stdout" grep -q '"Type":"UserError","IsCritical":true' \
                "$T/out"
        fi
        sed 's/^/    # /' "$T/err"
    done
done
rc=0
limited 16 "$SHOAL_BIN" run --threads 1 -H 127.0.0.1 -p "$PORT" -o "UserKnownHostsFile=$T/kh" --no-progress -- true \
    </dev/null >"$T/out" 2>"$T/err" || rc=$?
check "ulimit -n 16, run --threads 1: runs (the host is refused)" sh -c "test $rc -eq 1 &&
    grep -q 'refused (connect): 1: 127.0.0.1' '$T/out'"
finish
