#!/usr/bin/env bash
# `shoal agent` (GoSSHa's JSON-lines protocol and shoal's extensions)
# against `shoal serve` listening on several loopback addresses: every
# message type, passphrase requests, TimedOutHosts, MaxThroughput, EOF
# flush, a 5 MB input line, concurrent requests with Id, cancel, streaming,
# base64, exit status/signal, per-host user/port/key, output caps, uploads.
# The scripted sessions live in agent_protocol.py (Debian's python3).
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"
[ -x /usr/bin/python3 ] || skip "needs /usr/bin/python3"

lines=()
for i in $(seq 2 12); do lines+=("ListenAddress 127.0.0.$i"); done
start_shoal_serve "${lines[@]}" "MaxStartups 500"

# An encrypted key (new OpenSSH format) and an old PEM one, both authorized.
ssh-keygen -q -t ed25519 -N 'secret phrase' -C "shoal-test:$T" -f "$T/keys/enc_ed25519"
ssh-keygen -q -t ecdsa -b 256 -m PEM -N 'pem pass' -C "shoal-test:$T" -f "$T/keys/enc_pem"
cat "$T/keys/enc_ed25519.pub" "$T/keys/enc_pem.pub" >>"$T/keys/authorized_keys"
# A key the server does not know.
gen_stranger_key stranger

mkdir -p "$T/home/.ssh" "$T/updir"
chown "$TEST_USER" "$T/updir"   # uploads land here, as the test user
head -c 3000000 /dev/urandom >"$T/up3m"

export AGENT_T=$T AGENT_PORT=$SERVE_PORT AGENT_USER=$TEST_USER
if /usr/bin/python3 "$SHOAL_SRC/tests/interop/agent_protocol.py"; then
    check "agent protocol sessions" true
else
    check "agent protocol sessions" false
fi
finish
