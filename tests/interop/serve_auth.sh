#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# shellcheck disable=SC2016 # the remote shell expands the commands' variables
# Interop: OpenSSH's ssh against `shoal serve` -- authentication and what
# decides the command:
#   * publickey: a stranger key fails; an unknown user fails;
#   * PasswordFile ("user:crypt-hash", made with openssl passwd -6):
#     password and keyboard-interactive, right and wrong (answers through
#     SSH_ASKPASS + SSH_ASKPASS_REQUIRE=force); as root also the `shoaltest`
#     user (make_test_user): the command runs as that user, in its home;
#   * AuthenticationMethods "publickey,password": both needed, in order; a
#     probe of a key whose private half the client does not have must not
#     count as the publickey step;
#   * MaxAuthTries: seven wrong keys end the connection;
#   * PermitRootLogin no / prohibit-password / forced-commands-only (root);
#   * authorized_keys options: command= (SSH_ORIGINAL_COMMAND), no-pty,
#     from= (refusing and admitting 127.0.0.1), expiry-time= past and
#     future, restrict;
#   * AuthorizedKeysCommand as AuthorizedKeysCommandUser: its arguments,
#     a key in no file logging in through it, a failing command denying;
#   * environment= with PermitUserEnvironment no / yes / a pattern list;
#   * ForceCommand, PermitTTY no, Banner, CommandPolicy allowlist (also for
#     the sftp subsystem).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_cmd ssh openssl
unset SSH_AUTH_SOCK SSH_AGENT_PID DISPLAY
peers_init
gen_user_keys
gen_stranger_key id_stranger
IS_ROOT=0
if [ "$(id -u)" -eq 0 ]; then IS_ROOT=1; fi

DEST=$PEER_USER@127.0.0.1
SSH0=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o IdentitiesOnly=yes)
KEY=$T/keys/id_ed25519

# The password of $PEER_USER for shoal serve's PasswordFile (not the
# system's: shoal serve never reads /etc/shadow).
(umask 077 && _peers_random 20 >"$T/pw")
add_serve_password "$PEER_USER" "$T/pw"
if [ "$IS_ROOT" = 1 ] && make_test_user; then
    add_serve_password "$TEST_USER" "$T/password"
else
    TEST_USER=
fi
printf 'not-the-password\n' >"$T/wrong"

# An askpass program answering every prompt with $ASKPASS_ANSWER_FILE and
# noting the prompts in $T/askpass.log.
cat >"$T/askpass" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$T/askpass.log"
cat "\$ASKPASS_ANSWER_FILE"
EOF
chmod 755 "$T/askpass"

# ssh_pw ANSWER_FILE METHODS ARGS...: ssh with prompts answered from
# ANSWER_FILE, only METHODS (PreferredAuthentications) tried.
ssh_pw() {
    local answer=$1 methods=$2
    shift 2
    : >"$T/askpass.log"
    ASKPASS_ANSWER_FILE=$answer SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force \
        run_cmd "${SSH0[@]}" -o BatchMode=no -o NumberOfPasswordPrompts=1 \
        -o "PreferredAuthentications=$methods" "$@" </dev/null
}

# served MARK PATTERN: the server's log since MARK has a line matching ERE.
served() {
    if log_since "$SERVE_LOG" "$1" | grep -E -- "$2" >/dev/null; then return 0; fi
    echo "no line matching /$2/ in the server's log; it says:"
    log_since "$SERVE_LOG" "$1" | tail -n 20 | sed 's/^/| /'
    return 1
}
not_served() {
    if ! log_since "$SERVE_LOG" "$1" | grep -E -- "$2" >/dev/null; then return 0; fi
    echo "the server's log has a line matching /$2/:"
    log_since "$SERVE_LOG" "$1" | grep -E -- "$2" | sed 's/^/| /'
    return 1
}

# ================================================================ main server
printf 'Welcome to the shoal test server\n' >"$T/banner"
start_shoal_serve "PasswordFile $T/serve_passwords" "Banner $T/banner"
SSH=("${SSH0[@]}" -o BatchMode=yes)

