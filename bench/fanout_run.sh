#!/bin/sh
# shellcheck shell=bash
# bench/fanout_run.sh -- `shoal run` vs pssh, pdsh and asyncssh: one command
# (`true`) on N distinct hosts at once. Invoked by `make bench-fanout` as
# `sh bench/fanout_run.sh build/shoal`.
#
# Measures, in one run:
#   A. against one OpenSSH sshd, for N in BENCH_FANOUT_NS (100 500 1000):
#        shoal    `shoal run -h HOSTS -- true` (all hosts at once, --threads default)
#        pssh     `parallel-ssh -p N -h HOSTS -x "SSH OPTIONS" true`
#        pdsh     `pdsh -R ssh -f N -S -w ^HOSTS true`, PDSH_SSH_ARGS = SSH OPTIONS
#        asyncssh bench/asyncssh_fanout.py (all N concurrent, one asyncio loop)
#      The tools alternate within a run; BENCH_RUNS (3) runs; medians.
#   B. `shoal run` alone against `shoal serve` (BENCH_FANOUT_SERVE_NS: 1000
#      10000 hosts), plus a 1-host run as the memory baseline.
# Figures: wall time, client CPU (user+sys of the tool and every descendant
# it waited for: wait4() rusage via shoal_bench_time, so pssh's and pdsh's
# ssh processes are included), client CPU per host, successes, max RSS (the
# largest single process, as GNU time reports it), server CPU per host
# (listener + reaped children, /proc) and "other" CPU (machine busy time
# used by neither, as a share of all CPUs).
#
# Hosts: host i (0-based) is 127.0.(i/250).(i%250+1), so 1,000 hosts are
# 127.0.0.1-127.0.3.250 and 10,000 go up to 127.0.39.250: every target is a
# distinct address. The bench runs in private network, mount and PID
# namespaces (unshare), like bench/serve_run.sh:
#   * network: only `lo`, where all of 127.0.0.0/8 is local. OpenSSH's sshd
#     accepts at most 16 ListenAddress sockets (MAX_LISTEN_SOCKS, compile
#     time: "Too many listen sockets"), so it listens on 0.0.0.0 there, which
#     is loopback only and reaches every 127.x address. shoal serve listens
#     on explicit ListenAddress lines: BENCH_FANOUT_SERVE_PER (500)
#     addresses per process (one process takes at most 1024 listen sockets,
#     and counts two per ListenAddress entry, so 512 entries: "too many
#     ListenAddress entries"), ceil(max N / PER) processes on consecutive
#     ports; host i goes to process i % P, so every N spreads over the same
#     processes;
#   * mount: an empty directory is bind-mounted over root's home, so the
#     remote `bash -c true` reads no rc files (root's .bashrc on the
#     development machine runs `pyenv init`, ~0.1 s per command; see
#     shared/docs/PEER-FIGURES.md) and no client reads ~/.ssh;
#   * PID: nothing outlives the bench.
# Every client: the same ed25519 user key, no agent, no config files,
# BatchMode, curve25519-sha256, ssh-ed25519 host key pinned in a
# known_hosts file with one "[address]:port" line per host (a file per N), default cipher
# (chacha20-poly1305@openssh.com for all four), no compression.
#
# Crypto floor: what one connection's client-side public-key crypto costs
# on this machine now (X25519 key generation + shared secret, Ed25519
# verify of the host signature, Ed25519 sign for userauth), from `openssl
# speed` (2 x X25519 + sign + verify), next to the 0.208 ms measured in
# shared/docs/PEER-FIGURES.md section 2.
#
# Environment knobs: BENCH_FANOUT_NS ("100 500 1000"), BENCH_FANOUT_SERVE_NS
# ("1000 10000"), BENCH_FANOUT_SERVE_PER (500), BENCH_FANOUT_TOOLS
# ("shoal pssh pdsh asyncssh"), BENCH_FANOUT_TIMEOUT (600 s per
# measurement), BENCH_RUNS (3), BENCH_OUT (write the result as markdown),
# BENCH_FANOUT_HOOK (a command to run with the servers up, for profiling;
# see below).
# Needs root, unshare(1), ip(8), /usr/sbin/sshd, ssh, ssh-keygen, openssl,
# parallel-ssh (Debian's pssh), pdsh, /usr/bin/python3 with asyncssh, and
# the build's shoal and bench programs.
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi
set -euo pipefail

