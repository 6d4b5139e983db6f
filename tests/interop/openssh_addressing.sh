#!/usr/bin/env bash
# Interop: how shoal exec reaches a host. IPv6 loopback (plain and as
# [v6]:port), a name that resolves, a name that does not, and deadlines:
# ConnectTimeout covers the SSH handshake too, so a server that accepts the
# TCP connection and then says nothing fails in time, naming the stage.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
have_v6=0
if ip -6 addr show lo 2>/dev/null | grep -q '::1'; then have_v6=1; fi
if [ $have_v6 = 1 ]; then
    start_sshd "AddressFamily any" "ListenAddress ::1"
else
    start_sshd
fi
KEY=(-i "$T/keys/id_ed25519" -o BatchMode=yes)

# ---- IPv6 loopback, with a fresh known_hosts (accept-new records [::1]:port)
if [ $have_v6 = 1 ]; then
    KH6=$T/known_hosts6
    run_shoal "${KEY[@]}" -o "UserKnownHostsFile=$KH6" -o StrictHostKeyChecking=accept-new \
        -p "$SSHD_PORT" "$PEER_USER@::1" 'echo v6'
    check_rc 0 "IPv6 ::1 with -p: exits 0"
    check_out v6 "IPv6 ::1 with -p: command ran"
    check "IPv6: known_hosts got an [::1]:port entry" grep -q "^\[::1\]:$SSHD_PORT " "$KH6"
    run_shoal "${KEY[@]}" -o "UserKnownHostsFile=$KH6" -o StrictHostKeyChecking=yes \
        "$PEER_USER@[::1]:$SSHD_PORT" 'echo bracketed'
    check_rc 0 "IPv6 [::1]:port destination: exits 0"
    check_out bracketed "IPv6 [::1]:port destination: command ran (key found by [::1]:port)"
else
    echo "# no IPv6 loopback here: IPv6 checks skipped"
fi

# ---- a name that resolves (localhost), checked against its own entry
KHN=$T/known_hosts_name
run_shoal "${KEY[@]}" -o "UserKnownHostsFile=$KHN" -o StrictHostKeyChecking=accept-new \
    -p "$SSHD_PORT" "$PEER_USER@localhost" 'echo named'
check_rc 0 "host name localhost: exits 0"
check_out named "host name localhost: command ran"
check "host name: known_hosts entry uses the name" grep -q "^\[localhost\]:$SSHD_PORT " "$KHN"

# ---- a name that does not resolve (.invalid is reserved: RFC 6761)
run_shoal "${KEY[@]}" -o "UserKnownHostsFile=$T/known_hosts" -p "$SSHD_PORT" "$PEER_USER@no-such-host.invalid" true
check_rc 255 "unresolvable name: exits 255"
check_err_has "no-such-host\.invalid.*resolve" "unresolvable name: message names the host and the stage"
check "unresolvable name: message is one line" [ "$(wc -l <"$T/err")" -eq 1 ]

# ---- a server that accepts and stays silent: ConnectTimeout applies to the banner
SILENT_PORT=$(free_port)
/usr/bin/python3 - "$SILENT_PORT" >"$T/silent.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
conns = []
deadline = time.time() + 60
while time.time() < deadline:
    s.settimeout(1)
    try:
        c, _ = s.accept()
        conns.append(c)  # keep it open, never write
    except socket.timeout:
        pass
PY
peers_track $! "$T/silent.log"
wait_for 10 port_open "$SILENT_PORT" || die "silent server did not start"
start=$(date +%s%N)
run_shoal "${KEY[@]}" -o "UserKnownHostsFile=$T/known_hosts" -o ConnectTimeout=2 -p "$SILENT_PORT" \
    "$PEER_USER@127.0.0.1" true
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check_rc 255 "silent server: exits 255"
check_err_has "127\.0\.0\.1:$SILENT_PORT: banner: timed out" "silent server: message names host, stage and timeout"
# Generous bound (sanitizer builds, loaded CI): it only has to show that
# ConnectTimeout, not the 30 s default, ended the wait.
check "silent server: gave up after ConnectTimeout, not the default (took ${elapsed_ms} ms)" [ "$elapsed_ms" -lt 15000 ]

# ---- nothing listening
DEAD_PORT=$(free_port)
run_shoal "${KEY[@]}" -o "UserKnownHostsFile=$T/known_hosts" -p "$DEAD_PORT" "$PEER_USER@127.0.0.1" true
check_rc 255 "closed port: exits 255"
check_err_has "127\.0\.0\.1:$DEAD_PORT: connect: connection refused" "closed port: message names host and stage"

finish