# ---- publickey failures
mark=$(log_mark "$SERVE_LOG")
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$T/keys/id_stranger" "$DEST" 'echo ok' </dev/null
check_rc 255 "stranger key: ssh fails"
check_err_has "Permission denied" "stranger key: permission denied"
check "stranger key: no login in the server's log" not_served "$mark" "accepted"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "nosuchuser-shoal@127.0.0.1" 'echo ok' </dev/null
check_rc 255 "unknown user: ssh fails"
check "unknown user: the server logs an invalid user" served "$mark" 'invalid user "nosuchuser-shoal"'
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$DEST" 'echo ok' </dev/null
check_err_has "Welcome to the shoal test server" "Banner: ssh prints the banner"
check_out ok "Banner: the command still runs"

# ---- password and keyboard-interactive
mark=$(log_mark "$SERVE_LOG")
ssh_pw "$T/pw" password -p "$SERVE_PORT" "$DEST" 'echo pw-ok'
check_rc 0 "password: login exits 0"
check_out pw-ok "password: command ran"
check "password: the server logged it" served "$mark" "$PEER_USER: accepted password from 127.0.0.1"
ssh_pw "$T/wrong" password -p "$SERVE_PORT" "$DEST" 'echo pw-ok'
check_rc 255 "password: a wrong one fails"
check "password: the server logged the failure" served "$mark" "$PEER_USER: failed password"
mark=$(log_mark "$SERVE_LOG")
ssh_pw "$T/pw" keyboard-interactive -p "$SERVE_PORT" "$DEST" 'echo kbd-ok'
check_rc 0 "keyboard-interactive: login exits 0"
check_out kbd-ok "keyboard-interactive: command ran"
check "keyboard-interactive: the server logs the login as it does for password" \
    served "$mark" "accepted keyboard-interactive"
check "keyboard-interactive: askpass was asked for a password" grep -qi "password" "$T/askpass.log"
ssh_pw "$T/wrong" keyboard-interactive -p "$SERVE_PORT" "$DEST" 'echo kbd-ok'
check_rc 255 "keyboard-interactive: a wrong answer fails"

if [ -n "$TEST_USER" ]; then
    home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$TEST_USER@127.0.0.1" 'echo "$(id -un)|$(id -u)|$HOME|$(pwd)"' </dev/null
    check_out "$TEST_USER|$(id -u "$TEST_USER")|$home|$home" "$TEST_USER by key: runs as that user, in its home"
    run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$TEST_USER@127.0.0.1" 'id -G | tr " " "\n" | sort -n | tr "\n" " "' </dev/null
    check_out "$(id -G "$TEST_USER" | tr ' ' '\n' | sort -n | tr '\n' ' ')" "$TEST_USER: with exactly its groups"
    ssh_pw "$T/password" password -p "$SERVE_PORT" "$TEST_USER@127.0.0.1" 'id -un'
    check_rc 0 "$TEST_USER by password: exits 0"
    check_out "$TEST_USER" "$TEST_USER by password: runs as $TEST_USER"
    ssh_pw "$T/pw" password -p "$SERVE_PORT" "$TEST_USER@127.0.0.1" 'id -un'
    check_rc 255 "$TEST_USER: $PEER_USER's password does not work for it"
else
    echo "# not root (or no useradd): the checks as the shoaltest user are skipped"
fi
stop_shoal_serve "$SERVE_PID"

# ================================================================ AuthenticationMethods
start_shoal_serve "PasswordFile $T/serve_passwords" "AuthenticationMethods publickey,password"
mark=$(log_mark "$SERVE_LOG")
ssh_pw "$T/pw" publickey,password -v -p "$SERVE_PORT" -i "$KEY" "$DEST" 'echo both-ok'
check_rc 0 "publickey,password: key then password logs in"
check_out both-ok "publickey,password: command ran"
check_err_has "[Pp]artial success" "publickey,password: the key earned a partial success"
check "publickey,password: the server accepted both" served "$mark" "accepted publickey"
check "publickey,password: ... and the password" served "$mark" "accepted password"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$DEST" 'echo key-only' </dev/null
check_rc 255 "publickey,password: the key alone is not enough"
ssh_pw "$T/pw" password -p "$SERVE_PORT" "$DEST" 'echo pw-only'
check_rc 255 "publickey,password: the password alone is not enough"
ssh_pw "$T/wrong" publickey,password -p "$SERVE_PORT" -i "$KEY" "$DEST" 'echo wrong-pw'
check_rc 255 "publickey,password: key and a wrong password fail"
# A client holding only the PUBLIC half of an authorized key: ssh probes it
# (PK_OK), cannot load a private key from it, offers a stranger key (whose
# failure tells which methods may continue) and, if offered, a password.
# The probe must not count as the publickey step.
cp "$T/keys/id_ecdsa.pub" "$T/pubonly.pub"
chmod 600 "$T/pubonly.pub"
PUBONLY=(-i "$T/pubonly.pub" -i "$T/keys/id_stranger")
ssh_pw "$T/pw" publickey,password -p "$SERVE_PORT" "${PUBONLY[@]}" "$DEST" 'echo bypass'
check_rc 255 "publickey,password: a probed key without its private half + password fails"
stop_shoal_serve "$SERVE_PID"