SRC=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
SHOAL=${1:-$SRC/build/shoal}
case $SHOAL in /*) ;; *) SHOAL=$PWD/$SHOAL ;; esac

# ---------------------------------------------------------------- namespaces

if [ "${SHOAL_FANOUT_BENCH_NS:-}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "bench: fanout_run.sh needs root (private network, mount and PID namespaces)" >&2; exit 1; }
    for c in unshare ip; do
        command -v "$c" >/dev/null || { echo "bench: $c is not installed" >&2; exit 1; }
    done
    export SHOAL_FANOUT_BENCH_NS=1
    # The markdown file is opened here, outside the private mount namespace
    # (where the user's home is replaced), and handed down as fd 9.
    if [ -n "${BENCH_OUT:-}" ]; then
        exec 9>"$BENCH_OUT"
        export SHOAL_FANOUT_BENCH_OUT_FD=9
    fi
    exec unshare --net --pid --mount-proc --kill-child=TERM -- bash "$SRC/bench/fanout_run.sh" "$SHOAL"
fi

read -r -a NS <<<"${BENCH_FANOUT_NS:-100 500 1000}"
read -r -a SERVE_NS <<<"${BENCH_FANOUT_SERVE_NS:-1000 10000}"
read -r -a TOOLS <<<"${BENCH_FANOUT_TOOLS:-shoal pssh pdsh asyncssh}"
SERVE_PER=${BENCH_FANOUT_SERVE_PER:-500}
LIMIT=${BENCH_FANOUT_TIMEOUT:-600}
RUNS=${BENCH_RUNS:-3}
PYTHON=/usr/bin/python3
ASYNCSSH_FANOUT=$SRC/bench/asyncssh_fanout.py

# shellcheck source=lib.sh
. "$SRC/bench/lib.sh"
for f in "$SHOAL" "$TIMER"; do
    [ -x "$f" ] || { echo "bench: $f is missing; build first (cmake --build build)" >&2; exit 1; }
done
for c in /usr/sbin/sshd ssh ssh-keygen openssl parallel-ssh pdsh timeout; do
    command -v "$c" >/dev/null || { echo "bench: $c is not installed" >&2; exit 1; }
done
"$PYTHON" -c 'import asyncssh' 2>/dev/null || { echo "bench: $PYTHON has no asyncssh (apt-get install python3-asyncssh)" >&2; exit 1; }
"$SHOAL" run --help >/dev/null 2>&1 || { echo "bench: '$SHOAL run --help' fails" >&2; exit 1; }

max_n=0
for n in "${NS[@]}" "${SERVE_NS[@]}"; do [ "$n" -le "$max_n" ] || max_n=$n; done
[ "$max_n" -le 60000 ] || { echo "bench: at most 60000 hosts (127.0.0.1-127.0.239.250)" >&2; exit 1; }
max_serve=0
for n in "${SERVE_NS[@]}"; do [ "$n" -le "$max_serve" ] || max_serve=$n; done
NSERVE=$(((max_serve + SERVE_PER - 1) / SERVE_PER))

bench_t0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
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
ip link set lo up

# The build may be rebuilt while the bench runs (a tree shared with others):
# every measurement uses a copy of the binary taken now.
SHOAL_BUILT=$(date -u -r "$SHOAL" '+%Y-%m-%d %H:%M UTC')
cp "$SHOAL" "$T/shoal"
SHOAL=$T/shoal
SHOAL_SUM=$(sha256sum "$SHOAL" | cut -c 1-12)

# Every server and client gets the hard fd limit (20000 on the development
# machine): pssh holds 3 pipes per ssh, shoal serve one socket per listen
# address and per connection plus pipes per command, shoal run one socket
# per host (it raises its own soft limit too).
ulimit -n "$(ulimit -Hn)"
FDLIM=$(ulimit -n)
[ "$FDLIM" -ge $((max_n + SERVE_PER + 200)) ] ||
    echo "bench: WARNING: fd limit $FDLIM may be too low for $max_n hosts" >&2

# ---------------------------------------------------------------- keys, home

mkdir -p "$T/keys"
ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$T/keys/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C bench-user -f "$T/keys/id_ed25519"
KEY=$T/keys/id_ed25519
AK=$T/keys/authorized_keys
cp "$KEY.pub" "$AK"
chmod 644 "$AK"
USER_NAME=$(id -un)
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)
case $HOME_DIR in /?*) [ -d "$HOME_DIR" ] ;; *) false ;; esac ||
    { echo "bench: $USER_NAME's home '$HOME_DIR' is not a directory to mount over" >&2; exit 1; }
mkdir -p "$T/emptyhome"
chmod 755 "$T/emptyhome"
mount --bind "$T/emptyhome" "$HOME_DIR"
SERVER_ENV="$HOME_DIR is an empty directory (private mount namespace) for servers and clients"
HOSTPUB=$(cut -d' ' -f1,2 "$T/keys/host_ed25519.pub")

# ---------------------------------------------------------------- sshd

SSHD_PORT=22000
mkdir -p /run/sshd && chmod 755 /run/sshd
cat >"$T/sshd_config" <<EOF
ListenAddress 0.0.0.0
Port $SSHD_PORT
AddressFamily inet
HostKey $T/keys/host_ed25519
PidFile $T/sshd.pid
AuthorizedKeysFile $AK
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 10000:30:10000
MaxSessions 10
LoginGraceTime 0
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
EOF
/usr/sbin/sshd -t -f "$T/sshd_config" || { echo "bench: sshd rejects $T/sshd_config" >&2; exit 1; }
# Absolute path: sshd re-executes itself for every connection.
/usr/sbin/sshd -D -f "$T/sshd_config" -E "$T/sshd.log" </dev/null >"$T/sshd.stderr" 2>&1 9>&- &
SSHD_PID=$!
peers_track "$SSHD_PID" "$T/sshd.log"
wait_for 10 port_open "$SSHD_PORT" || { cat "$T/sshd.log" >&2; echo "bench: sshd does not listen on $SSHD_PORT" >&2; exit 1; }

# ---------------------------------------------------------------- shoal serve

SERVE_BASE=22100
SERVE_PIDS=()
SERVE_PORTS=()
for k in $(seq 0 $((NSERVE - 1))); do
    port=$((SERVE_BASE + k))
    d=$T/serve$k
    mkdir -p "$d"
    {
        echo "HostKey $T/keys/host_ed25519"
        echo "AuthorizedKeysFile $AK"
        echo "StrictModes no"
        echo "PermitRootLogin yes"
        echo "MaxStartups 20000:30:20000"
        echo "PerSourcePenalties no" # like the sshd it is compared with (9.2: none)
        echo "LoginGraceTime 0"
        awk -v k="$k" -v n=$((NSERVE * SERVE_PER)) -v p="$NSERVE" 'BEGIN {
            for (i = k; i < n; i += p) printf "ListenAddress 127.0.%d.%d\n", int(i / 250), i % 250 + 1 }'
    } >"$d/serve_config"
    "$SHOAL" serve -f "$d/serve_config" -p "$port" </dev/null >"$d/log" 2>&1 9>&- &
    SERVE_PIDS+=($!)
    SERVE_PORTS+=("$port")
    peers_track "$!" "$d/log"
done
serve_up() { grep -q "listening on port $2 " "$1" || ! kill -0 "$3" 2>/dev/null; }
for k in $(seq 0 $((NSERVE - 1))); do
    wait_for 30 serve_up "$T/serve$k/log" "${SERVE_PORTS[$k]}" "${SERVE_PIDS[$k]}" || true
    if ! kill -0 "${SERVE_PIDS[$k]}" 2>/dev/null || ! grep -q "listening on port ${SERVE_PORTS[$k]} " "$T/serve$k/log"; then
        tail -n 20 "$T/serve$k/log" >&2
        echo "bench: shoal serve $k does not listen on port ${SERVE_PORTS[$k]}" >&2
        exit 1
    fi
done

# ---------------------------------------------------------------- hosts files

# hostlist N FORMAT: FORMAT (printf) with the address and the serve port of
# hosts 0..N-1.
hostlist() {
    awk -v n="$1" -v f="$2" -v base="$SERVE_BASE" -v p="$NSERVE" 'BEGIN {
        for (i = 0; i < n; i++) printf f, sprintf("127.0.%d.%d", int(i / 250), i % 250 + 1), base + i % p }'
}
# For each N, a hosts file and a known_hosts file with one line per target
# (as ssh-keyscan would write it for a fleet of N hosts; every client reads
# the whole file, so it has exactly the N hosts measured).
for n in "${NS[@]}" 2; do
    hostlist "$n" '%s\n' >"$T/hosts.$n"
    hostlist "$n" "[%s]:$SSHD_PORT $HOSTPUB\n" >"$T/kh.$n"
done
for n in "${SERVE_NS[@]}" 1; do
    hostlist "$n" '%s:%d\n' >"$T/serve_hosts.$n"
    hostlist "$n" "[%s]:%d $HOSTPUB\n" >"$T/serve_kh.$n"
done

# The OpenSSH client options pssh and pdsh pass to every ssh (KH: the
# known_hosts file).
ssh_opts() {
    local o="-F /dev/null -p $SSHD_PORT -i $KEY -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes"
    o+=" -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$1 -o GlobalKnownHostsFile=/dev/null"
    o+=" -o UpdateHostKeys=no -o ControlPath=none -o KexAlgorithms=$KEX -o HostKeyAlgorithms=$HKA"
    echo "$o -o LogLevel=ERROR"
}
SHOAL_OPTS=(-l "$USER_NAME" -i "$KEY" -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes
    -o GlobalKnownHostsFile=/dev/null -o "KexAlgorithms=$KEX" -o "HostKeyAlgorithms=$HKA" --no-progress)

# ---------------------------------------------------------------- helpers

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
# srv_cpu PID...: utime+stime+cutime+cstime summed over the PIDs, seconds.
srv_cpu() {
    local p s=0
    for p in "$@"; do s=$(awk -v hz="$HZ" -v s="$s" '{ printf "%.4f\n", s + ($14 + $15 + $16 + $17) / hz }' "/proc/$p/stat"); done
    echo "$s"
}
machine_cpu() { awk -v hz="$HZ" '$1 == "cpu" { printf "%.4f %.4f\n", ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz }' /proc/stat; }
calc() { awk "BEGIN { printf \"%.6g\n\", $* }"; }
field() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$2"; }

# settle PID...: wait until none of the servers has a child left, so their
# cutime/cstime include every per-connection process and command.
settle() {
    local _ p busy
    for _ in $(seq 1 400); do
        busy=0
        for p in "$@"; do
            if pgrep -P "$p" >/dev/null 2>&1; then busy=1; break; fi
        done
        [ "$busy" = 0 ] && return 0
        sleep 0.05
    done
    echo "bench: a server still has children after 20 s" >&2
}

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

# tcp_counters: "ListenDrops TCPSynRetrans" of this network namespace: SYNs
# a full listen queue dropped, and the clients' SYN retransmissions (each
# costs the connection 1 s, then 2 s, 4 s...).
tcp_counters() {
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) idx[$i] = i; h = 1 }
        else { print $idx["ListenDrops"] + 0, $idx["TCPSynRetrans"] + 0; exit } }' /proc/net/netstat
}
# tcp_inuse: TCP sockets in use in this network namespace (both ends of
# every connection, and the listeners).
tcp_inuse() {
    local a v
    while read -r a _ v _; do
        if [ "$a" = TCP: ]; then echo "$v"; return; fi
    done </proc/net/sockstat
    echo 0
}
# peak_sampler FILE: write the largest tcp_inuse seen, every 0.1 s, without
# starting a process per sample (read -t on a FIFO nobody writes to).
mkfifo "$T/never"
peak_sampler() {
    local max=0 v
    exec 7<>"$T/never"
    while :; do
        v=$(tcp_inuse)
        if [ "$v" -gt "$max" ]; then max=$v; echo "$max" >"$1"; fi
        read -r -t 0.1 -u 7 _ || true
    done
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
# worst KEY: the smallest value over the runs (successes: the worst run).
worst() {
    # shellcheck disable=SC2086
    printf '%s\n' ${R[$1]:-} | sort -g | head -n 1
}

# count_ok TOOL N RC: successes from the tool's own report in $T/out, $T/err.
count_ok() {
    local tool=$1 n=$2 rc=$3 v
    case $tool in
        shoal)
            # Last line: "N hosts in X s: A ok, B failed".
            v=$(cat "$T/out" "$T/err" | sed -n 's/^[0-9]* hosts in .* s: \([0-9]*\) ok, [0-9]* failed.*/\1/p' | tail -n 1) ;;
        pssh)
            v=$(grep -c '\[SUCCESS\]' "$T/out" || true) ;;
        pdsh)
            # -S: the exit code is the largest remote one (ssh's 255 when it
            # cannot connect); each failed host is named on stderr.
            if [ "$rc" -eq 0 ]; then
                v=$n
            else
                v=$((n - $(sed -n 's/^pdsh@[^:]*: \([^:]*\): .*/\1/p' "$T/err" | sort -u | wc -l)))
            fi ;;
        asyncssh)
            v=$(field ok "$T/out") ;;
    esac
    echo "${v:-0}"
}

