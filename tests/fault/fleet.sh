#!/usr/bin/env bash
# Fault injection for the fan-out engine: `shoal run` against
# fault_faultpeer (tests/fault/faultpeer.c), which stalls, misbehaves or
# resets the connection at each phase.
#
#  1. One run with one host per mode: every host gets exactly one result,
#     classified (class and phase), within its deadline + 1 s: the stage
#     deadlines (ConnectTimeout=3 for connect, banner and key exchange) or the
#     host's own deadline (-t 6) for authentication, channel and command.
#  2. 1,000 hosts, 10% of them faulty (every mode, in turn): every healthy
#     host succeeds, every host has one result, and the run ends within the
#     longest deadline + 5 s (+ 2 s: a command that ignores TERM is killed
#     after that grace period, which the run waits for).
#  3. The same fault hosts through `shoal agent` with a request Timeout:
#     TimedOutHosts lists exactly the hosts that were still unfinished.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
FAULTPEER=${FAULTPEER:-${SHOAL_BUILD:+$SHOAL_BUILD/tests/fault_faultpeer}}
[ -n "${FAULTPEER:-}" ] && [ -x "$FAULTPEER" ] || skip "fault_faultpeer is not built (SHOAL_BUILD unset?)"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
peers_init

STAGE=3     # ConnectTimeout: connect, banner, key exchange
HOST_T=6    # -t: the whole host, auth/channel/command included
# The 1,000-host run does 1,000 handshakes on both sides of loopback: give
# its deadlines room on a loaded 2-core machine, more under the sanitizers
# (several times slower), so a healthy host never times out for lack of CPU.
STAGE_K=8
HOST_T_K=12
if grep -qa __asan_report "$SHOAL_BIN"; then STAGE_K=25; HOST_T_K=40; fi

mkdir -p "$T/keys"
ssh-keygen -q -t ed25519 -N '' -C fault-host1 -f "$T/keys/host1"
ssh-keygen -q -t ed25519 -N '' -C fault-host2 -f "$T/keys/host2"
ssh-keygen -q -t ed25519 -N '' -C fault-user -f "$T/keys/id_ed25519"
cp "$T/keys/id_ed25519.pub" "$T/keys/authorized_keys"

