#!/usr/bin/env bash
# `shoal run` and `shoal agent` against OpenSSH's sshd, on what a remote
# command sees and what is left of it:
#  * stdin: EOF right after the command starts (a command that reads stdin
#    used to wait until the deadline); --stdin FILE and -I send the same
#    bytes to every host (0 B, 1 B, 5 MiB, sha256 compared on the remote
#    side, through flow control), -I's memory cap, a missing --stdin file;
#  * stopping: a deadline (-t), Ctrl-C, an agent cancel and an agent
#    Timeout send TERM (then KILL to a command that ignores TERM) before the
#    channel closes: the remote process is gone afterwards (closing the
#    channel alone leaves it running on sshd); shoal exec passes Ctrl-C on;
#  * the output cap (marked in the grouped output, Truncated in JSON,
#    --output-cap), stderr marked in the grouped output, --stream error
#    lines naming the host once, the narrow-terminal progress line;
#  * pdsh's -w (with ^file) and -x; the default login name is the real
#    uid's, whatever $USER and $LOGNAME say (run and exec).
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
require_shoal
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"
start_sshd "ListenAddress 127.0.0.2" "ListenAddress 127.0.0.3"
check_re() { check "$1" grep -Eq -- "$3" "$2"; }
KH=$T/fleet_kh
RUN=("$SHOAL_BIN" run -l "$TEST_USER" -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$KH"
    --no-progress)
AGENT=(env -u SSH_AUTH_SOCK HOME="$T" "$SHOAL_BIN" agent -l "$TEST_USER" -i "$T/keys/id_ed25519"
    -o "UserKnownHostsFile=$KH")
H3=(-H '127.0.0.[1-3]')

# ---- stdin: EOF at once ----
rc=0
"${RUN[@]}" "${H3[@]}" -t 30 -- 'cat; read x || echo "eof-seen"' >"$T/eof" 2>&1 </dev/null || rc=$?
check "run: a command reading stdin sees EOF at once (exit 0)" test "$rc" -eq 0
check_re "run: ... and goes on (no deadline hit)" "$T/eof" '^eof-seen$'
check_re "run: ... on every host" "$T/eof" '^3 hosts in [0-9.]+ s: 3 ok, 0 failed$'
printf '%s\n' "{\"Action\":\"ssh\",\"Cmd\":\"cat; echo agent-eof\",\"Hosts\":[\"127.0.0.1:$SSHD_PORT\"],\"Timeout\":30000}" |
    "${AGENT[@]}" >"$T/agent_eof" 2>&1
check "agent: a command reading stdin sees EOF at once" /usr/bin/python3 -c '
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1])]
r = [l for l in ls if l["Type"] == "Reply"]
assert len(r) == 1 and r[0]["Success"] and r[0]["Stdout"] == "agent-eof\n", ls
assert ls[-1]["Type"] == "FinalReply" and ls[-1]["TimedOutHosts"] == {}, ls
' "$T/agent_eof"

# ---- --stdin FILE and -I: the same bytes to every host ----
# Each host prints the sha256 and size of what it read; one group of 3
# hosts with the right digest means every byte arrived everywhere.
same_input() { # DESC FILE OUTPUT
    local want
    want="$(sha256sum <"$2" | cut -d' ' -f1) $(wc -c <"$2")"
    check "$1" sh -c "grep -qx '127\\.0\\.0\\.\\[1-3\\] (3)' '$3' && grep -qx '$want' '$3' &&
        grep -Eq '^3 hosts in [0-9.]+ s: 3 ok, 0 failed$' '$3'"
}
SUM='t=$(mktemp); cat >"$t"; echo "$(sha256sum <"$t" | cut -d" " -f1) $(wc -c <"$t")"; rm -f "$t"'
: >"$T/in0"
printf 'x' >"$T/in1"
head -c $((5 << 20)) /dev/urandom >"$T/in5m"
for f in in0 in1 in5m; do
    rc=0
    "${RUN[@]}" "${H3[@]}" -t 120 --stdin "$T/$f" -- "$SUM" >"$T/s_$f" 2>&1 </dev/null || rc=$?
    same_input "--stdin $f ($(wc -c <"$T/$f") bytes): same sha256 and size on 3 hosts (rc $rc)" "$T/$f" "$T/s_$f"
    rc=0
    "${RUN[@]}" "${H3[@]}" -t 120 -I -- "$SUM" >"$T/i_$f" 2>&1 < <(cat "$T/$f") || rc=$?
    same_input "-I from a pipe, $f: same sha256 and size on 3 hosts (rc $rc)" "$T/$f" "$T/i_$f"
