#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: `shoal exec` authentication against OpenSSH's sshd:
#   * public key: ed25519, ecdsa-256, rsa-3072 (sshd 9.2 refuses SHA-1
#     "ssh-rsa" signatures by default, so the RSA login proves rsa-sha2-*);
#   * a passphrase-protected key, the passphrase coming from SSH_ASKPASS with
#     SSH_ASKPASS_REQUIRE=force (as with OpenSSH; CI has no terminal);
#   * keys from a real ssh-agent (SSH_AUTH_SOCK, no -i), alone and next to
#     -i with an agent key the server does not accept;
#   * password and keyboard-interactive (root only: they log in as the
#     `shoaltest` user from make_test_user), answers through SSH_ASKPASS;
#   * failures: exit 255 with a message naming "authentication".
# Which key / method really logged in is checked in sshd's log.
#
# Keyboard-interactive needs a second sshd with "UsePAM yes": with UsePAM no
# OpenSSH still advertises keyboard-interactive but has no back end for it
# (only PAM or BSD auth provide one), so every attempt fails without a
# prompt. Debian's /etc/pam.d/sshd does pam_unix, i.e. the shadow password.
#
# BatchMode=yes forbids every prompt (askpass included), so the tests that
# answer prompts pass BatchMode=no. HOME points at an empty directory for the
# runs without -i so that no ~/.ssh/id_* key can be picked up by accident.
# SHOAL_COMPAT_SSH=1: ssh's wording ("Permission denied") instead of shoal's.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
gen_stranger_key id_stranger
start_sshd

DEST=$PEER_USER@127.0.0.1
KH=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes)
mkdir -p "$T/home"
chmod 700 "$T/home"
if [ "${SHOAL_COMPAT_SSH:-0}" = 1 ]; then
    AUTH_FAILED_RE="Permission denied"
else
    AUTH_FAILED_RE="[Aa]uthentication"
fi

# fp KEYFILE: the SHA256 fingerprint sshd logs for that key.
fp() { ssh-keygen -lf "$1.pub" | awk '{ print $2 }'; }

# logged_in MARK PATTERN: sshd's log since MARK has "Accepted ..." matching
# the fixed string PATTERN.
logged_in() {
    if log_since "$SSHD_LOG" "$1" | grep "Accepted " | grep -F -- "$2" >/dev/null; then return 0; fi
    echo "no 'Accepted' line with '$2' in sshd's log; it says:"
    log_since "$SSHD_LOG" "$1" | grep -E "Accepted|Failed|Postponed|authenticating" | sed 's/^/| /'
    return 1
}

# An askpass program answering every prompt with the content of
# $ASKPASS_ANSWER_FILE, and noting each prompt in $T/askpass.log.
cat >"$T/askpass" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$T/askpass.log"
cat "\$ASKPASS_ANSWER_FILE"
EOF
chmod 755 "$T/askpass"
printf 'not-the-secret\n' >"$T/wrong"
askpass_used() { [ -s "$T/askpass.log" ]; }

# ---- every user key type from a file
for k in id_ed25519 id_ecdsa id_rsa; do
    mark=$(log_mark "$SSHD_LOG")
    run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" -i "$T/keys/$k" "$DEST" 'echo ok' </dev/null
    check_rc 0 "publickey $k: exits 0"
    check_out ok "publickey $k: command ran"
    check "publickey $k: sshd accepted that key" logged_in "$mark" "publickey for $PEER_USER from 127.0.0.1 port"
    check "publickey $k: with fingerprint $(fp "$T/keys/$k")" logged_in "$mark" "$(fp "$T/keys/$k")"
done

# ---- passphrase-protected key, passphrase from askpass
: >"$T/askpass.log"
mark=$(log_mark "$SSHD_LOG")
ASKPASS_ANSWER_FILE=$T/keys/pass SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" -i "$T/keys/id_ed25519_enc" "$DEST" 'echo ok' </dev/null
check_rc 0 "encrypted key + askpass: exits 0"
check_out ok "encrypted key + askpass: command ran"
check "encrypted key + askpass: askpass was asked" askpass_used
check "encrypted key + askpass: sshd accepted that key" logged_in "$mark" "$(fp "$T/keys/id_ed25519_enc")"

: >"$T/askpass.log"
ASKPASS_ANSWER_FILE=$T/wrong SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" -i "$T/keys/id_ed25519_enc" "$DEST" 'echo ok' </dev/null
check_rc 255 "encrypted key + wrong passphrase: exits 255"

: >"$T/askpass.log"
ASKPASS_ANSWER_FILE=$T/keys/pass SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" -i "$T/keys/id_ed25519_enc" "$DEST" 'echo ok' </dev/null
check_rc 255 "encrypted key + BatchMode=yes: exits 255 (no prompting at all)"
check "encrypted key + BatchMode=yes: askpass was not asked" test ! -s "$T/askpass.log"