# ================================================================ MaxAuthTries
start_shoal_serve "MaxAuthTries 3"
ids=()
for i in 1 2 3 4 5 6 7; do
    gen_stranger_key "id_wrong$i"
    ids+=(-i "$T/keys/id_wrong$i")
done
mark=$(log_mark "$SERVE_LOG")
run_cmd "${SSH0[@]}" -o BatchMode=yes -p "$SERVE_PORT" "${ids[@]}" -i "$KEY" "$DEST" 'echo ok' </dev/null
check_rc 255 "MaxAuthTries 3: seven wrong keys then a right one: ssh fails"
check_err_has "[Tt]oo many authentication failures" "MaxAuthTries 3: the server disconnects"
check "MaxAuthTries 3: logged" served "$mark" "too many authentication failures"
check "MaxAuthTries 3: no login" not_served "$mark" "accepted publickey"
run_cmd "${SSH0[@]}" -o BatchMode=yes -p "$SERVE_PORT" -i "$T/keys/id_wrong1" -i "$T/keys/id_wrong2" \
    -i "$KEY" "$DEST" 'echo ok' </dev/null
check_out ok "MaxAuthTries 3: two wrong keys, then the right one logs in"
stop_shoal_serve "$SERVE_PID"

# ================================================================ PermitRootLogin
if [ "$IS_ROOT" = 1 ]; then
    ssh-keygen -q -t ed25519 -N '' -C forced -f "$T/keys/id_forced"
    {
        cat "$T/keys/authorized_keys"
        printf 'command="echo forced-by-key" %s\n' "$(cat "$T/keys/id_forced.pub")"
    } >"$T/ak_root"
    for prl in no prohibit-password forced-commands-only; do
        start_shoal_serve "PermitRootLogin $prl" "PasswordFile $T/serve_passwords" "AuthorizedKeysFile $T/ak_root"
        run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" root@127.0.0.1 'echo root-key' </dev/null
        if [ "$prl" = prohibit-password ]; then
            check_out root-key "PermitRootLogin $prl: root by key logs in"
        else
            check_rc 255 "PermitRootLogin $prl: root by key is refused"
        fi
        ssh_pw "$T/pw" password -p "$SERVE_PORT" root@127.0.0.1 'echo root-pw'
        check_rc 255 "PermitRootLogin $prl: root by password is refused"
        run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$T/keys/id_forced" root@127.0.0.1 'echo client-cmd' </dev/null
        if [ "$prl" = no ]; then
            check_rc 255 "PermitRootLogin $prl: root by a key with command= is refused"
        else
            check_out forced-by-key "PermitRootLogin $prl: root by a key with command= runs the forced command"
        fi
        if [ -n "$TEST_USER" ]; then
            run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$TEST_USER@127.0.0.1" 'id -un' </dev/null
            check_out "$TEST_USER" "PermitRootLogin $prl: other users are not affected"
        fi
        stop_shoal_serve "$SERVE_PID"
    done
else
    echo "# not root: the PermitRootLogin checks are skipped"
fi

# ================================================================ authorized_keys options
for k in forced nopty from_no from_yes expired future restrict; do
    ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$T/keys/id_opt_$k"
