#!/bin/sh
# shellcheck shell=bash
# bench/serve_run.sh -- shoal serve vs OpenSSH's sshd and dropbear, in one
# run, on loopback. Invoked as `sh bench/serve_run.sh build/shoal`.
#
# Three servers, each with the same ed25519 host key, the same authorized
# ed25519 user key, logging in the same user (root) whose home is an empty
# directory, each at its default log level:
#   shoal   `shoal serve` (one process; forks only to run commands)
#   sshd    /usr/sbin/sshd (OpenSSH; re-exec + privsep child per connection)
#   dropbear                (one forked process per connection)
# The client is shoal's library (bench/fanout.c, bench/hold.c), forcing
# curve25519-sha256, ssh-ed25519 and chacha20-poly1305@openssh.com (dropbear
# has no AES-GCM). It is the cheapest client available, so the server is the
# bottleneck.
#
#   a. handshake + exec of `true`: BENCH_SERVE_N (1400) connections, at
#      most BENCH_SERVE_INFLIGHT (28) at a time, from shoal_bench_fanout in
#      two client layouts: a1 one process to 127.0.0.1 (the fixed client;
#      shoal and sshd), a2 BENCH_SERVE_ADDRS (7) processes at once, one per
#      source address, 4 in flight each (all three servers; the only way to
#      load dropbear, see below). Connections per second (wall), server CPU
#      per connection, client CPU per connection, median latency; median of
#      BENCH_RUNS (3) runs, the servers alternating within each run.
#   b. memory per idle connection: BENCH_SERVE_HOLD (2000) connections held
#      open by one shoal_bench_hold process, (i) authenticated with no
#      channel, (ii) with one session channel running `sleep 600`. Server
#      memory = sum of Pss (and Rss) over the listener and all its
#      descendants, from /proc/PID/smaps_rollup, after minus before, divided
#      by the number of connections open. A fresh server instance for each
#      (warmed up with a few connections first); one run each.
#   a3. with b(i)'s connections still open, measurement a2 once more: what
#      the idle connections cost the rest of the server (shoal serve forks
#      its commands from one process whose size grows with them).
# dropbear is measured with fewer connections where it gets very slow: a3
# with BENCH_SERVE_DROPBEAR_LOADED_N (N/10), b(ii) with
# BENCH_SERVE_DROPBEAR_SESSIONS (500) sessions. Every new dropbear
# connection reads /proc/timer_list for entropy, which grows with every
# process on the machine: with 2000 sessions open it set up 3.6 connections
# per second, and the whole bench took 18 minutes.
#
# Why several source addresses: dropbear 2022.83 drops new connections
# beyond 5 unauthenticated ones per source address and 30 in total
# (MAX_UNAUTH_PER_IP, MAX_UNAUTH_CLIENTS, compile time). The client library
# cannot choose a source address, but Linux picks a /32 loopback address as
# the source when connecting to it. So the bench runs in private network,
# mount and PID namespaces (unshare): the network namespace has only `lo`,
# with 127.0.0.11... added as /32 addresses, and every server listens on
# 0.0.0.0 there, which is loopback only. Layout a2 and the holder of b
# spread their connections over 7 source addresses, 4 in flight on each
# (28 < 30), for all three servers alike.
#
# The mount namespace bind-mounts an empty directory (holding only
# .ssh/authorized_keys, which dropbear insists on) over root's home: the
# remote shell reads no rc files (root's .bashrc on the development machine
# runs `pyenv init`, ~0.1 s per command; shared/docs/PEER-FIGURES.md). The
# PID namespace guarantees that nothing outlives the bench: when this
# script ends, the kernel kills whatever is left in it.
#
# Server CPU = utime+stime+cutime+cstime of the listener from /proc, read
# when it has no children left (so every per-connection process and command
# has been reaped into it). Client CPU = wait4() rusage of the fanout
# processes (bench/cputime.c). Disturbance = machine CPU used by neither.
#
# Environment knobs: BENCH_SERVE_N, BENCH_SERVE_INFLIGHT, BENCH_SERVE_ADDRS,
# BENCH_SERVE_HOLD, BENCH_SERVE_DROPBEAR_LOADED_N,
# BENCH_SERVE_DROPBEAR_SESSIONS, BENCH_SERVE_MAX_OTHER (10, %),
# BENCH_SERVE_MAX_REPEATS (2), BENCH_RUNS, BENCH_OUT (write the result as markdown),
# BENCH_SERVE_PROFILE=DIR (no bench: perf profile of shoal serve under the
# a1 load, perf.data kept in DIR).
# Needs root, unshare(1) and ip(8), /usr/sbin/sshd, dropbear,
# dropbearconvert, ssh-keygen, and the build's bench programs.
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi
set -euo pipefail

SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SHOAL=${1:-$SRC/build/shoal}
case $SHOAL in /*) ;; *) SHOAL=$PWD/$SHOAL ;; esac

# ---------------------------------------------------------------- namespaces

if [ "${SHOAL_SERVE_BENCH_NS:-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bench: serve_run.sh needs root (private network, mount and PID namespaces)" >&2; exit 1; }
    for c in unshare ip; do
        command -v "$c" >/dev/null || { echo "bench: $c is not installed" >&2; exit 1; }
    done
    export SHOAL_SERVE_BENCH_NS=1
    # The markdown file is opened here, outside the private mount namespace
    # (where the user's home is replaced), and handed down as fd 9.
    if [ -n "${BENCH_OUT:-}" ]; then
        exec 9>"$BENCH_OUT"
        export SHOAL_SERVE_BENCH_OUT_FD=9
    fi
    # --kill-child: if unshare itself is killed, the script gets SIGTERM and
    # its trap cleans up; if the script dies, the PID namespace goes with it.
    exec unshare --net --pid --mount-proc --kill-child=TERM -- bash "$SRC/bench/serve_run.sh" "$SHOAL"
fi

N=${BENCH_SERVE_N:-1400}
INFLIGHT=${BENCH_SERVE_INFLIGHT:-28}
NADDR=${BENCH_SERVE_ADDRS:-7}
HOLD_N=${BENCH_SERVE_HOLD:-2000}
# dropbear gets slower with every process on the machine: each new
# connection reads /proc/timer_list for entropy (see docs/BENCHMARKS.md), so
# with b's connections open it is measured with fewer.
DB_LOADED_N=${BENCH_SERVE_DROPBEAR_LOADED_N:-$((N / 10))}
DB_SESSIONS=${BENCH_SERVE_DROPBEAR_SESSIONS:-500}
RUNS=${BENCH_RUNS:-3}
# A measurement during which other work took more than MAX_OTHER% of the
# machine's CPU is repeated, at most MAX_REPEATS times.
MAX_OTHER=${BENCH_SERVE_MAX_OTHER:-10}
MAX_REPEATS=${BENCH_SERVE_MAX_REPEATS:-2}
REPEATED=0
# Two client layouts for a: "one" = one fanout process to 127.0.0.1 with
# INFLIGHT connections in flight (the fixed client); "spread" = NADDR
# processes, one per source address, CPER in flight each (what dropbear's
# per-address cap allows; dropbear is measured only this way).
PER=$(((N + NADDR - 1) / NADDR))     # connections per process, spread
N=$((PER * NADDR))
CPER=$(((INFLIGHT + NADDR - 1) / NADDR))
INFLIGHT=$((CPER * NADDR))
SERVERS=(shoal sshd dropbear)

# shellcheck source=lib.sh
. "$SRC/bench/lib.sh"
for f in "$SHOAL" "$FANOUT" "$TIMER" "$HOLD"; do
    [ -x "$f" ] || { echo "bench: $f is missing; build first (cmake --build build)" >&2; exit 1; }
done
for c in /usr/sbin/sshd dropbear dropbearconvert ssh-keygen; do
    command -v "$c" >/dev/null || { echo "bench: $c is not installed" >&2; exit 1; }
done

bench_t0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# How busy the machine is before anything starts (2 s sample).
BUSY0=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
sleep 2
BUSY0=$(awk -v a="$BUSY0" '$1 == "cpu" { split(a, x, " "); b = $2 + $3 + $4 + $7 + $8 + $9 - x[1]; i = $5 + $6 - x[2]
    printf "%.0f\n", (b + i > 0 ? 100 * b / (b + i) : 0) }' /proc/stat)
if [ "$BUSY0" -gt 20 ]; then
    echo "bench: WARNING: the machine was $BUSY0% busy before the bench started; figures will be disturbed. Top CPU users:" >&2
    top -b -n 1 -o %CPU 2>/dev/null | sed -n '8,11p' | awk '{ print "    " $9 "% " $12 }' >&2
fi
peers_init
unset SSH_AUTH_SOCK

# Loopback with one /32 address per client process.
ip link set lo up
ADDRS=()
for i in $(seq 1 "$NADDR"); do
    a=127.0.0.$((10 + i))
    ip addr add "$a/32" dev lo
    ADDRS+=("$a")
done

# Fd limits: the holder and shoal serve each need one per connection (plus
# three pipes per running command for shoal serve).
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((HOLD_N * 4 + 100)) ] ||
    echo "bench: WARNING: fd limit $(ulimit -n) may be too low for $HOLD_N held connections" >&2

# Keys: one ed25519 host key (OpenSSH format, converted for dropbear), one
# ed25519 user key.
mkdir -p "$T/keys"
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$T/keys/host_ed25519"
dropbearconvert openssh dropbear "$T/keys/host_ed25519" "$T/keys/host_ed25519.dropbear" >/dev/null 2>&1 ||
    { echo "bench: dropbearconvert cannot convert the ed25519 host key" >&2; exit 1; }
ssh-keygen -q -t ed25519 -N '' -C bench-user -f "$T/keys/id_ed25519"
KEY=$T/keys/id_ed25519
USER_NAME=$(id -un)
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)
case $HOME_DIR in /?*) [ -d "$HOME_DIR" ] ;; *) false ;; esac ||
    { echo "bench: $USER_NAME's home '$HOME_DIR' is not a directory to mount over" >&2; exit 1; }
SRVHOME=$T/srvhome
mkdir -p "$SRVHOME/.ssh"
chmod 755 "$SRVHOME"
chmod 700 "$SRVHOME/.ssh"
cp "$KEY.pub" "$SRVHOME/.ssh/authorized_keys"
chmod 600 "$SRVHOME/.ssh/authorized_keys"
AK=$SRVHOME/.ssh/authorized_keys
mount --bind "$SRVHOME" "$HOME_DIR"
SERVER_ENV="$HOME_DIR is an empty directory (private mount namespace) holding only .ssh/authorized_keys"

# Every port the bench may use, for every address, in one known_hosts.
KH=$T/known_hosts
PORT_BASE=22000
hostpub=$(cut -d' ' -f1,2 "$T/keys/host_ed25519.pub")
for port in $(seq $((PORT_BASE + 1)) $((PORT_BASE + 20))); do
    for a in 127.0.0.1 "${ADDRS[@]}"; do echo "[$a]:$port $hostpub"; done
done >"$KH"
CLIENT_OPTS=(-i "$KEY" -k "$KH" -o "KexAlgorithms=$KEX" -o "HostKeyAlgorithms=$HKA"
    -o "Ciphers=chacha20-poly1305@openssh.com")

# fan.sh OUTDIR PORT PER CPER ADDR[,ADDR...] CMD...: one shoal_bench_fanout
# per address, all at once, each PER connections with CPER in flight;
# writes the total number of successes to OUTDIR/ok.
# shellcheck disable=SC2016 # the $ belong to fan.sh
{
    echo 'outdir=$1 port=$2 per=$3 cper=$4 addrs=$5'
    echo 'shift 5'
    echo 'rm -rf "$outdir"; mkdir -p "$outdir"'
    echo 'pids=() i=0'
    echo 'for a in ${addrs//,/ }; do'
    printf '    %q -p "$port"' "$FANOUT"
    printf ' %q' "${CLIENT_OPTS[@]}"
    printf ' -c "$cper" -n "$per" %q@"$a" "$@" >"$outdir/$i.out" 2>"$outdir/$i.err" &\n' "$USER_NAME"
    echo '    pids+=($!) i=$((i + 1))'
    echo 'done'
    echo 'for p in "${pids[@]}"; do wait "$p" || true; done'
    echo 'cat "$outdir"/*.out | awk '\''{ for (i = 1; i <= NF; i++) if ($i ~ /^ok=/) s += substr($i, 4) } END { print s + 0 }'\'' >"$outdir/ok"'
} >"$T/fan.sh"
SPREAD=$(IFS=,; echo "${ADDRS[*]}")

# ---------------------------------------------------------------- servers

declare -A SPID SPORT SLOG
PORT_NEXT=$PORT_BASE

# start_server NAME: start a fresh instance of NAME on the next port; sets
# SPID[NAME], SPORT[NAME], SLOG[NAME].
start_server() {
    local name=$1 port pid d
    PORT_NEXT=$((PORT_NEXT + 1))
    port=$PORT_NEXT
    [ "$port" -le $((PORT_BASE + 20)) ] || { echo "bench: out of ports" >&2; exit 1; }
    d=$T/$name-$port
    mkdir -p "$d"
    case $name in
        shoal)
            "$SHOAL" serve -p "$port" -h "$T/keys/host_ed25519" -o ListenAddress=0.0.0.0 \
                -o "AuthorizedKeysFile=$AK" -o StrictModes=no -o PermitRootLogin=yes \
                -o MaxStartups=10000:30:10000 -o LoginGraceTime=0 -o PerSourcePenalties=no \
                </dev/null >"$d/log" 2>&1 9>&- &
            pid=$!
            ;;
        sshd)
            mkdir -p /run/sshd && chmod 755 /run/sshd
            cat >"$d/sshd_config" <<EOF
ListenAddress 0.0.0.0
Port $port
AddressFamily inet
HostKey $T/keys/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $AK
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 10000:30:10000
LoginGraceTime 0
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
EOF
            /usr/sbin/sshd -t -f "$d/sshd_config" || { echo "bench: sshd rejects $d/sshd_config" >&2; exit 1; }
            # Absolute path: sshd re-executes itself for every connection.
            /usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/log" </dev/null >"$d/stderr" 2>&1 9>&- &
            pid=$!
            ;;
        dropbear)
            # -F foreground, -E log to stderr; everything else default.
            dropbear -F -E -p "0.0.0.0:$port" -r "$T/keys/host_ed25519.dropbear" -P "$d/pid" \
                </dev/null >"$d/log" 2>&1 9>&- &
            pid=$!
            ;;
    esac
    peers_track "$pid" "$d/log"
    wait_for 10 port_open "$port" || { cat "$d/log" >&2; echo "bench: $name does not listen on $port" >&2; exit 1; }
    SPID[$name]=$pid
    SPORT[$name]=$port
    SLOG[$name]=$d/log
}

stop_server() { _peers_kill_tree "${SPID[$1]}"; }

# ---------------------------------------------------------------- helpers

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
# srv_cpu PID: "all own" seconds: the process with its reaped children, and
# the process alone.
srv_cpu() { awk -v hz="$HZ" '{ printf "%.4f %.4f\n", ($14 + $15 + $16 + $17) / hz, ($14 + $15) / hz }' "/proc/$1/stat"; }
machine_cpu() { awk -v hz="$HZ" '$1 == "cpu" { printf "%.4f %.4f\n", ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz }' /proc/stat; }
calc() { awk "BEGIN { printf \"%.6g\n\", $* }"; }
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$2"; }

# settle PID [HELD]: wait until the listener has reaped every child but
# HELD (default 0; the per-connection processes of held connections).
settle() {
    local _ held=${2:-0}
    for _ in $(seq 1 200); do
        [ "$(pgrep -c -P "$1" 2>/dev/null || true)" -le "$held" ] && return 0
        sleep 0.05
    done
    echo "bench: server $1 still has more than $held children after 10 s" >&2
}

# mem_of PID: "processes rss_kib pss_kib sleep_processes sleep_pss_kib"
# summed over PID and its descendants; the last two count only the `sleep`
# commands of b(ii), so the server's own share can be told apart.
mem_of() {
    local -a all=() cmd=()
    local p c
    while read -r p c; do
        all+=("/proc/$p/smaps_rollup")
        if [ "$c" = 1 ]; then cmd+=("/proc/$p/smaps_rollup"); fi
    done < <(ps -e -o pid=,ppid=,comm= | awk -v root="$1" '
        { parent[$1] = $2; comm[$1] = $3; pids[NR] = $1 }
        END {
            want[root] = 1; print root, 0; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) {
                    p = pids[i]
                    if (!(p in want) && (parent[p] in want)) { want[p] = 1; changed = 1; print p, (comm[p] == "sleep") }
                }
            }
        }')
    {
        { cat "${all[@]}" 2>/dev/null || true; } | awk '/^Rss:/ { n++; r += $2 } /^Pss:/ { p += $2 } END { printf "%d %d %d ", n, r, p }'
        if [ "${#cmd[@]}" -gt 0 ]; then
            { cat "${cmd[@]}" 2>/dev/null || true; } | awk '/^Rss:/ { n++ } /^Pss:/ { p += $2 } END { printf "%d %d\n", n, p }'
        else
            echo "0 0"
        fi
    }
}
# Kernel memory that grows with processes and sockets (machine-wide), KiB.
kern_mem() { awk '/^(KernelStack|PageTables|SUnreclaim):/ { s += $2 } END { print s }' /proc/meminfo; }

OTHER_MAX=0 OTHER_MAX_NAME=- STEAL_TOTAL=0
note_other() { # NAME WALL CLIENT_S SERVER_S M0 M1
    local pct steal
    read -r pct steal < <(awk -v w="$2" -v c="$3" -v d="$4" -v m0="$5" -v m1="$6" -v n="$NCPU" 'BEGIN {
        split(m0, a, " "); split(m1, b, " ")
        o = (b[1] - a[1]) - c - d; if (o < 0) o = 0
        printf "%.1f %.3f\n", (w > 0 ? 100 * o / (w * n) : 0), b[2] - a[2] }')
    OTHER_PCT=$pct
    STEAL_TOTAL=$(calc "$STEAL_TOTAL + $steal")
    if awk -v a="$pct" -v b="$OTHER_MAX" -v w="$2" 'BEGIN { exit !(w >= 1 && a > b) }'; then
        OTHER_MAX=$pct
        OTHER_MAX_NAME=$1
    fi
}

declare -A R
FAILURES=()
add() { R[$1]="${R[$1]:-} $2"; }
median() {
    # shellcheck disable=SC2086
    printf '%s\n' $1 | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
med() { median "${R[$1]:-}"; }

# ---------------------------------------------------------------- a. rate

# measure_rate NAME LAYOUT [TAG HELD COUNT]: COUNT (default N) connections
# running `true` against NAME, with the client layout "one" or "spread";
# results under NAME.TAG (default NAME.LAYOUT). HELD: per-connection
# processes of connections held open meanwhile (b), which the listener keeps
# as children.
measure_rate() {
    local name=$1 layout=$2 pid=${SPID[$1]} port=${SPORT[$1]} s0 s1 o0 o1 m0 m1 rc ok w u s
    local k=$1.${3:-$2} held=${4:-0} N=${5:-$N} attempt save
    local -a fan=("$T/fan" "$port" "$N" "$INFLIGHT" 127.0.0.1)
    [ "$layout" = one ] || fan=("$T/fan" "$port" "$((N / NADDR))" "$CPER" "$SPREAD")
    [ "$layout" = one ] || N=$((N / NADDR * NADDR))
    for attempt in $(seq 1 $((MAX_REPEATS + 1))); do
        rc=0
        settle "$pid" "$held"
        read -r s0 o0 < <(srv_cpu "$pid")
        m0=$(machine_cpu)
        "$TIMER" -o "$T/time" bash "$T/fan.sh" "${fan[@]}" true >/dev/null 2>&1 || rc=$?
        settle "$pid" "$held"
        read -r s1 o1 < <(srv_cpu "$pid")
        m1=$(machine_cpu)
        ok=$(cat "$T/fan/ok" 2>/dev/null || echo 0)
        w=$(field wall_s "$T/time")
        u=$(field user_s "$T/time")
        s=$(field sys_s "$T/time")
        save="$OTHER_MAX|$OTHER_MAX_NAME|$STEAL_TOTAL"
        note_other "a.$k" "$w" "$(calc "$u + $s")" "$(calc "$s1 - $s0")" "$m0" "$m1"
        printf '  %-9s %-6s ok=%s/%s wall %6.2f s %7.1f conn/s  server CPU %6.3f ms/conn  client CPU %6.3f ms/conn  other %4.1f%%\n' \
            "$name" "${3:-$2}" "$ok" "$N" "$w" "$(calc "$N / $w")" "$(calc "($s1 - $s0) * 1000 / $N")" \
            "$(calc "($u + $s) * 1000 / $N")" "$OTHER_PCT"
        # Other work on the machine took more than MAX_OTHER% of its CPU:
        # measure again (the figures of a fast server suffer most).
        if [ "$attempt" -le "$MAX_REPEATS" ] && awk -v o="$OTHER_PCT" -v m="$MAX_OTHER" 'BEGIN { exit !(o > m) }'; then
            IFS='|' read -r OTHER_MAX OTHER_MAX_NAME STEAL_TOTAL <<<"$save"
            REPEATED=$((REPEATED + 1))
            echo "  (more than $MAX_OTHER% of the CPU went to other work: measuring again)"
            sleep 2
            continue
        fi
        break
    done
    if [ "$rc" -ne 0 ] || [ "$ok" != "$N" ]; then
        FAILURES+=("a. $k: rc=$rc ok=$ok/$N: $(cat "$T/fan"/*.err 2>/dev/null | head -c 300 | tr '\n' ' ')")
    fi
    add "$k.cps" "$(calc "$N / $w")"
    add "$k.srv_ms" "$(calc "($s1 - $s0) * 1000 / $N")"
    add "$k.cli_ms" "$(calc "($u + $s) * 1000 / $N")"
    add "$k.own_ms" "$(calc "($o1 - $o0) * 1000 / $N")"
    add "$k.lat" "$(cat "$T/fan"/*.out | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^lat_p50_ms=/) { v += substr($i, 12); n++ } } END { if (n) printf "%.2f\n", v / n }')"
}

# ---------------------------------------------------------------- b. memory

hold_ready() {
    grep -q '^ready ' "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 0
    return 1
}

# measure_hold NAME MODE: MODE auth (no channel) or session (`sleep 600`).
measure_hold() {
    local name=$1 mode=$2 pid hpid n0 r0 p0 k0 n1 r1 p1 k1 cp0 c1 cp1 open ok cps want=$HOLD_N
    local -a extra=() aflags=()
    if [ "$mode" = session ]; then extra=(-s "sleep 600"); fi
    if [ "$mode" = session ] && [ "$name" = dropbear ]; then want=$DB_SESSIONS; fi
    for a in "${ADDRS[@]}"; do aflags+=(-a "$a"); done
    start_server "$name"
    pid=${SPID[$name]}
    # Warm-up: a few connections, so one-time set-up is not counted.
    bash "$T/fan.sh" "$T/warm" "${SPORT[$name]}" 2 2 "$SPREAD" true >/dev/null 2>&1 || true
    [ "$(cat "$T/warm/ok" 2>/dev/null || echo 0)" = $((2 * NADDR)) ] ||
        FAILURES+=("b.$mode $name: warm-up: $(cat "$T/warm"/*.err 2>/dev/null | head -c 300 | tr '\n' ' ')")
    # The holder starts first and waits (-W): it maps the same shared
    # libraries as shoal serve, which lowers the server's Pss, so it must
    # already run when the baseline is taken.
    "$HOLD" -W -p "${SPORT[$name]}" "${CLIENT_OPTS[@]}" -c "$INFLIGHT" -n "$want" "${aflags[@]}" \
        ${extra[@]+"${extra[@]}"} "$USER_NAME@127.0.0.1" >"$T/hold.out" 2>"$T/hold.err" &
    hpid=$!
    peers_track "$hpid"
    wait_for 10 grep -q '^waiting' "$T/hold.out" || true
    settle "$pid"
    sleep 0.5
    read -r n0 r0 p0 _ cp0 < <(mem_of "$pid")
    k0=$(kern_mem)
    kill -USR2 "$hpid"
    wait_for 600 hold_ready "$T/hold.out" "$hpid" || true
    # Let the last connections finish setting up (e.g. sshd's privsep child).
    sleep 2
    read -r n1 r1 p1 c1 cp1 < <(mem_of "$pid")
    k1=$(kern_mem)
    kill -USR1 "$hpid" 2>/dev/null || true
    sleep 0.3
    open=$(field open <(grep '^status ' "$T/hold.out" | tail -n 1))
    ok=$(field ok <(grep '^ready ' "$T/hold.out"))
    cps=$(field conn_per_s <(grep '^ready ' "$T/hold.out"))
    # a3: the rate again, with these connections open (spread layout for
    # all three). sshd and dropbear keep one child per held connection.
    if [ "$mode" = auth ]; then
        local held=0 count=$N
        [ "$name" = shoal ] || held=${open:-0}
        [ "$name" != dropbear ] || count=$DB_LOADED_N
        measure_rate "$name" spread loaded "$held" "$count"
    fi
    stop_server "$name"
    kill -TERM "$hpid" 2>/dev/null || true
    wait "$hpid" 2>/dev/null || true
    open=${open:-0}
    if [ "${ok:-0}" != "$want" ] || [ "$open" != "$want" ]; then
        FAILURES+=("b.$mode $name: $want wanted, ${ok:-0} came up, $open open when measured: $(head -c 300 "$T/hold.err" | tr '\n' ' ')")
    fi
    if [ "$open" -gt 0 ]; then
        R[$name.$mode.pss]=$(calc "($p1 - $p0) / $open")
        R[$name.$mode.rss]=$(calc "($r1 - $r0) / $open")
        R[$name.$mode.kern]=$(calc "($k1 - $k0) / $open")
        R[$name.$mode.own]=$(calc "(($p1 - $cp1) - ($p0 - $cp0)) / $open")
    else
        R[$name.$mode.pss]=nan R[$name.$mode.rss]=nan R[$name.$mode.kern]=nan R[$name.$mode.own]=nan
    fi
    R[$name.$mode.cmds]=$c1
    R[$name.$mode.procs]=$n1
    R[$name.$mode.procs0]=$n0
    R[$name.$mode.open]=$open
    R[$name.$mode.cps]=${cps:-0}
    printf '  %-9s %-7s open=%s/%s  processes %s -> %s (%s sleep)  Pss %s -> %s KiB (%s KiB/conn, %s without sleep)  Rss %s KiB/conn  kernel %s KiB/conn  set up at %s conn/s\n' \
        "$name" "$mode" "$open" "$want" "$n0" "$n1" "$c1" "$p0" "$p1" "$(printf %.1f "${R[$name.$mode.pss]}")" \
        "$(printf %.1f "${R[$name.$mode.own]}")" \
        "$(printf %.1f "${R[$name.$mode.rss]}")" "$(printf %.1f "${R[$name.$mode.kern]}")" "${cps:-?}"
}

# ---------------------------------------------------------------- sanity

for s in "${SERVERS[@]}"; do start_server "$s"; done
echo "bench: shoal serve :${SPORT[shoal]}, sshd :${SPORT[sshd]}, dropbear :${SPORT[dropbear]};" \
    "client from ${ADDRS[0]}..${ADDRS[$((NADDR - 1))]}, $N connections, $INFLIGHT in flight"
for s in "${SERVERS[@]}"; do
    bash "$T/fan.sh" "$T/sanity" "${SPORT[$s]}" 1 1 "$SPREAD" true >/dev/null 2>&1 || true
    if [ "$(cat "$T/sanity/ok" 2>/dev/null || echo 0)" != "$NADDR" ]; then
        cat "$T/sanity"/*.err >&2 || true
        echo "bench: $s: a connection running \`true\` failed (log: ${SLOG[$s]})" >&2
        tail -n 20 "${SLOG[$s]}" >&2 || true
        exit 1
    fi
done

# ---------------------------------------------------------------- profile

# BENCH_SERVE_PROFILE=DIR: instead of the bench, record shoal serve (the
# process itself, not the commands it forks) with perf during one a1
# measurement, print the top functions and keep DIR/perf.data.
if [ -n "${BENCH_SERVE_PROFILE:-}" ]; then
    PD=$BENCH_SERVE_PROFILE
    case $PD in /*) ;; *) PD=$PWD/$PD ;; esac
    mkdir -p "$PD"
    command -v perf >/dev/null || { echo "bench: perf is not installed" >&2; exit 1; }
    perf record --no-buildid-cache -F 2000 --call-graph dwarf,16384 -p "${SPID[shoal]}" -o "$PD/perf.data" >"$T/perf.out" 2>&1 &
    perf_pid=$!
    sleep 1
    "$TIMER" -o "$T/time" bash "$T/fan.sh" "$T/fan" "${SPORT[shoal]}" "$N" "$INFLIGHT" 127.0.0.1 true >/dev/null 2>&1 || true
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    echo "profile: $(cat "$T/fan/ok")/$N connections in $(field wall_s "$T/time") s; perf data in $PD/perf.data"
    set +o pipefail # `head` ends the reports early
    # perf -p follows the children shoal serve forks: until execve they are
    # "shoal", then "bash" (the user's shell running `true`).
    echo "== share of samples by command name (shoal = the server, and its children until execve)"
    perf report -i "$PD/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 6
    echo
    echo "== inclusive (children), comm shoal, % of all samples"
    perf report -i "$PD/perf.data" --comms shoal --children --sort sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | grep -v ' 0x0000' | head -n 70
    echo
    echo "== self by symbol, comm shoal"
    perf report -i "$PD/perf.data" --comms shoal --no-children --sort dso,sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 30
    exit 0
fi

# ---------------------------------------------------------------- runs

echo "a. handshake + exec of \`true\`"
for run in $(seq 1 "$RUNS"); do
    echo " run $run/$RUNS"
    for s in shoal sshd; do measure_rate "$s" one; done
    for s in "${SERVERS[@]}"; do measure_rate "$s" spread; done
done
for s in "${SERVERS[@]}"; do stop_server "$s"; done

echo "b. $HOLD_N idle connections held open"
for mode in auth session; do
    for s in "${SERVERS[@]}"; do measure_hold "$s" "$mode"; done
done

# ---------------------------------------------------------------- report

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
openssh=$(ssh -V 2>&1 || echo "OpenSSH (version unknown)")
dropbear_v=$(dropbear -V 2>&1 | head -n 1)
rev=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev (with local changes)"; fi
elapsed=$(($(date +%s) - bench_t0))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "-" }'; }
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { if (x == x + 0) printf "%." d "f", x; else print "-" }'; }
ROWS=()
# row LABEL UNIT SHOAL SSHD DROPBEAR DECIMALS
row() { ROWS+=("$1|$2|$(fmt "$3" "$6")|$(fmt "$4" "$6")|$(fmt "$5" "$6")|$(ratio "$3" "$4")|$(ratio "$3" "$5")"); }

for layout in one spread loaded; do
    case $layout in
        one) p="a1" d=" (1 client process x $INFLIGHT)" ;;
        spread) p="a2" d=" ($NADDR client processes x $CPER)" ;;
        loaded) p="a3" d=" (as a2, $HOLD_N idle conns open) [n1]" ;;
    esac
    row "$p. handshake + exec \`true\`$d" "conn/s" \
        "$(med shoal.$layout.cps)" "$(med sshd.$layout.cps)" "$(med dropbear.$layout.cps)" 1
    row "$p. server CPU, all its processes" "ms/conn" \
        "$(med shoal.$layout.srv_ms)" "$(med sshd.$layout.srv_ms)" "$(med dropbear.$layout.srv_ms)" 3
    row "$p. server CPU, listener process alone" "ms/conn" \
        "$(med shoal.$layout.own_ms)" "$(med sshd.$layout.own_ms)" "$(med dropbear.$layout.own_ms)" 3
    row "$p. client CPU" "ms/conn" \
        "$(med shoal.$layout.cli_ms)" "$(med sshd.$layout.cli_ms)" "$(med dropbear.$layout.cli_ms)" 3
    row "$p. latency p50" "ms" \
        "$(med shoal.$layout.lat)" "$(med sshd.$layout.lat)" "$(med dropbear.$layout.lat)" 1
done
for mode in auth session; do
    if [ "$mode" = auth ]; then p="b(i) $HOLD_N authenticated, idle:"; else p="b(ii) $HOLD_N with an idle session [n1]:"; fi
    row "$p server Pss" "KiB/conn" "${R[shoal.$mode.pss]}" "${R[sshd.$mode.pss]}" "${R[dropbear.$mode.pss]}" 1
    if [ "$mode" = session ]; then
        row "$p server Pss without \`sleep\`" "KiB/conn" "${R[shoal.$mode.own]}" "${R[sshd.$mode.own]}" "${R[dropbear.$mode.own]}" 1
    fi
    row "$p server Rss" "KiB/conn" "${R[shoal.$mode.rss]}" "${R[sshd.$mode.rss]}" "${R[dropbear.$mode.rss]}" 1
    row "$p kernel, machine-wide" "KiB/conn" "${R[shoal.$mode.kern]}" "${R[sshd.$mode.kern]}" "${R[dropbear.$mode.kern]}" 1
    row "$p server processes" "count" "${R[shoal.$mode.procs]}" "${R[sshd.$mode.procs]}" "${R[dropbear.$mode.procs]}" 0
    row "$p set-up rate" "conn/s" "${R[shoal.$mode.cps]}" "${R[sshd.$mode.cps]}" "${R[dropbear.$mode.cps]}" 1
done

aim_cps=$(ratio "$(med shoal.one.cps)" "$(med sshd.one.cps)")
aim_mem=$(fmt "${R[shoal.auth.pss]}" 1)
AIMS=(
    "At least 5x sshd's connections per second: $(awk -v r="$aim_cps" 'BEGIN { print (r >= 5 ? "MET" : "NOT MET") }') (${aim_cps}x)"
    "Under 32 KiB per idle authenticated connection: $(awk -v m="$aim_mem" 'BEGIN { print (m == m + 0 && m < 32 ? "MET" : "NOT MET") }') ($aim_mem KiB Pss; $(fmt "${R[shoal.session.pss]}" 1) KiB with an idle session, its \`sleep\` included)"
)

header=(
    "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    "Machine: $cpu_model, $NCPU CPUs, Linux $(uname -r)"
    "Servers: shoal serve $rev; $openssh; $dropbear_v"
    "Setup: private network namespace (loopback only), servers on 0.0.0.0 there; client shoal's library (bench/fanout.c, bench/hold.c); kex $KEX, host key $HKA (the same key), user key ed25519, cipher chacha20-poly1305@openssh.com; $SERVER_ENV"
    "a: $N connections per measurement, $INFLIGHT in flight, from one fanout process to 127.0.0.1 (a1) or from $NADDR processes, one per source address 127.0.0.11-$((10 + NADDR)), $CPER in flight each (a2; dropbear's per-address cap allows no other); median of $RUNS runs. a3 (one run) repeats a2 against b(i)'s server while its connections are open. b: one run, a fresh server each, Pss/Rss summed over the server's processes (smaps_rollup), after minus before, per open connection"
    "[n1] dropbear: a3 with $DB_LOADED_N connections instead of $N, b(ii) with $DB_SESSIONS sessions instead of $HOLD_N (each new dropbear connection reads /proc/timer_list, which grows with every process on the machine)"
    "Rows: server CPU, all its processes = the listener plus everything it reaped (per-connection processes, shells, \`true\`); listener process alone = without them (for shoal serve everything but the forked commands; for sshd and dropbear the accept loop). Kernel = KernelStack+PageTables+SUnreclaim from /proc/meminfo, machine-wide, so both ends' sockets and any other activity are in it"
    "Disturbance (a): at most $OTHER_MAX% of the machine's CPU went to other work during one measurement ($OTHER_MAX_NAME); steal $(fmt "$STEAL_TOTAL" 2) s in all; $REPEATED measurement(s) repeated because other work took more than $MAX_OTHER%; load average at the start: $LOAD0, machine $BUSY0% busy just before; bench time ${elapsed} s"
)

echo
printf '%s\n' "${header[@]}"
echo
printf '%-58s %-8s %9s %9s %9s %10s %14s\n' "Measurement" "Unit" "shoal" "sshd" "dropbear" "shoal/sshd" "shoal/dropbear"
for r in "${ROWS[@]}"; do
    IFS='|' read -r l u a b c q1 q2 <<<"$r"
    printf '%-58s %-8s %9s %9s %9s %10s %14s\n' "$l" "$u" "$a" "$b" "$c" "$q1" "$q2"
done
echo
printf 'Aim: %s\n' "${AIMS[@]}"

if [ -n "${SHOAL_SERVE_BENCH_OUT_FD:-}" ]; then
    {
        for h in "${header[@]}"; do printf -- '- %s\n' "$h"; done
        echo
        echo "| Measurement | Unit | shoal | sshd | dropbear | shoal/sshd | shoal/dropbear |"
        echo "|---|---|---:|---:|---:|---:|---:|"
        for r in "${ROWS[@]}"; do
            IFS='|' read -r l u a b c q1 q2 <<<"$r"
            echo "| $l | $u | $a | $b | $c | $q1 | $q2 |"
        done
        echo
        for a in "${AIMS[@]}"; do echo "- Aim: $a"; done
        if [ "${#FAILURES[@]}" -gt 0 ]; then
            echo
            echo "Failures:"
            for f in "${FAILURES[@]}"; do echo "- $f"; done
        fi
    } >&9
    exec 9>&-
    echo
    echo "bench: markdown written to $BENCH_OUT"
fi

if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo
    echo "bench: FAILURES:" >&2
    printf '  %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
