#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: more of `shoal exec`'s authentication and host key behaviour
# against real servers (OpenSSH's sshd, asyncssh, paramiko):
#   1. multi-step authentication: sshd with "AuthenticationMethods
#      publickey,password" (and publickey,keyboard-interactive through PAM):
#      the key gets a partial success, then the password / the PAM prompt
#      finishes the login (root only: uses the `shoaltest` account);
#   2. "none" authentication: an asyncssh server that needs no credentials
#      for one user name; shoal logs in with no key, agent or password;
#   3. StrictHostKeyChecking=no (unknown key recorded, changed key still
#      refused, as the README says) and =ask with no terminal (same as yes);
#   4. HashKnownHosts=yes: accept-new writes a |1| entry that ssh-keygen -F
#      finds and that is trusted afterwards;
#   5. HostKeyAlias: the key is looked up (and recorded) under the alias;
#   6. a server that signs only with "ssh-rsa" (SHA-1): refused by default,
#      accepted with HostKeyAlgorithms=+ssh-rsa;
#   7. @revoked host keys, in the same file and in the global file;
#   8. an RSA user key against paramiko 2.12, which sends no server-sig-algs
#      to shoal (see below): shoal signs with rsa-sha2-512 (RFC 8332 3.3
#      allows a client to try it; never a silent SHA-1 fallback) and
#      paramiko accepts that.
#
# Failures must be exit 255 with a message naming the stage; runs that must
# not reach authentication are checked in sshd's log.
#
# Also: a key @revoked in GlobalKnownHostsFile is refused even when the
# user's known_hosts has a plain entry for it (every file is read first);
# with every method turned off, only "none" is tried, as ssh does.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_sshd

MAIN_PORT=$SSHD_PORT
MAIN_LOG=$SSHD_LOG
DEST=$PEER_USER@127.0.0.1
KEY=$T/keys/id_ed25519
mkdir -p "$T/home"
chmod 700 "$T/home"
if [ "${SHOAL_COMPAT_SSH:-0}" = 1 ]; then
    AUTH_FAILED_RE="Permission denied"
else
    AUTH_FAILED_RE="[Aa]uthentication"
fi

# An askpass program answering every prompt with the content of
# $ASKPASS_ANSWER_FILE; each prompt is noted in $T/askpass.log.
cat >"$T/askpass" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$T/askpass.log"
cat "\$ASKPASS_ANSWER_FILE"
EOF
chmod 755 "$T/askpass"
printf 'not-the-secret\n' >"$T/wrong"

# run_shoal_notty ARGS...: run_shoal in a new session (setsid: no
# controlling terminal, so /dev/tty cannot be opened) with stdin from
# /dev/null and no askpass.
run_shoal_notty() {
    RC=0
    env -u SSH_ASKPASS -u SSH_ASKPASS_REQUIRE -u DISPLAY \
        setsid -w timeout -k 5 "$SHOAL_TIMEOUT" "$SHOAL_BIN" exec "$@" \
        </dev/null >"$T/out" 2>"$T/err" || RC=$?
}

# log_has LOG MARK ERE: LOG, since MARK, has a line matching ERE (within
# 5 s: sshd may write it just after our client has already exited).
log_has() {
    if wait_for 5 _log_matches "$1" "$2" "$3"; then return 0; fi
    echo "no line matching /$3/ in ${1#"$T"/}; since the mark it says:"
    log_since "$1" "$2" | tail -n 30 | sed 's/^/| /'
    return 1
}

_log_matches() { log_since "$1" "$2" | grep -Eq -- "$3"; }

# log_lacks LOG MARK ERE: the opposite.
log_lacks() {
    if ! log_since "$1" "$2" | grep -Eq -- "$3"; then return 0; fi
    echo "unexpected line matching /$3/ in ${1#"$T"/}:"
    log_since "$1" "$2" | grep -E -- "$3" | sed 's/^/| /'
    return 1
}

# no_auth_since LOG MARK: sshd saw the connection end without any
# authentication attempt in it.
no_auth_since() {
    wait_for 5 _conn_over "$1" "$2" || true
    log_lacks "$1" "$2" "authenticating user|Accepted |Failed |Postponed |Partial |Invalid user"
}
_conn_over() { log_since "$1" "$2" | grep -Eq "Connection (closed|reset) by|Disconnected|disconnect|Unable to negotiate"; }


# kh_line KH NAME: the first entry ssh-keygen -F finds for NAME in KH.
kh_line() { ssh-keygen -F "$2" -f "$1" 2>/dev/null | grep -v '^#' | head -n 1; }

