#!/usr/bin/python3
"""A minimal `ssh HOST CMD` built on asyncssh, for shoal serve's interop tests.

    asyncssh_client.py --port N --user U --known-hosts FILE
                       (--key FILE | --password-file FILE) [--env NAME=VALUE]... CMD

Connects to 127.0.0.1:N (the host key must be in FILE as "[127.0.0.1]:N"),
logs in with the key or the password, runs CMD, sends everything on stdin
then EOF, and writes the command's stdout and stderr to ours, as raw bytes.
Exit code: the command's exit status; 128+N when it was killed by a signal
(and "remote command killed by signal NAME" on stderr); 255 when the
connection or the login fails (the reason on stderr).
Run with Debian's /usr/bin/python3 (python3-asyncssh).
"""
import argparse
import asyncio
import signal
import sys
import warnings

warnings.filterwarnings("ignore")  # cryptography deprecation noise

import asyncssh  # noqa: E402


async def run(a):
    kw = dict(port=a.port, username=a.user, known_hosts=a.known_hosts, agent_path=None)
    if a.key:
        kw.update(client_keys=[a.key], password=None, preferred_auth="publickey")
    else:
        with open(a.password_file) as f:
            kw.update(client_keys=None, password=f.read().rstrip("\n"),
                      preferred_auth="password,keyboard-interactive")
    env = dict(e.split("=", 1) for e in a.env)
    data = sys.stdin.buffer.read()
    async with asyncssh.connect("127.0.0.1", **kw) as conn:
        # run(input=b"") would send no EOF at all: use DEVNULL for no input.
        io = dict(input=data) if data else dict(stdin=asyncssh.DEVNULL)
        r = await conn.run(a.command, encoding=None, check=False, env=env or None, **io)
    sys.stdout.buffer.write(r.stdout or b"")
    sys.stderr.buffer.write(r.stderr or b"")
    if r.exit_signal:
        name = r.exit_signal[0]
        sys.stderr.write("remote command killed by signal %s\n" % name)
        try:
            return 128 + int(getattr(signal, "SIG" + name))
        except (AttributeError, TypeError, ValueError):
            return 255
    return r.exit_status if r.exit_status is not None else 255


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
    if not a.key and not a.password_file:
        ap.error("--key or --password-file is needed")
    try:
        return asyncio.run(asyncio.wait_for(run(a), 120))
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as e:
        sys.stderr.write("asyncssh_client: %s: %s\n" % (type(e).__name__, e))
        return 255


if __name__ == "__main__":
    sys.exit(main())