# ---- ssh-agent
# -D: stay in the foreground, so the EXIT trap can stop it by pid.
ssh-agent -D -a "$T/agent.sock" >"$T/agent.log" 2>&1 </dev/null &
peers_track $! "$T/agent.log"
wait_for 10 agent_answers "$T/agent.sock" || die "ssh-agent does not answer on $T/agent.sock"
export_agent() { SSH_AUTH_SOCK=$T/agent.sock "$@"; }
export_agent ssh-add -q "$T/keys/id_ecdsa" </dev/null

mark=$(log_mark "$SSHD_LOG")
HOME=$T/home SSH_AUTH_SOCK=$T/agent.sock \
    run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" "$DEST" 'echo ok' </dev/null
check_rc 0 "agent key, no -i: exits 0"
check_out ok "agent key, no -i: command ran"
check "agent key, no -i: sshd accepted the agent's key" logged_in "$mark" "$(fp "$T/keys/id_ecdsa")"

# The agent offers a key the server refuses; -i gives one it accepts.
export_agent ssh-add -q -D </dev/null
export_agent ssh-add -q "$T/keys/id_stranger" </dev/null
mark=$(log_mark "$SSHD_LOG")
HOME=$T/home SSH_AUTH_SOCK=$T/agent.sock \
    run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" -i "$T/keys/id_rsa" "$DEST" 'echo ok' </dev/null
check_rc 0 "refused agent key + good -i key: exits 0"
check_out ok "refused agent key + good -i key: command ran"
check "refused agent key + good -i key: sshd accepted the -i key" logged_in "$mark" "$(fp "$T/keys/id_rsa")"

# Both the agent and -i have a good key: either may be used.
export_agent ssh-add -q "$T/keys/id_ed25519" </dev/null
HOME=$T/home SSH_AUTH_SOCK=$T/agent.sock \
    run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" -i "$T/keys/id_ecdsa" "$DEST" 'echo ok' </dev/null
check_rc 0 "good agent key + good -i key: exits 0"

# ---- public key failure
mark=$(log_mark "$SSHD_LOG")
HOME=$T/home run_shoal "${KH[@]}" -o BatchMode=yes -p "$SSHD_PORT" -i "$T/keys/id_stranger" "$DEST" 'echo ok' </dev/null
check_rc 255 "unauthorized key: exits 255"
check_out "" "unauthorized key: command did not run"
check_err_has "$AUTH_FAILED_RE" "unauthorized key: message names authentication"

# ---- password and keyboard-interactive: root only
if ! make_test_user; then
    echo "# not root: skipping password and keyboard-interactive"
    finish
fi
U=$TEST_USER@127.0.0.1

mark=$(log_mark "$SSHD_LOG")
: >"$T/askpass.log"
HOME=$T/home ASKPASS_ANSWER_FILE=$T/password SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=no -o PubkeyAuthentication=no -o PasswordAuthentication=yes \
    -p "$SSHD_PORT" "$U" 'id -un' </dev/null
check_rc 0 "password: exits 0"
check_out "$TEST_USER" "password: logged in as $TEST_USER"
check "password: askpass was asked" askpass_used
check "password: sshd accepted a password" logged_in "$mark" "Accepted password for $TEST_USER"

HOME=$T/home ASKPASS_ANSWER_FILE=$T/wrong SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=no -o PubkeyAuthentication=no -o PasswordAuthentication=yes \
    -p "$SSHD_PORT" "$U" 'id -un' </dev/null
check_rc 255 "wrong password: exits 255"
check_out "" "wrong password: command did not run"
check_err_has "$AUTH_FAILED_RE" "wrong password: message names authentication"

HOME=$T/home run_shoal "${KH[@]}" -o BatchMode=yes -o PubkeyAuthentication=no \
    -p "$SSHD_PORT" "$U" 'id -un' </dev/null
check_rc 255 "password needed but BatchMode=yes: exits 255"

# keyboard-interactive: a second sshd, PAM-backed, that allows nothing else.
start_sshd "UsePAM yes" "AuthenticationMethods keyboard-interactive"
mark=$(log_mark "$SSHD_LOG")
: >"$T/askpass.log"
HOME=$T/home ASKPASS_ANSWER_FILE=$T/password SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" "$U" 'id -un' </dev/null
check_rc 0 "keyboard-interactive: exits 0"
check_out "$TEST_USER" "keyboard-interactive: logged in as $TEST_USER"
check "keyboard-interactive: askpass was asked" askpass_used
check "keyboard-interactive: sshd accepted keyboard-interactive" logged_in "$mark" \
    "Accepted keyboard-interactive/pam for $TEST_USER"

HOME=$T/home ASKPASS_ANSWER_FILE=$T/wrong SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
    run_shoal "${KH[@]}" -o BatchMode=no -p "$SSHD_PORT" "$U" 'id -un' </dev/null
check_rc 255 "keyboard-interactive, wrong answer: exits 255"
check_err_has "$AUTH_FAILED_RE" "keyboard-interactive, wrong answer: message names authentication"

finish
