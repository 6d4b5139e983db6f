#!/usr/bin/python3
"""A small exec-only SSH server built on paramiko, for shoal's interop tests.

Run with Debian's /usr/bin/python3 (python3-paramiko). It listens on
127.0.0.1 only, on the given port or (default) one the kernel picks, and
prints "READY <port>" on stdout once it accepts connections.

Authentication: any user name; public keys listed in --authorized-keys
(paramiko checks the signature, we compare the key blob); password and
keyboard-interactive (one "Password: " prompt) with the password in
--password-file.

Sessions: only "exec" requests. The command runs with /bin/sh -c as this
process's user; stdin, stdout and stderr are streamed both ways as raw bytes;
the exit status is reported with "exit-status", or "exit-signal" (which
paramiko has no API for, so the message is built here) when the command died
from a signal. One thread per connection, three per running command.
"""

import argparse
import base64
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import warnings

warnings.filterwarnings("ignore")  # cryptography deprecation noise

import paramiko  # noqa: E402
from paramiko.common import MSG_CHANNEL_REQUEST, cMSG_CHANNEL_REQUEST  # noqa: E402
from paramiko.message import Message  # noqa: E402

CHUNK = 65536
log = logging.getLogger("paramiko_server")


# paramiko answers an exec request (CHANNEL_SUCCESS) only after
# check_channel_exec_request() returns, on its transport thread. So that no
# output or exit status can overtake that answer, the command's thread waits
# for this hook, which runs right after the answer is queued.
_orig_handle_request = paramiko.Channel._handle_request


def _handle_request(self, m):
    _orig_handle_request(self, m)
    replied = getattr(self, "_test_replied", None)
    if replied is not None:
        replied.set()


# The transport dispatches through this table, built at import time.
paramiko.Transport._channel_handler_table[MSG_CHANNEL_REQUEST] = _handle_request


def load_host_key(path):
    with open(path + ".pub") as f:
        kind = f.read().split()[0]
    if kind == "ssh-ed25519":
        return paramiko.Ed25519Key.from_private_key_file(path)
    if kind.startswith("ecdsa-"):
        return paramiko.ECDSAKey.from_private_key_file(path)
    if kind == "ssh-rsa":
        return paramiko.RSAKey.from_private_key_file(path)
    raise SystemExit("unsupported host key type %s in %s" % (kind, path))


def load_authorized(path):
    """Key blobs of an authorized_keys file (options and comments ignored)."""
    blobs = set()
    with open(path) as f:
        for line in f:
            fields = line.split()
            for i, field in enumerate(fields[:-1]):
                if field.startswith(("ssh-", "ecdsa-", "sk-")):
                    try:
                        blobs.add(base64.b64decode(fields[i + 1]))
                    except ValueError:
                        pass
                    break
    return blobs


def accepted_env(name):
    return name == "LANG" or name.startswith("LC_") or name.startswith("SHOAL_")


class Server(paramiko.ServerInterface):
    def __init__(self, authorized, password):
        self.authorized = authorized
        self.password = password
        self.env = {}

    def get_allowed_auths(self, username):
        methods = ["publickey"]
        if self.password is not None:
            methods += ["password", "keyboard-interactive"]
        return ",".join(methods)

    def check_auth_none(self, username):
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        good = key.asbytes() in self.authorized
        log.info("publickey %s for %s: %s", key.get_name(), username,
                 "acceptable" if good else "rejected")
        return paramiko.AUTH_SUCCESSFUL if good else paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        good = self.password is not None and password == self.password
        log.info("password for %s: %s", username, "accepted" if good else "rejected")
        return paramiko.AUTH_SUCCESSFUL if good else paramiko.AUTH_FAILED

    def check_auth_interactive(self, username, submethods):
        if self.password is None:
            return paramiko.AUTH_FAILED
        query = paramiko.InteractiveQuery("", "")
        query.add_prompt("Password: ", False)
        return query

    def check_auth_interactive_response(self, responses):
        good = len(responses) == 1 and responses[0] == self.password
        log.info("keyboard-interactive: %s", "accepted" if good else "rejected")
        return paramiko.AUTH_SUCCESSFUL if good else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_env_request(self, channel, name, value):
        name = name.decode() if isinstance(name, bytes) else name
        value = value.decode() if isinstance(value, bytes) else value
        if not accepted_env(name):
            return False
        self.env.setdefault(channel.get_id(), {})[name] = value
        return True

    def check_channel_exec_request(self, channel, command):
        command = command.decode() if isinstance(command, bytes) else command
        log.info("exec: %r", command)
        channel._test_replied = threading.Event()
        env = dict(os.environ)
        env.update(self.env.pop(channel.get_id(), {}))
        threading.Thread(target=run_command, args=(channel, command, env),
                         daemon=True).start()
        return True

    def check_channel_shell_request(self, channel):
        return False

    def check_channel_pty_request(self, *args):
        return False


