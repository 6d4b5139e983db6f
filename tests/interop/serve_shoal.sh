#!/usr/bin/env bash
# Interop: our own client against our own server -- `shoal exec` against
# `shoal serve` over loopback: logins with ed25519, ecdsa-256 and rsa-3072
# keys, exit statuses, stdout vs stderr, stdin and its EOF, 1 MiB each way,
# a command killed by SIGTERM (128+15 and a message), 16 MiB each way
# (sha256), 16 MiB through `cat` (both directions at once) and password
# login (PasswordFile, right and wrong). (`shoal exec` has no SendEnv yet.)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
require_shoal_serve
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys
(umask 077 && _peers_random 20 >"$T/pw")
add_serve_password "$PEER_USER" "$T/pw"
start_shoal_serve "PasswordFile $T/serve_passwords"

check_exec_basics "shoal serve" "$SERVE_PORT" "$PEER_USER" \
    "$T/keys/id_ed25519" "$T/keys/id_ecdsa" "$T/keys/id_rsa"

C=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -p "$SERVE_PORT" -i "$T/keys/id_ed25519")
DEST=$PEER_USER@127.0.0.1

head -c 16777216 /dev/urandom >"$T/big"
want=$(sha256sum <"$T/big" | cut -d' ' -f1)
run_shoal "${C[@]}" "$DEST" "cat '$T/big'" </dev/null
check_rc 0 "16 MiB download exits 0"
check_sha256 "$want" "16 MiB download intact"
run_shoal "${C[@]}" "$DEST" sha256sum <"$T/big"
check_rc 0 "16 MiB upload exits 0"
check_out "$want  -" "16 MiB upload intact"
# Both at once: the command echoes its input back.
run_shoal "${C[@]}" "$DEST" cat <"$T/big"
check_sha256 "$want" "16 MiB echoed through cat (both directions at once)"
rm -f "$T/big" "$T/out"

check_password_login "shoal serve" "$SERVE_PORT" "$PEER_USER" "$T/pw"
finish
