#!/usr/bin/env bash
# Interop: `shoal exec -W host:port` (stdio forwarding over a direct-tcpip
# channel, RFC 4254 7.2) through OpenSSH's sshd to a TCP echo server on
# loopback: 0 B, 1 B, 64 KiB + 1 and 64 MiB both ways with flow control,
# half-close carried, a refused target and a server that forbids
# forwarding (shoal serve) reported with the server's reason, as a
# ProxyCommand of OpenSSH's ssh, and usage errors.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
require_cmd sha256sum head
peers_init
gen_user_keys
start_sshd

DEST=$PEER_USER@127.0.0.1
KEY=$T/keys/id_ed25519
COMMON=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -p "$SSHD_PORT" -i "$KEY")

# An echo server: every connection gets back what it sent; on the client's
# half-close it closes its side too (so the channel ends).
ECHO_PORT=$(free_port)
"$PEERS_PYTHON" - "$ECHO_PORT" >"$T/echo.log" 2>&1 <<'EOF' &
import socket, sys, threading
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(16)
def serve(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
peers_track $! "$T/echo.log"
wait_for 5 port_open "$ECHO_PORT" || die "the echo server did not start"

run_shoal "${COMMON[@]}" -W "127.0.0.1:$ECHO_PORT" "$DEST" < <(printf 'hello\n')
check_rc 0 "-W to an echo server: exits 0 when the stream ends"
check_out "hello" "-W: what went in came back"
check_err "" "-W: nothing on stderr"

run_shoal "${COMMON[@]}" -W "127.0.0.1:$ECHO_PORT" "$DEST" </dev/null
check_rc 0 "-W, 0 bytes: exits 0 (end of input is a half-close)"
check_out "" "-W, 0 bytes: nothing came back"

for size in 1 65537 67108864; do
    head -c "$size" /dev/urandom >"$T/in.bin"
    RC=0
    timeout -k 5 "$SHOAL_TIMEOUT" "$SHOAL_BIN" exec "${COMMON[@]}" -W "127.0.0.1:$ECHO_PORT" "$DEST" \
        <"$T/in.bin" >"$T/out.bin" 2>"$T/err" || RC=$?
    check_rc 0 "-W, $size bytes through the echo server: exits 0"
    same_bytes() { [ "$(sha256sum <"$T/in.bin")" = "$(sha256sum <"$T/out.bin")" ] ||
        { echo "sent $(wc -c <"$T/in.bin") bytes, got $(wc -c <"$T/out.bin") back, not the same"; return 1; }; }
    check "-W, $size bytes: the same bytes came back" same_bytes
done

# As ssh's ProxyCommand: OpenSSH's client reaches sshd through our stream.
RC=0
timeout -k 5 "$SHOAL_TIMEOUT" ssh -F none -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -i "$KEY" -p "$SSHD_PORT" \
    -o "ProxyCommand=$SHOAL_BIN exec -o UserKnownHostsFile=$T/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -p $SSHD_PORT -i $KEY -W %h:%p $DEST" \
    "$DEST" 'echo via-proxy' </dev/null >"$T/out" 2>"$T/err" || RC=$?
check_rc 0 "ssh with ProxyCommand='shoal exec -W %h:%p': exits 0"
check_out "via-proxy" "ssh through shoal exec -W: the command ran"

# A target nobody listens on: sshd's "connect failed", exit 255.
DEAD_PORT=$(free_port)
run_shoal "${COMMON[@]}" -W "127.0.0.1:$DEAD_PORT" "$DEST" </dev/null
check_rc 255 "-W to a closed port: exits 255"
check_err_has "stdio forwarding to 127.0.0.1:$DEAD_PORT failed: connect failed" \
    "-W to a closed port: the server's reason is printed"

# A server that forbids forwarding.
start_sshd "AllowTcpForwarding no"
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$SSHD_PORT" -i "$KEY" -W "127.0.0.1:$ECHO_PORT" "$DEST" </dev/null
check_rc 255 "-W with AllowTcpForwarding no: exits 255"
check_err_has "administratively prohibited" "-W refused by sshd: 'administratively prohibited'"

start_shoal_serve
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$SERVE_PORT" -i "$KEY" -W "127.0.0.1:$ECHO_PORT" "$DEST" </dev/null
check_rc 255 "-W against shoal serve (no forwarding there yet): exits 255"
check_err_has "administratively prohibited" "-W refused by shoal serve: 'administratively prohibited'"

# Usage errors.
run_shoal "${COMMON[@]}" -W "127.0.0.1:$ECHO_PORT" "$DEST" echo hi </dev/null
check_rc 255 "-W with a command: usage error, 255"
check_err_has "no command may be given" "-W with a command: says why"
for bad in "127.0.0.1" "127.0.0.1:" ":22" "127.0.0.1:0" "127.0.0.1:65536" "127.0.0.1:x" "[::1"; do
    run_shoal "${COMMON[@]}" -W "$bad" "$DEST" </dev/null
    check_rc 255 "-W '$bad': usage error, 255"
    check_err_has "bad forwarding specification" "-W '$bad': says why"
done

finish