done
pub() { cut -d' ' -f1,2 "$T/keys/id_opt_$1.pub"; }
{
    printf 'command="echo forced; echo \\"orig=$SSH_ORIGINAL_COMMAND\\"" %s\n' "$(pub forced)"
    printf 'no-pty %s\n' "$(pub nopty)"
    printf 'from="10.0.0.0/8" %s\n' "$(pub from_no)"
    printf 'from="10.0.0.0/8,127.0.0.0/8" %s\n' "$(pub from_yes)"
    printf 'expiry-time="20200101" %s\n' "$(pub expired)"
    printf 'expiry-time="29991231" %s\n' "$(pub future)"
    printf 'restrict %s\n' "$(pub restrict)"
} >"$T/ak_opts"
start_shoal_serve "AuthorizedKeysFile $T/ak_opts"
S=("${SSH[@]}" -p "$SERVE_PORT")
mark=$(log_mark "$SERVE_LOG")
run_cmd "${S[@]}" -i "$T/keys/id_opt_forced" "$DEST" 'echo client-cmd' </dev/null
check_out $'forced\norig=echo client-cmd' "command=: the forced command runs, SSH_ORIGINAL_COMMAND is the client's"
run_cmd "${S[@]}" -i "$T/keys/id_opt_forced" "$DEST" </dev/null
check_out $'forced\norig=' "command=: also instead of a shell (no SSH_ORIGINAL_COMMAND)"
# OpenSSH 9 treats a refused pty as fatal when -t was given, so the shell
# without a tty is seen from a real terminal, where ssh asks for a pty by
# itself (RequestTTY auto) and goes on without one.
cat >"$T/pty-steps" <<'EOF'
send tty; echo "rc=$?"
expect rc=1
send exit 4
EOF
# no_tty_shell KEY: a shell from a real terminal; $T/out has what it printed.
no_tty_shell() {
    TERM=vt100 run_cmd "$PEERS_PYTHON" "$PEERS_LIB/pty_run.py" "$T/pty-steps" -- \
        "${S[@]}" -i "$1" "$DEST"
}
run_cmd "${S[@]}" -tt -i "$T/keys/id_opt_nopty" "$DEST" 'tty' </dev/null
check_err_has "PTY allocation request failed" "no-pty: ssh -tt says the pty was refused"
no_tty_shell "$T/keys/id_opt_nopty"
check_rc 4 "no-pty: a shell from a terminal still runs (exit 4)"
check "no-pty: ... without a tty" grep -q "not a tty" "$T/out"
run_cmd "${S[@]}" -i "$T/keys/id_opt_from_no" "$DEST" 'echo ok' </dev/null
check_rc 255 'from="10.0.0.0/8": refused from 127.0.0.1'
run_cmd "${S[@]}" -i "$T/keys/id_opt_from_yes" "$DEST" 'echo ok' </dev/null
check_out ok 'from="10.0.0.0/8,127.0.0.0/8": admitted from 127.0.0.1'
run_cmd "${S[@]}" -i "$T/keys/id_opt_expired" "$DEST" 'echo ok' </dev/null
check_rc 255 "expiry-time in the past: refused"
run_cmd "${S[@]}" -i "$T/keys/id_opt_future" "$DEST" 'echo ok' </dev/null
check_out ok "expiry-time in the future: admitted"
check "the refusals are logged with their reason" served "$mark" "key refused"
no_tty_shell "$T/keys/id_opt_restrict"
check "restrict: no pty either" grep -q "not a tty" "$T/out"
stop_shoal_serve "$SERVE_PID"

# ---- environment= (applied only as PermitUserEnvironment allows)
ssh-keygen -q -t ed25519 -N '' -C env -f "$T/keys/id_opt_env"
printf 'environment="SHOAL_E=from-key",environment="OTHER_E=other",environment="USER=from-key" %s\n' \
    "$(cut -d' ' -f1,2 "$T/keys/id_opt_env.pub")" >"$T/ak_env"
ENVCMD='echo "${SHOAL_E-unset}|${OTHER_E-unset}"; tr "\0" "\n" </proc/$$/environ | grep "^USER="'
for pue in no yes 'SHOAL_*,LANG'; do
    start_shoal_serve "AuthorizedKeysFile $T/ak_env" "PermitUserEnvironment $pue"
    run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$T/keys/id_opt_env" "$DEST" "$ENVCMD" </dev/null
    case $pue in
        no) check_out "unset|unset"$'\n'"USER=$PEER_USER" "environment=, PermitUserEnvironment no: not applied" ;;
        yes)
            check "environment=, PermitUserEnvironment yes: applied" grep -qx "from-key|other" "$T/out"
            check "environment=, PermitUserEnvironment yes: replaces USER (one USER= entry, as sshd)" \
                test "$(grep '^USER=' "$T/out")" = "USER=from-key" ;;
        *)
            check "environment=, PermitUserEnvironment $pue: the names the pattern list admits" \
                grep -qx "from-key|unset" "$T/out"
            check "environment=, PermitUserEnvironment $pue: USER untouched" \
                test "$(grep '^USER=' "$T/out")" = "USER=$PEER_USER" ;;
    esac
    stop_shoal_serve "$SERVE_PID"
