#!/usr/bin/env bash
# Interop: the gateway. OpenSSH ssh -> shoal serve (Gateway) -> a private
# OpenSSH sshd upstream. exec (exit status, stdout/stderr apart, stdin),
# a shell with a pty, a subsystem (sftp), large data both ways, an exit
# signal, and an upstream that refuses our key or is down: a clear message,
# never a hang.
set -euo pipefail
# shellcheck source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_sshd
UP_PORT=$SSHD_PORT

# The gateway's own key for the upstream login (in the upstream's
# authorized_keys, which gen_user_keys wrote) and the upstream host keys.
GW_KEY=$T/keys/id_ecdsa
GW_KH=$T/known_hosts_upstream
grep "^\[127.0.0.1\]:$UP_PORT " "$T/known_hosts" >"$GW_KH"

# shoal serve in front, with a key only the gateway's clients use.
ssh-keygen -q -t ed25519 -N '' -C client -f "$T/client_key"
cp "$T/client_key.pub" "$T/client_ak"
chmod 600 "$T/client_ak"
ssh-keygen -q -t ed25519 -N '' -f "$T/gw_hostkey"
GW_PORT=$(free_port)
"$SHOAL_BIN" serve -p "$GW_PORT" -h "$T/gw_hostkey" -o ListenAddress=127.0.0.1 -o PerSourcePenalties=no \
    -o "AuthorizedKeysFile=$T/client_ak" -o StrictModes=no -o PermitRootLogin=yes \
    -o "Gateway=127.0.0.1:$UP_PORT" -o "GatewayIdentityFile=$GW_KEY" -o "GatewayKnownHostsFile=$GW_KH" \
    -d >"$T/gw.log" 2>&1 &
peers_track $! "$T/gw.log"
wait_for 10 port_open "$GW_PORT" || die "shoal serve did not start"
echo "[127.0.0.1]:$GW_PORT $(cat "$T/gw_hostkey.pub")" >"$T/known_hosts_gw"

SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts_gw" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o LogLevel=ERROR -i "$T/client_key" -p "$GW_PORT")
DEST=$PEER_USER@127.0.0.1
run() { RC=0; timeout -k 5 60 "$@" >"$T/out" 2>"$T/err" || RC=$?; }

# ---- exec: status, streams, stdin
run "${SSH[@]}" "$DEST" 'echo "upstream sshd pid $PPID"; echo to-stderr >&2; exit 42'
check_rc 42 "exec through the gateway: exit status passes through"
check "exec: stdout came from the upstream" grep -q "upstream sshd pid" "$T/out"
check "exec: stderr kept apart" grep -qx "to-stderr" "$T/err"
printf 'one\ntwo\n' >"$T/in"
RC=0; timeout 60 "${SSH[@]}" "$DEST" 'cat' <"$T/in" >"$T/out" 2>"$T/err" || RC=$?
check_rc 0 "stdin through the gateway: exits 0"
check "stdin through the gateway: arrives" cmp -s "$T/in" "$T/out"

# ---- large data both ways
RC=0; timeout 120 "${SSH[@]}" "$DEST" 'head -c 33554432 /dev/zero' 2>"$T/err" | sha256sum | cut -d' ' -f1 >"$T/sum" || RC=$?
want=$(head -c 33554432 /dev/zero | sha256sum | cut -d' ' -f1)
check "32 MiB download through the gateway: intact" [ "$(cat "$T/sum")" = "$want" ]
head -c 16777216 /dev/urandom >"$T/blob"
RC=0; timeout 120 "${SSH[@]}" "$DEST" 'sha256sum' <"$T/blob" >"$T/out" 2>"$T/err" || RC=$?
check "16 MiB upload through the gateway: intact" [ "$(cut -d' ' -f1 "$T/out")" = "$(sha256sum "$T/blob" | cut -d' ' -f1)" ]

# ---- exit signal
run "${SSH[@]}" "$DEST" 'kill -TERM $$'
check_rc 255 "exit signal through the gateway: ssh reports it (255)"

