#!/usr/bin/env bash
# Interop: `shoal exec` against a paramiko 2.12 server
# (tests/lib/paramiko_server.py) -- logins with ed25519 and ecdsa-256 keys,
# exit statuses, stdout/stderr, stdin, 1 MiB each way, exit signal, and
# password auth. The server runs commands with /bin/sh -c as the user running
# this test, whatever user name the client gives.
#
# No RSA user key here: paramiko 2.12's server sends no "server-sig-algs"
# (RFC 8308), so a client that, like OpenSSH 9.2, will not fall back to SHA-1
# "ssh-rsa" signatures has no RSA signature algorithm to offer it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_paramiko_server

check_exec_basics paramiko "$PARAMIKO_PORT" "$PEER_USER" \
    "$T/keys/id_ed25519" "$T/keys/id_ecdsa"
check_password_login paramiko "$PARAMIKO_PORT" "$PEER_USER" "$PY_PASSWORD_FILE"
finish