done

# ================================================================ AuthorizedKeysCommand
if [ "$IS_ROOT" = 1 ] && getent passwd nobody >/dev/null; then AKC_USER=nobody; else AKC_USER=$PEER_USER; fi
mkdir -p "$T/akc"
chmod 1777 "$T/akc"
ECDSA_B64=$(cut -d' ' -f2 "$T/keys/id_ecdsa.pub")
ECDSA_FP=$(ssh-keygen -lf "$T/keys/id_ecdsa.pub" | awk '{ print $2 }')
# Prints the ecdsa key for $PEER_USER when asked about exactly that key.
cat >"$T/akc/akc" <<EOF
#!/bin/sh
printf '%s|' "\$(id -un)" "\$@" >>"$T/akc/args.log"
echo >>"$T/akc/args.log"
if [ "\$1" = "$PEER_USER" ] && [ "\$3" = "$ECDSA_B64" ]; then
    echo "ecdsa-sha2-nistp256 $ECDSA_B64 from-akc"
fi
exit 0
EOF
sed -e 's/^exit 0$/exit 1/' "$T/akc/akc" >"$T/akc/akc-fails"
chmod 755 "$T/akc/akc" "$T/akc/akc-fails"
start_shoal_serve "AuthorizedKeysFile none" "AuthorizedKeysCommand $T/akc/akc" \
    "AuthorizedKeysCommandUser $AKC_USER"
S=("${SSH[@]}" -p "$SERVE_PORT")
: >"$T/akc/args.log"
chmod 666 "$T/akc/args.log"
run_cmd "${S[@]}" -i "$T/keys/id_ecdsa" "$DEST" 'echo akc-ok' </dev/null
check_out akc-ok "AuthorizedKeysCommand: a key in no file logs in through it"
check "AuthorizedKeysCommand: runs as $AKC_USER with user, key type, key and fingerprint" \
    grep -qxF "$AKC_USER|$PEER_USER|ecdsa-sha2-nistp256|$ECDSA_B64|$ECDSA_FP|" "$T/akc/args.log"
run_cmd "${S[@]}" -i "$KEY" "$DEST" 'echo akc-ok' </dev/null
check_rc 255 "AuthorizedKeysCommand: a key it does not print is refused"
check "AuthorizedKeysCommand: it was asked about that key too" grep -q "|ssh-ed25519|" "$T/akc/args.log"
# shoal run sends the command's channel open right behind its signed request
# (RFC 4252 5.1): the server holds it while the command decides, then opens
# the channel.
env -u SSH_AUTH_SOCK HOME="$T" "$SHOAL_BIN" run -l "$PEER_USER" -p "$SERVE_PORT" -i "$T/keys/id_ecdsa" \
    -o "UserKnownHostsFile=$T/akc_run_kh" -o LogLevel=VERBOSE --no-progress -H 127.0.0.1 -- 'echo akc-run' \
    >"$T/akc_run" 2>&1 || true
check "AuthorizedKeysCommand: shoal run's channel open, sent with the request, waits for the decision" \
    sh -c "grep -q 'open sent with the final auth request' '$T/akc_run' && grep -qx 'akc-run' '$T/akc_run'"
# The probe/signature bug of AuthenticationMethods, through the command.
stop_shoal_serve "$SERVE_PID"
start_shoal_serve "AuthorizedKeysFile none" "AuthorizedKeysCommand $T/akc/akc" \
    "AuthorizedKeysCommandUser $AKC_USER" "PasswordFile $T/serve_passwords" \
    "AuthenticationMethods publickey,password"
ssh_pw "$T/pw" publickey,password -p "$SERVE_PORT" -i "$T/keys/id_ecdsa" "$DEST" 'echo both-ok'
check_out both-ok "AuthorizedKeysCommand + publickey,password: key then password logs in"
ssh_pw "$T/pw" publickey,password -p "$SERVE_PORT" "${PUBONLY[@]}" "$DEST" 'echo bypass'
check "AuthorizedKeysCommand + publickey,password: a probed key without its private half + password fails (got rc $RC, out $(cat "$T/out"))" \
    test "$RC" = 255
