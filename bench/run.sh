#!/bin/sh
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
#      with aes128-gcm@openssh.com and chacha20-poly1305@openssh.com.
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
BUILD_DIR=$(dirname -- "$SHOAL")
FANOUT=$BUILD_DIR/bench/shoal_bench_fanout
TIMER=$BUILD_DIR/bench/shoal_bench_time
N=${BENCH_N:-200}
RUNS=${BENCH_RUNS:-3}
BULK_MIB=${BENCH_BULK_MIB:-1024}

for f in "$SHOAL" "$FANOUT" "$TIMER"; do
    [ -x "$f" ] || { echo "bench: $f is missing; build first (cmake --build build)" >&2; exit 1; }
done
command -v ssh >/dev/null || { echo "bench: ssh (OpenSSH client) is not installed" >&2; exit 1; }

# shellcheck source=../tests/lib/peers.sh
. "$SRC/tests/lib/peers.sh"
peers_init
unset SSH_AUTH_SOCK
bench_t0=$(date +%s)

# ---------------------------------------------------------------- the server
#
# sshd runs commands with the user's login shell, and Debian's bash sources
# ~/.bashrc for commands run by sshd; on the development machine root's
# .bashrc runs `pyenv init`, ~0.1 s of server CPU per connection. So sshd
# gets a private mount namespace with an empty directory bind-mounted over
# the user's home: the clients' environment is untouched, and the server's
# per-connection CPU is sshd's own.
mkdir -p "$T/emptyhome"
USER_HOME=$(getent passwd "$(id -un)" | cut -d: -f6)
SERVER_ENV="sshd sees the user's real home (rc files included)"
if [ "$(id -u)" -eq 0 ] && [ -d "$USER_HOME" ] &&
    unshare -m -- sh -c 'mount --bind "$1" "$2"' _ "$T/emptyhome" "$USER_HOME" 2>/dev/null; then
    cat >"$T/sshd-wrapper" <<EOF
#!/bin/sh
# Same pid as the final sshd (unshare and sh exec), so peers.sh tracks it.
exec unshare -m -- /bin/sh -c 'mount --bind "\$0" "$USER_HOME" && exec /usr/sbin/sshd "\$@"' "$T/emptyhome" "\$@"
EOF
    chmod 755 "$T/sshd-wrapper"
    PEERS_SSHD=$T/sshd-wrapper
    SERVER_ENV="sshd in a private mount namespace with an empty $USER_HOME"
else
    echo "bench: WARNING: cannot give sshd an empty home (needs root and unshare);" \
        "server CPU and wall times include the remote shell's rc files" >&2
fi

gen_user_keys
# First value wins in sshd_config: these override peers.sh's defaults.
start_sshd "LogLevel INFO" "MaxStartups 1000:30:1000" "MaxSessions 200"
KEY=$T/keys/id_ed25519
USER_AT=$PEER_USER@127.0.0.1
PORT=$SSHD_PORT

KEX=curve25519-sha256
HKA=ssh-ed25519
SSH=(ssh -F /dev/null -p "$PORT" -i "$KEY" -o IdentitiesOnly=yes -o IdentityAgent=none
    -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$T/known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no -o ControlPath=none
    -o KexAlgorithms=$KEX -o HostKeyAlgorithms=$HKA -o LogLevel=ERROR)
SHOAL_EXEC=("$SHOAL" exec -p "$PORT" -i "$KEY" -o IdentityAgent=none -o BatchMode=yes
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$T/known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o KexAlgorithms=$KEX -o HostKeyAlgorithms=$HKA)
FAN=("$FANOUT" -p "$PORT" -i "$KEY" -k "$T/known_hosts" -o KexAlgorithms=$KEX -o HostKeyAlgorithms=$HKA)

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
sshd_cpu() { awk -v hz="$HZ" '{ printf "%.4f\n", ($14 + $15 + $16 + $17) / hz }' "/proc/$SSHD_PID/stat"; }

# Wait until the listener has reaped every per-connection child, so its
# cutime/cstime include them.
sshd_settle() {
    local i
    for i in $(seq 1 100); do
        [ -z "$(pgrep -P "$SSHD_PID" 2>/dev/null || true)" ] && return 0
        sleep 0.05
    done
    echo "bench: sshd still has children after 5 s" >&2
}

# field NAME FILE: value of NAME=... in a key=value line.
field() { tr ' ' '\n' <"$2" | sed -n "s/^$1=//p" | head -n 1; }
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
    local s0 s1 rc=0 ok
    rm -f "$T/ok" "$T/time" "$T/out"
    sshd_settle
    s0=$(sshd_cpu)
    "$TIMER" -o "$T/time" "$@" >"$T/out" 2>"$T/err" || rc=$?
    sshd_settle
    s1=$(sshd_cpu)
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
    printf '  %-14s ok=%s/%s wall %6.2f s  client CPU %7.3f ms/conn  sshd CPU %6.2f ms/conn\n' \
        "$name" "${ok:-?}" "$count" "$w" "$(calc "($u + $s) * 1000 / $count")" \
        "$(calc "($s1 - $s0) * 1000 / $count")"
}

# bulk NAME CMD...: feed BULK_MIB MiB of zeros to CMD (timed alone, so
# `head` is not counted as client CPU).
bulk() {
    local name=$1
    shift
    local s0 s1 rc=0
    rm -f "$T/time"
    sshd_settle
    s0=$(sshd_cpu)
    head -c "$((BULK_MIB * 1048576))" /dev/zero | "$TIMER" -o "$T/time" "$@" 2>"$T/err" || rc=$?
    sshd_settle
    s1=$(sshd_cpu)
    [ "$rc" -eq 0 ] || FAILURES+=("$name: rc=$rc: $(head -c 300 "$T/err" | tr '\n' ' ')")
    local w u s gib
    w=$(field wall_s "$T/time")
    u=$(field user_s "$T/time")
    s=$(field sys_s "$T/time")
    gib=$(calc "$BULK_MIB / 1024")
    add "$name.mibs" "$(calc "$BULK_MIB / $w")"
    add "$name.cpu_s_gib" "$(calc "($u + $s) / $gib")"
    add "$name.sshd_s_gib" "$(calc "($s1 - $s0) / $gib")"
    printf '  %-14s rc=%s %8.1f MiB/s  client CPU %6.3f s/GiB  sshd CPU %6.3f s/GiB\n' "$name" "$rc" \
        "$(calc "$BULK_MIB / $w")" "$(calc "($u + $s) / $gib")" "$(calc "($s1 - $s0) / $gib")"
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
done

# ---------------------------------------------------------------- report

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
ncpu=$(nproc)
ossl=$(openssl version 2>/dev/null || echo "openssl(1) not found")
libcrypto=$(ldd "$SHOAL" 2>/dev/null | awk '/libcrypto/ { print $3 }' | head -n 1)
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
