#!/usr/bin/python3
"""A small exec-only SSH server built on asyncssh, for shoal's interop tests.

Run with Debian's /usr/bin/python3 (python3-asyncssh). It listens on
127.0.0.1 only, on the given port or (default) one the kernel picks, and
prints "READY <port>" on stdout once it accepts connections.

Authentication: any user name; public keys listed in --authorized-keys;
password auth (and, through asyncssh's built-in mapping, keyboard-interactive
with one "Password:" prompt) with the password in --password-file. User names
given with --none-auth-user (repeatable; default: the comma-separated names in
$PY_NONE_AUTH_USERS) need no authentication at all: their "none" request
succeeds at once.

Sessions: only "exec" requests. The command runs with /bin/sh -c as this
process's user; stdin, stdout and stderr are streamed both ways as raw bytes;
the exit status is reported with "exit-status", or "exit-signal" when the
command died from a signal. "env" requests for LANG, LC_* and SHOAL_* are
passed to the command, like the test sshd's AcceptEnv.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import warnings

warnings.filterwarnings("ignore")  # cryptography deprecation noise

import asyncssh  # noqa: E402

CHUNK = 65536
log = logging.getLogger("asyncssh_server")


def accepted_env(name):
    return name == "LANG" or name.startswith("LC_") or name.startswith("SHOAL_")


class Server(asyncssh.SSHServer):
    def __init__(self, password, none_users=()):
        self._password = password
        self._none_users = frozenset(none_users)
        self._peer = "?"

    def connection_made(self, conn):
        self._peer = conn.get_extra_info("peername")
        log.info("connection from %s", self._peer)

    def connection_lost(self, exc):
        log.info("connection from %s closed: %s", self._peer, exc or "normally")

    def begin_auth(self, username):
        # False: no authentication needed, the "none" method succeeds.
        if username in self._none_users:
            log.info("user %s needs no authentication", username)
            return False
        return True

    def password_auth_supported(self):
        return self._password is not None

    def validate_password(self, username, password):
        good = password == self._password
        log.info("password for %s: %s", username, "accepted" if good else "rejected")
        return good


async def copy_out(reader, stream):
    """Command output -> channel, honouring the channel's flow control."""
    while True:
        data = await reader.read(CHUNK)
        if not data:
            return
        stream.write(data)
        await stream.drain()


async def copy_in(stream, writer):
    """Channel stdin -> command stdin; EOF from the client closes it."""
    try:
        while True:
            data = await stream.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        # The command stopped reading: like sshd, drop the rest.
        pass
    finally:
        try:
            writer.close()
        except (BrokenPipeError, ConnectionResetError):
            pass


async def handle(process):
    command = process.command
    if command is None:
        process.stderr.write(b"this test server only supports exec requests\n")
        process.exit(1)
        return
    log.info("exec: %r", command)
    env = dict(os.environ)
    for key, value in (process.env or {}).items():
        key = key.decode() if isinstance(key, bytes) else key
        value = value.decode() if isinstance(value, bytes) else value
        if accepted_env(key):
            env[key] = value
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env)
    except OSError as exc:
        process.stderr.write(("cannot run /bin/sh: %s\n" % exc).encode())
        process.exit(127)
        return
    stdin_task = asyncio.ensure_future(copy_in(process.stdin, proc.stdin))
    try:
        await asyncio.gather(copy_out(proc.stdout, process.stdout),
                             copy_out(proc.stderr, process.stderr))
        rc = await proc.wait()
    except (asyncssh.Error, ConnectionError, BrokenPipeError) as exc:
        # The client went away: stop the command.
        log.info("channel lost (%s); killing the command", exc)
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        stdin_task.cancel()
        return
    if not stdin_task.done():
        stdin_task.cancel()
    if rc < 0:
        try:
            name = signal.Signals(-rc).name[3:]  # SIGTERM -> TERM
        except ValueError:
            name = "KILL"
        log.info("command killed by signal %s", name)
        process.exit_with_signal(name)
    else:
        log.info("command exited with %d", rc)
        process.exit(rc)


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host-key", action="append", required=True)
    ap.add_argument("--authorized-keys", required=True)
    ap.add_argument("--password-file")
    ap.add_argument("--none-auth-user", action="append", default=None)
    args = ap.parse_args()
    none_users = args.none_auth_user
    if none_users is None:
        none_users = [u for u in os.environ.get("PY_NONE_AUTH_USERS", "").split(",") if u]

    password = None
    if args.password_file:
        with open(args.password_file) as f:
            password = f.read().strip()

    server = await asyncssh.listen(
        "127.0.0.1", args.port,
        server_host_keys=args.host_key,
        authorized_client_keys=args.authorized_keys,
        server_factory=lambda: Server(password, none_users),
        process_factory=handle,
        encoding=None,          # bytes, not str, on every stream
        agent_forwarding=False,
        x11_forwarding=False,
        allow_scp=False,
        reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    await server.wait_closed()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    asyncssh.set_log_level(logging.INFO)
    # SIGTERM from the test's EXIT trap: exit at once.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
