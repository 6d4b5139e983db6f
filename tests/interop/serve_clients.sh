#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# shellcheck disable=SC2016 # the remote shell expands the commands' variables
# Interop: clients other than OpenSSH against `shoal serve`:
#   * python3-asyncssh and python3-paramiko, through the small clients
#     tests/lib/asyncssh_client.py and tests/lib/paramiko_client.py;
#   * dropbear's dbclient, with keys converted by dropbearconvert.
# For each: a login with each user key type (ed25519, ecdsa-256, rsa-3072),
# exit statuses 0/1/42, stdout vs stderr, stdin and its EOF, 1 MiB each way
# (sha256), a command killed by SIGTERM; for the Python ones also password
# login (right and wrong) and env requests through AcceptEnv.
# A client that is not installed is skipped (with a note); the test is
# skipped only when none is.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
unset SSH_AUTH_SOCK SSH_AGENT_PID
HAVE=()
for lib in asyncssh paramiko; do
    if "$PEERS_PYTHON" -c "import $lib" 2>/dev/null; then
        HAVE+=("$lib")
    else
        echo "# python3-$lib is not installed for $PEERS_PYTHON: skipping it"
    fi
done
if command -v dbclient >/dev/null 2>&1 && command -v dropbearconvert >/dev/null 2>&1; then
    HAVE+=(dbclient)
else
    echo "# dbclient/dropbearconvert are not installed: skipping dropbear's client"
fi
[ "${#HAVE[@]}" -gt 0 ] || skip "none of asyncssh, paramiko, dbclient is installed"
peers_init
gen_user_keys
(umask 077 && _peers_random 20 >"$T/pw")
add_serve_password "$PEER_USER" "$T/pw"
printf 'not-the-password\n' >"$T/wrong"
# LoginGraceTime bounds the dbclient stranger case below: dbclient, unable to
# prompt for a password without a terminal, spins without sending anything.
start_shoal_serve "PasswordFile $T/serve_passwords" "AcceptEnv SHOAL_*" "LoginGraceTime 10"
KEYS=(id_ed25519 id_ecdsa id_rsa)

# run_CLIENT AUTH CMD [extra client args]: one command through that client;
# AUTH is a key name (in $T/keys) or "pw:FILE" for a password.
py_client() {
    local lib=$1 auth=$2 cmd=$3
    shift 3
    local -a a=(--port "$SERVE_PORT" --user "$PEER_USER" --known-hosts "$T/known_hosts")
    case $auth in
        pw:*) a+=(--password-file "${auth#pw:}") ;;
        *) a+=(--key "$T/keys/$auth") ;;
    esac
    run_cmd "$PEERS_PYTHON" "$PEERS_LIB/${lib}_client.py" "${a[@]}" "$@" "$cmd"
}
run_asyncssh() { py_client asyncssh "$@"; }
run_paramiko() { py_client paramiko "$@"; }

# dbclient reads and writes ~/.ssh/known_hosts with $HOME from the
# environment: give it a private home holding our known_hosts.
DBHOME=$T/dbhome
mkdir -p "$DBHOME/.ssh"
chmod 700 "$DBHOME" "$DBHOME/.ssh"
if [[ " ${HAVE[*]} " == *" dbclient "* ]]; then
    for k in "${KEYS[@]}"; do
        dropbearconvert openssh dropbear "$T/keys/$k" "$T/keys/$k.db" >/dev/null 2>&1 ||
            die "dropbearconvert failed for $k"
    done
fi
# dropbear 2022.83 looks hosts up by name only (no "[host]:port" form).
awk -v p="[127.0.0.1]:$SERVE_PORT" '$1 == p { $1 = "127.0.0.1"; print }' "$T/known_hosts" \
    >"$DBHOME/.ssh/known_hosts"
run_dbclient() {
    local auth=$1 cmd=$2
    HOME=$DBHOME run_cmd dbclient -q -T -i "$T/keys/$auth.db" -p "$SERVE_PORT" "$PEER_USER@127.0.0.1" "$cmd"
}