# measure KEY TOOL N HOSTS_FILE KNOWN_HOSTS PORT SERVER_PID...: run TOOL on
# the hosts of HOSTS_FILE (all at once) under the timer; record wall, client
# CPU, RSS, server CPU and successes under KEY.
measure() {
    local key=$1 tool=$2 n=$3 hosts=$4 kh=$5 port=$6
    shift 6
    local -a cmd
    case $tool in
        shoal) cmd=("$SHOAL" run -p "$port" "${SHOAL_OPTS[@]}" -o "UserKnownHostsFile=$kh" -h "$hosts" -- true) ;;
        pssh) cmd=(parallel-ssh -p "$n" -t 0 -l "$USER_NAME" -h "$hosts" -x "$(ssh_opts "$kh")" true) ;;
        pdsh) cmd=(env "PDSH_SSH_ARGS=$(ssh_opts "$kh") -a -x -l%u %h" pdsh -R ssh -f "$n" -S -l "$USER_NAME"
            -w "^$hosts" true) ;;
        asyncssh) cmd=("$PYTHON" "$ASYNCSSH_FANOUT" -p "$port" -l "$USER_NAME" -i "$KEY" -k "$kh"
            -f "$hosts" --kex "$KEX" --hostkey-alg "$HKA" -- true) ;;
    esac
    local s0 s1 m0 m1 rc=0 ok w u s rss cpu d0 d1 r0 r1 base peak sp
    rm -f "$T/time" "$T/out" "$T/err" "$T/peak"
    settle "$@"
    s0=$(srv_cpu "$@")
    read -r d0 r0 < <(tcp_counters)
    base=$(tcp_inuse)
    peak_sampler "$T/peak" &
    sp=$!
    m0=$(machine_cpu)
    "$TIMER" -o "$T/time" timeout -k 10 "$LIMIT" "${cmd[@]}" </dev/null >"$T/out" 2>"$T/err" || rc=$?
    kill "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    settle "$@"
    s1=$(srv_cpu "$@")
    m1=$(machine_cpu)
    read -r d1 r1 < <(tcp_counters)
    peak=$(cat "$T/peak" 2>/dev/null || echo "$base")
    ok=$(count_ok "$tool" "$n" "$rc")
    w=$(field wall_s "$T/time")
    u=$(field user_s "$T/time")
    s=$(field sys_s "$T/time")
    rss=$(field maxrss_kb "$T/time")
    cpu=$(calc "$u + $s")
    if [ "$rc" -ne 0 ] || [ "$ok" != "$n" ]; then
        # shoal run's summary lines (failure classes and an example) are
        # on stdout; the other tools report on stderr.
        FAILURES+=("$key: rc=$rc ok=$ok/$n: $({ head -c 400 "$T/err"; grep -E '^  |^    e\.g\.' "$T/out" | head -n 8; } | tr '\n' ' ')")
        [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || FAILURES+=("$key: timed out after $LIMIT s")
    fi
    note_other "$key" "$w" "$cpu" "$(calc "$s1 - $s0")" "$m0" "$m1"
    add "$key.wall" "$w"
    add "$key.cpu" "$cpu"
    add "$key.cpu_ms" "$(calc "$cpu * 1000 / $n")"
    add "$key.rss" "$rss"
    add "$key.srv_ms" "$(calc "($s1 - $s0) * 1000 / $n")"
    add "$key.ok" "$ok"
    add "$key.other" "$OTHER_PCT"
    add "$key.drops" "$((d1 - d0))"
    add "$key.synretx" "$((r1 - r0))"
    # Both ends of a connection are in the count: half is the number of
    # connections open at the peak (approximately: a connection still
    # waiting for its SYN-ACK has only the client's socket).
    add "$key.peak" "$(((peak - base) / 2))"
    printf '  %-16s ok=%s/%s wall %7.2f s  client CPU %7.2f s = %7.3f ms/host  max RSS %7.1f MB  server CPU %6.2f ms/host  other %4.1f%%  SYN drops %s, SYN retransmits %s, peak conns ~%s\n' \
        "$key" "$ok" "$n" "$w" "$cpu" "$(calc "$cpu * 1000 / $n")" "$(calc "$rss / 1024")" \
        "$(calc "($s1 - $s0) * 1000 / $n")" "$OTHER_PCT" "$((d1 - d0))" "$((r1 - r0))" "$(((peak - base) / 2))"
}

