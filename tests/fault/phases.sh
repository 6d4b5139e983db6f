#!/usr/bin/env bash
# Helpers passed to check/wait_for look unreachable to shellcheck:
# shellcheck disable=SC2317
# Fault injection: `shoal exec` against a server that fails at each phase.
#
# One fault_faultpeer process (tests/fault/faultpeer.c) listens on
# 127.0.3.1..127.0.3.N, one mode per address (see `fault_faultpeer
# --list-modes`): silent at accept / after its version line / after KEXINIT /
# after the key exchange reply / after NEWKEYS, a version line without CR LF,
# endless pre-banner lines, a version line trickled one byte every 5 s, a TCP
# RST at each phase, a changed host key, and a healthy server. Every client
# runs at once (background jobs), with ConnectTimeout=$DEADLINE, which shoal
# exec applies to each of the connect, banner and key exchange stages. For
# each mode we check the exit code (255), that the one-line message names
# the stage and the cause, and the time taken: for a timeout, the peer logs
# how long the client held the connection (accept to the client's close),
# which must be within [deadline, deadline + 1 s]; the wall-clock time of
# the whole `shoal exec` must be within deadline + 1 s + $FAULT_SLACK_MS
# (process start-up and key loading on a loaded machine; default 2000).
#
# After the key exchange: a server silent while shoal exec waits for it
# (silent-after-newkeys, no-auth-reply) is given up after
# ServerAliveInterval x ServerAliveCountMax (1 s x 3 here), as OpenSSH's
# packet timeout does; one that never confirms the session channel
# (channel-never-confirmed; it answers keepalives) after ConnectTimeout,
# which shoal exec also applies to opening the channel and starting the
# command (30 s without it). A command that never exits (exec-never-exits,
# keepalives answered) is waited for, as by ssh: only the peer reaching its
# fault point and the client still waiting are checked.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
require_cmd ssh-keygen timeout
FAULTPEER=${FAULTPEER:-${SHOAL_BUILD:+$SHOAL_BUILD/tests/fault_faultpeer}}
if [ -z "${FAULTPEER:-}" ] || [ ! -x "$FAULTPEER" ]; then skip "fault_faultpeer is not built (SHOAL_BUILD unset?)"; fi
peers_init

DEADLINE=3               # seconds, per stage (ConnectTimeout)
LIMIT_MS=$(((DEADLINE + 1) * 1000))                    # connection time, seen by the peer
WALL_MS=$((LIMIT_MS + ${FAULT_SLACK_MS:-2000}))          # whole shoal exec run
HANG=$((DEADLINE + 2))   # how long a client facing a mode exec cannot bound is left running
NCONC=20                 # concurrent clients on the healthy listener

mkdir -p "$T/keys" "$T/run"
ssh-keygen -q -t ed25519 -N '' -C fault-host1 -f "$T/keys/host1"
ssh-keygen -q -t ed25519 -N '' -C fault-host2 -f "$T/keys/host2"
ssh-keygen -q -t ed25519 -N '' -C fault-user -f "$T/keys/id_ed25519"
cp "$T/keys/id_ed25519.pub" "$T/keys/authorized_keys"