def send_exit_signal(chan, name):
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("exit-signal")
    m.add_boolean(False)
    m.add_string(name)       # signal name without "SIG"
    m.add_boolean(False)     # core dumped
    m.add_string("")         # error message
    m.add_string("")         # language tag
    chan.transport._send_user_message(m)


def run_command(chan, command, env):
    if not chan._test_replied.wait(10):
        log.info("exec reply hook did not fire; going on anyway")
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    except OSError as exc:
        chan.sendall_stderr(("cannot run /bin/sh: %s\n" % exc).encode())
        chan.send_exit_status(127)
        chan.close()
        return

    def copy_in():
        try:
            while True:
                data = chan.recv(CHUNK)
                if not data:
                    break  # EOF (or channel closed)
                proc.stdin.write(data)
                proc.stdin.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the command stopped reading: drop the rest, like sshd
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def copy_out(fd, send):
        try:
            while True:
                data = os.read(fd, CHUNK)
                if not data:
                    return
                send(data)
        except (OSError, EOFError, socket.error) as exc:
            log.info("output copy stopped: %s", exc)

    threading.Thread(target=copy_in, daemon=True).start()
    out = threading.Thread(target=copy_out, args=(proc.stdout.fileno(), chan.sendall))
    err = threading.Thread(target=copy_out, args=(proc.stderr.fileno(), chan.sendall_stderr))
    out.start()
    err.start()
    out.join()
    err.join()
    rc = proc.wait()
    try:
        chan.shutdown_write()  # EOF, then the status, then close, like sshd
        if rc < 0:
            try:
                name = signal.Signals(-rc).name[3:]  # SIGTERM -> TERM
            except ValueError:
                name = "KILL"
            log.info("command killed by signal %s", name)
            send_exit_signal(chan, name)
        else:
            log.info("command exited with %d", rc)
            chan.send_exit_status(rc)
        chan.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.info("could not report the exit status: %s", exc)


def serve(sock, addr, host_keys, authorized, password):
    log.info("connection from %s", addr)
    transport = paramiko.Transport(sock)
    for key in host_keys:
        transport.add_server_key(key)
    server = Server(authorized, password)
    try:
        transport.start_server(server=server)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        log.info("handshake with %s failed: %s", addr, exc)
        return
    # Take channels off paramiko's queue; the exec hook does the work. Keep a
    # reference: paramiko holds channels weakly and closes collected ones.
    channels = []
    while transport.is_active():
        chan = transport.accept(1)
        if chan is not None:
            channels.append(chan)
            channels = [c for c in channels if not c.closed]
    log.info("connection from %s closed", addr)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host-key", action="append", required=True)
    ap.add_argument("--authorized-keys", required=True)
    ap.add_argument("--password-file")
    args = ap.parse_args()

    host_keys = [load_host_key(p) for p in args.host_key]
    authorized = load_authorized(args.authorized_keys)
    password = None
    if args.password_file:
        with open(args.password_file) as f:
            password = f.read().strip()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(100)
    print("READY %d" % sock.getsockname()[1], flush=True)
    while True:
        conn, addr = sock.accept()
        threading.Thread(target=serve, args=(conn, addr, host_keys, authorized, password),
                         daemon=True).start()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("paramiko").setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        main()
    except KeyboardInterrupt:
        pass