# ---------------------------------------------------------------- crypto floor

# openssl speed: X25519 derive/s, Ed25519 sign/s and verify/s on one core.
openssl speed -seconds 1 ecdhx25519 ed25519 >"$T/speed" 2>/dev/null || true
read -r X25519 ED_SIGN ED_VERIFY < <(awk '/ecdh \(X25519\)/ { x = $NF } /EdDSA \(Ed25519\)/ { s = $(NF - 1); v = $NF }
    END { print x + 0, s + 0, v + 0 }' "$T/speed")
FLOOR_MS=$(awk -v x="$X25519" -v s="$ED_SIGN" -v v="$ED_VERIFY" 'BEGIN {
    if (x > 0 && s > 0 && v > 0) printf "%.3f\n", 1000 * (2 / x + 1 / s + 1 / v); else print "0.208" }')
FLOOR_REF=0.208

# ---------------------------------------------------------------- sanity

echo "bench: sshd on 0.0.0.0:$SSHD_PORT; $NSERVE shoal serve on ports $SERVE_BASE-$((SERVE_BASE + NSERVE - 1)), $SERVE_PER addresses each ($SERVER_ENV)"
echo "bench: crypto floor now $FLOOR_MS ms per connection (openssl speed: X25519 $X25519/s, Ed25519 sign $ED_SIGN/s, verify $ED_VERIFY/s)"
for tool in "${TOOLS[@]}"; do
    measure "sanity.$tool" "$tool" 2 "$T/hosts.2" "$T/kh.2" "$SSHD_PORT" "$SSHD_PID" >/dev/null
    if [ "$(med "sanity.$tool.ok")" != 2 ]; then
        echo "bench: $tool cannot run \`true\` on 2 hosts:" >&2
        cat "$T/out" "$T/err" >&2
        exit 1
    fi
done
measure sanity.serve shoal 1 "$T/serve_hosts.1" "$T/serve_kh.1" "$SERVE_BASE" "${SERVE_PIDS[@]}" >/dev/null
if [ "$(med sanity.serve.ok)" != 1 ]; then
    echo "bench: shoal run cannot run \`true\` against shoal serve:" >&2
    cat "$T/out" "$T/err" >&2
    exit 1
fi
# Profiling hook: with BENCH_FANOUT_HOOK set, run it (bash -c) inside the
# namespaces with the servers up, instead of the measurements. It sees
# BF_DIR (hosts files: serve_hosts.N, serve_kh.N, hosts.N, kh.N), BF_SHOAL
# and BF_OPTS (shoal run's options as measured, without -h and the known_hosts
# file), e.g.
#   BENCH_FANOUT_HOOK='perf record -g -o /tmp/run.data -- $BF_SHOAL run $BF_OPTS
#     -o UserKnownHostsFile=$BF_DIR/serve_kh.1000 -h $BF_DIR/serve_hosts.1000 -- true'
if [ -n "${BENCH_FANOUT_HOOK:-}" ]; then
    BF_DIR=$T BF_SHOAL=$SHOAL BF_OPTS="${SHOAL_OPTS[*]}" bash -c "$BENCH_FANOUT_HOOK" || true
    exit 0
fi
FAILURES=()
OTHER_MAX=0 OTHER_MAX_NAME=- STEAL_TOTAL=0

# ---------------------------------------------------------------- runs

for run in $(seq 1 "$RUNS"); do
    echo "run $run/$RUNS"
    echo " A. against OpenSSH sshd"
    for n in "${NS[@]}"; do
        for tool in "${TOOLS[@]}"; do
            measure "$tool.$n" "$tool" "$n" "$T/hosts.$n" "$T/kh.$n" "$SSHD_PORT" "$SSHD_PID"
        done
    done
    echo " B. shoal run against $NSERVE shoal serve processes"
    measure "serve.1" shoal 1 "$T/serve_hosts.1" "$T/serve_kh.1" "$SERVE_BASE" "${SERVE_PIDS[@]}"
    for n in "${SERVE_NS[@]}"; do
        measure "serve.$n" shoal "$n" "$T/serve_hosts.$n" "$T/serve_kh.$n" "$SERVE_BASE" "${SERVE_PIDS[@]}"
    done
done

# ---------------------------------------------------------------- report


cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
openssh=$(ssh -V 2>&1 || echo "OpenSSH (version unknown)")
pssh_v=$(dpkg-query -W -f '${Version}' pssh 2>/dev/null || parallel-ssh --version 2>&1 || echo "?")
pdsh_v=$(pdsh -V 2>&1 | head -n 1)
asyncssh_v=$("$PYTHON" -W ignore -c 'import asyncssh; print(asyncssh.__version__)' 2>/dev/null || echo "?")
py_v=$("$PYTHON" -V 2>&1)
rev=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev (with local changes)"; fi
elapsed=$(($(date +%s) - bench_t0))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "-" }'; }
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { if (x == x + 0) printf "%." d "f", x; else print "-" }'; }
mb() { awk -v x="$1" 'BEGIN { if (x == x + 0) printf "%.1f", x / 1024; else print "-" }'; }

