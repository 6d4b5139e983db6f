#!/usr/bin/env bash
# `shoal run` and `shoal put` against `shoal serve` listening on 50 loopback
# addresses: grouped output, failure classes, exit codes, --json, --stream,
# hosts files and ranges; uploads of 0 B, 1 B, 32 KiB +- 1 and 100 MiB to
# 50 hosts over SFTP, SCP and cat with sha256 checked everywhere, and a
# failed upload that leaves nothing behind.
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"

lines=()
for i in $(seq 2 51); do lines+=("ListenAddress 127.0.0.$i"); done
start_shoal_serve "${lines[@]}" "MaxStartups 500"
mkdir -p "$T/updir"
chown "$TEST_USER" "$T/updir"
KH=$T/run_kh
# check_re DESC FILE ERE: some line of FILE matches ERE.
check_re() { check "$1" grep -Eq -- "$3" "$2"; }
RUN=("$SHOAL_BIN" run -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" -o "UserKnownHostsFile=$KH"
    --no-progress)
PUT=("$SHOAL_BIN" put -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" -o "UserKnownHostsFile=$KH"
    --no-progress)

# ---- run ----
rc=0
"${RUN[@]}" -H '127.0.0.[2-51]' -- echo hello >"$T/r1" 2>&1 || rc=$?
check "run: 50 hosts succeed, exit code 0" test "$rc" -eq 0
check_re "run: identical output folded into one group" "$T/r1" '^127\.0\.0\.\[2-51\] \(50\)$'
check_re "run: the output once" "$T/r1" '^hello$'
check "run: one group only" test "$(grep -c '^hello$' "$T/r1")" -eq 1
check_re "run: summary" "$T/r1" '^50 hosts in [0-9.]+ s: 50 ok, 0 failed$'
check "run: accept-new wrote one line per host" test "$(wc -l <"$KH")" -eq 50

# Two groups by output; failures classified.
rc=0
"${RUN[@]}" -H '127.0.0.[2-11]' -H 127.0.0.250 -H nonexistent.invalid -t 10 -- \
    'a=$(echo $SSH_CONNECTION | cut -d" " -f3); case $a in 127.0.0.[2-5]) echo low;; *) echo high; exit 3;; esac' \
    >"$T/r2" 2>&1 || rc=$?
check "run: a failure makes the exit code 1" test "$rc" -eq 1
check_re "run: group of the successful hosts" "$T/r2" '^127\.0\.0\.\[2-5\] \(4\)$'
check_re "run: group with its exit status" "$T/r2" '^127\.0\.0\.\[6-11\] \(6\) exit status 3$'
check_re "run: refused host grouped and labelled" "$T/r2" '^127\.0\.0\.250 \(1\) refused \(connect\)$'
check_re "run: summary counts" "$T/r2" '^12 hosts in [0-9.]+ s: 4 ok, 8 failed$'
check_re "run: summary class exit status" "$T/r2" '^  exit status 3: 6: 127\.0\.0\.\[6-11\]$'
check_re "run: summary class dns" "$T/r2" '^  dns \(dns\): 1: nonexistent\.invalid$'
check_re "run: summary example message" "$T/r2" 'e\.g\. 127\.0\.0\.250:[0-9]+: connect: connection refused'

# A deadline per host: the command phase times out, classified.
rc=0
"${RUN[@]}" -H 127.0.0.2 -t 1 -- sleep 20 >"$T/r3" 2>&1 || rc=$?
check "run -t: exit code 1" test "$rc" -eq 1
check_re "run -t: timeout during command" "$T/r3" 'timeout during command: 1: 127\.0\.0\.2'

# --json: the agent's Reply lines.
"${RUN[@]}" --json -H '127.0.0.[2-4]' -- 'echo j; exit 2' >"$T/r4" 2>&1 || true
check "run --json: three Reply lines with ExitStatus 2" /usr/bin/python3 -c '
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1])]
assert len(ls) == 3, ls
assert all(l["Type"] == "Reply" and l["ExitStatus"] == 2 and l["Stdout"] == "j\n" and not l["Success"] for l in ls), ls
' "$T/r4"

# --stream: lines prefixed with the host as they come.
"${RUN[@]}" --stream -H '127.0.0.[2-3]' -- 'echo one; echo two >&2' >"$T/r5" 2>"$T/r5e"
check_re "run --stream: stdout lines prefixed" "$T/r5" '^127\.0\.0\.2: one$'
check_re "run --stream: stderr lines prefixed" "$T/r5e" '^127\.0\.0\.3: two$'