done
rc=0
"${RUN[@]}" "${H3[@]}" -t 120 -I -- "$SUM" >"$T/i_reg" 2>&1 <"$T/in5m" || rc=$?
same_input "-I from a regular file (mapped): same sha256 and size on 3 hosts (rc $rc)" "$T/in5m" "$T/i_reg"
rc=0
head -c $(((64 << 20) + 1)) /dev/zero | "${RUN[@]}" -H 127.0.0.1 -I -- "$SUM" >"$T/i_big" 2>&1 || rc=$?
check "-I: more than 64 MiB from a pipe is refused (exit 2)" test "$rc" -eq 2
check_re "-I: ... saying why and what to do" "$T/i_big" 'more than 67108864 bytes.*--stdin FILE'
rc=0
"${RUN[@]}" -H 127.0.0.1 --stdin "$T/missing" -- cat >"$T/s_missing" 2>&1 </dev/null || rc=$?
check "--stdin of a missing file: exit 2, named" sh -c "test $rc -eq 2 && grep -q 'cannot open .*missing' '$T/s_missing'"

# ---- stopping: the remote process is gone afterwards ----
# Each command's sleep gets an argument no other process has; pgrep -f
# finds it on this machine, where sshd runs it. The argument is put
# together by the remote shell ("6$x"), so shoal's own command line (which
# holds "x=M; sleep 6$x") never matches.
marker() { echo "$(($$ % 1000))$RANDOM$RANDOM"; }
gone() { ! pgrep -f -- "$1" >/dev/null; }
running() { pgrep -f -- "$1" >/dev/null; }
M=$(marker)
rc=0
"${RUN[@]}" -H 127.0.0.1 -t 2 -- "x=$M; sleep 6\$x; echo never" >"$T/k1" 2>&1 </dev/null || rc=$?
check "run -t 2: the host times out during the command" grep -Eq 'timeout during command: 1: 127\.0\.0\.1' "$T/k1"
check "run -t 2: the remote command is gone (TERM sent before the close)" wait_for 30 gone "6$M"
M=$(marker)
rc=0
"${RUN[@]}" -H 127.0.0.1 -t 2 -- "trap '' TERM; x=$M; sleep 7\$x; echo never" >"$T/k2" 2>&1 </dev/null || rc=$?
check "run -t 2, a command ignoring TERM: gone too (KILL after the grace period)" wait_for 30 gone "7$M"
M=$(marker)
"${RUN[@]}" -H '127.0.0.[1-2]' -- "x=$M; sleep 8\$x" >"$T/k3" 2>&1 </dev/null &
pid=$!
peers_track "$pid"
if wait_for 30 running "8$M"; then
    kill -INT "$pid"
    rc=0
    wait "$pid" || rc=$?
    check "run, Ctrl-C: exit code 130" test "$rc" -eq 130
    check "run, Ctrl-C: the remote commands are gone" wait_for 30 gone "8$M"
else
    check "run, Ctrl-C: the commands started" false
fi
# shoal exec: Ctrl-C is passed on to the command (ssh would leave it
# running); its exit by SIGINT becomes ours (130).
M=$(marker)
"$SHOAL_BIN" exec -l "$TEST_USER" -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$KH" \
    -o BatchMode=yes 127.0.0.1 "x=$M; sleep 3\$x" >"$T/e3" 2>&1 </dev/null &
pid=$!
peers_track "$pid"
if wait_for 30 running "3$M"; then
    kill -INT "$pid"
    rc=0
    wait "$pid" || rc=$?
    check "exec, Ctrl-C: the command is interrupted, exit code 130 (rc $rc)" test "$rc" -eq 130
    check "exec, Ctrl-C: the remote command is gone" wait_for 30 gone "3$M"
else
    check "exec, Ctrl-C: the command started" false