# A: one row per (N, tool).
AHEAD="N|Tool|OK|Wall s|Client CPU s|Client CPU ms/host|Max RSS MB|sshd CPU ms/host|Other CPU %|SYN drops|CPU vs shoal|Wall vs shoal|RSS vs shoal"
AROWS=()
for n in "${NS[@]}"; do
    for tool in "${TOOLS[@]}"; do
        k=$tool.$n
        AROWS+=("$n|$tool|$(worst "$k.ok")/$n|$(fmt "$(med "$k.wall")" 2)|$(fmt "$(med "$k.cpu")" 2)|$(fmt "$(med "$k.cpu_ms")" 3)|$(mb "$(med "$k.rss")")|$(fmt "$(med "$k.srv_ms")" 2)|$(fmt "$(med "$k.other")" 1)|$(fmt "$(med "$k.drops")" 0)|$(ratio "$(med "$k.cpu")" "$(med "shoal.$n.cpu")")|$(ratio "$(med "$k.wall")" "$(med "shoal.$n.wall")")|$(ratio "$(med "$k.rss")" "$(med "shoal.$n.rss")")")
    done
done

# B: shoal run vs shoal serve.
BHEAD="N|OK|Wall s|Hosts/s|Client CPU s|Client CPU ms/host|x crypto floor|Max RSS MB|RSS growth KiB/host|Peak conns (approx)|RSS growth KiB/peak conn|Server CPU ms/host|Other CPU %|SYN drops"
BROWS=()
rss1=$(med serve.1.rss)
# per_peak RSS RSS1 PEAK: RSS growth per connection open at the peak ("-"
# when the sampler saw none: runs shorter than its 0.1 s period).
per_peak() { awk -v r="$1" -v b="$2" -v p="$3" 'BEGIN { if (p > 0) printf "%.1f", (r - b) / p; else print "-" }'; }
for n in "${SERVE_NS[@]}"; do
    k=serve.$n
    cms=$(med "$k.cpu_ms")
    BROWS+=("$n|$(worst "$k.ok")/$n|$(fmt "$(med "$k.wall")" 2)|$(fmt "$(calc "$n / $(med "$k.wall")")" 0)|$(fmt "$(med "$k.cpu")" 2)|$(fmt "$cms" 3)|$(ratio "$cms" "$FLOOR_MS")|$(mb "$(med "$k.rss")")|$(fmt "$(calc "($(med "$k.rss") - $rss1) / ($n - 1)")" 1)|$(fmt "$(med "$k.peak")" 0)|$(per_peak "$(med "$k.rss")" "$rss1" "$(med "$k.peak")")|$(fmt "$(med "$k.srv_ms")" 2)|$(fmt "$(med "$k.other")" 1)|$(fmt "$(med "$k.drops")" 0)")