stop_shoal_serve "$SERVE_PID"
start_shoal_serve "AuthorizedKeysFile none" "AuthorizedKeysCommand $T/akc/akc-fails" \
    "AuthorizedKeysCommandUser $AKC_USER"
mark=$(log_mark "$SERVE_LOG")
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$T/keys/id_ecdsa" "$DEST" 'echo akc-ok' </dev/null
check_rc 255 "AuthorizedKeysCommand failing (exit 1, key printed anyway): denied"
check "AuthorizedKeysCommand failing: logged" served "$mark" "AuthorizedKeysCommand exited with status 1"
stop_shoal_serve "$SERVE_PID"
# A slow command (5 s, one process) and one that never answers.
cat >"$T/akc/akc-slow" <<EOF
#!/bin/sh
exec "$PEERS_PYTHON" -c 'import sys, time; time.sleep(5); print(sys.argv[1])' \
    "ecdsa-sha2-nistp256 $ECDSA_B64 from-slow-akc"
EOF
printf '#!/bin/sh\nexec sleep 30\n' >"$T/akc/akc-hang"
chmod 755 "$T/akc/akc-slow" "$T/akc/akc-hang"
grep -F "$(cut -d' ' -f2 "$KEY.pub")" "$T/keys/authorized_keys" >"$T/ak_ed25519"
start_shoal_serve "AuthorizedKeysFile $T/ak_ed25519" "AuthorizedKeysCommand $T/akc/akc-slow" \
    "AuthorizedKeysCommandUser $AKC_USER"
S=("${SSH[@]}" -p "$SERVE_PORT")
"${S[@]}" -i "$T/keys/id_ecdsa" "$DEST" 'echo slow-ok' </dev/null >"$T/slow.out" 2>&1 &
slow_pid=$!
peers_track "$slow_pid"
sleep 0.5
run_cmd "${S[@]}" -i "$KEY" "$DEST" 'echo fast-ok' </dev/null
check_out fast-ok "a slow AuthorizedKeysCommand: another login meanwhile works"
check "a slow AuthorizedKeysCommand: ... without waiting for it (the slow login is still pending)" \
    kill -0 "$slow_pid"
if wait "$slow_pid"; then :; fi
check "a slow AuthorizedKeysCommand: its login completes" grep -qx slow-ok "$T/slow.out"
# The client goes away while the command runs: the answer has nowhere to go.
mark=$(log_mark "$SERVE_LOG")
timeout 1 "${S[@]}" -i "$T/keys/id_ecdsa" "$DEST" 'echo gone' </dev/null >/dev/null 2>&1 || true
sleep 5
check "client gone during a slow AuthorizedKeysCommand: the server is still running" kill -0 "$SERVE_PID"
run_cmd "${S[@]}" -i "$KEY" "$DEST" 'echo still-ok' </dev/null
check_out still-ok "client gone during a slow AuthorizedKeysCommand: later logins work"
stop_shoal_serve "$SERVE_PID"
start_shoal_serve "AuthorizedKeysFile none" "AuthorizedKeysCommand $T/akc/akc-hang" \
    "AuthorizedKeysCommandUser $AKC_USER"
mark=$(log_mark "$SERVE_LOG")
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$T/keys/id_ecdsa" "$DEST" 'echo hang' </dev/null
check_rc 255 "an AuthorizedKeysCommand that never answers: denied (after its 10 s limit)"
check "an AuthorizedKeysCommand that never answers: logged" served "$mark" "AuthorizedKeysCommand timed out"
stop_shoal_serve "$SERVE_PID"
# sshd_config(5) tokens in the command line (documented in serveconfig.h).
start_shoal_serve "AuthorizedKeysFile none" "AuthorizedKeysCommand $T/akc/akc %u %t %k %f" \
    "AuthorizedKeysCommandUser $AKC_USER"
: >"$T/akc/args.log"
chmod 666 "$T/akc/args.log"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -i "$T/keys/id_ecdsa" "$DEST" 'echo akc-ok' </dev/null
check_out akc-ok "AuthorizedKeysCommand with %u %t %k %f arguments: login works"
check "AuthorizedKeysCommand with %u %t %k %f arguments: expanded into separate arguments" \
    grep -qxF "$AKC_USER|$PEER_USER|ecdsa-sha2-nistp256|$ECDSA_B64|$ECDSA_FP|" "$T/akc/args.log"
