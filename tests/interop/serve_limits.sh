#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: `shoal serve` under many idle unauthenticated connections.
#   * 1,000 connections that send only a version line (a Python script
#     holding the sockets) do not prevent a real ssh login (MaxStartups
#     2000), and are all closed by the server once LoginGraceTime (8 s)
#     has passed -- while an authenticated session that is running at
#     that moment survives;
#   * a second round of 1,000 does not grow the server's memory much
#     (what the first round freed is reused: no leak per connection);
#   * MaxStartups 50: of 100 idle connections, those past the cap are
#     dropped at once (and logged in a few lines, not one per drop); once
#     they are gone, logins work again.
# The server's RSS (VmRSS) before, with and after the 1,000 connections,
# and the login time while they are held, are printed as "# ..." lines:
# measurements, not assertions.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_cmd ssh
unset SSH_AUTH_SOCK SSH_AGENT_PID
# 1,000 sockets in the holder and 1,000 in the server, plus their pipes.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
    ulimit -n 4096 2>/dev/null || skip "cannot raise the open file limit to 4096 (ulimit -Hn: $(ulimit -Hn))"
fi
peers_init
gen_user_keys

N=1000
GRACE=8
KEY=$T/keys/id_ed25519
SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o IdentitiesOnly=yes -i "$KEY")
DEST=$PEER_USER@127.0.0.1

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# established PORT: server-side TCP connections of 127.0.0.1:PORT in state
# ESTABLISHED (from /proc/net/tcp: no dependency on ss).
established() {
    awk -v p="$(printf ':%04X' "$1")" 'NR > 1 && substr($2, length($2) - 4) == p && $4 == "01"' \
        /proc/net/tcp | wc -l
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The holder: opens COUNT connections to PORT, sends a version line on each,
# writes "opened N SECS" to STATUS, then reads (and drops) whatever the
# server sends until it closes them, and writes "closed N MIN MAX" (the
# shortest and longest time a connection stayed open, in seconds) when all
# are closed or after TIMEOUT seconds.
cat >"$T/hold.py" <<'EOF'
import selectors, socket, sys, time
port, count, status, timeout = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
t0 = time.monotonic()
socks = []
opened_at = {}
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    opened_at[s] = time.monotonic()
    s.sendall(b"SSH-2.0-idle-holder\r\n")
    s.setblocking(False)
    socks.append(s)
t1 = time.monotonic()
with open(status, "a") as f:
    f.write("opened %d %.2f\n" % (len(socks), t1 - t0))
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
closed, shortest, longest = 0, None, None
end = t1 + timeout
while closed < len(socks) and time.monotonic() < end:
    for key, _ in sel.select(timeout=0.5):
        try:
            data = key.fileobj.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj)
            life = time.monotonic() - opened_at[key.fileobj]
            key.fileobj.close()
            closed += 1
            shortest = life if shortest is None else min(shortest, life)
            longest = life if longest is None else max(longest, life)
with open(status, "a") as f:
    f.write("closed %d %.2f %.2f\n" % (closed, shortest or -1, longest or -1))
EOF
# hold_start PORT COUNT TIMEOUT: start the holder; $HOLD_STATUS is its file.
hold_start() {
    HOLD_STATUS=$T/hold.$1.status
    : >"$HOLD_STATUS"
    "$PEERS_PYTHON" "$T/hold.py" "$1" "$2" "$HOLD_STATUS" "$3" </dev/null >"$T/hold.$1.log" 2>&1 &
    HOLD_PID=$!
    peers_track "$HOLD_PID" "$T/hold.$1.log"
}
hold_has() { grep -q "^$1 " "$HOLD_STATUS"; }

# ================================================================ 1,000 idle connections
start_shoal_serve "MaxStartups 2000:30:2000" "LoginGraceTime $GRACE"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" "$DEST" 'echo warm' </dev/null
check_out warm "a login before the idle connections"
rss0=$(rss_kb "$SERVE_PID")
mark=$(log_mark "$SERVE_LOG")
t_start=$(now)
hold_start "$SERVE_PORT" "$N" 60
if ! wait_for 30 hold_has opened; then
    cat "$T/hold.$SERVE_PORT.log" >&2
    die "the holder did not open its connections"
fi
read -r _ opened open_secs < <(grep '^opened ' "$HOLD_STATUS")
check "the holder opened $N connections" test "$opened" = "$N"
est=$(established "$SERVE_PORT")
sleep 0.5
rss1=$(rss_kb "$SERVE_PID")
t0=$(now)
run_cmd "${SSH[@]}" -p "$SERVE_PORT" "$DEST" 'echo through' </dev/null
t1=$(now)
check_rc 0 "a login while $N idle connections are held: exits 0"
check_out through "a login while $N idle connections are held: command ran"
login_secs=$(elapsed "$t0" "$t1")
# A session that is running when the grace time ends for the idle ones.
"${SSH[@]}" -p "$SERVE_PORT" "$DEST" "sleep $((GRACE + 2)); echo survived" </dev/null >"$T/long.out" 2>&1 &
long_pid=$!
peers_track "$long_pid"
if ! wait_for $((GRACE + 30)) hold_has closed; then
    die "the holder did not finish"