# exec_suite CLIENT: the checks every client gets.
exec_suite() {
    local cl=$1 k want run=run_$1
    for k in "${KEYS[@]}"; do
        "$run" "$k" 'echo ok' </dev/null
        check_rc 0 "$cl: login with $k"
        check_out ok "$cl: login with $k: command ran"
    done
    k=${KEYS[0]}
    for st in 0 1 42; do
        "$run" "$k" "exit $st" </dev/null
        check_rc "$st" "$cl: exit $st"
    done
    "$run" "$k" 'echo out1; echo err1 >&2; echo out2; echo err2 >&2' </dev/null
    check_out $'out1\nout2' "$cl: stdout carries only stdout"
    check_err $'err1\nerr2' "$cl: stderr carries only stderr"
    "$run" "$k" cat < <(printf 'a\nb\n')
    check_out $'a\nb' "$cl: stdin is forwarded"
    "$run" "$k" 'wc -c' </dev/null
    check_out 0 "$cl: EOF on stdin reaches the command"
    want=$(head -c 1048576 /dev/zero | tr '\0' z | sha256sum | cut -d' ' -f1)
    "$run" "$k" "head -c 1048576 /dev/zero | tr '\\0' z" </dev/null
    check_rc 0 "$cl: 1 MiB download exits 0"
    check_sha256 "$want" "$cl: 1 MiB download intact"
    head -c 1048576 /dev/urandom >"$T/up1m"
    want=$(sha256sum <"$T/up1m" | cut -d' ' -f1)
    "$run" "$k" sha256sum <"$T/up1m"
    check_out "$want  -" "$cl: 1 MiB upload intact"
    "$run" "$k" 'kill -TERM $$' </dev/null
    case $cl in
        asyncssh)
            check_rc 143 "$cl: killed by TERM: exit-signal seen (128+15)"
            check_err_has "killed by signal TERM" "$cl: killed by TERM: signal name" ;;
        paramiko)
            # paramiko ignores exit-signal: no exit status at all.
            check_rc 255 "$cl: killed by TERM: no exit status (paramiko ignores exit-signal)" ;;
        dbclient)
            # dbclient 2022.83 ignores exit-signal and exits 0 (against
            # OpenSSH's sshd too): only check that it ends.
            check "$cl: killed by TERM: the session ends (rc $RC)" test "$RC" -ne 124 -a "$RC" -ne 137 ;;
    esac
}

for c in "${HAVE[@]}"; do
    exec_suite "$c"
done

for c in asyncssh paramiko; do
    [[ " ${HAVE[*]} " == *" $c "* ]] || continue
    "run_$c" "pw:$T/pw" 'echo pw-ok' </dev/null
    check_rc 0 "$c: password login exits 0"
    check_out pw-ok "$c: password login: command ran"
    "run_$c" "pw:$T/wrong" 'echo pw-ok' </dev/null
    check_rc 255 "$c: a wrong password fails"
    "run_$c" id_ed25519 'echo "${SHOAL_A-unset}|${OTHER_B-unset}"' --env SHOAL_A=aa --env OTHER_B=bb </dev/null
    check_out "aa|unset" "$c: env request through AcceptEnv SHOAL_*, others dropped"
done

if [[ " ${HAVE[*]} " == *" paramiko "* ]]; then
    # A key the server refuses, then the password, on one connection:
    # paramiko asks for the userauth service again before the password.
    gen_stranger_key id_refused
    run_paramiko id_refused 'echo key-then-pw' --password-file "$T/pw" </dev/null
    check_rc 0 "paramiko: a refused key then the password: exit 0"
    check_out key-then-pw "paramiko: a refused key then the password: logged in"
fi

if [[ " ${HAVE[*]} " == *" dbclient "* ]]; then
    # A stranger key fails.
    gen_stranger_key id_stranger
    dropbearconvert openssh dropbear "$T/keys/id_stranger" "$T/keys/id_stranger.db" >/dev/null 2>&1
    # (dbclient then tries password prompts until the server disconnects,
    # and exits 0 after a disconnect, against OpenSSH's sshd too.)
    run_dbclient id_stranger 'echo ok' </dev/null
    check "dbclient: a stranger key does not log in" test ! -s "$T/out"
    check_err_has "Disconnect received|exited" "dbclient: a stranger key: the server disconnects"
fi

finish
