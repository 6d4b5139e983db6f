#!/usr/bin/env bash
# Interop: `shoal exec` against an asyncssh 2.10 server
# (tests/lib/asyncssh_server.py) -- logins with ed25519, ecdsa-256 and
# rsa-3072 keys, exit statuses, stdout/stderr, stdin, 1 MiB each way, exit
# signal, and password auth. The server runs commands with /bin/sh -c as the
# user running this test, whatever user name the client gives.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_asyncssh_server

check_exec_basics asyncssh "$ASYNCSSH_PORT" "$PEER_USER" \
    "$T/keys/id_ed25519" "$T/keys/id_ecdsa" "$T/keys/id_rsa"
check_password_login asyncssh "$ASYNCSSH_PORT" "$PEER_USER" "$PY_PASSWORD_FILE"
finish
