#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: log forging. Peer text reaches log lines only escaped
# (shoal_strvis: control bytes, the backslash and non-ASCII as \ooo), so a
# client cannot end a line and write a fake one:
#   * shoal serve: a user name (before authentication), a refused command,
#     an env request, a subsystem name, each carrying
#     "\n<timestamp> shoal[1]: root: accepted publickey ..." (sent by
#     paramiko, which sends any bytes), each give exactly one log line, with
#     \012 where the newline was; no line of the log starts with the forged
#     text;
#   * shoal exec (the client): a server's banner with terminal escapes and
#     carriage returns reaches the terminal with no escape byte (the core
#     shows control bytes of a banner as '?', the display then escapes what
#     is left; newlines are kept: a banner is several lines), and its debug
#     lines (-v) are escaped too.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_shoal
"$PEERS_PYTHON" -c "import paramiko" 2>/dev/null || skip "python3-paramiko is not installed"
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys
KEY=$T/keys/id_ed25519

FORGED="2030-01-01T00:00:00 shoal[1]: root: accepted publickey ssh-ed25519 SHA256:forged from 10.9.8.7:1234"
echo "$FORGED" >"$T/forged"
start_shoal_serve "CommandPolicy allowlist" 'AllowCommands "echo allowed"' "AcceptEnv *"
mark=$(log_mark "$SERVE_LOG")
"$PEERS_PYTHON" - "$SERVE_PORT" "$KEY" "$PEER_USER" "$T/forged" <<'EOF' >"$T/py.out" 2>&1 || true
import sys, paramiko
port, key, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
forged = open(sys.argv[4]).read().strip()

def transport():
    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=30)
    return t

# 1. The user name, before authentication.
t = transport()
try:
    t.auth_password("nosuch\n" + forged, "x")
except paramiko.AuthenticationException:
    print("user name: refused")
t.close()

# 2. After logging in: an env request, a refused command, a subsystem.
t = transport()
t.auth_publickey(user, paramiko.Ed25519Key(filename=key))
ch = t.open_session()
ch.set_environment_variable("LC_X\n" + forged, "v")
try:
    ch.exec_command("echo hi\n" + forged)
    print("command: exit", ch.recv_exit_status())
except paramiko.SSHException as e:
    # shoal serve closes a refused command's channel (message, exit status
    # 1) before its reply to the request, which paramiko reports this way.
    print("command: refused,", e)
ch.close()
ch = t.open_session()
try:
    ch.invoke_subsystem("sftp\n" + forged)
    print("subsystem: accepted?")
except paramiko.SSHException:
    print("subsystem: refused")
t.close()
EOF
sed 's/^/# paramiko: /' "$T/py.out"
check "paramiko sent the four requests" test "$(grep -c 'refused\|exit 1' "$T/py.out")" = 3
log_since "$SERVE_LOG" "$mark" >"$T/log.part"
check "no line of the log starts with the forged text" sh -c "! grep -q '^2030-01-01' '$T/log.part'"
check "every log line has the server's own prefix" \
    sh -c "! grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8} shoal\\[[0-9]+\\]: ' '$T/log.part'"
n=$(grep -cF "SHA256:forged" "$T/log.part" || true)
check "each injection is inside one escaped line (user, env, command, subsystem: $n lines)" \
    test "$(grep -F "SHA256:forged" "$T/log.part" | grep -cF '\0122030-01-01T00:00:00 shoal[1]: root: accepted publickey')" -ge 4
check "the user name line: invalid user \"nosuch\\012...\"" grep -qF 'invalid user "nosuch\0122030-01-01' "$T/log.part"
check "the refused command line" grep -qF 'refused exec "echo hi\0122030-01-01' "$T/log.part"
check "the env request line" grep -qF 'ignoring env request LC_X\0122030-01-01' "$T/log.part"
check "the subsystem line" grep -qF 'subsystem request for sftp\0122030-01-01' "$T/log.part"
grep -F "SHA256:forged" "$T/log.part" | head -n 4 | sed 's/^/# /'
stop_shoal_serve "$SERVE_PID"

# ================================================================ the client side
printf 'Welcome\r\n\033[2J\033[31mred\r\nlast line\n' >"$T/banner"
start_shoal_serve "Banner $T/banner"
C=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -i "$KEY" -p "$SERVE_PORT")
run_shoal "${C[@]}" -v "$PEER_USER@127.0.0.1" 'echo ok' </dev/null
check_out ok "shoal exec through a server with a hostile banner: the command runs"
check "shoal exec: no raw escape byte reaches the terminal" sh -c "! grep -q \$'\\033' '$T/err'"
check "shoal exec: no carriage return either" sh -c "! grep -q \$'\\r' '$T/err'"
check "shoal exec: the banner is shown, control bytes as '?'" grep -qxF '?[2J?[31mred?' "$T/err"
check "shoal exec: the banner's lines stay lines" grep -qx 'last line' "$T/err"
check "shoal exec -v: debug lines are there (and escaped)" grep -q '^debug1: server version: ' "$T/err"
stop_shoal_serve "$SERVE_PID"

finish