# ---- shell with a pty (a script drives it)
RC=0
printf 'tty\necho "TERM=$TERM"\nexit 7\n' | timeout 30 "${SSH[@]}" -tt "$DEST" >"$T/out" 2>"$T/err" || RC=$?
check_rc 7 "shell with a pty through the gateway: exit status"
check "shell with a pty: a terminal upstream" grep -q "/dev/pts/" "$T/out"

# ---- subsystem: sftp to the upstream
echo hello-sftp >"$T/sftp_src"
printf 'put %s %s\nget %s %s\n' "$T/sftp_src" "$T/sftp_up" "$T/sftp_up" "$T/sftp_back" >"$T/batch"
RC=0; timeout 60 sftp -F /dev/null -o "UserKnownHostsFile=$T/known_hosts_gw" -o BatchMode=yes -o LogLevel=ERROR \
    -i "$T/client_key" -P "$GW_PORT" -b "$T/batch" "$DEST" >"$T/out" 2>"$T/err" || RC=$?
check_rc 0 "sftp through the gateway: exits 0"
check "sftp through the gateway: file round trip" cmp -s "$T/sftp_src" "$T/sftp_back"

# ---- an upstream that is down: a message, not a hang
DOWN_PORT=$(free_port)
GW2_PORT=$(free_port)
"$SHOAL_BIN" serve -p "$GW2_PORT" -h "$T/gw_hostkey" -o ListenAddress=127.0.0.1 -o PerSourcePenalties=no \
    -o "AuthorizedKeysFile=$T/client_ak" -o StrictModes=no -o PermitRootLogin=yes \
    -o "Gateway=127.0.0.1:$DOWN_PORT" -o "GatewayIdentityFile=$GW_KEY" -o "GatewayKnownHostsFile=$GW_KH" \
    >"$T/gw2.log" 2>&1 &
peers_track $! "$T/gw2.log"
wait_for 10 port_open "$GW2_PORT" || die "second shoal serve did not start"
echo "[127.0.0.1]:$GW2_PORT $(cat "$T/gw_hostkey.pub")" >>"$T/known_hosts_gw"
SSH2=("${SSH[@]}")
SSH2[${#SSH2[@]}-1]=$GW2_PORT
run "${SSH2[@]}" "$DEST" 'echo should-not-run'
check "upstream down: the command does not run" [ ! -s "$T/out" ]
check "upstream down: ssh fails" [ "$RC" -ne 0 ]
check_err_has "gateway|refused|connect" "upstream down: the client is told why"

# ---- the backend decides: AuthorizedKeysCommand prints the key with a
# gateway="host:port" option (no Gateway keyword in the configuration)
cat >"$T/backend" <<SH
#!/bin/sh
# args: user type base64-key fingerprint
echo "\$*" >>"$T/backend.log"
echo "gateway=\"127.0.0.1:$UP_PORT\" \$(cat "$T/client_key.pub")"
SH
chmod 755 "$T/backend"
GW3_PORT=$(free_port)
"$SHOAL_BIN" serve -p "$GW3_PORT" -h "$T/gw_hostkey" -o ListenAddress=127.0.0.1 -o PerSourcePenalties=no \
    -o AuthorizedKeysFile=none -o "AuthorizedKeysCommand=$T/backend" -o AuthorizedKeysCommandUser=root \
    -o StrictModes=no -o PermitRootLogin=yes \
    -o "GatewayIdentityFile=$GW_KEY" -o "GatewayKnownHostsFile=$GW_KH" \
    >"$T/gw3.log" 2>&1 &
peers_track $! "$T/gw3.log"
wait_for 10 port_open "$GW3_PORT" || die "third shoal serve did not start"
echo "[127.0.0.1]:$GW3_PORT $(cat "$T/gw_hostkey.pub")" >>"$T/known_hosts_gw"
SSH3=("${SSH[@]}")
SSH3[${#SSH3[@]}-1]=$GW3_PORT
run "${SSH3[@]}" "$DEST" 'echo "upstream sshd pid $PPID"; exit 5'
check_rc 5 "gateway chosen by the backend (gateway= in its output): exit status passes through"
check "gateway chosen by the backend: the command ran upstream" grep -q "upstream sshd pid" "$T/out"
check "gateway chosen by the backend: the backend was asked" test -s "$T/backend.log"

finish
