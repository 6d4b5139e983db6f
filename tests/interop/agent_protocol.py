"""Scripted sessions with `shoal agent` (run by agent_protocol.sh).

Environment: SHOAL_BIN, AGENT_T (test dir with keys/), AGENT_PORT (shoal
serve listening on 127.0.0.1..12), AGENT_USER (login user)."""
import base64
import hashlib
import json
import os
import select
import subprocess
import sys
import time

BIN = os.environ["SHOAL_BIN"]
T = os.environ["AGENT_T"]
PORT = int(os.environ["AGENT_PORT"])
USER = os.environ["AGENT_USER"]
KEYS = T + "/keys"
FAILS = []
PASSES = [0]


def check(name, cond, detail=""):
    if cond:
        PASSES[0] += 1
        print("ok - " + name)
    else:
        FAILS.append(name)
        print("not ok - " + name + (": " + str(detail) if detail else ""))


def h(i, port=PORT):
    return "127.0.0.%d:%d" % (i, port)


class Agent:
    def __init__(self, *extra, env_home=True, user=USER, kh=None, agent_sock=None):
        env = dict(os.environ)
        if env_home:
            env["HOME"] = T + "/home"
        env.pop("SSH_AUTH_SOCK", None)
        if agent_sock:
            env["SSH_AUTH_SOCK"] = agent_sock
        args = [BIN, "agent", "-l", user, "-o", "UserKnownHostsFile=" + (kh or T + "/agent_kh")]
        args += list(extra)
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env)
        self.buf = b""
        self.raw = b""  # the last line as it came, before json.loads

    def send(self, obj):
        data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        if isinstance(data, str):
            data = data.encode()
        self.p.stdin.write(data + b"\n")
        self.p.stdin.flush()

    def line(self, timeout=20):
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.p.stdout.fileno(), 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        self.raw = ln
        return json.loads(ln)

    def until(self, pred, timeout=20):
        """Lines up to and including the first matching pred."""
        got = []
        end = time.time() + timeout
        while True:
            ln = self.line(max(0.1, end - time.time()))
            if ln is None:
                return got, None
            got.append(ln)
            if pred(ln):
                return got, ln

    def final(self, rid=None, timeout=30):
        return self.until(lambda x: x.get("Type") == "FinalReply" and x.get("Id") == rid, timeout)

    def close(self):
        """EOF on stdin: the agent must exit 0, cleanly (sanitizers included)."""
        try:
            self.p.stdin.close()
        except Exception:
            pass
        try:
            err = self.p.stderr.read().decode(errors="replace")
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            err = "did not exit"
        bad = [m for m in ("Sanitizer", "runtime error", "did not exit") if m in err]
        check("agent exits cleanly at EOF (rc %s)" % self.p.returncode, self.p.returncode == 0 and not bad,
              err[-2000:])


def replies(lines):
    return [x for x in lines if x.get("Type") == "Reply"]


def init(a):
    lines, ln = a.until(lambda x: x.get("Type") == "InitializeComplete")
    return lines, ln


