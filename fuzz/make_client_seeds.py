#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/fuzz_client_after_kex.c:

  fuzz/corpus/client_after_kex/  byte 0: flags (cipher, early channel,
                                 delivery, second channel, manual window),
                                 then records: u16 big-endian header
                                 (bits 0-14 payload length, bit 15 = keep
                                 for the next read) and a payload that the
                                 harness seals with the server's keys.

The payloads are what a server sends after NEWKEYS, in the order the
client expects them: EXT_INFO, SERVICE_ACCEPT, the answers to its signed
first key (USERAUTH_FAILURE), to its query for the second key (PK_OK), to
keyboard-interactive (INFO_REQUEST) and password, BANNER, SUCCESS, then
channel 0's confirmation, request replies, data, stderr, window
adjustments, exit status or signal, EOF and CLOSE, global requests and
keepalive answers.

PK_OK must name the client's second key: the harness makes it from the
seed bytes 0x80..0x9f, and so does this script (python3-cryptography).
Everything else is fixed, so re-running the script reproduces the files
byte for byte. Usage: /usr/bin/python3 fuzz/make_client_seeds.py
"""
import os
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))


def u32(v):
    return struct.pack(">I", v)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def boolean(v):
    return b"\x01" if v else b"\x00"


def rec(payload, hold=False):
    assert 0 < len(payload) < 0x8000
    return struct.pack(">H", len(payload) | (0x8000 if hold else 0)) + payload


def ed25519_blob(first):
    key = Ed25519PrivateKey.from_private_bytes(bytes((first + i) & 0xFF for i in range(32)))
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return s("ssh-ed25519") + s(raw)


BLOB_B = ed25519_blob(0x80)  # the client's identity 1 (signed via the callback)
BLOB_A = ed25519_blob(0x40)  # identity 0 (signed at once)

# ---- transport and auth payloads ----

def ext_info(*pairs):
    return b"\x07" + u32(len(pairs)) + b"".join(s(n) + s(v) for n, v in pairs)


SERVER_SIG_ALGS = ("server-sig-algs", "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256")


def service_accept(name="ssh-userauth"):
    return b"\x06" + s(name)


def failure(methods="publickey,password,keyboard-interactive", partial=False):
    return b"\x33" + s(methods) + boolean(partial)


SUCCESS = b"\x34"


def banner(text, lang=""):
    return b"\x35" + s(text) + s(lang)


def pk_ok(alg="ssh-ed25519", blob=BLOB_B):
    return b"\x3c" + s(alg) + s(blob)


def info_request(name, instruction, prompts):
    return (b"\x3c" + s(name) + s(instruction) + s("") + u32(len(prompts))
            + b"".join(s(p) + boolean(e) for p, e in prompts))


def ignore(data=b"x"):
    return b"\x02" + s(data)


def debug(text="debug text", always=False):
    return b"\x04" + boolean(always) + s(text) + s("")


def disconnect(reason=11, text="bye"):
    return b"\x01" + u32(reason) + s(text) + s("")


def unimplemented(seq=3):
    return b"\x03" + u32(seq)


def kexinit():
    lists = ["curve25519-sha256,kex-strict-s-v00@openssh.com", "ssh-ed25519", "aes128-ctr", "aes128-ctr",
             "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""]
    return b"\x14" + bytes(range(16)) + b"".join(s(x) for x in lists) + boolean(False) + u32(0)


# ---- connection payloads ----

def global_request(name, want_reply=True, rest=b""):
    return b"\x50" + s(name) + boolean(want_reply) + rest


REQUEST_SUCCESS = b"\x51"
REQUEST_FAILURE = b"\x52"


def chan_open(kind="x11", sender=9, window=1 << 20, maxpkt=32768, extra=b""):
    return b"\x5a" + s(kind) + u32(sender) + u32(window) + u32(maxpkt) + extra


def open_confirm(recipient=0, sender=5, window=1 << 20, maxpkt=32768):
    return b"\x5b" + u32(recipient) + u32(sender) + u32(window) + u32(maxpkt)


def open_failure(recipient=0, code=1, text="administratively prohibited"):
    return b"\x5c" + u32(recipient) + u32(code) + s(text) + s("")


def window_adjust(recipient, add):
    return b"\x5d" + u32(recipient) + u32(add)


def data(recipient, d):
    return b"\x5e" + u32(recipient) + s(d)


def ext_data(recipient, d, code=1):
    return b"\x5f" + u32(recipient) + u32(code) + s(d)


def eof(recipient=0):
    return b"\x60" + u32(recipient)


def close(recipient=0):
    return b"\x61" + u32(recipient)


def chan_request(recipient, kind, want_reply=False, rest=b""):
    return b"\x62" + u32(recipient) + s(kind) + boolean(want_reply) + rest


def exit_status(recipient, status):
    return chan_request(recipient, "exit-status", False, u32(status))


def exit_signal(recipient, sig="TERM", core=False, msg="terminated"):
    return chan_request(recipient, "exit-signal", False, s(sig) + boolean(core) + s(msg) + s(""))


def chan_success(recipient=0):
    return b"\x63" + u32(recipient)


def chan_failure(recipient=0):
    return b"\x64" + u32(recipient)


# ---- sequences ----

LOGIN_AT_ONCE = [ext_info(SERVER_SIG_ALGS), service_accept(), SUCCESS]

LOGIN_EVERY_METHOD = [
    ext_info(SERVER_SIG_ALGS, ("publickey-hostbound@openssh.com", "0"), ("ping@openssh.com", "0")),
    service_accept(),
    banner("Authorized use only.\r\n\x1b[31mred\x1b[0m\n"),
    failure(),                                  # identity 0 refused
    pk_ok(),                                    # identity 1 would do: sign it (deferred)
    failure(),                                  # its signature refused
    info_request("fuzz", "two prompts", [("Password: ", False), ("Code: ", True)]),
    failure("keyboard-interactive,password"),
    info_request("", "", []),                   # OpenSSH's empty final round
    failure("password"),
    ext_info(SERVER_SIG_ALGS),                  # RFC 8308 2.4: right before SUCCESS
    SUCCESS,
]

CHANNEL_EXEC = [
    open_confirm(),
    chan_success(),                             # pty-req
    chan_success(),                             # exec
    window_adjust(0, 1 << 16),
    data(0, b"hello from the server\n"),
    ext_data(0, b"some stderr\n"),
    ext_data(0, b"code 2 is dropped", code=2),
    global_request("keepalive@openssh.com"),
    exit_status(0, 3),
    eof(0),
    close(0),
]

CHANNEL_SIGNAL = [
    open_confirm(window=100, maxpkt=1),
    chan_failure(),
    chan_success(),
    window_adjust(0, 0xFFFFFF00),
    data(0, bytes(range(256)) * 8),
    exit_signal(0, "KILL", True, "killed by the fuzzer"),
    close(0),
]


TICK = b""  # an empty record: time passes


def write(name, flags, payloads, hold_all=False):
    d = os.path.join(HERE, "corpus", "client_after_kex")
    os.makedirs(d, exist_ok=True)
    body = b"".join(struct.pack(">H", 0) if p == TICK else rec(p, hold_all and i + 1 < len(payloads))
                    for i, p in enumerate(payloads))
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes([flags]) + body)


def main():
    write("login_at_once_exec.bin", 0x00, LOGIN_AT_ONCE + CHANNEL_EXEC)
    write("every_method_exec.bin", 0x01, LOGIN_EVERY_METHOD + CHANNEL_EXEC)
    write("every_method_signal.bin", 0x22, LOGIN_EVERY_METHOD + CHANNEL_SIGNAL + [REQUEST_SUCCESS])
    write("early_channel_bytewise.bin", 0x0f, LOGIN_AT_ONCE + CHANNEL_EXEC)
    write("early_channel_one_read.bin", 0x04, LOGIN_AT_ONCE + CHANNEL_EXEC, hold_all=True)
    write("second_channel_manual.bin", 0x73,
          LOGIN_AT_ONCE + [open_confirm(), chan_success(), chan_success(), open_confirm(1, 6), chan_success(1),
                           data(0, b"x" * 3000), data(1, b"y" * 3000), close(0), close(1)])
    write("open_refused.bin", 0x10,
          LOGIN_AT_ONCE + [open_failure(0, 2, "connect failed"), global_request("hostkeys-00@openssh.com", False)])
    # Empty records: 1.5 s pass, a keepalive goes out; its answers, then
    # silence until the client gives up (ServerAliveCountMax).
    write("keepalives.bin", 0x02,
          LOGIN_AT_ONCE + [ignore(), TICK, debug(), REQUEST_FAILURE, TICK, REQUEST_SUCCESS, TICK, TICK, TICK, TICK,
                           TICK, ignore()])
    # One key, nothing to fall back on: the early open rides with the signed
    # request; a failure brings it back for later, then success.
    write("final_request_open.bin", 0x84,
          [ext_info(SERVER_SIG_ALGS), service_accept(), SUCCESS] + CHANNEL_EXEC)
    write("final_request_refused.bin", 0x84,
          [ext_info(SERVER_SIG_ALGS), service_accept(), failure("publickey", partial=True), failure("publickey")])
    write("server_opens_channel.bin", 0x00,
          LOGIN_AT_ONCE + [chan_open("x11", 7, extra=s("127.0.0.1") + u32(6010)),
                           chan_open("forwarded-tcpip", 8), unimplemented(), b"\xc8"])
    write("rekey_started.bin", 0x01, LOGIN_AT_ONCE + [kexinit(), ignore(), b"\x1f" + s(b"") + s(b"") + s(b"")])
    write("ext_info_late.bin", 0x00, [service_accept(), ext_info(SERVER_SIG_ALGS), failure()])
    write("ext_info_after_success.bin", 0x00, LOGIN_AT_ONCE + [ext_info(SERVER_SIG_ALGS)])
    write("pk_ok_wrong_key.bin", 0x03, [ext_info(SERVER_SIG_ALGS), service_accept(), failure(), pk_ok(blob=BLOB_A)])
    write("partial_then_success.bin", 0x00,
          [service_accept(), failure("password", partial=True), failure("keyboard-interactive", True),
           info_request("otp", "", [("OTP: ", False)]), SUCCESS])
    write("disconnect_after_auth.bin", 0x00, LOGIN_AT_ONCE + [open_confirm(), disconnect(2, "protocol error")])
    # The application ends the session (or closes the channel) from inside
    # its callbacks: data "bye"/"cls", exit status 255/254, a banner "bye".
    write("app_ends_in_data.bin", 0x00, LOGIN_AT_ONCE + [open_confirm(), data(0, b"cls"), data(0, b"bye now")])
    write("app_ends_in_status.bin", 0x01,
          LOGIN_AT_ONCE + [open_confirm(), chan_request(0, "exit-status", True, u32(255))])
    write("app_closes_in_status.bin", 0x02,
          LOGIN_AT_ONCE + [open_confirm(), exit_status(0, 254), exit_signal(0, "HUP", False, "bye"), close(0)])
    write("app_ends_in_banner.bin", 0x00, [service_accept(), banner("bye"), SUCCESS])


if __name__ == "__main__":
    main()
