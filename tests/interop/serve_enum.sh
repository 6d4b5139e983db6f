#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: user enumeration against `shoal serve` (CVE-2018-15473 class).
# A client (paramiko, driven at message level) must not tell an account
# from a made-up name by what the server answers:
#   * "none": the same list of methods for both (it was "publickey" alone
#     for a name without an account);
#   * "none" then a truncated password request, and "none" then a
#     truncated publickey request (the CVE's probe): the same answer for
#     both (a protocol-error disconnect; the password one used to be a
#     failure for unknown names only, since the server had stopped offering
#     password to them);
#   * two wrong passwords on one connection: the same answers for both;
#     after one attempt with an unknown name, the real account's password
#     is checked again on that connection (it logs in);
#   * keyboard-interactive: a prompt for both.
# The time of a failed password attempt is measured for both (median of
# many) and printed: a measurement, not an assertion (the structural
# property, one hash computation for every user, is checked in
# tests/unit/test_serve_password.c).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
"$PEERS_PYTHON" -c "import paramiko" 2>/dev/null || skip "python3-paramiko is not installed"
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys

(umask 077 && _peers_random 16 >"$T/pw")
add_serve_password "$PEER_USER" "$T/pw"
# A few more entries, so the file looks like a real one.
for u in alice bob carol; do
    (umask 077 && _peers_random 16 >"$T/pw.$u")
    add_serve_password "$u" "$T/pw.$u"
done
FAKE=nosuchuser-enum-$$
# With root, an account that exists but has no PasswordFile entry, too.
OTHER=
if [ "$(id -u)" = 0 ] && getent passwd daemon >/dev/null; then OTHER=daemon; fi
start_shoal_serve "PasswordFile $T/serve_passwords" "MaxAuthTries 50"

cat >"$T/userenum.py" <<'EOF'
import statistics, sys, threading, time
import paramiko
from paramiko.common import MSG_USERAUTH_FAILURE, MSG_USERAUTH_SUCCESS, cMSG_USERAUTH_REQUEST
from paramiko.message import Message

port, mode = int(sys.argv[1]), sys.argv[2]
seen = []
arrived = threading.Condition()
_orig = paramiko.auth_handler.AuthHandler._client_handler_table[MSG_USERAUTH_FAILURE]
def _spy(self, m):
    with arrived:
        seen.append("FAILURE %s partial=%s" % (",".join(m.get_list()), m.get_boolean()))
        arrived.notify_all()
    m.rewind()
    return _orig(self, m)
paramiko.auth_handler.AuthHandler._client_handler_table[MSG_USERAUTH_FAILURE] = _spy
_orig_ok = paramiko.auth_handler.AuthHandler._client_handler_table[MSG_USERAUTH_SUCCESS]
def _spy_ok(self, m):
    with arrived:
        seen.append("SUCCESS")
        arrived.notify_all()
    return _orig_ok(self, m)
paramiko.auth_handler.AuthHandler._client_handler_table[MSG_USERAUTH_SUCCESS] = _spy_ok

def transport():
    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=30)
    return t

def answer(t, before):
    """What the server did after the last request: a new FAILURE or a disconnect."""
    end = time.monotonic() + 10
    with arrived:
        while time.monotonic() < end:
            if len(seen) > before:
                return seen[-1]
            if not t.is_active():
                return "DISCONNECT"
            arrived.wait(0.05)  # woken at once by an answer
    return "NOTHING"

def session(user):
    """A connection that asked for the userauth service (with a "none"
    attempt): later attempts are sent as messages on it. (paramiko's own
    auth_* calls each ask for the service again, which shoal serve takes as
    a protocol error.)"""
    t = transport()
    del seen[:]
    try:
        t.auth_none(user)
    except paramiko.BadAuthenticationType:
        pass
    return t

def send(t, user, fields):
    m = Message()
    m.add_byte(cMSG_USERAUTH_REQUEST)
    m.add_string(user)
    m.add_string("ssh-connection")
    for kind, v in fields:
        {"s": m.add_string, "b": m.add_boolean}[kind](v)
    n = len(seen)
    t._send_message(m)
    return answer(t, n)

def password(t, user, pw):
    return send(t, user, [("s", "password"), ("b", False), ("s", pw)])

def none_then(user, second):
    """none, then a crafted request on the same connection."""
    t = transport()
    del seen[:]
    try:
        t.auth_none(user)
    except paramiko.BadAuthenticationType:
        pass
    first = seen[-1] if seen else "?"
    if second is None:
        t.close()
        return first
    m = Message()
    m.add_byte(cMSG_USERAUTH_REQUEST)
    m.add_string(user)
    m.add_string("ssh-connection")
    for kind, v in second:
        {"s": m.add_string, "b": m.add_boolean}[kind](v)
    n = len(seen)
    t._send_message(m)
    r = answer(t, n)
    t.close()
    return first + " | " + r

