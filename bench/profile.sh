#!/bin/sh
# shellcheck shell=bash
# bench/profile.sh -- profile shoal's client side against the same private
# sshd that bench/run.sh uses, with perf (or callgrind when perf is missing).
#
#   sh bench/profile.sh build/shoal fanout [C] [N]   # shoal_bench_fanout -c C -n N (1, 200)
#   sh bench/profile.sh build/shoal exec [N]         # N x `shoal exec ... true` (50)
#   sh bench/profile.sh build/shoal bulk [CIPHER]    # 1 GiB upload (aes128-gcm@openssh.com)
#
# Writes perf.data (or callgrind.out) to $PROFILE_DIR (default: a new
# directory under /tmp, printed at the end) and prints the top functions by
# inclusive and by self time. perf samples at 10 kHz with DWARF unwinding
# (the build has no frame pointers); libcrypto's own functions show as
# addresses without its debug symbols, so read them through their callers.
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi
set -euo pipefail

SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SHOAL=${1:-$SRC/build/shoal}
case $SHOAL in /*) ;; *) SHOAL=$PWD/$SHOAL ;; esac
MODE=${2:-fanout}
# shellcheck source=lib.sh
. "$SRC/bench/lib.sh"
OUT=${PROFILE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/shoal-profile.XXXXXX")}
mkdir -p "$OUT"
bench_setup

case $MODE in
    fanout)
        C=${3:-1} NN=${4:-200}
        CMD=("${FAN[@]}" -c "$C" -n "$NN" "$USER_AT" true) ;;
    exec)
        NN=${3:-50}
        printf 'for ((i = 0; i < %d; i++)); do "$@" </dev/null >/dev/null || exit 1; done\n' "$NN" >"$T/loop.sh"
        CMD=(bash "$T/loop.sh" "${SHOAL_EXEC[@]}" -n "$USER_AT" true) ;;
    bulk)
        CIPHER=${3:-aes128-gcm@openssh.com}
        head -c 1G /dev/zero >"$T/zero" # from page cache; a pipe would need a second process
        # shellcheck disable=SC2016 # expanded by the inner sh
        CMD=(sh -c 'exec "$@" <"$0"' "$T/zero" "${SHOAL_EXEC[@]}" -c "$CIPHER" "$USER_AT" 'cat > /dev/null') ;;
    *)
        echo "usage: profile.sh SHOAL_BIN fanout [C] [N] | exec [N] | bulk [CIPHER]" >&2
        exit 2 ;;
esac

if command -v perf >/dev/null 2>&1 && perf record -o "$T/probe.data" -- true >/dev/null 2>&1; then
    perf record -F 10000 --call-graph dwarf,32768 -o "$OUT/perf.data" -- "${CMD[@]}" 2>"$T/perf.err" ||
        { cat "$T/perf.err" >&2; exit 1; }
    set +o pipefail # `head` ends the reports early
    # Only the client (shoal / shoal_bench_fanout), not bash or sh.
    comms=shoal_bench_fan,shoal
    echo "== inclusive (children), client process only"
    perf report -i "$OUT/perf.data" --comms "$comms" --children --sort sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 60
    echo
    echo "== self, by shared object"
    perf report -i "$OUT/perf.data" --comms "$comms" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 10
    echo
    echo "== self, top symbols"
    perf report -i "$OUT/perf.data" --comms "$comms" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 30
    echo
    echo "profile: $OUT/perf.data (perf report -i $OUT/perf.data --comms $comms)"
else
    command -v valgrind >/dev/null 2>&1 || { echo "profile: neither perf nor valgrind is usable" >&2; exit 1; }
    echo "profile: perf is not usable here; using callgrind (instruction counts; crypto code paths" \
        "differ under valgrind, which hides AVX-512 and friends from OpenSSL)" >&2
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT/callgrind.out.%p" \
        -- "${CMD[@]}" 2>"$T/vg.err" || { tail -20 "$T/vg.err" >&2; exit 1; }
    set +o pipefail
    for f in "$OUT"/callgrind.out.*; do
        callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '/file:function/,$p' | head -n 40
    done
    echo "profile: $OUT/callgrind.out.* (callgrind_annotate --inclusive=yes FILE)"
fi
