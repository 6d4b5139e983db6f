#!/bin/sh
# shellcheck shell=bash
# bench/run.sh -- shoal vs OpenSSH's ssh against one private OpenSSH sshd on
# loopback. Invoked by `make bench` as `sh bench/run.sh build/shoal`.
#
# Measures, in one run and against the same sshd (curve25519-sha256 and
# ssh-ed25519 host key forced on both clients, ed25519 user key):
#   a. N sequential connections running `true`: client CPU and wall time per
#      connection for N x `shoal exec`, one shoal_bench_fanout -c 1 (the
#      library without a process start-up per connection) and N x `ssh`;
#   b. N concurrent connections: shoal_bench_fanout -c N vs N background
#      `ssh` processes + wait;
#   c. one channel's throughput: BULK MiB of zeros into `cat > /dev/null`
#      with aes128-gcm@openssh.com and chacha20-poly1305@openssh.com;
#   d. the same BULK MiB from a regular file as the client's stdin
#      (aes128-gcm@openssh.com): how a client reads a file it is given.
# Every figure is the median of BENCH_RUNS runs (each metric separately).
#
# Client CPU = user+sys of the client process and every descendant it waited
# for, from wait4()'s rusage (bench/cputime.c, microsecond resolution; GNU
# time prints only hundredths of a second). sshd CPU = the listener's own
# plus its reaped children's utime+stime from /proc (clock ticks).
#
# Environment knobs: BENCH_N (200), BENCH_RUNS (3), BENCH_BULK_MIB (1024),
# BENCH_OUT (write the result table as markdown to this file).
# The machine needs: /usr/sbin/sshd, ssh, ssh-keygen, /usr/bin/python3
# (tests/lib/peers.sh uses it to pick ports) and, for a clean server
# environment, root and unshare(1).
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi
set -euo pipefail

SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SHOAL=${1:-$SRC/build/shoal}
case $SHOAL in /*) ;; *) SHOAL=$PWD/$SHOAL ;; esac
N=${BENCH_N:-200}
RUNS=${BENCH_RUNS:-3}
BULK_MIB=${BENCH_BULK_MIB:-1024}

# shellcheck source=lib.sh
. "$SRC/bench/lib.sh"
for f in "$SHOAL" "$FANOUT" "$TIMER"; do
    [ -x "$f" ] || { echo "bench: $f is missing; build first (cmake --build build)" >&2; exit 1; }
done
command -v ssh >/dev/null || { echo "bench: ssh (OpenSSH client) is not installed" >&2; exit 1; }

bench_t0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
bench_setup

# Loops run under the timer as one bash process each.
cat >"$T/seq.sh" <<'EOF'
# seq.sh N OKFILE CMD...: run CMD N times one after the other.
n=$1 okf=$2
shift 2
ok=0
for ((i = 0; i < n; i++)); do
    if "$@" </dev/null >/dev/null; then ok=$((ok + 1)); fi
done
echo "$ok" >"$okf"
EOF
cat >"$T/par.sh" <<'EOF'
# par.sh N OKFILE CMD...: start CMD N times in the background, wait for all.
n=$1 okf=$2
shift 2
pids=()
for ((i = 0; i < n; i++)); do
    "$@" </dev/null >/dev/null &
    pids+=($!)
done
ok=0
for p in "${pids[@]}"; do
    if wait "$p"; then ok=$((ok + 1)); fi
done
echo "$ok" >"$okf"
EOF

# ---------------------------------------------------------------- helpers

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
sshd_cpu() { awk -v hz="$HZ" '{ printf "%.4f\n", ($14 + $15 + $16 + $17) / hz }' "/proc/$SSHD_PID/stat"; }
# Busy (user+nice+system+irq+softirq) and steal seconds of the whole machine.
machine_cpu() { awk -v hz="$HZ" '$1 == "cpu" { printf "%.4f %.4f\n", ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz }' /proc/stat; }

# Disturbance: machine CPU not used by the client under test or sshd (other
# processes, plus softirq work the kernel did not charge to either), as a
# share of all CPUs over the measurement, and steal time (VM host).
OTHER_MAX=0 OTHER_MAX_NAME=- STEAL_TOTAL=0
note_other() { # NAME WALL CLIENT_S SSHD_S M0 M1
    local pct steal
    read -r pct steal < <(awk -v w="$2" -v c="$3" -v d="$4" -v m0="$5" -v m1="$6" -v n="$NCPU" 'BEGIN {
        split(m0, a, " "); split(m1, b, " ")
        o = (b[1] - a[1]) - c - d; if (o < 0) o = 0
        printf "%.1f %.3f\n", (w > 0 ? 100 * o / (w * n) : 0), b[2] - a[2] }')
    OTHER_PCT=$pct
    STEAL_S=$steal
    STEAL_TOTAL=$(calc "$STEAL_TOTAL + $steal")
    # /proc/stat counts in clock ticks: too coarse for runs under a second.
    if awk -v a="$pct" -v b="$OTHER_MAX" -v w="$2" 'BEGIN { exit !(w >= 1 && a > b) }'; then
        OTHER_MAX=$pct
        OTHER_MAX_NAME=$1
    fi
}

# Wait until the listener has reaped every per-connection child, so its
# cutime/cstime include them.
sshd_settle() {
    local _
    for _ in $(seq 1 100); do
        [ -z "$(pgrep -P "$SSHD_PID" 2>/dev/null || true)" ] && return 0
        sleep 0.05
    done
    echo "bench: sshd still has children after 5 s" >&2
}

# field NAME FILE: value of NAME=... in a key=value line.
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$2"; }
calc() { awk "BEGIN { printf \"%.6g\n\", $* }"; }

declare -A R      # metric -> space-separated values, one per run
FAILURES=()
add() { R[$1]="${R[$1]:-} $2"; }

# measure NAME COUNT CMD...: time CMD (which must write the success count to
# $T/ok unless it is the fanout program, whose summary line gives ok=), add
# client CPU ms/conn, wall ms/conn, wall s and sshd CPU ms/conn for NAME.
measure() {
    local name=$1 count=$2
    shift 2
    local s0 s1 m0 m1 rc=0 ok
    rm -f "$T/ok" "$T/time" "$T/out"
    sshd_settle
    s0=$(sshd_cpu)
    m0=$(machine_cpu)
    "$TIMER" -o "$T/time" "$@" >"$T/out" 2>"$T/err" || rc=$?
    sshd_settle
    s1=$(sshd_cpu)
    m1=$(machine_cpu)
    if [ -s "$T/ok" ]; then ok=$(cat "$T/ok"); else ok=$(field ok "$T/out"); fi
    if [ "$rc" -ne 0 ] || [ "${ok:-0}" != "$count" ]; then
        FAILURES+=("$name: rc=$rc ok=${ok:-?}/$count: $(head -c 300 "$T/err" | tr '\n' ' ')")
    fi
    local w u s
    w=$(field wall_s "$T/time")
    u=$(field user_s "$T/time")
    s=$(field sys_s "$T/time")
    add "$name.cpu_ms" "$(calc "($u + $s) * 1000 / $count")"
    add "$name.wall_ms" "$(calc "$w * 1000 / $count")"
    add "$name.wall_s" "$w"
    add "$name.sshd_ms" "$(calc "($s1 - $s0) * 1000 / $count")"
    note_other "$name" "$w" "$(calc "$u + $s")" "$(calc "$s1 - $s0")" "$m0" "$m1"
    printf '  %-24s ok=%s/%s wall %6.2f s  client CPU %7.3f ms/conn  sshd CPU %6.2f ms/conn  other %4.1f%%  steal %.2f s\n' \
        "$name" "${ok:-?}" "$count" "$w" "$(calc "($u + $s) * 1000 / $count")" \
        "$(calc "($s1 - $s0) * 1000 / $count")" "$OTHER_PCT" "$STEAL_S"
}

# bulk NAME CMD...: feed BULK_MIB MiB of zeros to CMD (timed alone, so
# `head` is not counted as client CPU); from the file $BULK_FILE instead
# when that is set.
bulk() {
    local name=$1
    shift
    local s0 s1 m0 m1 rc=0
    rm -f "$T/time"
    sshd_settle
    s0=$(sshd_cpu)
    m0=$(machine_cpu)
    if [ -n "${BULK_FILE:-}" ]; then
        "$TIMER" -o "$T/time" "$@" <"$BULK_FILE" 2>"$T/err" || rc=$?
    else
        head -c "$((BULK_MIB * 1048576))" /dev/zero | "$TIMER" -o "$T/time" "$@" 2>"$T/err" || rc=$?
    fi
    sshd_settle
    s1=$(sshd_cpu)
    m1=$(machine_cpu)
    [ "$rc" -eq 0 ] || FAILURES+=("$name: rc=$rc: $(head -c 300 "$T/err" | tr '\n' ' ')")
    local w u s gib
    w=$(field wall_s "$T/time")
    u=$(field user_s "$T/time")
    s=$(field sys_s "$T/time")
    gib=$(calc "$BULK_MIB / 1024")
    add "$name.mibs" "$(calc "$BULK_MIB / $w")"
    add "$name.cpu_s_gib" "$(calc "($u + $s) / $gib")"
    add "$name.sshd_s_gib" "$(calc "($s1 - $s0) / $gib")"
    # `head` and the remote `cat` count as "other" here.
    note_other "$name" "$w" "$(calc "$u + $s")" "$(calc "$s1 - $s0")" "$m0" "$m1"
    printf '  %-24s rc=%s %8.1f MiB/s  client CPU %6.3f s/GiB  sshd CPU %6.3f s/GiB  other %4.1f%%  steal %.2f s\n' \
        "$name" "$rc" "$(calc "$BULK_MIB / $w")" "$(calc "($u + $s) / $gib")" "$(calc "($s1 - $s0) / $gib")" \
        "$OTHER_PCT" "$STEAL_S"
}

median() {
    # shellcheck disable=SC2086
    printf '%s\n' $1 | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
med() { median "${R[$1]:-}"; }

# ---------------------------------------------------------------- sanity

echo "bench: sshd on 127.0.0.1:$PORT ($SERVER_ENV)"
out=$("${SHOAL_EXEC[@]}" -n "$USER_AT" 'echo ok') || { echo "bench: shoal exec cannot connect" >&2; exit 1; }
[ "$out" = ok ] || { echo "bench: shoal exec printed '$out'" >&2; exit 1; }
out=$("${SSH[@]}" -n "$USER_AT" 'echo ok') || { echo "bench: ssh cannot connect" >&2; exit 1; }
[ "$out" = ok ] || { echo "bench: ssh printed '$out'" >&2; exit 1; }
# The bulk path delivers every byte (checked once, small).
for c in aes128-gcm@openssh.com chacha20-poly1305@openssh.com; do
    got=$(head -c 10485760 /dev/zero | "${SHOAL_EXEC[@]}" -c "$c" "$USER_AT" 'wc -c' | tr -d ' ' || true)
    [ "$got" = 10485760 ] || { echo "bench: shoal exec -c $c delivered $got of 10485760 bytes" >&2; exit 1; }
done

# ---------------------------------------------------------------- runs

head -c "$((BULK_MIB * 1048576))" /dev/zero >"$T/bulk.bin"

for run in $(seq 1 "$RUNS"); do
    echo "run $run/$RUNS"
    # a. sequential
    measure floor "$N" bash "$T/seq.sh" "$N" "$T/ok" /bin/true
    measure shoal_seq "$N" bash "$T/seq.sh" "$N" "$T/ok" "${SHOAL_EXEC[@]}" -n "$USER_AT" true
    measure fanout_seq "$N" "${FAN[@]}" -c 1 -n "$N" "$USER_AT" true
    measure ssh_seq "$N" bash "$T/seq.sh" "$N" "$T/ok" "${SSH[@]}" -n "$USER_AT" true
    # b. concurrent
    measure fanout_par "$N" "${FAN[@]}" -c "$N" -n "$N" "$USER_AT" true
    measure ssh_par "$N" bash "$T/par.sh" "$N" "$T/ok" "${SSH[@]}" -n "$USER_AT" true
    # c. bulk
    for c in aes128-gcm@openssh.com chacha20-poly1305@openssh.com; do
        short=${c%%@*}
        bulk "shoal_$short" "${SHOAL_EXEC[@]}" -c "$c" "$USER_AT" 'cat > /dev/null'
        bulk "ssh_$short" "${SSH[@]}" -c "$c" "$USER_AT" 'cat > /dev/null'
    done
    # d. a regular file as stdin
    BULK_FILE=$T/bulk.bin bulk shoal_file "${SHOAL_EXEC[@]}" -c aes128-gcm@openssh.com "$USER_AT" 'cat > /dev/null'
    BULK_FILE=$T/bulk.bin bulk ssh_file "${SSH[@]}" -c aes128-gcm@openssh.com "$USER_AT" 'cat > /dev/null'
done

# ---------------------------------------------------------------- report

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
ncpu=$NCPU
ossl=$(openssl version 2>/dev/null || echo "openssl(1) not found")
libcrypto=$(ldd "$SHOAL" 2>/dev/null | awk '/libcrypto/ { print $3; exit }' || true)
openssh=$(ssh -V 2>&1)
rev=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev (with local changes)"; fi
elapsed=$(($(date +%s) - bench_t0))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf "%." d "f", x }'; }

ROWS=()
# row LABEL UNIT SHOAL_VALUE SSH_VALUE DECIMALS
row() { ROWS+=("$1|$2|$(fmt "$3" "$5")|$(fmt "$4" "$5")|$(ratio "$3" "$4")"); }

row "a. $N sequential, \`shoal exec\` per conn: client CPU" "ms/conn" "$(med shoal_seq.cpu_ms)" "$(med ssh_seq.cpu_ms)" 3
row "a. $N sequential, \`shoal exec\` per conn: wall" "ms/conn" "$(med shoal_seq.wall_ms)" "$(med ssh_seq.wall_ms)" 1
row "a. $N sequential, fanout -c 1: client CPU" "ms/conn" "$(med fanout_seq.cpu_ms)" "$(med ssh_seq.cpu_ms)" 3
row "a. $N sequential, fanout -c 1: wall" "ms/conn" "$(med fanout_seq.wall_ms)" "$(med ssh_seq.wall_ms)" 1
row "a. sshd CPU, \`shoal exec\` vs ssh" "ms/conn" "$(med shoal_seq.sshd_ms)" "$(med ssh_seq.sshd_ms)" 2
row "b. $N concurrent (fanout -c $N vs $N \`ssh &\`): client CPU" "ms/conn" "$(med fanout_par.cpu_ms)" "$(med ssh_par.cpu_ms)" 3
row "b. $N concurrent: wall for all" "s" "$(med fanout_par.wall_s)" "$(med ssh_par.wall_s)" 2
row "b. $N concurrent: sshd CPU" "ms/conn" "$(med fanout_par.sshd_ms)" "$(med ssh_par.sshd_ms)" 2
for c in aes128-gcm chacha20-poly1305; do
    row "c. $BULK_MIB MiB upload, $c: throughput (higher is better)" "MiB/s" "$(med "shoal_$c.mibs")" "$(med "ssh_$c.mibs")" 0
    row "c. $BULK_MIB MiB upload, $c: client CPU" "s/GiB" "$(med "shoal_$c.cpu_s_gib")" "$(med "ssh_$c.cpu_s_gib")" 3
    row "c. $BULK_MIB MiB upload, $c: sshd CPU" "s/GiB" "$(med "shoal_$c.sshd_s_gib")" "$(med "ssh_$c.sshd_s_gib")" 3
done
row "d. $BULK_MIB MiB from a file as stdin, aes128-gcm: throughput" "MiB/s" "$(med shoal_file.mibs)" "$(med ssh_file.mibs)" 0
row "d. $BULK_MIB MiB from a file as stdin, aes128-gcm: client CPU" "s/GiB" "$(med shoal_file.cpu_s_gib)" \
    "$(med ssh_file.cpu_s_gib)" 3

floor_cpu=$(fmt "$(med floor.cpu_ms)" 3)
floor_wall=$(fmt "$(med floor.wall_ms)" 3)

header=(
    "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    "Machine: $cpu_model, $ncpu CPUs, Linux $(uname -r)"
    "OpenSSL: $ossl (shoal linked with ${libcrypto:-?})"
    "OpenSSH: $openssh (client and server)"
    "shoal: $rev"
    "Setup: one sshd on 127.0.0.1, $SERVER_ENV; kex $KEX, host key $HKA, user key ed25519 on both clients; default cipher for a/b (chacha20-poly1305 for both)"
    "Each figure: median of $RUNS runs; bench time ${elapsed} s"
    "Disturbance: at most $OTHER_MAX% of the machine's CPU went to other work during one measurement ($OTHER_MAX_NAME); steal time over all measurements $(fmt "$STEAL_TOTAL" 2) s; load average at the start: $LOAD0"
    "Process start-up floor (the same bash loop running /bin/true $N times): client CPU $floor_cpu ms, wall $floor_wall ms per iteration"
)

echo
printf '%s\n' "${header[@]}"
echo
printf '%-68s %-8s %10s %10s %9s\n' "Measurement" "Unit" "shoal" "ssh" "shoal/ssh"
for r in "${ROWS[@]}"; do
    IFS='|' read -r l u a b q <<<"$r"
    printf '%-68s %-8s %10s %10s %9s\n' "$l" "$u" "$a" "$b" "$q"
done

if [ -n "${BENCH_OUT:-}" ]; then
    {
        for h in "${header[@]}"; do printf -- '- %s\n' "$h"; done
        echo
        echo "| Measurement | Unit | shoal | ssh | shoal/ssh |"
        echo "|---|---|---:|---:|---:|"
        for r in "${ROWS[@]}"; do
            IFS='|' read -r l u a b q <<<"$r"
            echo "| $l | $u | $a | $b | $q |"
        done
        if [ "${#FAILURES[@]}" -gt 0 ]; then
            echo
            echo "Failures:"
            for f in "${FAILURES[@]}"; do echo "- $f"; done
        fi
    } >"$BENCH_OUT"
    echo
    echo "bench: markdown written to $BENCH_OUT"
fi

if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo
    echo "bench: FAILURES:" >&2
    printf '  %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