# Hosts file with comments, user@ and duplicates.
printf '# fleet\n127.0.0.2\n\n  %s@127.0.0.3   # the user given inline\n127.0.0.2\n127.0.0.[4-5]\n' "$TEST_USER" \
    >"$T/hosts"
"${RUN[@]}" -h "$T/hosts" -- true >"$T/r6" 2>&1
check_re "run -h: 4 distinct hosts" "$T/r6" '^4 hosts in [0-9.]+ s: 4 ok, 0 failed$'

# 400 commands at once on one server (shoal serve used to lose exits of
# children under such load: each must end with its output and status).
PORT1=$SERVE_PORT
lines2=()
for i in $(seq 1 200); do lines2+=("ListenAddress 127.0.4.$i" "ListenAddress 127.0.5.$i"); done
start_shoal_serve "${lines2[@]}" "MaxStartups 1000" "MaxSessions 10"
rc=0
"$SHOAL_BIN" run -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" -o "UserKnownHostsFile=$KH" --no-progress \
    -t 120 -H '127.0.4.[1-200]' -H '127.0.5.[1-200]' -- 'sleep 0.3; echo done' >"$T/r400" 2>&1 || rc=$?
check "400 concurrent commands on one shoal serve: exit 0" test "$rc" -eq 0
check_re "400 concurrent commands: all ok" "$T/r400" '^400 hosts in [0-9.]+ s: 400 ok, 0 failed$'
stop_shoal_serve
SERVE_PORT=$PORT1

# ---- put ----
for size in 0 1 32767 32768 32769; do
    head -c "$size" /dev/urandom >"$T/src_$size"
    chmod 640 "$T/src_$size"
    want=$(sha256sum <"$T/src_$size" | cut -d' ' -f1)
    rc=0
    "${PUT[@]}" -H '127.0.0.[2-6]' "$T/src_$size" "$T/updir/f_$size.%h" >"$T/p_$size" 2>&1 || rc=$?
    check "put $size B to 5 hosts: exit 0" test "$rc" -eq 0
    bad=0
    for i in 2 3 4 5 6; do
        f=$T/updir/f_$size.127.0.0.$i
        [ -f "$f" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ] && [ "$(stat -c %a "$f")" = 640 ] || bad=1
    done
    check "put $size B: sha256 and mode 0640 on every host" test "$bad" -eq 0
done
rc=0
"${PUT[@]}" --json --verify -H '127.0.0.[2-3]' "$T/src_32769" "$T/updir/sv.%h" >"$T/psv" 2>&1 || rc=$?
check "put --verify over SFTP (checked before the rename): exit 0" test "$rc" -eq 0
check "put --verify over SFTP: both hosts, Via sftp" test "$(grep -c '"Success":true.*"Via":"sftp"' "$T/psv")" -eq 2
check "put --verify over SFTP: same bytes" cmp "$T/src_32769" "$T/updir/sv.127.0.0.3"
for via in scp cat; do
    rc=0
    "${PUT[@]}" --via "$via" --verify --mode 0600 -H '127.0.0.[7-8]' "$T/src_32769" "$T/updir/v_$via.%h" \
        >"$T/pv_$via" 2>&1 || rc=$?
    check "put --via $via --verify: exit 0" test "$rc" -eq 0
    check "put --via $via: same bytes, mode 0600" sh -c "cmp '$T/src_32769' '$T/updir/v_$via.127.0.0.7' &&
        test \$(stat -c %a '$T/updir/v_$via.127.0.0.8') = 600"
done

# A server without the SFTP subsystem: the upload falls back to SCP.
PORT1=$SERVE_PORT
start_shoal_serve "ListenAddress 127.0.0.60" "Subsystem other /bin/false"
"$SHOAL_BIN" put --json -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" -o "UserKnownHostsFile=$KH" \
    -H 127.0.0.60 "$T/src_32769" "$T/updir/nosftp" >"$T/pnosftp" 2>&1 || true
check_re "no SFTP subsystem: uploaded over scp" "$T/pnosftp" '"Success":true.*"Via":"scp"'
check "no SFTP subsystem: same bytes" cmp "$T/src_32769" "$T/updir/nosftp"
stop_shoal_serve
SERVE_PORT=$PORT1