stop_shoal_serve "$SERVE_PID"

# ================================================================ ForceCommand, PermitTTY
start_shoal_serve 'ForceCommand echo "config-forced orig=$SSH_ORIGINAL_COMMAND"' "PermitTTY no"
S=("${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$DEST")
run_cmd "${S[@]}" 'echo client; exit 3' </dev/null
check_rc 0 "ForceCommand: its exit status, not the client command's"
check_out "config-forced orig=echo client; exit 3" "ForceCommand: runs instead, with SSH_ORIGINAL_COMMAND"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -tt -i "$KEY" "$DEST" 'tty' </dev/null
check_err_has "PTY allocation request failed" "PermitTTY no: the pty is refused"
stop_shoal_serve "$SERVE_PID"

# ================================================================ CommandPolicy allowlist
start_shoal_serve "CommandPolicy allowlist" 'AllowCommands "echo allowed" "uname *"'
S=("${SSH[@]}" -p "$SERVE_PORT" -i "$KEY" "$DEST")
run_cmd "${S[@]}" 'echo allowed' </dev/null
check_out allowed "allowlist: an exact pattern admits its command"
run_cmd "${S[@]}" 'uname -s' </dev/null
check_out "$(uname -s)" "allowlist: a wildcard pattern admits a matching command"
for bad in 'id' 'echo allowed; id' 'echo allowed ' 'uname -s; id' 'uname $(id)' 'uname -s | cat' \
    "uname -s
id"; do
    run_cmd "${S[@]}" "$bad" </dev/null
    check_rc 1 "allowlist: $(printf %q "$bad") is refused with exit 1"
    check "allowlist: $(printf %q "$bad"): a clear message on stderr" grep -qi "not allowed\|refused" "$T/err"
    check "allowlist: $(printf %q "$bad"): nothing ran" test ! -s "$T/out"
done
run_cmd "${S[@]}" id </dev/null
check "allowlist: the refusal (no pty) ends with a plain newline, no carriage return" \
    test "$(tr -d '\r' <"$T/err" | wc -c)" = "$(wc -c <"$T/err")"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -T -i "$KEY" "$DEST" </dev/null
check_rc 1 "allowlist: a shell is refused with exit 1"
# The exec request is answered before the refusal's message, exit status and
# close: paramiko (which insists on the answer) gets the message and exit 1.
if "$PEERS_PYTHON" -c "import paramiko" 2>/dev/null; then
    run_cmd "$PEERS_PYTHON" "$PEERS_LIB/paramiko_client.py" --port "$SERVE_PORT" --user "${DEST%@*}" \
        --known-hosts "$T/known_hosts" --key "$KEY" id </dev/null
    check_rc 1 "allowlist: paramiko: a refused command exits 1"
    check "allowlist: paramiko: the refusal's message arrives" grep -qi "not allowed\|refused" "$T/err"
    check "allowlist: paramiko: not a closed channel" sh -c "! grep -qi 'channel closed' '$T/err'"
fi
echo "# the refusal message: $(head -n 1 "$T/err")"
SFTP=(sftp -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o IdentitiesOnly=yes -i "$KEY" -b -)
if [ -x /usr/lib/openssh/sftp-server ] && command -v sftp >/dev/null 2>&1; then
    run_cmd "${SFTP[@]}" -P "$SERVE_PORT" "$DEST" <<<"ls"
    check "allowlist: the sftp subsystem is refused when no pattern names it" test "$RC" -ne 0
    check "allowlist: sftp refused: the message reaches sftp's stderr" grep -q "^shoal: " "$T/err"
    stop_shoal_serve "$SERVE_PID"
    start_shoal_serve "CommandPolicy allowlist" "AllowCommands /usr/lib/openssh/sftp-server"
    run_cmd "${SFTP[@]}" -P "$SERVE_PORT" "$DEST" <<<"ls $T/keys"
    check_rc 0 "allowlist: the sftp subsystem works when a pattern names its command"
    check "allowlist: sftp ls listed the directory" grep -q "id_ed25519" "$T/out"
fi
stop_shoal_serve "$SERVE_PID"

finish