fi
t_closed=$(now)
read -r _ closed first last < <(grep '^closed ' "$HOLD_STATUS")
check "all $N idle connections were closed by the server (closed: $closed)" test "$closed" = "$N"
check "they were closed by the grace time (the shortest lived ${first}s >= $((GRACE - 1))s)" \
    awk -v f="$first" -v g="$GRACE" 'BEGIN { exit !(f >= g - 1) }'
n_grace=$(log_since "$SERVE_LOG" "$mark" | grep -c "login grace time exceeded" || true)
check "the server logged the grace time for each ($n_grace)" test "$n_grace" -ge "$N"
check "the established connections drop back" wait_for 10 eval "[ \"\$(established $SERVE_PORT)\" -le 1 ]"
if wait "$long_pid"; then long_rc=0; else long_rc=$?; fi
check "the authenticated session running meanwhile survived (rc $long_rc)" grep -qx survived "$T/long.out"
sleep 0.5
rss2=$(rss_kb "$SERVE_PID")
run_cmd "${SSH[@]}" -p "$SERVE_PORT" "$DEST" 'echo after' </dev/null
check_out after "a login after the idle connections are gone"
rss3=$(rss_kb "$SERVE_PID")

# A second round: the memory of the first must have been reused.
hold_start "$SERVE_PORT" "$N" 60
wait_for 30 hold_has opened || die "the holder did not open its connections (second round)"
rss4=$(rss_kb "$SERVE_PID")
wait_for $((GRACE + 30)) hold_has closed || die "the holder did not finish (second round)"
read -r _ closed2 _ _ < <(grep '^closed ' "$HOLD_STATUS")
check "second round: all $N closed again ($closed2)" test "$closed2" = "$N"
sleep 0.5
rss5=$(rss_kb "$SERVE_PID")
if grep -qa "AddressSanitizer" "$SHOAL_BIN"; then
    # ASan keeps freed memory in quarantine: RSS says nothing about reuse.
    echo "# ASan build: the second round's RSS (${rss3} kB -> ${rss5} kB) is not checked"
else
    check "second round: RSS did not grow by more than 25% (${rss3} kB -> ${rss5} kB)" \
        test "$rss5" -le $((rss3 * 5 / 4))
fi

echo "# $N idle connections: opened in ${open_secs}s; $est established at the server's port"
echo "# login while they were held: ${login_secs}s"
echo "# closed by the server ${first}s .. ${last}s after being opened (LoginGraceTime $GRACE)" \
    "; whole phase $(elapsed "$t_start" "$t_closed")s"
echo "# server VmRSS: before ${rss0} kB; with $N idle ${rss1} kB" \
    "(+$(((rss1 - rss0) * 1024 / N)) B each); after ${rss2} kB; after one more login ${rss3} kB;" \
    "second round: with ${rss4} kB, after ${rss5} kB"
stop_shoal_serve "$SERVE_PID"

# ================================================================ MaxStartups 50
start_shoal_serve "MaxStartups 50:30:50" "LoginGraceTime 60"
mark=$(log_mark "$SERVE_LOG")
hold_start "$SERVE_PORT" 100 30
wait_for 20 hold_has opened || die "the holder did not open its connections"
# The connections past the cap are closed at once; the log says so in a
# few lines (one per refusal only for the first few of each 10 s), with the
# count in the interval's summary line.
ms_dropped() {
    log_since "$SERVE_LOG" "$mark" | sed -n 's/.*throttling: [0-9]* connections dropped.*(MaxStartups \([0-9]*\),.*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }'
}
check "MaxStartups 50: about 50 of 100 connections are dropped at once (counted in the summary line)" \
    wait_for 30 eval "[ \"\$(ms_dropped)\" -ge 50 ]"
check "MaxStartups 50: the throttling is announced once" \
    test "$(log_since "$SERVE_LOG" "$mark" | grep -c 'beginning MaxStartups throttling')" = 1
check "MaxStartups 50: few per-connection lines ($(log_since "$SERVE_LOG" "$mark" | grep -c 'drop connection #'))" \
    test "$(log_since "$SERVE_LOG" "$mark" | grep -c 'drop connection #.* past MaxStartups')" -le 10
run_cmd "${SSH[@]}" -p "$SERVE_PORT" "$DEST" 'echo full' </dev/null
check_rc 255 "MaxStartups 50: a login while 50 unauthenticated connections are held is dropped"
_peers_kill_tree "$HOLD_PID"
wait_for 10 eval "[ \"\$(established $SERVE_PORT)\" -eq 0 ]" || true
run_cmd "${SSH[@]}" -p "$SERVE_PORT" "$DEST" 'echo again' </dev/null
check_out again "MaxStartups 50: logins work again once they are gone"
stop_shoal_serve "$SERVE_PID"

finish