# Neither SFTP nor scp (a PATH without scp, through authorized_keys'
# environment=): the upload falls back to cat.
mkdir -p "$T/noscp-bin"
for c in sh cat mv chmod wc rm sha256sum; do ln -s "$(command -v "$c")" "$T/noscp-bin/$c"; done
printf 'environment="PATH=%s" %s\n' "$T/noscp-bin" "$(cat "$T/keys/id_ed25519.pub")" >"$T/ak_noscp"
chmod 644 "$T/ak_noscp"
start_shoal_serve "ListenAddress 127.0.0.61" "Subsystem other /bin/false" "PermitUserEnvironment yes" \
    "AuthorizedKeysFile $T/ak_noscp"
"$SHOAL_BIN" put --json -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" -o "UserKnownHostsFile=$KH" \
    -H 127.0.0.61 "$T/src_32769" "$T/updir/noscp" >"$T/pnoscp" 2>&1 || true
check_re "no SFTP, no scp: uploaded with cat" "$T/pnoscp" '"Success":true.*"Via":"cat"'
check "no SFTP, no scp: same bytes" cmp "$T/src_32769" "$T/updir/noscp"
stop_shoal_serve
SERVE_PORT=$PORT1

# 100 MiB to 50 hosts: one mapped source, sha256 equal everywhere (16 MiB
# under the sanitizers, several times slower, to keep `make check` short).
BIG_MIB=100
if grep -qa __asan_report "$SHOAL_BIN"; then BIG_MIB=16; fi
head -c $((BIG_MIB << 20)) /dev/urandom >"$T/big"
want=$(sha256sum <"$T/big" | cut -d' ' -f1)
rc=0
"${PUT[@]}" -H '127.0.0.[2-51]' "$T/big" "$T/updir/big.%h" >"$T/pbig" 2>&1 || rc=$?
check "put $BIG_MIB MiB to 50 hosts: exit 0" test "$rc" -eq 0
n=0
for i in $(seq 2 51); do
    [ "$(sha256sum <"$T/updir/big.127.0.0.$i" | cut -d' ' -f1)" = "$want" ] && n=$((n + 1))
done
check "put $BIG_MIB MiB: sha256 equal on all 50 hosts ($n)" test "$n" -eq 50
rm -f "$T"/updir/big.*

# A failed upload leaves nothing under the target name, nor a temporary file.
rc=0
"${PUT[@]}" -H '127.0.0.[2-3]' "$T/src_32769" "$T/updir/missing/dir/x" >"$T/pfail" 2>&1 || rc=$?
check "put into a missing directory: exit 1" test "$rc" -eq 1
check_re "put failure classified" "$T/pfail" 'upload \(upload\): 2: 127\.0\.0\.\[2-3\]'
# An upload cut by the deadline (slow rate) leaves the old file in place.
echo old >"$T/updir/keep"
chown "$TEST_USER" "$T/updir/keep"
rc=0
"${PUT[@]}" -t 1 --host-rate 1000000 -H 127.0.0.2 "$T/big" "$T/updir/keep" >"$T/pcut" 2>&1 || rc=$?
check "put cut by -t: exit 1" test "$rc" -eq 1
check "put cut by -t: the target keeps its old content" test "$(cat "$T/updir/keep")" = old
sleep 0.5
check "no temporary file left anywhere" test -z "$(find "$T/updir" -name '.*.shoal-*')"

# Rate caps: 200 KiB at 100 KiB/s per host take about 2 s (never less than 1.5).
head -c 204800 /dev/urandom >"$T/r200k"
t0=$(date +%s.%N)
"${PUT[@]}" --host-rate 102400 -H '127.0.0.[2-3]' "$T/r200k" "$T/updir/rate.%h" >"$T/prate" 2>&1
t1=$(date +%s.%N)
check "put --host-rate 100 KiB/s: 200 KiB takes >= 1.5 s" /usr/bin/python3 -c "assert $t1 - $t0 >= 1.5"
t0=$(date +%s.%N)
"${PUT[@]}" --rate 204800 -H '127.0.0.[2-5]' "$T/r200k" "$T/updir/grate.%h" >"$T/pgrate" 2>&1
t1=$(date +%s.%N)
check "put --rate 200 KiB/s over 4 hosts x 200 KiB takes >= 3 s" /usr/bin/python3 -c "assert $t1 - $t0 >= 3.0"
check "rate-capped uploads complete" cmp "$T/r200k" "$T/updir/grate.127.0.0.5"
finish
