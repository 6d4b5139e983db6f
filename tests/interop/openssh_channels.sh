#!/usr/bin/env bash
# Interop, library level: 100 concurrent session channels on one connection
# to OpenSSH's sshd, plus the process API (stdin, env, pty, signals, exit
# signal, shell quoting, shoal_run), through tests/interop/multichan.c.
#
# As root the commands run as the `shoaltest` user: sshd skips privilege
# separation for root sessions and then refuses "signal" requests
# ("session signalling requires privilege separation"), and root's own rc
# files on a developer machine may print to stderr under load.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
PROG=$SHOAL_BUILD/tests/interop_multichan
[ -x "$PROG" ] || skip "interop_multichan not built"
peers_init
gen_user_keys
user=$PEER_USER
if [ "$(id -u)" -eq 0 ]; then
    make_test_user || skip "cannot create the shoaltest user"
    user=$TEST_USER
fi
start_sshd "MaxSessions 200"
"$PROG" "$SSHD_PORT" "$T/keys/id_ed25519" "$T/known_hosts" "$user" 100

# The sans-I/O core driven by hand (no libuv), with deferred answers.
SANSIO=$SHOAL_BUILD/tests/interop_sansio
if [ -x "$SANSIO" ]; then
    "$SANSIO" "$SSHD_PORT" "$T/keys/id_ed25519" "$user"
fi