mapfile -t MODES < <("$FAULTPEER" --list-modes | awk '{ print $1 }')
N=${#MODES[@]}
[ "$N" -ge 20 ] || die "fault_faultpeer --list-modes lists only $N modes"
MODE_LIST=$(IFS=,; echo "${MODES[*]}")

# ---- start the peer: 127.0.3.1..127.0.3.N, one mode each, on a free port
_fault_ready() { [ -s "$T/fault.ready" ] || ! kill -0 "$1" 2>/dev/null; }
PEER_PID=""
for _ in 1 2 3; do
    PORT=$(free_port) || die "no free port"
    rm -f "$T/fault.ready"
    "$FAULTPEER" --hostkey "$T/keys/host1" --hostkey2 "$T/keys/host2" \
        --authorized-keys "$T/keys/authorized_keys" \
        --listen "127.0.3.1-127.0.3.$N:$PORT" --mode "$MODE_LIST" \
        --ready-file "$T/fault.ready" --max-lifetime 120 \
        </dev/null >"$T/fault.out" 2>"$T/fault.log" &
    pid=$!
    _peers_add_pid "$pid"
    wait_for 20 _fault_ready "$pid" || die "fault_faultpeer did not get ready"
    if [ -s "$T/fault.ready" ] && kill -0 "$pid" 2>/dev/null; then
        PEER_PID=$pid
        break
    fi
    if grep -qi "address already in use" "$T/fault.log"; then
        echo "port $PORT was taken, retrying" >&2
        continue
    fi
    if grep -qi "address not available" "$T/fault.log"; then
        skip "cannot bind 127.0.3.x loopback addresses here"
    fi
    cat "$T/fault.log" >&2
    die "fault_faultpeer failed to start"
done
[ -n "$PEER_PID" ] || die "fault_faultpeer could not bind a port"
PEERS_LOGS+=("$T/fault.log")
# finish() stops it with SIGTERM (a clean exit, so LeakSanitizer runs) and
# fails the test if its log holds a sanitizer report.
PEERS_SERVE_INSTANCES+=("$PEER_PID:$T/fault.log")

declare -A ADDR
while read -r kw name mode; do
    [ "$kw" = listen ] || continue
    ADDR[$mode]=${name%:*}
done <"$T/fault.out"
for m in "${MODES[@]}"; do
    [ -n "${ADDR[$m]:-}" ] || die "no listener for mode $m in $T/fault.out"
done

# The client knows host key 1 for every address.
for i in $(seq 1 "$N"); do
    awk -v h="[127.0.3.$i]:$PORT" '{ print h, $1, $2 }' "$T/keys/host1.pub" >>"$T/known_hosts"
done

COMMON=(-o "UserKnownHostsFile=$T/known_hosts" -o GlobalKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o "ConnectTimeout=$DEADLINE"
    -p "$PORT" -i "$T/keys/id_ed25519")

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run_bg NAME ADDR LIMIT CMD...: shoal exec in the background; results in
# $T/run/NAME/{out,err,rc,ms}. LIMIT bounds it (timeout's 124 = still running).
run_bg() {
    local name=$1 addr=$2 limit=$3 d=$T/run/$1
    shift 3
    mkdir -p "$d"
    (
        rc=0
        s=$(now_ms)
        env -u SSH_AUTH_SOCK timeout -k 2 "$limit" "$SHOAL_BIN" exec "${COMMON[@]}" "$PEER_USER@$addr" "$@" \
            </dev/null >"$d/out" 2>"$d/err" || rc=$?
        e=$(now_ms)
        echo "$rc" >"$d/rc"
        echo $((e - s)) >"$d/ms"
    ) &
    JOBS+=("$!")
}
JOBS=()

# load NAME: the results of run_bg NAME into $RC, $MS, $T/out and $T/err
# (where the peers.sh checks look).
load() {
    local d=$T/run/$1
    RC=$(cat "$d/rc" 2>/dev/null || echo none)
    MS=$(cat "$d/ms" 2>/dev/null || echo 999999)
    cp "$d/out" "$T/out"
    cp "$d/err" "$T/err"
}

# ---- run every client at once
T0=$(now_ms)
for m in "${MODES[@]}"; do
    case $m in
    silent-after-newkeys | no-auth-reply)
        COMMON+=(-o ServerAliveInterval=1 -o "ServerAliveCountMax=$DEADLINE")
        run_bg "$m" "${ADDR[$m]}" $((DEADLINE + 5)) "echo never"
        unset 'COMMON[-1]' 'COMMON[-1]' 'COMMON[-1]' 'COMMON[-1]' ;;
    exec-never-exits)
        run_bg "$m" "${ADDR[$m]}" "$HANG" "echo never" ;;
    channel-never-confirmed)
        run_bg "$m" "${ADDR[$m]}" $((DEADLINE + 5)) "echo never" ;;
    *)
        run_bg "$m" "${ADDR[$m]}" $((DEADLINE + 5)) "echo hello fault" ;;
    esac
done
# Only the clients: a bare `wait` would wait for the peer too.
wait "${JOBS[@]}"
echo "# fault clients done in $(($(now_ms) - T0)) ms"
JOBS=()
for i in $(seq 1 "$NCONC"); do
    run_bg "conc$i" "${ADDR[ok]}" 30 "echo client $i"
done
wait "${JOBS[@]}"
echo "# $NCONC concurrent clients done in $(($(now_ms) - T0)) ms"

# ---- checks