fi
# TERM (a supervisor, timeout(1)) is passed on too; shoal exits 143 when
# the command ends, or 1 s later when it ignores the signal.
for ignore in no yes; do
    M=$(marker)
    cmd="x=$M; sleep 4\$x"
    [ "$ignore" = yes ] && cmd="trap '' TERM; $cmd; echo never"
    "$SHOAL_BIN" exec -l "$TEST_USER" -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$KH" \
        -o BatchMode=yes 127.0.0.1 "$cmd" >"$T/e4" 2>&1 </dev/null &
    pid=$!
    peers_track "$pid"
    if wait_for 30 running "4$M"; then
        kill -TERM "$pid"
        rc=0
        wait "$pid" || rc=$?
        check "exec, TERM (command ignores it: $ignore): shoal exits 143 (rc $rc)" test "$rc" -eq 143
        [ "$ignore" = no ] && check "exec, TERM: the remote command is gone" wait_for 30 gone "4$M"
        [ "$ignore" = yes ] && pkill -KILL -f "4$M" || true
    else
        check "exec, TERM: the command started" false
    fi
done
# The agent: a cancel, then a request Timeout.
M=$(marker)
/usr/bin/python3 - "$SSHD_PORT" "$M" "$T/agent_kill" "${AGENT[@]}" <<'PY'
import json, subprocess, sys, time
port, m, outp, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
def send(o):
    p.stdin.write((json.dumps(o) + "\n").encode()); p.stdin.flush()
def until(pred):
    while True:
        l = p.stdout.readline()
        if not l:
            raise SystemExit("agent ended early")
        j = json.loads(l)
        if pred(j):
            return j
until(lambda j: j["Type"] == "InitializeComplete")
h = "127.0.0.1:" + port
send({"Action": "ssh", "Cmd": "x=%s; sleep 9$x" % m, "Hosts": [h], "Id": "c"})
for _ in range(300):  # until the command runs (at most 30 s)
    if subprocess.run(["pgrep", "-f", "9" + m], capture_output=True).returncode == 0:
        break
    time.sleep(0.1)
send({"Action": "cancel", "Id": "c"})
f1 = until(lambda j: j["Type"] == "FinalReply" and j.get("Id") == "c")
send({"Action": "ssh", "Cmd": "x=%s; sleep 5$x" % m, "Hosts": [h], "Id": "t", "Timeout": 2000})
f2 = until(lambda j: j["Type"] == "FinalReply" and j.get("Id") == "t")
p.stdin.close()
p.wait(60)
open(outp, "w").write(json.dumps([f1, f2]))
PY
check "agent: cancel and Timeout answered" /usr/bin/python3 -c '
import json, sys
f1, f2 = json.load(open(sys.argv[1]))
assert f1.get("Cancelled") is True and f2["TimedOutHosts"] == {"127.0.0.1:" + sys.argv[2]: True}, (f1, f2)
' "$T/agent_kill" "$SSHD_PORT"
check "agent cancel: the remote command is gone" wait_for 30 gone "9$M"
check "agent Timeout: the remote command is gone" wait_for 30 gone "5$M"

# ---- output: the cap, stderr ----
rc=0
"${RUN[@]}" -H 127.0.0.1 -- 'head -c 3000000 /dev/zero | tr "\0" x; echo tail-of-stdout' >"$T/cap" 2>&1 </dev/null ||
    rc=$?
check "run: 3 MB of stdout (default cap 1 MiB): still a success" test "$rc" -eq 0
check_re "run: the cut is marked in the grouped output" "$T/cap" \
    '^--- stdout truncated: kept the first 1048576 of 3000015 bytes \(--output-cap\) ---$'
check_re "run: ... and in the summary" "$T/cap" '^  output truncated at 1 MiB per stream .*: 1: 127\.0\.0\.1$'
check "run: ... and nothing past the cap is shown" sh -c "! grep -q tail-of-stdout '$T/cap'"
"${RUN[@]}" -H 127.0.0.1 --json -- 'head -c 3000000 /dev/zero | tr "\0" x' >"$T/capj" 2>&1 </dev/null || true
"${RUN[@]}" -H 127.0.0.1 --json --output-cap 3M -- 'head -c 3000000 /dev/zero | tr "\0" x' >"$T/capj3" 2>&1 \
    </dev/null || true