if mode == "probe":
    for user in sys.argv[3:]:
        print("%s none: %s" % (user, none_then(user, None)))
        # Truncated: no password string after the boolean.
        print("%s none+short-password: %s" % (user, none_then(user, [("s", "password"), ("b", False)])))
        # Truncated publickey (the CVE-2018-15473 probe): no key blob.
        print("%s none+short-publickey: %s" % (user, none_then(user, [("s", "publickey"), ("b", False),
                                                                    ("s", "ssh-ed25519")])))
        t = session(user)
        r = [password(t, user, "wrong-%d" % i) for i in range(2)]
        print("%s two wrong passwords: %s" % (user, " / ".join(r)))
        t.close()
elif mode == "kbd":
    # Each user must be prompted (an unknown one too).
    for user in sys.argv[3:]:
        t = transport()
        asked = []
        def handler(title, instr, prompts):
            asked.append(len(prompts))
            return ["wrong"] * len(prompts)
        try:
            t.auth_interactive(user, handler)
        except paramiko.AuthenticationException:
            pass
        print("%s kbd prompts: %s" % (user, asked))
        t.close()
elif mode == "after-unknown":
    # One attempt with an unknown name, then the real account on the same connection.
    fake, user, pw = sys.argv[3], sys.argv[4], open(sys.argv[5]).read().strip()
    t = session(fake)
    first = password(t, fake, pw)
    second = password(t, user, pw)
    print("after an unknown name (%s): %s: %s" % (first, user, second))
    t.close()
elif mode == "timing":
    n = int(sys.argv[3])
    users = sys.argv[4:]
    times = {u: [] for u in users}
    conns = {u: session(u) for u in users}
    for i in range(n):
        for u in users:
            t = conns[u]
            if i and i % 40 == 0:  # stay under MaxAuthTries
                t.close()
                t = conns[u] = session(u)
            t0 = time.perf_counter()
            r = password(t, u, "wrong")
            times[u].append((time.perf_counter() - t0) * 1000)
            if not r.startswith("FAILURE"):
                sys.exit("unexpected answer for %s: %s" % (u, r))
    for u in users:
        conns[u].close()
        print("median %s %.2f ms (%d attempts)" % (u, statistics.median(times[u]), len(times[u])))
EOF

run_cmd "$PEERS_PYTHON" "$T/userenum.py" "$SERVE_PORT" probe "$PEER_USER" "$FAKE" ${OTHER:+"$OTHER"}
sed 's/^/# /' "$T/out"
[ -s "$T/err" ] && sed 's/^/# stderr: /' "$T/err" | head -n 20
answer_of() { grep "^$1 $2: " "$T/out" | sed "s/^$1 $2: //"; }
for what in none none+short-password none+short-publickey "two wrong passwords"; do
    real=$(answer_of "$PEER_USER" "$what")
    fake=$(answer_of "$FAKE" "$what")
    check "$what: the same answer for an account and a made-up name ($real)" \
        test -n "$real" -a "$real" = "$fake"
    if [ -n "$OTHER" ]; then
        other=$(answer_of "$OTHER" "$what")
        check "$what: the same for an account without a PasswordFile entry ($other)" test "$other" = "$real"
    fi
done
check "none: password and keyboard-interactive are offered to everyone" \
    test "$(answer_of "$FAKE" none)" = "FAILURE publickey,password,keyboard-interactive partial=False"
check "CVE-2018-15473: a truncated publickey request ends the connection, for everyone" \
    test "$(answer_of "$FAKE" none+short-publickey)" = "FAILURE publickey,password,keyboard-interactive partial=False | DISCONNECT"
check "a truncated password request ends the connection, for everyone" \
    test "$(answer_of "$FAKE" none+short-password)" = "FAILURE publickey,password,keyboard-interactive partial=False | DISCONNECT"

run_cmd "$PEERS_PYTHON" "$T/userenum.py" "$SERVE_PORT" kbd "$PEER_USER" "$FAKE"
sed 's/^/# /' "$T/out"
check "keyboard-interactive: the account is prompted" grep -qx "$PEER_USER kbd prompts: \[1\]" "$T/out"
check "keyboard-interactive: the made-up name is prompted too" grep -qx "$FAKE kbd prompts: \[1\]" "$T/out"

run_cmd "$PEERS_PYTHON" "$T/userenum.py" "$SERVE_PORT" after-unknown "$FAKE" "$PEER_USER" "$T/pw"
sed 's/^/# /' "$T/out"
check "after one attempt with an unknown name, the account's password is still checked (it logs in)" \
    grep -q "^after an unknown name (FAILURE .*): $PEER_USER: SUCCESS$" "$T/out"

# ---- timing: printed, never asserted
N=${ENUM_TIMING_ATTEMPTS:-120}
run_cmd "$PEERS_PYTHON" "$T/userenum.py" "$SERVE_PORT" timing "$N" "$PEER_USER" "$FAKE" ${OTHER:+"$OTHER"}
check "the timing run completed" grep -q "^median $FAKE " "$T/out"
sed 's/^/# failed password attempt, /' "$T/out"
[ -s "$T/err" ] && sed "s/^/# stderr: /" "$T/err" | tail -n 5
stop_shoal_serve "$SERVE_PID"

finish