# kh_has_server_key KH NAME: KH has an entry for NAME holding one of the
# server's host keys.
kh_has_server_key() {
    local line blob
    line=$(kh_line "$1" "$2")
    [ -n "$line" ] || { echo "ssh-keygen -F '$2' finds nothing in ${1#"$T"/}:"; _show "$1"; return 1; }
    blob=$(echo "$line" | awk '{ print $3 }')
    awk '{ print $2 }' "$T"/hostkeys/*.pub | grep -qxF -- "$blob" ||
        { echo "the entry holds no host key of the server: $line"; return 1; }
}

ED25519_HOSTKEY=$(cut -d' ' -f1,2 "$T/hostkeys/ssh_host_ed25519_key.pub")
HKP="[127.0.0.1]:$MAIN_PORT"

# ================================================================ 3. StrictHostKeyChecking
# =no, unknown host: connects and records the key, like accept-new.
: >"$T/kh_no"
run_shoal -o "UserKnownHostsFile=$T/kh_no" -o StrictHostKeyChecking=no -o BatchMode=yes \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo hello' </dev/null
check_rc 0 "StrictHostKeyChecking=no, unknown host: exits 0"
check_out hello "StrictHostKeyChecking=no, unknown host: command ran"
check "StrictHostKeyChecking=no, unknown host: key recorded for $HKP" kh_has_server_key "$T/kh_no" "$HKP"
run_shoal -o "UserKnownHostsFile=$T/kh_no" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo again' </dev/null
check_rc 0 "StrictHostKeyChecking=no: the recorded key is trusted with =yes"

# =no, changed key: still refused before authentication (shoal's documented
# choice; OpenSSH would go on with password/kbd-int disabled).
ssh-keygen -q -t ed25519 -N '' -C impostor -f "$T/impostor"
IMPOSTOR=$(cut -d' ' -f1,2 "$T/impostor.pub")
echo "$HKP $IMPOSTOR" >"$T/kh_changed"
mark=$(log_mark "$MAIN_LOG")
run_shoal -o "UserKnownHostsFile=$T/kh_changed" -o StrictHostKeyChecking=no -o BatchMode=yes \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "StrictHostKeyChecking=no, changed key: exits 255"
check_out "" "StrictHostKeyChecking=no, changed key: command did not run"
check_err_has "CHANGED|changed|differs" "StrictHostKeyChecking=no, changed key: message says the key changed"
check "StrictHostKeyChecking=no, changed key: no authentication attempted" no_auth_since "$MAIN_LOG" "$mark"
check "StrictHostKeyChecking=no, changed key: known_hosts left alone" \
    test "$(cat "$T/kh_changed")" = "$HKP $IMPOSTOR"

# =ask (also the default) with no terminal to ask on: unknown host refused.
: >"$T/kh_ask"
mark=$(log_mark "$MAIN_LOG")
run_shoal_notty -o "UserKnownHostsFile=$T/kh_ask" -o StrictHostKeyChecking=ask -o BatchMode=no \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run'
check_rc 255 "StrictHostKeyChecking=ask, no terminal, unknown host: exits 255"
check_out "" "StrictHostKeyChecking=ask, no terminal: command did not run"
check_err_has "127\\.0\\.0\\.1" "StrictHostKeyChecking=ask, no terminal: message names the host"
check "StrictHostKeyChecking=ask, no terminal: known_hosts left alone" test ! -s "$T/kh_ask"
check "StrictHostKeyChecking=ask, no terminal: no authentication attempted" no_auth_since "$MAIN_LOG" "$mark"
run_shoal_notty -o "UserKnownHostsFile=$T/kh_ask" -o BatchMode=no \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run'
check_rc 255 "StrictHostKeyChecking unset (ask), no terminal, unknown host: exits 255"
check "StrictHostKeyChecking unset (ask), no terminal: known_hosts left alone" test ! -s "$T/kh_ask"

# ================================================================ 4. HashKnownHosts
: >"$T/kh_hashed"
run_shoal -o "UserKnownHostsFile=$T/kh_hashed" -o StrictHostKeyChecking=accept-new -o HashKnownHosts=yes \
    -o BatchMode=yes -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo hashed' </dev/null
check_rc 0 "HashKnownHosts=yes + accept-new: exits 0"
check_out hashed "HashKnownHosts=yes + accept-new: command ran"
check "HashKnownHosts=yes: one entry written, hashed (|1|salt|hmac)" \
    grep -qxE '\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}= [a-z0-9-]+ [A-Za-z0-9+/=]+' "$T/kh_hashed"
check "HashKnownHosts=yes: the host name is not in the file" sh -c "! grep -qF 127.0.0.1 '$T/kh_hashed'"
check "HashKnownHosts=yes: ssh-keygen -F '$HKP' finds the server's key" kh_has_server_key "$T/kh_hashed" "$HKP"
run_shoal -o "UserKnownHostsFile=$T/kh_hashed" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo again' </dev/null
check_rc 0 "HashKnownHosts=yes: the hashed entry is trusted with StrictHostKeyChecking=yes"
check "HashKnownHosts=yes: still one entry (nothing added on the second run)" \
    test "$(grep -c . "$T/kh_hashed")" = 1

# ================================================================ 5. HostKeyAlias
echo "myalias $ED25519_HOSTKEY" >"$T/kh_alias"
run_shoal -o "UserKnownHostsFile=$T/kh_alias" -o HostKeyAlias=myalias -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo aliased' </dev/null
check_rc 0 "HostKeyAlias=myalias: key known under the alias: exits 0"
check_out aliased "HostKeyAlias=myalias: command ran"
run_shoal -o "UserKnownHostsFile=$T/kh_alias" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "no HostKeyAlias: the host is unknown: exits 255"
check_out "" "no HostKeyAlias: command did not run"
# The alias is looked up as given: a key for another alias does not count.
run_shoal -o "UserKnownHostsFile=$T/kh_alias" -o HostKeyAlias=otheralias -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "HostKeyAlias=otheralias (not in known_hosts): exits 255"
# A changed key under the alias is refused too.
echo "myalias $IMPOSTOR" >"$T/kh_alias_bad"
run_shoal -o "UserKnownHostsFile=$T/kh_alias_bad" -o HostKeyAlias=myalias -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "HostKeyAlias=myalias, other key under the alias: exits 255"
check_err_has "myalias" "HostKeyAlias=myalias, other key: message names the alias"
# accept-new records the key under the alias, not under [127.0.0.1]:port.
: >"$T/kh_alias_new"
run_shoal -o "UserKnownHostsFile=$T/kh_alias_new" -o HostKeyAlias=newalias -o StrictHostKeyChecking=accept-new \
    -o BatchMode=yes -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo recorded' </dev/null
check_rc 0 "HostKeyAlias=newalias + accept-new: exits 0"
check "HostKeyAlias=newalias + accept-new: key recorded under newalias" kh_has_server_key "$T/kh_alias_new" newalias
check "HostKeyAlias=newalias + accept-new: nothing recorded under $HKP" test -z "$(kh_line "$T/kh_alias_new" "$HKP")"

# ================================================================ 7. @revoked
{
    echo "$HKP $ED25519_HOSTKEY"
    echo "@revoked $HKP $ED25519_HOSTKEY"
} >"$T/kh_revoked"
mark=$(log_mark "$MAIN_LOG")
run_shoal -o "UserKnownHostsFile=$T/kh_revoked" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "@revoked ed25519 host key (after a plain entry for it): exits 255"
check_out "" "@revoked host key: command did not run"
check_err_has "[Rr]evoked" "@revoked host key: message says revoked"
check "@revoked host key: no authentication attempted" no_auth_since "$MAIN_LOG" "$mark"
# "@revoked *" revokes the key for every host, even with StrictHostKeyChecking=no.
echo "@revoked * $ED25519_HOSTKEY" >"$T/kh_revoked_star"
run_shoal -o "UserKnownHostsFile=$T/kh_revoked_star" -o StrictHostKeyChecking=no -o BatchMode=yes \
    -o HostKeyAlgorithms=ssh-ed25519 -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "'@revoked *' + StrictHostKeyChecking=no: exits 255"
check_err_has "[Rr]evoked" "'@revoked *': message says revoked"
check "'@revoked *' + StrictHostKeyChecking=no: the revoked key was not recorded" \
    test "$(grep -c . "$T/kh_revoked_star")" = 1
# The revocation is in the global file, a plain entry in the user's file: as
# in OpenSSH, which loads every file before deciding, the key stays revoked.
echo "$HKP $ED25519_HOSTKEY" >"$T/kh_user_plain"
echo "@revoked $HKP $ED25519_HOSTKEY" >"$T/kh_global_revoked"
run_shoal -o "UserKnownHostsFile=$T/kh_user_plain" -o "GlobalKnownHostsFile=$T/kh_global_revoked" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$MAIN_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "@revoked in GlobalKnownHostsFile, plain entry in UserKnownHostsFile: exits 255"

# ================================================================ 6. ssh-rsa only
start_sshd "HostKeyAlgorithms ssh-rsa"
RSA_PORT=$SSHD_PORT
RSA_LOG=$SSHD_LOG
mark=$(log_mark "$RSA_LOG")
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -p "$RSA_PORT" -i "$KEY" "$DEST" 'echo should-not-run' </dev/null
check_rc 255 "server with only ssh-rsa (SHA-1) host key signatures: exits 255 by default"
check_out "" "only ssh-rsa: command did not run"
check_err_has "[Hh]ost ?key" "only ssh-rsa: message names the host key algorithm negotiation"
check "only ssh-rsa: sshd saw no matching host key type" log_has "$RSA_LOG" "$mark" "no matching host key type"
check "only ssh-rsa: no authentication attempted" no_auth_since "$RSA_LOG" "$mark"
mark=$(log_mark "$RSA_LOG")
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o HostKeyAlgorithms=+ssh-rsa -p "$RSA_PORT" -i "$KEY" "$DEST" 'echo sha1' </dev/null
check_rc 0 "only ssh-rsa, HostKeyAlgorithms=+ssh-rsa: exits 0"
check_out sha1 "only ssh-rsa, HostKeyAlgorithms=+ssh-rsa: command ran"
run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o HostKeyAlgorithms=ssh-rsa -p "$RSA_PORT" -i "$KEY" "$DEST" 'echo sha1' </dev/null
check_rc 0 "only ssh-rsa, HostKeyAlgorithms=ssh-rsa: exits 0"

# ================================================================ 8. RSA user key, paramiko
# paramiko 2.12 only notices "ext-info-c" when it is the last name of the
# client's kex list; shoal (like OpenSSH 9.2) puts kex-strict-c-v00 after it,
# so paramiko sends no server-sig-algs. shoal then signs with rsa-sha2-512,
# which paramiko (since 2.9) verifies.
start_paramiko_server
mark=$(log_mark "$PARAMIKO_LOG")
HOME=$T/home SSH_AUTH_SOCK='' run_shoal -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -v -p "$PARAMIKO_PORT" -i "$T/keys/id_rsa" "$DEST" 'echo rsa' </dev/null
check_rc 0 "paramiko, RSA user key, no server-sig-algs: exits 0"
check_out rsa "paramiko, RSA user key: command ran"
check "paramiko, RSA user key: paramiko accepted it" log_has "$PARAMIKO_LOG" "$mark" \
    "publickey ssh-rsa for $PEER_USER: acceptable"
if [ "${SHOAL_COMPAT_SSH:-0}" != 1 ]; then
    check "paramiko, RSA user key: shoal signed with rsa-sha2-512" grep -q "offering public key .*(rsa-sha2-512)" "$T/err"
    check "paramiko, RSA user key: shoal never offered SHA-1 ssh-rsa" sh -c "! grep -q '(ssh-rsa)' '$T/err'"
fi

# ================================================================ 2. "none" authentication
PY_NONE_AUTH_USERS=noauth
export PY_NONE_AUTH_USERS
start_asyncssh_server
unset PY_NONE_AUTH_USERS
mkdir -p "$T/emptyhome"
chmod 700 "$T/emptyhome"
NOKEYS=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o PubkeyAuthentication=no -p "$ASYNCSSH_PORT")
mark=$(log_mark "$ASYNCSSH_LOG")
HOME=$T/emptyhome SSH_AUTH_SOCK='' run_shoal "${NOKEYS[@]}" noauth@127.0.0.1 'echo none-ok' </dev/null
check_rc 0 "'none' authentication (no key, agent or password): exits 0"
check_out none-ok "'none' authentication: command ran"
check "'none' authentication: the server let noauth in without credentials" \
    log_has "$ASYNCSSH_LOG" "$mark" "user noauth needs no authentication"
# Control: the same server wants credentials from anyone else.
HOME=$T/emptyhome SSH_AUTH_SOCK='' run_shoal "${NOKEYS[@]}" someone@127.0.0.1 'echo should-not-run' </dev/null
check_rc 255 "'none' refused for another user, nothing else to offer: exits 255"
check_err_has "$AUTH_FAILED_RE" "'none' refused: message names authentication"
# As in OpenSSH, turning every method off still leaves "none" to try.
HOME=$T/emptyhome SSH_AUTH_SOCK='' run_shoal "${NOKEYS[@]}" -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no noauth@127.0.0.1 'echo none-ok' </dev/null
check_rc 0 "'none' authentication with every other method turned off: exits 0"
# With keys available too, none still wins (it is tried first).
HOME=$T/emptyhome SSH_AUTH_SOCK='' run_shoal -o "UserKnownHostsFile=$T/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -p "$ASYNCSSH_PORT" -i "$KEY" \
    noauth@127.0.0.1 'echo none-ok' </dev/null
check_rc 0 "'none' authentication with a key at hand: exits 0"

# ================================================================ 1. multi-step: root only
if ! make_test_user; then
    echo "# not root: skipping the multi-step (partial success) checks"
    finish
fi
U=$TEST_USER@127.0.0.1
KH=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes)

start_sshd "AuthenticationMethods publickey,password" "PasswordAuthentication yes"
mark=$(log_mark "$SSHD_LOG")
: >"$T/askpass.log"
HOME=$T/home SSH_AUTH_SOCK='' ASKPASS_ANSWER_FILE=$T/password SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
    DISPLAY='' run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" -i "$KEY" "$U" 'id -un' </dev/null
check_rc 0 "publickey,password: exits 0"
check_out "$TEST_USER" "publickey,password: logged in as $TEST_USER"
check "publickey,password: the key got a partial success" log_has "$SSHD_LOG" "$mark" \
    "Partial publickey for $TEST_USER from 127\\.0\\.0\\.1"
check "publickey,password: then the password was accepted" log_has "$SSHD_LOG" "$mark" \
    "Accepted password for $TEST_USER from 127\\.0\\.0\\.1"
check "publickey,password: askpass was asked once" test "$(grep -c . "$T/askpass.log")" = 1

mark=$(log_mark "$SSHD_LOG")
HOME=$T/home SSH_AUTH_SOCK='' ASKPASS_ANSWER_FILE=$T/wrong SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
    DISPLAY='' run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" -i "$KEY" "$U" 'id -un' </dev/null
check_rc 255 "publickey,password, wrong password: exits 255"
check_out "" "publickey,password, wrong password: command did not run"
check_err_has "$AUTH_FAILED_RE" "publickey,password, wrong password: message names authentication"
check "publickey,password, wrong password: sshd saw the key, then a failed password" log_has "$SSHD_LOG" "$mark" \
    "Failed password for $TEST_USER"

# The key alone is not enough, and the password alone is not either.
HOME=$T/home SSH_AUTH_SOCK='' run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" -i "$KEY" "$U" 'id -un' </dev/null
check_rc 255 "publickey,password with BatchMode=yes (no password possible): exits 255"
check_err_has "$AUTH_FAILED_RE" "publickey,password with BatchMode=yes: message names authentication"
HOME=$T/home SSH_AUTH_SOCK='' ASKPASS_ANSWER_FILE=$T/password SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
    DISPLAY='' run_shoal "${KH[@]}" -o BatchMode=no -o PubkeyAuthentication=no -p "$SSHD_PORT" "$U" 'id -un' </dev/null
check_rc 255 "publickey,password without a key: exits 255"

# publickey then keyboard-interactive, through PAM (see openssh_auth.sh).
start_sshd "UsePAM yes" "AuthenticationMethods publickey,keyboard-interactive"
mark=$(log_mark "$SSHD_LOG")
: >"$T/askpass.log"
HOME=$T/home SSH_AUTH_SOCK='' ASKPASS_ANSWER_FILE=$T/password SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
    DISPLAY='' run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" -i "$T/keys/id_ecdsa" "$U" 'id -un' </dev/null
check_rc 0 "publickey,keyboard-interactive: exits 0"
check_out "$TEST_USER" "publickey,keyboard-interactive: logged in as $TEST_USER"
check "publickey,keyboard-interactive: the key got a partial success" log_has "$SSHD_LOG" "$mark" \
    "Partial publickey for $TEST_USER from 127\\.0\\.0\\.1"
check "publickey,keyboard-interactive: then PAM accepted the answer" log_has "$SSHD_LOG" "$mark" \
    "Accepted keyboard-interactive/pam for $TEST_USER from 127\\.0\\.0\\.1"
check "publickey,keyboard-interactive: askpass was asked" test -s "$T/askpass.log"

HOME=$T/home SSH_AUTH_SOCK='' ASKPASS_ANSWER_FILE=$T/wrong SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
    DISPLAY='' run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" -i "$T/keys/id_ecdsa" "$U" 'id -un' </dev/null
check_rc 255 "publickey,keyboard-interactive, wrong answer: exits 255"
check_err_has "$AUTH_FAILED_RE" "publickey,keyboard-interactive, wrong answer: message names authentication"

finish