def main():
    key = ["-i", KEYS + "/id_ed25519"]

    # ---- initialisation with passphrase requests; an early request waits ----
    a = Agent("-i", KEYS + "/enc_ed25519", "-i", KEYS + "/enc_pem.pub")
    first = a.line()
    check("PasswordRequest for the encrypted OpenSSH key",
          first and first.get("Type") == "PasswordRequest" and first.get("PasswordFor", "").endswith("enc_ed25519"),
          first)
    # A request line before the answer must not be taken as the answer.
    a.send({"Action": "ssh", "Cmd": "echo early", "Hosts": [h(2)], "Id": "early"})
    a.send({"Password": "secret phrase"})
    second = a.line()
    check("PasswordRequest for the PEM key (path given as .pub)",
          second and second.get("Type") == "PasswordRequest" and second.get("PasswordFor", "").endswith("enc_pem"),
          second)
    a.send({})
    lines, ic = init(a)
    check("InitializeComplete after the answers", ic == {"Type": "InitializeComplete", "InitializeComplete": True},
          lines)
    check("{} answer gives a non-critical UserError",
          any(x.get("Type") == "UserError" and not x["IsCritical"] and "No passphrase supplied" in x["ErrorMsg"]
              for x in lines), lines)
    lines, fin = a.final("early")
    r = replies(lines)
    check("early request runs after init with the decrypted key",
          fin and len(r) == 1 and r[0]["Success"] and r[0]["Stdout"] == "early\n" and r[0]["Id"] == "early", lines)
    a.close()

    # ---- the main session ----
    a = Agent(*key)
    lines, ic = init(a)
    check("InitializeComplete without encrypted keys", ic is not None and len(lines) == 1, lines)

    a.send({"Action": "ssh", "Cmd": "echo hello", "Hosts": [h(2), h(3), h(4)], "Timeout": 10000})
    lines, fin = a.final(None)
    r = replies(lines)
    check("ssh: one Reply per host, all successful",
          len(r) == 3 and all(x["Success"] and x["Stdout"] == "hello\n" and x["ErrMsg"] == "" for x in r), lines)
    check("ssh: Hostname is the requested string", sorted(x["Hostname"] for x in r) == sorted([h(2), h(3), h(4)]))
    check("ssh: ConnectionProgress per new connection (host part only)",
          sorted(x["ConnectedHost"] for x in lines if x["Type"] == "ConnectionProgress") ==
          ["127.0.0.2", "127.0.0.3", "127.0.0.4"], lines)
    check("ssh: FinalReply with TotalTime and empty TimedOutHosts",
          fin and fin["TimedOutHosts"] == {} and isinstance(fin["TotalTime"], float), fin)
    check("ssh: field order as GoSSHa (Type first)", all(list(x.keys())[0] == "Type" for x in lines))

    # Reuse: the same hosts again make no new connection.
    a.send({"Action": "ssh", "Cmd": "echo again", "Hosts": [h(2), h(3)]})
    lines, fin = a.final(None)
    check("connections are reused across requests (no ConnectionProgress)",
          fin and not any(x["Type"] == "ConnectionProgress" for x in lines) and len(replies(lines)) == 2, lines)

    # Exit status and signal.
    a.send({"Action": "ssh", "Cmd": "echo out; echo err >&2; exit 3", "Hosts": [h(2)], "Id": 1})
    lines, fin = a.final(1)
    r = replies(lines)
    check("exit status: Success false, GoSSHa's ErrMsg, ExitStatus, output kept",
          len(r) == 1 and not r[0]["Success"] and r[0]["ErrMsg"] == "Process exited with status 3" and
          r[0]["ExitStatus"] == 3 and r[0]["Stdout"] == "out\n" and r[0]["Stderr"] == "err\n", r)
    a.send({"Action": "ssh", "Cmd": "kill -TERM $$", "Hosts": [h(2)], "Id": 2})
    lines, fin = a.final(2)
    r = replies(lines)
    check("killed by a signal: ExitSignal", len(r) == 1 and not r[0]["Success"] and r[0].get("ExitSignal") == "TERM",
          r)
    check("killed by a signal: GoSSHa's ErrMsg (x/crypto/ssh's text)",
          len(r) == 1 and r[0]["ErrMsg"] == "Process exited with status 143 from signal TERM", r)
    check("a Reply says Truncated false when nothing was cut",
          len(r) == 1 and r[0].get("Truncated") is False and "TruncatedStreams" not in r[0], r)

    # Unreachable host, bad host string.
    a.send({"Action": "ssh", "Cmd": "true", "Hosts": ["127.0.0.250:%d" % PORT], "Id": 3})
    lines, fin = a.final(3)
    r = replies(lines)
    check("refused connection: classified Reply", len(r) == 1 and not r[0]["Success"] and
          r[0].get("ErrorClass") == "refused" and "refused" in r[0]["ErrMsg"], r)

    # Errors.
    a.send("this is not json")
    e = a.line()
    check("bad JSON: critical UserError", e and e["Type"] == "UserError" and e["IsCritical"], e)
    a.send({"Action": "bogus", "Hosts": [h(2)]})
    e = a.line()
    check("unknown action: critical UserError", e and e["IsCritical"] and "Unsupported action: bogus" in e["ErrorMsg"],
          e)
    a.send({"Action": "ssh", "Hosts": [h(2)]})
    e = a.line()
    check("empty Cmd: critical UserError, GoSSHa's text", e and e["IsCritical"] and e["ErrorMsg"] == "Empty 'Cmd'", e)
    a.send({"Action": "scp", "Target": "/tmp/x", "Hosts": [h(2)]})
    e = a.line()
    check("empty Source: GoSSHa's text", e and e["IsCritical"] and e["ErrorMsg"] == "Empty 'Source'", e)
    a.send({"Action": "scp", "Source": T + "/up3m", "Hosts": [h(2)]})
    e = a.line()
    check("empty Target: GoSSHa's text", e and e["IsCritical"] and e["ErrorMsg"] == "Empty 'Target'", e)

    # Numbers out of range: a critical UserError naming the field, and the
    # request does not run (a cast of 1e300 used to be undefined: UBSan
    # aborted, and a Timeout of 1e300 timed out at once).
    bad_numbers = [
        ("Timeout", {"Action": "ssh", "Cmd": "true", "Timeout": 1e300}),
        ("Timeout", {"Action": "ssh", "Cmd": "true", "Timeout": -1}),
        ("Timeout", {"Action": "ssh", "Cmd": "true", "Timeout": 1.5}),
        ("Timeout", {"Action": "ssh", "Cmd": "true", "Timeout": 2 ** 64}),  # beyond any integer type
        ("MaxThroughput", {"Action": "scp", "Source": T + "/up3m", "Target": "/tmp/x", "MaxThroughput": 1e300}),
        ("HostThroughput", {"Action": "scp", "Source": T + "/up3m", "Target": "/tmp/x", "HostThroughput": 1e20}),
        ("OutputLimit", {"Action": "ssh", "Cmd": "true", "OutputLimit": -5}),
        ("Port", {"Action": "ssh", "Cmd": "true", "Port": 70000}),
        ("Port", {"Action": "ssh", "Cmd": "true", "Port": 0}),
        ("Port", {"Action": "ssh", "Cmd": "true", "Port": "22"}),
        ("Hosts[0].Port", {"Action": "ssh", "Cmd": "true", "Hosts": [{"Host": "127.0.0.2", "Port": 99999}]}),
        ("Mode", {"Action": "scp", "Source": T + "/up3m", "Target": "/tmp/x", "Mode": 99999}),
        ("Mode", {"Action": "scp", "Source": T + "/up3m", "Target": "/tmp/x", "Mode": "rwx"}),
        ("Via", {"Action": "scp", "Source": T + "/up3m", "Target": "/tmp/x", "Via": "bogus"}),
    ]
    for i, (name, req) in enumerate(bad_numbers):
        req = dict(req, Id="num%d" % i)
        req.setdefault("Hosts", [h(2)])
        a.send(req)
        e = a.line()
        check("%s %s: critical UserError naming it" % (name, json.dumps({k: v for k, v in req.items()
                                                                           if k not in ("Action", "Cmd", "Source",
                                                                                        "Target", "Hosts", "Id")})),
              e and e["Type"] == "UserError" and e["IsCritical"] and name in e["ErrorMsg"] and e.get("Id") == req["Id"],
              e)
    a.send({"Action": "ssh", "Cmd": "echo fine", "Hosts": [h(2)], "Id": "after-numbers", "Timeout": 20000})
    lines, fin = a.final("after-numbers")
    check("after the refused lines: the next request runs, no FinalReply for the refused ones",
          fin and len(replies(lines)) == 1 and replies(lines)[0]["Stdout"] == "fine\n" and
          not any(x["Type"] == "FinalReply" and x.get("Id") != "after-numbers" for x in lines), lines)

    # Requests without an Id are served one at a time, in order, as GoSSHa:
    # the second waits for the first's FinalReply, and so does a bad line
    # between them; one with an Id does not wait.
    a.send({"Action": "ssh", "Cmd": "sleep 1; echo first", "Hosts": [h(2)]})
    a.send("not json either")
    a.send({"Action": "ssh", "Cmd": "echo second", "Hosts": [h(3)]})
    a.send({"Action": "ssh", "Cmd": "echo with-id", "Hosts": [h(4)], "Id": "beside"})
    got = []
    for _ in range(3):
        lines, fin = a.final(None)
        got += lines
        if sum(x["Type"] == "FinalReply" and "Id" not in x for x in got) == 2:
            break
    kinds = [(x["Type"], x.get("Stdout", x.get("Id", ""))) for x in got
             if x["Type"] in ("Reply", "FinalReply", "UserError")]
    seq = [k for k in kinds if k[1] not in ("beside", "with-id\n")]
    check("no Id: Reply and FinalReply of the first, the bad line, then the second",
          seq == [("Reply", "first\n"), ("FinalReply", ""), ("UserError", ""), ("Reply", "second\n"),
                  ("FinalReply", "")], kinds)
    beside = [i for i, k in enumerate(kinds) if k == ("FinalReply", "beside")]
    check("a request with an Id runs beside them (its FinalReply before the first's)",
          beside and beside[0] < kinds.index(("FinalReply", "")), kinds)

    # stdin is closed at once: a command reading it ends.
    a.send({"Action": "ssh", "Cmd": "cat; echo stdin-closed", "Hosts": [h(5)], "Id": "eof", "Timeout": 20000})
    lines, fin = a.final("eof")
    r = replies(lines)
    check("stdin: EOF right after the command starts", fin and fin["TimedOutHosts"] == {} and len(r) == 1 and
          r[0]["Success"] and r[0]["Stdout"] == "stdin-closed\n", lines)

    # U+0085, U+2028 and U+2029 leave escaped: splitlines() keeps the line whole.
    a.send({"Action": "ssh", "Cmd": "printf 'a\\342\\200\\250b\\342\\200\\251c\\302\\205d'", "Hosts": [h(5)],
            "Id": "ls"})
    raw = None
    while True:
        ln = a.line()
        if ln is None or ln.get("Type") == "Reply":
            raw = a.raw
            break
    a.final("ls")
    check("line separators in output are escaped (\\u2028, \\u2029, \\u0085)",
          raw is not None and b"\\u2028" in raw and b"\\u2029" in raw and b"\\u0085" in raw and
          len(raw.decode().splitlines()) == 1 and json.loads(raw)["Stdout"] == "a\u2028b\u2029c\u0085d", raw)
    a.send({"Action": "scp", "Source": T + "/missing", "Target": "/tmp/x", "Hosts": [h(2)]})
    e = a.line()
    check("unreadable Source: critical UserError", e and e["IsCritical"] and "missing" in e["ErrorMsg"], e)
    a.send({"Action": "ssh", "Cmd": "true", "Hosts": [h(2)], "Timeout": "soon"})
    e = a.line()
    check("Timeout as a string: critical UserError", e and e["IsCritical"], e)

    # Field names are case-insensitive, unknown fields ignored.
    a.send({"action": "ssh", "CMD": "echo ci", "hosts": [h(5)], "Whatever": [1, 2], "Id": "ci"})
    lines, fin = a.final("ci")
    r = replies(lines)
    check("case-insensitive fields, unknown ignored", len(r) == 1 and r[0]["Stdout"] == "ci\n", lines)

    # Timeout: TimedOutHosts lists the host and FinalReply comes at the deadline.
    t0 = time.time()
    a.send({"Action": "ssh", "Cmd": "sleep 30", "Hosts": [h(6), h(2)], "Timeout": 1000, "Id": "to"})
    lines, fin = a.final("to")
    el = time.time() - t0
    check("Timeout: TimedOutHosts lists every unfinished host",
          fin and fin["TimedOutHosts"] == {h(6): True, h(2): True} and not replies(lines), lines)
    check("Timeout: FinalReply within the deadline + 1 s (%.2f s)" % el, el < 2.0)

    # Concurrent requests with Id: the fast one ends first.
    a.send({"Action": "ssh", "Cmd": "sleep 1; echo slow", "Hosts": [h(3)], "Id": "slow"})
    a.send({"Action": "ssh", "Cmd": "echo fast", "Hosts": [h(4)], "Id": "fast"})
    lines, _ = a.until(lambda x: x.get("Type") == "FinalReply" and x.get("Id") == "slow")
    finals = [x["Id"] for x in lines if x["Type"] == "FinalReply"]
    check("concurrent requests: the later, faster one finishes first", finals == ["fast", "slow"], lines)
    check("concurrent requests: every line carries its Id",
          all("Id" in x for x in lines if x["Type"] in ("Reply", "FinalReply", "ConnectionProgress")), lines)

    # Cancel.
    t0 = time.time()
    a.send({"Action": "ssh", "Cmd": "sleep 30", "Hosts": [h(7), h(8)], "Id": "c"})
    time.sleep(0.5)
    a.send({"Action": "cancel", "Id": "c"})
    lines, fin = a.final("c")
    r = replies(lines)
    check("cancel: each host replies cancelled, FinalReply says Cancelled",
          fin and fin.get("Cancelled") is True and len(r) == 2 and
          all(x.get("ErrorClass") == "cancelled" for x in r) and time.time() - t0 < 5, lines)

    # Streaming.
    a.send({"Action": "ssh", "Cmd": "echo a; sleep 0.3; echo b >&2", "Hosts": [h(9)], "Stream": True, "Id": "s"})
    lines, fin = a.final("s")
    outs = [(x["Stream"], x["Data"]) for x in lines if x["Type"] == "Output"]
    check("Stream: Output lines as they arrive, before the Reply",
          outs == [("stdout", "a\n"), ("stderr", "b\n")] and lines.index(
              [x for x in lines if x["Type"] == "Output"][-1]) < lines.index(replies(lines)[0]), lines)

    # Base64: byte-exact output.
    a.send({"Action": "ssh", "Cmd": "printf '\\377\\000x'", "Hosts": [h(9)], "Base64": True, "Id": "b"})
    lines, fin = a.final("b")
    r = replies(lines)
    check("Base64: byte-exact stdout", len(r) == 1 and base64.b64decode(r[0]["Stdout"]) == b"\xff\x00x", r)
    a.send({"Action": "ssh", "Cmd": "printf 'a\\377b'", "Hosts": [h(9)], "Id": "u"})
    lines, fin = a.final("u")
    r = replies(lines)
    check("without Base64 invalid UTF-8 becomes U+FFFD", len(r) == 1 and r[0]["Stdout"] == "a\ufffdb", r)

    # Output cap.
    a.send({"Action": "ssh", "Cmd": "head -c 100000 /dev/zero | tr '\\0' x", "Hosts": [h(9)], "OutputLimit": 1000,
            "Id": "cap"})
    lines, fin = a.final("cap")
    r = replies(lines)
    check("OutputLimit caps stdout and says Truncated",
          len(r) == 1 and len(r[0]["Stdout"]) == 1000 and r[0].get("Truncated") is True and r[0]["Success"], r)
    check("... and which stream", len(r) == 1 and r[0].get("TruncatedStreams") == ["stdout"], r)

    # Per-host user, port and key.
    a.send({"Action": "ssh", "Cmd": "id -un", "Id": "ph",
            "Hosts": [{"Host": "127.0.0.10", "Port": PORT, "User": USER, "Key": KEYS + "/id_ecdsa"},
                      "%s@127.0.0.11:%d" % (USER, PORT), "[127.0.0.12]:%d" % PORT]})
    lines, fin = a.final("ph")
    r = replies(lines)
    check("per-host user/port/key objects, user@host:port and [addr]:port",
          len(r) == 3 and all(x["Success"] and x["Stdout"] == USER + "\n" for x in r), lines)
    a.send({"Action": "ssh", "Cmd": "true", "Id": "nouser", "Hosts": [{"Host": "127.0.0.10", "Port": PORT,
                                                                        "User": "nosuchuser"}]})
    lines, fin = a.final("nouser")
    r = replies(lines)
    check("auth failure classified", len(r) == 1 and r[0].get("ErrorClass") == "auth", r)

    # Uploads.
    for size in (0, 1, 32767, 32768, 32769):
        src = "%s/up_%d" % (T, size)
        with open(src, "wb") as f:
            f.write(os.urandom(size))
        dst = "%s/updir/dst_%d" % (T, size)
        a.send({"Action": "scp", "Source": src, "Target": dst, "Hosts": [h(2)], "Mode": "0640", "Id": "up%d" % size})
        lines, fin = a.final("up%d" % size)
        r = replies(lines)
        ok = len(r) == 1 and r[0]["Success"] and os.path.exists(dst) and \
            open(dst, "rb").read() == open(src, "rb").read() and (os.stat(dst).st_mode & 0o777) == 0o640
        check("scp action (SFTP) %d bytes: same bytes, mode 0640" % size, ok, lines)
    for via in ("scp", "cat"):
        dst = "%s/updir/via_%s" % (T, via)
        a.send({"Action": "scp", "Source": T + "/up_32769", "Target": dst, "Hosts": [h(3)], "Via": via,
                "Verify": True, "Id": via})
        lines, fin = a.final(via)
        r = replies(lines)
        check("upload via %s with sha256 verification" % via,
              len(r) == 1 and r[0]["Success"] and open(dst, "rb").read() == open(T + "/up_32769", "rb").read(), lines)
    a.send({"Action": "scp", "Source": T + "/up_1", "Target": T + "/updir/no/such/dir/file", "Hosts": [h(2)], "Id": "bad"})
    lines, fin = a.final("bad")
    r = replies(lines)
    check("failed upload: Success false, classified upload, nothing left",
          len(r) == 1 and not r[0]["Success"] and r[0].get("ErrorClass") == "upload" and
          not os.path.exists(T + "/updir/no"), r)
    t0 = time.time()
    a.send({"Action": "scp", "Source": T + "/up3m", "Target": T + "/updir/dst3m", "Hosts": [h(4), h(5)],
            "MaxThroughput": 1500000, "Id": "mt"})
    lines, fin = a.final("mt", timeout=60)
    el = time.time() - t0
    want = hashlib.sha256(open(T + "/up3m", "rb").read()).hexdigest()
    check("MaxThroughput 1.5 MB/s shared by 2 hosts x 3 MB takes >= 3.5 s (%.2f s)" % el,
          fin and all(x["Success"] for x in replies(lines)) and el >= 3.5 and
          hashlib.sha256(open(T + "/updir/dst3m", "rb").read()).hexdigest() == want, lines)

    # A 5 MB input line.
    big = json.dumps({"Action": "ssh", "Cmd": "echo big", "Hosts": [h(2)], "Id": "big", "Padding": "x" * 5000000})
    a.send(big)
    lines, fin = a.final("big")
    r = replies(lines)
    check("a 5 MB input line is read whole", len(r) == 1 and r[0]["Stdout"] == "big\n", lines)
    a.close()

    # A dead SSH_AUTH_SOCK: GoSSHa's non-critical warning, then work goes on.
    a = Agent(*key, agent_sock=T + "/no-such-agent.sock")
    lines, ic = init(a)
    check("dead SSH_AUTH_SOCK: a non-critical UserError before InitializeComplete",
          ic and any(x["Type"] == "UserError" and not x["IsCritical"] and
                     x["ErrorMsg"].startswith("Cannot open connection to SSH agent: ") and
                     "no-such-agent.sock" in x["ErrorMsg"] for x in lines), lines)
    a.send({"Action": "ssh", "Cmd": "echo keys-still", "Hosts": [h(2)]})
    lines, fin = a.final(None)
    check("dead SSH_AUTH_SOCK: the key files still log in",
          fin and len(replies(lines)) == 1 and replies(lines)[0]["Stdout"] == "keys-still\n", lines)
    a.close()

    # -m 1: one host at a time per request.
    a = Agent("-m", "1", *key)
    init(a)
    t0 = time.time()
    a.send({"Action": "ssh", "Cmd": "sleep 0.5", "Hosts": [h(2), h(3), h(4)]})
    lines, fin = a.final(None)
    el = time.time() - t0
    check("-m 1 runs hosts one after another (%.2f s)" % el, fin and len(replies(lines)) == 3 and el >= 1.4, lines)
    a.close()

    # -d: a new connection for each request.
    a = Agent("-d", *key)
    init(a)
    for i in range(2):
        a.send({"Action": "ssh", "Cmd": "true", "Hosts": [h(2)]})
        lines, fin = a.final(None)
        check("-d: request %d dials again" % (i + 1),
              any(x["Type"] == "ConnectionProgress" for x in lines), lines)
    a.close()

    # Changed host key: a known_hosts file with another key for the host.
    bad_kh = T + "/bad_kh"
    with open(bad_kh, "w") as f:
        pub = open(KEYS + "/stranger.pub").read().split()
        f.write("[127.0.0.2]:%d %s %s\n" % (PORT, pub[0], pub[1]))
    a = Agent(*key, kh=bad_kh)
    init(a)
    a.send({"Action": "ssh", "Cmd": "true", "Hosts": [h(2)]})
    lines, fin = a.final(None)
    r = replies(lines)
    check("changed host key: refused, classified, names the file",
          len(r) == 1 and r[0].get("ErrorClass") == "host key" and "bad_kh" in r[0]["ErrMsg"], r)
    a.close()
    check("accept-new recorded host keys in the agent's known_hosts",
          os.path.exists(T + "/agent_kh") and "[127.0.0.2]:%d" % PORT in open(T + "/agent_kh").read())

    # EOF flush: stdin closed right after the request; FinalReply still out.
    env = dict(os.environ, HOME=T + "/home")
    req = json.dumps({"Action": "ssh", "Cmd": "sleep 0.3; echo eof", "Hosts": [h(2)]}) + "\n"
    p = subprocess.run([BIN, "agent", "-l", USER, "-o", "UserKnownHostsFile=" + T + "/agent_kh"] + key,
                       input=req.encode(), capture_output=True, env=env, timeout=30)
    outl = [json.loads(x) for x in p.stdout.decode().splitlines()]
    check("EOF on stdin: the request finishes and FinalReply is flushed",
          p.returncode == 0 and b"Sanitizer" not in p.stderr and outl and outl[-1]["Type"] == "FinalReply" and
          any(x.get("Stdout") == "eof\n" for x in outl), p.stdout[-500:])

    print("agent_protocol.py: %d passed, %d failed" % (PASSES[0], len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