mapfile -t MODES < <("$FAULTPEER" --list-modes | awk '{ print $1 }')
N=${#MODES[@]}
FAULTS=()
for m in "${MODES[@]}"; do [ "$m" = ok ] || FAULTS+=("$m"); done
MODE_LIST=$(IFS=,; echo "${MODES[*]}")
FAULT_LIST=$(IFS=,; echo "${FAULTS[*]}")

# start_peer NAME ARGS...: a fault_faultpeer on a free port; sets PORT.
_fault_ready() { [ -s "$1" ] || ! kill -0 "$2" 2>/dev/null; }
start_peer() {
    local name=$1 pid
    shift
    for _ in 1 2 3; do
        PORT=$(free_port) || die "no free port"
        rm -f "$T/$name.ready"
        local -a args=()
        local a
        for a in "$@"; do args+=("${a//@PORT@/$PORT}"); done
        "$FAULTPEER" --hostkey "$T/keys/host1" --hostkey2 "$T/keys/host2" \
            --authorized-keys "$T/keys/authorized_keys" "${args[@]}" \
            --ready-file "$T/$name.ready" --max-lifetime 300 \
            </dev/null >"$T/$name.out" 2>"$T/$name.log" &
        pid=$!
        _peers_add_pid "$pid"
        wait_for 30 _fault_ready "$T/$name.ready" "$pid" || die "fault_faultpeer $name did not get ready"
        if [ -s "$T/$name.ready" ] && kill -0 "$pid" 2>/dev/null; then
            PEERS_LOGS+=("$T/$name.log")
            PEERS_SERVE_INSTANCES+=("$pid:$T/$name.log")
            return 0
        fi
        grep -qi "address already in use" "$T/$name.log" && continue
        grep -qi "address not available" "$T/$name.log" && skip "cannot bind 127.0.x.y loopback addresses here"
        cat "$T/$name.log" >&2
        die "fault_faultpeer $name failed to start"
    done
    die "fault_faultpeer $name could not bind a port"
}

# known_hosts: host key 1 for every address the peers listen on.
add_known() { awk '$1 == "listen" { print $2 }' "$T/$1.out" | while read -r hp; do
    awk -v h="[${hp%:*}]:${hp##*:}" '{ print h, $1, $2 }' "$T/keys/host1.pub"; done >>"$T/fleet_kh"; }

RUN=("$SHOAL_BIN" run --json -l "$PEER_USER" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$T/fleet_kh"
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes)

# ---- 1. one host per mode ----
start_peer modes --listen "127.0.6.1-127.0.6.$N:@PORT@" --mode "$MODE_LIST"
add_known modes
awk '$1 == "listen" { print $2, $3 }' "$T/modes.out" >"$T/modes.map"
cut -d' ' -f1 "$T/modes.map" >"$T/modes.hosts"
t0=$(date +%s%N)
rc=0
env -u SSH_AUTH_SOCK "${RUN[@]}" -o "ConnectTimeout=$STAGE" -t "$HOST_T" -h "$T/modes.hosts" -- 'echo hi' \
    >"$T/modes.json" 2>"$T/modes.err" || rc=$?
t1=$(date +%s%N)
check "one host per mode: exit code 1 (some failed)" test "$rc" -eq 1
check "one host per mode: every mode classified in time" /usr/bin/python3 - "$T/modes.map" "$T/modes.json" \
    "$STAGE" "$HOST_T" <<'PY'
import json, sys
modes = dict(l.split() for l in open(sys.argv[1]))
stage, host_t = float(sys.argv[3]), float(sys.argv[4])
got = {}
for l in open(sys.argv[2]):
    r = json.loads(l)
    assert r["Hostname"] not in got, "two results for " + r["Hostname"]
    got[r["Hostname"]] = r
assert set(got) == set(modes), "hosts without a result: %s" % (set(modes) - set(got))
# mode -> (classes, phases, deadline)
T, C = "timeout", "closed"
want = {
    "ok": (["ok"], None, stage),
    "silent-accept": ([T], ["banner"], stage),
    "banner-no-newline": ([T], ["banner"], stage),
    "endless-prebanner": ([T, "protocol"], ["banner"], stage),
    "silent-after-banner": ([T], ["kex"], stage),
    "silent-after-kexinit": ([T], ["kex"], stage),
    "silent-after-kexreply": ([T], ["kex"], stage),
    "silent-after-newkeys": ([T], ["auth", "kex"], host_t),
    "no-auth-reply": ([T], ["auth"], host_t),
    "channel-never-confirmed": ([T], ["channel"], host_t),
    "exec-never-exits": ([T], ["command"], host_t),
    "trickle": ([T], ["banner"], stage),
    "reset-accept": ([C, "protocol"], ["banner"], stage),
    "reset-banner": ([C, "protocol"], ["banner"], stage),
    "reset-kexinit": ([C], ["kex"], stage),
    "reset-kexreply": ([C], ["kex"], stage),
    "reset-newkeys": ([C], ["auth", "kex"], stage),
    "reset-auth": ([C], ["auth"], stage),
    # The command's channel open rides with the final auth request, so the
    # reset can come before the client has read the auth success.
    "reset-channel": ([C, "channel"], ["channel", "command", "auth"], stage),
    "reset-exec": ([C, "channel"], ["channel", "command"], stage),
    "changed-hostkey": (["host key"], ["kex"], stage),
}
bad = []
for host, mode in modes.items():
    r = got[host]
    cls = "ok" if r["Success"] else r.get("ErrorClass")
    classes, phases, limit = want[mode]
    okc = cls in classes and (phases is None or r.get("Phase") in phases)
    okt = r["Time"] <= limit + 1.0
    if mode == "ok":
        okc = okc and r["Stdout"] == "hi\n"
    print("%-24s %-10s %-8s %6.2f s  %s" % (mode, cls, r.get("Phase", ""), r["Time"], r["ErrMsg"][:90]))
    if not (okc and okt):
        bad.append(mode)
assert not bad, "wrong class/phase or too slow: %s" % bad
PY
# Resets before the server's version line are retried (ConnectionAttempts,
# 3 by default), still within the deadline; later resets are not.
check "reset before the banner: 3 attempts" test "$(grep -c ' reset-accept .*TCP RST' "$T/modes.log")" -eq 3
check "reset after the banner: 1 attempt" test "$(grep -c ' reset-kexinit .*TCP RST' "$T/modes.log")" -eq 1
# The command that never exits is sent TERM at its deadline, and KILL 2 s
# later (FLEET_KILL_GRACE_MS) since the fault peer ignores both: the run
# ends after that grace period.
GRACE=2
check "one host per mode: the run ends within the longest deadline + the kill grace + 1 s" \
    test $(((t1 - t0) / 1000000)) -le $(((HOST_T + GRACE + 1) * 1000))
sed 's/^/    /' "$T/check.out"

# ---- 2. 1,000 hosts, 10% faulty ----
start_peer healthy --listen "127.0.7.1-127.0.7.225:@PORT@" --listen "127.0.8.1-127.0.8.225:@PORT@" \
    --listen "127.0.9.1-127.0.9.225:@PORT@" --listen "127.0.10.1-127.0.10.225:@PORT@"
add_known healthy
start_peer faulty --listen "127.0.11.1-127.0.11.100:@PORT@" --mode "$FAULT_LIST"
add_known faulty
awk '$1 == "listen" { print $2 }' "$T/healthy.out" "$T/faulty.out" | shuf >"$T/k.hosts"
check "1,000 hosts listed" test "$(wc -l <"$T/k.hosts")" -eq 1000
t0=$(date +%s%N)
rc=0
env -u SSH_AUTH_SOCK "${RUN[@]}" -o "ConnectTimeout=$STAGE_K" -t "$HOST_T_K" -h "$T/k.hosts" -- 'echo hi' \
    >"$T/k.json" 2>"$T/k.err" || rc=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
check "1,000 hosts (10% faulty): exit code 1" test "$rc" -eq 1
check "1,000 hosts: one result each, every healthy host succeeded" /usr/bin/python3 - "$T/healthy.out" \
    "$T/faulty.out" "$T/k.json" <<'PY'
import json, sys
healthy = {l.split()[1] for l in open(sys.argv[1]) if l.startswith("listen ")}
faulty = {l.split()[1] for l in open(sys.argv[2]) if l.startswith("listen ")}
res = {}
for l in open(sys.argv[3]):
    r = json.loads(l)
    assert r["Hostname"] not in res, "two results for " + r["Hostname"]
    res[r["Hostname"]] = r
assert set(res) == healthy | faulty, "missing: %d" % len((healthy | faulty) - set(res))
bad = [h for h in healthy if not (res[h]["Success"] and res[h]["Stdout"] == "hi\n")]
assert not bad, "healthy hosts failed: %s" % [(h, res[h]["ErrMsg"]) for h in bad[:5]]
wrong = [h for h in faulty if res[h]["Success"] and res[h]["Stdout"] != "hi\n"]
assert not wrong, wrong
print("healthy ok: %d, faulty failed: %d" % (len(healthy), sum(not res[h]["Success"] for h in faulty)))
PY
check "1,000 hosts: done within the longest deadline + the kill grace + 5 s (${ms} ms)" \
    test "$ms" -le $(((HOST_T_K + GRACE + 5) * 1000))

# ---- 2b. spilling: worker 0 hands hosts to worker 1 only when saturated ----
# Whether this machine's worker 0 saturates is a matter of timing, so the
# threshold is forced both ways (SHOAL_FLEET_SPILL_BUSY) and the per-worker
# connection counts read back (SHOAL_FLEET_DEBUG).
awk '$1 == "listen" { print $2 }' "$T/healthy.out" >"$T/h.hosts"
nh=$(wc -l <"$T/h.hosts")
for mode in always never default; do
    busy=0
    [ "$mode" = never ] && busy=101
    [ "$mode" = default ] && busy=
    rc=0
    env -u SSH_AUTH_SOCK SHOAL_FLEET_SPILL_BUSY=$busy SHOAL_FLEET_DEBUG=1 "${RUN[@]}" --threads 2 -o "ConnectTimeout=$STAGE_K" \
        -t "$HOST_T_K" -h "$T/h.hosts" -- 'echo hi' >"$T/s.$mode.json" 2>"$T/s.$mode.err" || rc=$?
    check "spill $mode: $nh hosts, exit code 0" test "$rc" -eq 0
    check "spill $mode: one good result per host" /usr/bin/python3 - "$T/h.hosts" "$T/s.$mode.json" <<'PY'
import json, sys
hosts = {l.strip() for l in open(sys.argv[1])}
res = {}
for l in open(sys.argv[2]):
    r = json.loads(l)
    assert r["Hostname"] not in res, "two results for " + r["Hostname"]
    res[r["Hostname"]] = r
assert set(res) == hosts, "missing: %d" % len(hosts - set(res))
bad = [h for h in hosts if not (res[h]["Success"] and res[h]["Stdout"] == "hi\n")]
assert not bad, [(h, res[h]["ErrMsg"]) for h in bad[:5]]
PY
    w0=$(awk '/^shoal: worker 0:/ { print $4 }' "$T/s.$mode.err")
    w1=$(awk '/^shoal: worker 1:/ { print $4 }' "$T/s.$mode.err")
    if [ "$mode" = default ]; then
        echo "# spill default (85% busy): worker 0 ${w0:-?}, worker 1 ${w1:-?} connections"
    elif [ "$mode" = always ]; then
        check "spill always: both workers dialled (worker 0: ${w0:-?}, worker 1: ${w1:-?})" \
            test "${w0:-0}" -gt 0 -a "${w1:-0}" -gt 0 -a $((${w0:-0} + ${w1:-0})) -ge "$nh"
    else
        check "spill never: worker 0 dialled every host (worker 0: ${w0:-?}, worker 1: ${w1:-?})" \
            test "${w1:-1}" -eq 0 -a "${w0:-0}" -ge "$nh"
    fi
done

# ---- 3. the agent: a request deadline lists the unfinished hosts ----
req=$(/usr/bin/python3 -c '
import json, sys
hosts = [l.split()[0] for l in open(sys.argv[1])]
print(json.dumps({"Action": "ssh", "Cmd": "echo hi", "Hosts": hosts, "Timeout": 2000}))' "$T/modes.map")
t0=$(date +%s%N)
echo "$req" | env -u SSH_AUTH_SOCK "$SHOAL_BIN" agent -l "$PEER_USER" -i "$T/keys/id_ed25519" \
    -o "UserKnownHostsFile=$T/fleet_kh" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=30 >"$T/agent.json" 2>"$T/agent.err"
t1=$(date +%s%N)
check "agent Timeout 2 s: FinalReply in time, TimedOutHosts = the stalled hosts" /usr/bin/python3 - \
    "$T/modes.map" "$T/agent.json" <<'PY'
import json, sys
modes = dict(l.split() for l in open(sys.argv[1]))
lines = [json.loads(l) for l in open(sys.argv[2])]
final = lines[-1]
assert final["Type"] == "FinalReply", final
assert final["TotalTime"] < 3.0, final["TotalTime"]
replied = {l["Hostname"] for l in lines if l["Type"] == "Reply"}
timed = set(final["TimedOutHosts"])
assert not (replied & timed), replied & timed
assert replied | timed == set(modes), set(modes) - (replied | timed)
stall = {"silent-accept", "banner-no-newline", "silent-after-banner", "silent-after-kexinit",
         "silent-after-kexreply", "silent-after-newkeys", "no-auth-reply", "channel-never-confirmed",
         "exec-never-exits", "trickle"}
want = {h for h, m in modes.items() if m in stall}
assert timed == want, (sorted(modes[h] for h in timed - want), sorted(modes[h] for h in want - timed))
print("timed out: %d hosts, replied: %d" % (len(timed), len(replied)))
PY
check "agent: exit within 3 s + the kill grace" test $(((t1 - t0) / 1000000)) -le $((3500 + GRACE * 1000))
finish
