#!/usr/bin/python3
"""A minimal `ssh HOST CMD` built on paramiko, for shoal serve's interop tests.

    paramiko_client.py --port N --user U --known-hosts FILE
                       [--key FILE] [--password-file FILE] [--env NAME=VALUE]... CMD

Same contract as asyncssh_client.py: the host key must be in FILE (as
"[127.0.0.1]:N"), stdin is sent then EOF, stdout and stderr are copied as
raw bytes, the exit code is the command's exit status, 128+N for a signal
(paramiko does not expose exit-signal: such a command reports "no exit
status" on stderr and 255), and 255 when the connection or login fails.
Run with Debian's /usr/bin/python3 (python3-paramiko).
"""
import argparse
import os
import select
import sys
import threading
import warnings

warnings.filterwarnings("ignore")  # cryptography deprecation noise

import paramiko  # noqa: E402

CHUNK = 65536


def pump_stdin(chan):
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered
    # reader makes the interpreter abort at exit.
    try:
        while True:
            data = os.read(0, CHUNK)
            if not data:
                break
            chan.sendall(data)
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("--key")
    ap.add_argument("--password-file")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("command")
    a = ap.parse_args()
    client = paramiko.SSHClient()
    client.load_host_keys(a.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kw = dict(username=a.user, look_for_keys=False, allow_agent=False, timeout=30,
              banner_timeout=30, auth_timeout=30)
    # Both may be given: paramiko tries the key, then the password (asking
    # for the userauth service again before the second method).
    if a.key:
        kw["key_filename"] = a.key
    if a.password_file:
        with open(a.password_file) as f:
            kw["password"] = f.read().rstrip("\n")
    if not a.key and not a.password_file:
        ap.error("--key or --password-file is needed")
    try:
        client.connect("127.0.0.1", a.port, **kw)
        chan = client.get_transport().open_session()
        if a.env:
            chan.update_environment(dict(e.split("=", 1) for e in a.env))
        chan.exec_command(a.command)
    except (OSError, paramiko.SSHException) as e:
        sys.stderr.write("paramiko_client: %s: %s\n" % (type(e).__name__, e))
        return 255
    feeder = threading.Thread(target=pump_stdin, args=(chan,), daemon=True)
    feeder.start()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while True:
        select.select([chan], [], [], 1.0)
        progressed = False
        while chan.recv_ready():
            out.write(chan.recv(CHUNK))
            progressed = True
        while chan.recv_stderr_ready():
            err.write(chan.recv_stderr(CHUNK))
            progressed = True
        if not progressed and chan.exit_status_ready() and not chan.recv_ready() \
                and not chan.recv_stderr_ready() and (chan.eof_received or chan.closed):
            break
    out.flush()
    status = chan.recv_exit_status()
    client.close()
    if status < 0:
        sys.stderr.write("paramiko_client: no exit status (killed by a signal?)\n")
        return 255
    return status


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # without waiting for the stdin thread
