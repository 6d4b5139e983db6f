#!/usr/bin/env bash
# Interop, library level: 100 concurrent session channels on one connection
# to OpenSSH's sshd, plus the process API (stdin, exit signal, shell quoting,
# shoal_run), through tests/interop/multichan.c.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
PROG=$SHOAL_BUILD/tests/interop_multichan
[ -x "$PROG" ] || skip "interop_multichan not built"
peers_init
gen_user_keys
start_sshd "MaxSessions 200"
"$PROG" "$SSHD_PORT" "$T/keys/id_ed25519" "$T/known_hosts" "$PEER_USER" 100
