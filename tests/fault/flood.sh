#!/usr/bin/env bash
# Floods from a peer that never reads the replies: the other side's memory
# must stay flat (CVE-2025-26466's class). tests/fault/flood.c is the
# hostile peer; this script measures the victim's resident memory (VmRSS)
# when the flood starts and when it has ended, with the connections still
# open (so whatever the victim queued is still held).
#
#   against shoal serve (before authentication, 4 connections at once):
#     "none" requests, public-key probes of an accepted key (each answered
#     PK_OK) -- both also end at MaxAuthTries now;
#   against shoal serve (after authentication): keepalive@openssh.com
#     global requests wanting a reply, unknown messages (each answered
#     UNIMPLEMENTED);
#   against shoal exec (a hostile server): the same two after the login.
#
# Each victim may grow by at most LIMIT_KB (it holds at most a few MiB of
# replies per connection before it stops reading). Without read
# backpressure each of these grew by 50-300 MB (2 million messages per
# connection).
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
require_shoal
FLOOD=${SHOAL_BUILD:+$SHOAL_BUILD/tests/fault_flood}
[ -n "${FLOOD:-}" ] && [ -x "$FLOOD" ] || skip "fault_flood is not built (SHOAL_BUILD unset?)"
# Under ASan, freed memory sits in a 256 MB quarantine and would count as
# growth: keep it small for the victims.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
peers_init
gen_user_keys
LIMIT_KB=$((16 * 1024))
COUNT=2000000   # messages per connection

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# flood_against LABEL VICTIM_PID FLOOD_ARGS...: runs the flood (the client
# side of it) and checks the victim's growth.
flood_run() {
    local label=$1 victim=$2 d
    shift 2
    d=$(mktemp -d "$T/flood.XXXXXX")
    local before after
    "$FLOOD" client --dir "$d" "$@" >"$d/out" 2>"$d/err" &
    local fpid=$!
    if ! wait_for 60 test -e "$d/started"; then
        not_ok "$label: the flood did not start: $(cat "$d/err")"
        kill "$fpid" 2>/dev/null || true
        return 0
    fi
    before=$(rss_kb "$victim")
    wait_for 300 test -e "$d/done" || true
    after=$(rss_kb "$victim")
    touch "$d/release"
    wait "$fpid" || true
    report "$label" "$before" "$after" "$d"
}

report() {
    local label=$1 before=$2 after=$3 d=$4 growth
    growth=$((after - before))
    echo "# $label: VmRSS $before -> $after KiB (+$growth KiB); flood: $(cat "$d/done" 2>/dev/null || echo none)"
    check "$label: the flood ran" test -s "$d/done"
    check "$label: victim alive" kill -0 "$victim_pid"
    check "$label: memory grew by $growth KiB (at most $LIMIT_KB)" test "$growth" -le "$LIMIT_KB"
}

# ---- shoal serve as the victim ----
start_shoal_serve "MaxStartups 100" "LogLevel VERBOSE"
victim_pid=$SERVE_PID
KEY=$T/keys/id_ed25519
ADDR=127.0.0.1:$SERVE_PORT
# Warm up (first connections allocate the server's one-time state).
mkdir -p "$T/warm"
touch "$T/warm/release"
"$FLOOD" client --dir "$T/warm" --connect "$ADDR" --user "$PEER_USER" --key "$KEY" --kind keepalive \
    --count 1000 >/dev/null 2>&1 || true

flood_run "serve, 4 connections x 'none' requests" "$victim_pid" --connect "$ADDR" --user "$PEER_USER" \
    --key "$KEY" --kind none --conns 4 --count "$COUNT"
check "serve, 'none' flood: every flooding connection was closed at MaxAuthTries" \
    grep -q "closed=4 of 4" "$T"/flood.*/done
check "serve, 'none' flood: logged" grep -q "too many authentication failures" "$SERVE_LOG"

flood_run "serve, 4 connections x accepted public-key probes" "$victim_pid" --connect "$ADDR" \
    --user "$PEER_USER" --key "$KEY" --kind probe --conns 4 --count "$COUNT"
check "serve, probe flood: closed at MaxAuthTries" sh -c "grep -l 'closed=4 of 4' '$T'/flood.*/done | wc -l | grep -qx 2"

flood_run "serve, keepalive@openssh.com want-reply after login" "$victim_pid" --connect "$ADDR" \
    --user "$PEER_USER" --key "$KEY" --kind keepalive --count "$COUNT"
flood_run "serve, unknown messages (UNIMPLEMENTED) after login" "$victim_pid" --connect "$ADDR" \
    --user "$PEER_USER" --key "$KEY" --kind unimplemented --count "$COUNT"
# Still serving.
run_shoal -p "$SERVE_PORT" -i "$KEY" -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes "$PEER_USER@127.0.0.1" echo still-here </dev/null
check_out still-here "serve: logins still work after the floods"

# ---- shoal exec as the victim (a hostile server) ----
for kind in keepalive unimplemented; do
    d=$(mktemp -d "$T/sflood.XXXXXX")
    port=$(free_port)
    "$FLOOD" server --dir "$d" --listen "127.0.0.1:$port" --hostkey "$T/hostkeys/ssh_host_ed25519_key" \
        --kind "$kind" --count "$COUNT" >"$d/out" 2>"$d/err" &
    fpid=$!
    wait_for 20 test -e "$d/listening" || die "fault_flood server did not listen: $(cat "$d/err")"
    "$SHOAL_BIN" exec -p "$port" -i "$KEY" -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no \
        -o BatchMode=yes "$PEER_USER@127.0.0.1" sleep 60 </dev/null >"$d/exec.out" 2>"$d/exec.err" &
    victim_pid=$!
    if wait_for 60 test -e "$d/started"; then
        before=$(rss_kb "$victim_pid")
        wait_for 300 test -e "$d/done" || true
        after=$(rss_kb "$victim_pid")
        report "exec, a server flooding $kind" "$before" "$after" "$d"
    else
        not_ok "exec, $kind: the flood did not start: $(cat "$d/err" "$d/exec.err")"
    fi
    touch "$d/release"
    kill "$victim_pid" 2>/dev/null || true
    wait "$victim_pid" 2>/dev/null || true
    wait "$fpid" 2>/dev/null || true
done
finish