check "run --json: Truncated true, the stream named; --output-cap 3M keeps all (Truncated false)" /usr/bin/python3 -c '
import json, sys
a = json.loads(open(sys.argv[1]).read()); b = json.loads(open(sys.argv[2]).read())
assert a["Truncated"] is True and a["TruncatedStreams"] == ["stdout"] and len(a["Stdout"]) == 1 << 20, a["Truncated"]
assert b["Truncated"] is False and len(b["Stdout"]) == 3000000 and "TruncatedStreams" not in b, b["Truncated"]
' "$T/capj" "$T/capj3"
"${RUN[@]}" -H 127.0.0.1 --output-cap 10 -- 'echo 0123456789abc; echo e1 >&2; echo e2 >&2' >"$T/cap10" 2>&1 </dev/null ||
    true
check "run --output-cap 10: stdout cut, stderr marked and kept apart" /usr/bin/python3 -c '
import sys
t = open(sys.argv[1]).read()
want = "0123456789\n--- stdout truncated: kept the first 10 of 14 bytes (--output-cap) ---\n--- stderr ---\ne1\ne2\n"
assert want in t, t
' "$T/cap10"

# ---- --stream: an error line names the host once ----
"${RUN[@]}" --stream -H 127.0.0.250 -- true >"$T/st" 2>"$T/st.err" </dev/null || true
check "run --stream: a failure line names the host once" grep -qx '127\.0\.0\.250: connect: connection refused' \
    "$T/st.err"

# ---- the progress line on a narrow terminal ----
printf 'expect \\[shoal\\]\n' >"$T/pty_script"
"$PEERS_PYTHON" "$PEERS_LIB/pty_run.py" --cols 30 --timeout 60 "$T/pty_script" -- \
    "$SHOAL_BIN" run -l "$TEST_USER" -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$KH" \
    "${H3[@]}" -- 'sleep 1.5' >"$T/pty_out" 2>&1 || true
check "progress line: never wider than a 30-column terminal (no stale rows)" /usr/bin/python3 -c '
import re, sys
t = open(sys.argv[1], "rb").read().decode(errors="replace")
lines = [p for p in re.split(r"\r|\n", t) if "[shoal]" in p]
assert lines, t
wide = [p for p in lines if len(p.replace("\x1b[K", "")) > 29]
assert not wide, wide
' "$T/pty_out"

# ---- pdsh host lists: -w with ranges and ^file, -x ----
printf '127.0.0.2\n127.0.0.3\n' >"$T/wfile"
"$SHOAL_BIN" run -l "$TEST_USER" -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o "UserKnownHostsFile=$KH" --no-progress \
    -w '127.0.0.[1-2]' -w "^$T/wfile" -x 127.0.0.2 -- echo w >"$T/w" 2>&1 </dev/null || true
check_re "-w ranges and ^file, -x: exactly the hosts left" "$T/w" '^127\.0\.0\.\[1,3\] \(2\)$'
check_re "-w/-x: all succeed" "$T/w" '^2 hosts in [0-9.]+ s: 2 ok, 0 failed$'
rc=0
"$SHOAL_BIN" run -w 127.0.0.1 -x 127.0.0.1 -- true >"$T/wx" 2>&1 </dev/null || rc=$?
check "-x leaving no host: usage error (exit 2), says so" sh -c "test $rc -eq 2 && grep -q 'no hosts left after -x' '$T/wx'"
rc=0
"$SHOAL_BIN" run -w "^$T/nosuchfile" -- true >"$T/wmiss" 2>&1 </dev/null || rc=$?
check "-w ^missing-file: exit 2, named" sh -c "test $rc -eq 2 && grep -q 'nosuchfile' '$T/wmiss'"

# ---- the default login name: the real uid's, not $USER / $LOGNAME ----
me=$(id -un)
rc=0
env USER=nosuchuser-shoal LOGNAME=nosuchuser-shoal "$SHOAL_BIN" run -p "$SSHD_PORT" -i "$T/keys/id_ed25519" \
    -o "UserKnownHostsFile=$KH" --no-progress -H 127.0.0.1 -- id -un >"$T/u_run" 2>&1 </dev/null || rc=$?
check "run without -l logs in as $me whatever \$LOGNAME says" sh -c "test $rc -eq 0 && grep -qx '$me' '$T/u_run'"
USER=nosuchuser-shoal LOGNAME=nosuchuser-shoal run_shoal -p "$SSHD_PORT" -i "$T/keys/id_ed25519" \
    -o "UserKnownHostsFile=$KH" -o BatchMode=yes 127.0.0.1 id -un </dev/null
check "exec without -l logs in as $me whatever \$USER says" sh -c "test $RC -eq 0 && grep -qx '$me' '$T/out'"
finish
