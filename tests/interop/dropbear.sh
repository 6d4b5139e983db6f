#!/usr/bin/env bash
# Interop: `shoal exec` against dropbear 2022.83 -- logins with ed25519,
# ecdsa-256 and rsa-3072 keys, exit statuses, stdout/stderr, stdin, 1 MiB
# each way, exit signal, and password auth.
#
# Root only (skipped otherwise): dropbear reads the user's real
# ~/.ssh/authorized_keys, so the test logs in as the `shoaltest` user that
# make_test_user creates and whose authorized_keys it manages; root's own is
# never touched. shoaltest's shell is bash, whose non-interactive start reads
# nothing noisy (Debian's skeleton .bashrc returns at once).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
require_cmd dropbear dropbearkey
[ "$(id -u)" -eq 0 ] || skip "dropbear tests need root (they log in as the shoaltest user)"
peers_init
gen_user_keys
start_dropbear || skip "could not start dropbear"

check_exec_basics dropbear "$DROPBEAR_PORT" "$TEST_USER" \
    "$T/keys/id_ed25519" "$T/keys/id_ecdsa" "$T/keys/id_rsa"
check_password_login dropbear "$DROPBEAR_PORT" "$TEST_USER" "$T/password"
finish