done

# Aims (from the issue): client CPU per host at least 10x below asyncssh's
# (same N, same sshd, same run) and within 2x of the crypto floor.
AIMS=()
big=${NS[$((${#NS[@]} - 1))]}
if [[ " ${TOOLS[*]} " == *" asyncssh "* ]] && [[ " ${TOOLS[*]} " == *" shoal "* ]]; then
    r=$(ratio "$(med "asyncssh.$big.cpu_ms")" "$(med "shoal.$big.cpu_ms")")
    AIMS+=("Client CPU per host at least 10x below asyncssh's (N = $big, against sshd): $(awk -v r="$r" 'BEGIN { print (r == r + 0 && r >= 10 ? "MET" : "NOT MET") }') (asyncssh $(fmt "$(med "asyncssh.$big.cpu_ms")" 3) ms, shoal run $(fmt "$(med "shoal.$big.cpu_ms")" 3) ms: ${r}x)")
fi
for n in "${SERVE_NS[@]}"; do
    r=$(ratio "$(med "serve.$n.cpu_ms")" "$FLOOR_MS")
    AIMS+=("Within 2x of the crypto floor (N = $n, against shoal serve): $(awk -v r="$r" 'BEGIN { print (r == r + 0 && r <= 2 ? "MET" : "NOT MET") }') ($(fmt "$(med "serve.$n.cpu_ms")" 3) ms vs $FLOOR_MS ms: ${r}x)")
done
if [[ " ${TOOLS[*]} " == *" shoal "* ]]; then
    r=$(ratio "$(med "shoal.$big.cpu_ms")" "$FLOOR_MS")
    AIMS+=("Within 2x of the crypto floor (N = $big, against sshd): $(awk -v r="$r" 'BEGIN { print (r == r + 0 && r <= 2 ? "MET" : "NOT MET") }') ($(fmt "$(med "shoal.$big.cpu_ms")" 3) ms vs $FLOOR_MS ms: ${r}x)")
fi

header=(
    "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    "Machine: $cpu_model, $NCPU CPUs, Linux $(uname -r); fd limit $FDLIM"
    "Clients: shoal run $rev (binary built $SHOAL_BUILT, sha256 $SHOAL_SUM...; --threads default = $NCPU worker threads); pssh $pssh_v; $pdsh_v; asyncssh $asyncssh_v ($py_v, $PYTHON); ssh: $openssh"
    "Servers: A. one OpenSSH sshd on 0.0.0.0 in a private network namespace (loopback only), MaxStartups 10000:30:10000; B. $NSERVE \`shoal serve\` processes, $SERVE_PER ListenAddress lines each, ports $SERVE_BASE-$((SERVE_BASE + NSERVE - 1)), host i on process i mod $NSERVE; $SERVER_ENV"
    "Hosts: host i is 127.0.(i/250).(i%250+1), every one a distinct address; command \`true\` as $USER_NAME; kex $KEX, host key $HKA pinned in a known_hosts file per N with one line per target, user key ed25519, BatchMode, no agent, no config files"
    "Client CPU = user+sys of the tool and every descendant it waited for (wait4 rusage; pssh's and pdsh's ssh processes included). Max RSS = the largest single process. Server CPU = listener(s) + reaped children from /proc. RSS growth per host = (max RSS at N - max RSS for 1 host) / (N - 1); peak conns = half the largest rise in TCP sockets in use (/proc/net/sockstat, sampled every 0.1 s); SYN drops = ListenDrops (/proc/net/netstat): SYNs dropped by a full listen queue, each costing a client a 1 s (then 2 s, 4 s...) retransmission"
    "Crypto floor: $FLOOR_MS ms per connection now (openssl speed: 2 x X25519 + Ed25519 sign + verify), $FLOOR_REF ms in shared/docs/PEER-FIGURES.md"
    "Each figure: median of $RUNS runs, except OK: the worst run; bench time ${elapsed} s"
    "Disturbance: at most $OTHER_MAX% of the machine's CPU went to other work during one measurement ($OTHER_MAX_NAME); steal $(fmt "$STEAL_TOTAL" 2) s in all; load average at the start: $LOAD0, machine $BUSY0% busy just before"
)

print_table() { # HEAD ROWS...
    local h=$1
    shift
    printf '%s\n' "$h" "$@" | column -t -s '|'
}
md_table() { # HEAD ROWS...
    local h=$1 sep
    shift
    sep=$(awk -F'|' '{ for (i = 1; i <= NF; i++) printf "|---"; print "|" }' <<<"$h")
    echo "| ${h//|/ | } |"
    echo "$sep"
    local r
    for r in "$@"; do echo "| ${r//|/ | } |"; done
}

echo
printf '%s\n' "${header[@]}"
echo
echo "A. one command on N hosts, against OpenSSH sshd"
print_table "$AHEAD" "${AROWS[@]}"
echo
echo "B. shoal run against shoal serve"
print_table "$BHEAD" "${BROWS[@]}"
echo
printf 'Aim: %s\n' "${AIMS[@]}"

if [ -n "${SHOAL_FANOUT_BENCH_OUT_FD:-}" ]; then
    {
        for h in "${header[@]}"; do printf -- '- %s\n' "$h"; done
        echo
        echo "A. One command on N hosts, against OpenSSH sshd:"
        echo
        md_table "$AHEAD" "${AROWS[@]}"
        echo
        echo "B. \`shoal run\` against \`shoal serve\`:"
        echo
        md_table "$BHEAD" "${BROWS[@]}"
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