# fails MODE STAGE CAUSE_ERE: exit 255, "shoal: ADDR:PORT: STAGE: CAUSE",
# within the deadline + 1 s.
fails() {
    local m=$1 stage=$2 cause=$3 a
    load "$m"
    a=${ADDR[$m]//./\\.}
    check_rc 255 "$m: exit code 255"
    check_err_has "^shoal: $a:$PORT: $stage: .*$cause" "$m: message names the $stage stage and '$cause'"
    check "$m: shoal exec done within ${WALL_MS} ms (took $MS ms)" [ "$MS" -le "$WALL_MS" ]
}

# held MODE: how long (ms) the client kept its connection to MODE's
# listener, as the peer logged it (empty if it did not).
held() {
    local a=${ADDR[$1]//./\\.}
    sed -nE "s/^faultpeer: $a:$PORT $1 [^ ]+: client closed the connection .* after ([0-9]+) ms\$/\\1/p" \
        "$T/fault.log" | head -n 1
}

# times_out MODE STAGE WAIT_TEXT: a stage timeout, at the deadline (seen
# from the peer: accept to the client's close).
times_out() {
    local h
    fails "$1" "$2" "timed out after $DEADLINE\\.0 s: $3"
    h=$(held "$1")
    check "$1: connection given up after the deadline, within ${LIMIT_MS} ms (held ${h:-?} ms)" \
        in_range "$h" $((DEADLINE * 1000 - 500)) "$LIMIT_MS"
}
in_range() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

# peer_did MODE ERE: the fault peer logged reaching its fault point.
peer_did() {
    local a=${ADDR[$1]//./\\.}
    check "$1: fault peer: $2" grep -qE "^faultpeer: $a:$PORT $1 [^ ]+: .*$2" "$T/fault.log"
}

load ok
check_rc 0 "ok: exit code 0"
check_out "hello fault" "ok: echo output"
check "ok: done within ${WALL_MS} ms (took $MS ms)" [ "$MS" -le "$WALL_MS" ]
bad=0
for i in $(seq 1 "$NCONC"); do
    load "conc$i"
    if [ "$RC" != 0 ] || [ "$(cat "$T/out")" != "client $i" ]; then
        bad=$((bad + 1))
        echo "    conc$i: rc $RC, stdout $(head -c 100 "$T/out"), stderr $(head -c 300 "$T/err")"
    fi
done
check "ok: $NCONC concurrent clients all got their own output ($bad failed)" [ "$bad" = 0 ]

times_out silent-accept banner "no SSH version string from the server"
peer_did silent-accept "silent"
times_out banner-no-newline banner "no SSH version string from the server"
# Either the line limit (64 lines: 0.64 s at one line per 10 ms) or, on a
# busy machine, the banner deadline comes first.
fails endless-prebanner banner "(more than [0-9]+ lines before the version line|timed out after $DEADLINE\\.0 s)"
peer_did endless-prebanner "pre-banner lines"
times_out trickle banner "no SSH version string from the server"
peer_did trickle "one byte every"
times_out silent-after-banner "key exchange" "key exchange did not complete"
peer_did silent-after-banner "version line sent; silent"
times_out silent-after-kexinit "key exchange" "key exchange did not complete"
peer_did silent-after-kexinit "KEXINIT sent; silent"
times_out silent-after-kexreply "key exchange" "key exchange did not complete"
peer_did silent-after-kexreply "reply sent; NEWKEYS withheld"

fails reset-accept banner "reset by peer"
peer_did reset-accept "TCP RST"
fails reset-banner banner "reset by peer"
peer_did reset-banner "TCP RST"
fails reset-kexinit "key exchange" "reset by peer"
peer_did reset-kexinit "TCP RST on the client's key exchange init"
fails reset-kexreply "key exchange" "reset by peer"
peer_did reset-kexreply "TCP RST on the client's NEWKEYS"
fails reset-newkeys authentication "reset by peer"
peer_did reset-newkeys "TCP RST on the first packet after NEWKEYS"
fails reset-auth authentication "reset by peer"
peer_did reset-auth "TCP RST on USERAUTH_REQUEST"
# The connection dies while the channel open is pending: shoal exec names
# the channel stage, but reports "server refused to open a session:
# session closed" rather than the reset.
load reset-channel
check_rc 255 "reset-channel: exit code 255"
check_err_has "^shoal: ${ADDR[reset-channel]//./\\.}:$PORT: channel: " "reset-channel: message names the channel stage"
check "reset-channel: shoal exec done within ${WALL_MS} ms (took $MS ms)" [ "$MS" -le "$WALL_MS" ]
check "reset-channel: message says the connection was reset" grep -q "reset by peer" "$T/err"
peer_did reset-channel "TCP RST on CHANNEL_OPEN"
fails reset-exec session "reset by peer"
peer_did reset-exec "TCP RST on exec"

fails changed-hostkey "key exchange" "HOST KEY CHANGED for \\[${ADDR[changed-hostkey]//./\\.}\\]:$PORT"
check_err_has "differs from the key in $T/known_hosts:[0-9]+" "changed-hostkey: message names the known_hosts line"

# Silent after the key exchange: ServerAliveInterval x ServerAliveCountMax.
silent_for() {
    local h
    fails "$1" authentication "server not responding for $DEADLINE\.0 s"
    h=$(held "$1")
    check "$1: connection given up after ${DEADLINE} s of silence, within ${LIMIT_MS} ms (held ${h:-?} ms)" \
        in_range "$h" $((DEADLINE * 1000 - 500)) "$LIMIT_MS"
}
silent_for silent-after-newkeys
peer_did silent-after-newkeys "nothing after NEWKEYS is answered"
silent_for no-auth-reply
peer_did no-auth-reply "USERAUTH_REQUEST .* held"
fails channel-never-confirmed channel "timed out after $DEADLINE\.0 s: the server did not confirm the session channel"
peer_did channel-never-confirmed "CHANNEL_OPEN .* held"
# A command that never ends, on a server that is alive: waited for.
load exec-never-exits
check "exec-never-exits: shoal exec still waiting after $HANG s (rc $RC, took $MS ms)" [ "$RC" = 124 ]
peer_did exec-never-exits "exec .* accepted"

# ---- the peer itself
check "fault peer survived every fault" kill -0 "$PEER_PID"
refuses() {
    ! "$FAULTPEER" --hostkey "$T/keys/host1" --listen "$1" </dev/null >/dev/null 2>"$T/refuse.err" &&
        grep -q "only loopback" "$T/refuse.err"
}
for spec in 0.0.0.0:1 10.1.2.3:1 "[::]:1" 127.0.0.1-128.0.0.1:1; do
    check "fault peer refuses to listen on $spec" refuses "$spec"
done

echo "# total $(($(now_ms) - T0)) ms after the peer was up"
finish
