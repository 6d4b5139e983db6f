#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the server fuzz targets:

  fuzz/corpus/server_session/  client byte streams (first byte: chunk size,
                               0 = all at once), plaintext
  fuzz/corpus/userauth/        byte 0: cipher choice (bits 0-1), then
                               records: u16 big-endian header (bits 0-14
                               payload length, bit 15 = keep for the next
                               read) and a payload, type byte first

Everything is deterministic and key-free: the ed25519 "public key" in the
publickey probes is a fixed byte pattern, and nothing is signed. Re-running
the script reproduces the files byte for byte.
Usage: python3 fuzz/make_server_seeds.py   (from anywhere)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_VERSION = b"SSH-2.0-OpenSSH_9.6\r\n"
STRICT_C = "kex-strict-c-v00@openssh.com"


def u32(v):
    return struct.pack(">I", v)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def boolean(v):
    return b"\x01" if v else b"\x00"


def packet(payload):
    """Plaintext binary packet: padding of 4 or more bytes, total a multiple of 8."""
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return u32(1 + len(payload) + pad) + bytes([pad]) + payload + bytes(range(1, pad + 1))


def client_kexinit(kex="curve25519-sha256,ecdh-sha2-nistp256", strict=True, cipher=None, mac=None,
                   hostkey="ssh-ed25519,rsa-sha2-512", comp="none", first_follows=False):
    kex = kex + ",ext-info-c" + ("," + STRICT_C if strict else "")
    cipher = cipher or "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes128-ctr"
    mac = mac or "hmac-sha2-256-etm@openssh.com,hmac-sha2-256"
    lists = [kex, hostkey, cipher, cipher, mac, mac, comp, comp, "", ""]
    cookie = bytes(range(0x40, 0x50))
    return b"\x14" + cookie + b"".join(s(x) for x in lists) + boolean(first_follows) + u32(0)


X25519_BASE = bytes([9]) + bytes(31)  # u = 9: a valid public value, no secret behind it


def ecdh_init(value=X25519_BASE):
    return b"\x1e" + s(value)


def kexdh_init_mpint(v=2):
    return b"\x1e" + s(bytes([v]))


def ignore(data=b"x"):
    return b"\x02" + s(data)


def debug(text="hello"):
    return b"\x04" + boolean(False) + s(text) + s("")


def disconnect(reason=11, text="bye"):
    return b"\x01" + u32(reason) + s(text) + s("")


def write(sub, name, data):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- userauth records ----

def rec(payload, hold=False):
    assert 0 < len(payload) < 0x8000
    return struct.pack(">H", len(payload) | (0x8000 if hold else 0)) + payload


def service(name="ssh-userauth"):
    return b"\x05" + s(name)


def auth(method, rest=b"", user="fuzz"):
    return b"\x32" + s(user) + s("ssh-connection") + s(method) + rest


def password(pw):
    return auth("password", boolean(False) + s(pw))


FAKE_ED25519 = s("ssh-ed25519") + s(bytes(range(0x20, 0x40)))


def pk_probe():
    return auth("publickey", boolean(False) + s("ssh-ed25519") + s(FAKE_ED25519))


def pk_signed_garbage():
    sig = s("ssh-ed25519") + s(bytes(64))
    return auth("publickey", boolean(True) + s("ssh-ed25519") + s(FAKE_ED25519) + s(sig))


def kbdint():
    return auth("keyboard-interactive", s("") + s(""))


def info_response(*answers):
    return b"\x3d" + u32(len(answers)) + b"".join(s(a) for a in answers)


def chan_open(kind="session", sender=0, window=1 << 20, maxpkt=32768, extra=b""):
    return b"\x5a" + s(kind) + u32(sender) + u32(window) + u32(maxpkt) + extra


def chan_request(recipient, kind, want_reply=True, rest=b""):
    return b"\x62" + u32(recipient) + s(kind) + boolean(want_reply) + rest


def chan_data(recipient, data):
    return b"\x5e" + u32(recipient) + s(data)


def chan_u32(t, recipient):
    return bytes([t]) + u32(recipient)


def window_adjust(recipient, add):
    return b"\x5d" + u32(recipient) + u32(add)


def global_request(name, want_reply=True):
    return b"\x50" + s(name) + boolean(want_reply)


def main():
    # server_session
    write("server_session", "kexinit_strict.bin", b"\x00" + CLIENT_VERSION + packet(client_kexinit()))
    write("server_session", "ecdh_init_newkeys.bin",
          b"\x00" + CLIENT_VERSION + packet(client_kexinit()) + packet(ecdh_init()) + packet(b"\x15")
          + bytes(range(64)))
    write("server_session", "nonstrict_ignore_debug.bin",
          b"\x07" + CLIENT_VERSION + packet(client_kexinit(strict=False)) + packet(ignore()) + packet(debug())
          + packet(ecdh_init()))
    write("server_session", "strict_ignore.bin",
          b"\x00" + CLIENT_VERSION + packet(client_kexinit()) + packet(ignore()))
    write("server_session", "bytewise_prelines.bin",
          b"\x01" + b"hello\r\n" + CLIENT_VERSION + packet(client_kexinit(kex="ecdh-sha2-nistp256"))
          + packet(ecdh_init(bytes([4]) + bytes(64))))
    # A wrong guess (we hold no RSA host key): the guessed packet is skipped
    # and the next one answered.
    write("server_session", "first_follows_wrong.bin",
          b"\x00" + CLIENT_VERSION
          + packet(client_kexinit(kex="curve25519-sha256", hostkey="rsa-sha2-512,ssh-ed25519", first_follows=True))
          + packet(ecdh_init(bytes(32))) + packet(ecdh_init()))
    # A right guess: the guessed (invalid) value is what gets processed.
    write("server_session", "first_follows_right.bin",
          b"\x00" + CLIENT_VERSION
          + packet(client_kexinit(kex="ecdh-sha2-nistp521,curve25519-sha256", first_follows=True))
          + packet(ecdh_init(bytes([4]) + bytes(132))) + packet(ecdh_init()))
    write("server_session", "dh_group14.bin",
          b"\x20" + CLIENT_VERSION + packet(client_kexinit(kex="diffie-hellman-group14-sha256"))
          + packet(kexdh_init_mpint()))
    write("server_session", "no_common_cipher.bin",
          b"\x00" + CLIENT_VERSION + packet(client_kexinit(cipher="3des-cbc")))
    write("server_session", "auth_before_keys.bin",
          b"\x00" + CLIENT_VERSION + packet(client_kexinit(strict=False)) + packet(service())
          + packet(password("secret")))
    write("server_session", "disconnect.bin", b"\x05" + CLIENT_VERSION + packet(disconnect()))

    # userauth
    write("userauth", "none.bin", b"\x00" + rec(service(), hold=True) + rec(auth("none")))
    write("userauth", "password_exec.bin",
          b"\x01" + rec(service()) + rec(password("wrong")) + rec(password("secret"))
          + rec(chan_open()) + rec(chan_request(0, "pty-req", True,
                                                s("xterm") + u32(80) + u32(24) + u32(0) + u32(0) + s(b"\x00")))
          + rec(chan_request(0, "env", False, s("LANG") + s("C"))) + rec(chan_request(0, "exec", True, s("id")))
          + rec(chan_data(0, b"input")) + rec(chan_u32(0x60, 0)) + rec(chan_u32(0x61, 0)))
    write("userauth", "deferred.bin",
          b"\x02" + rec(service()) + rec(password("defer")) + rec(ignore())
          + rec(chan_open("direct-tcpip", 1, extra=s("localhost") + u32(22) + s("127.0.0.1") + u32(5555)))
          + rec(chan_open("session", 2)) + rec(chan_request(1, "shell")) + rec(window_adjust(1, 1000))
          + rec(global_request("keepalive@openssh.com")) + rec(b"\xc8"))
    write("userauth", "kbdint.bin",
          b"\x03" + rec(service()) + rec(kbdint()) + rec(info_response("nope", "x")) + rec(info_response("secret", "1"))
          + rec(chan_open("x11", 0)) + rec(chan_open("session", 3)) + rec(chan_request(0, "signal", False, s("TERM"))))
    write("userauth", "partial_probe.bin",
          b"\x00" + rec(service()) + rec(password("partial")) + rec(pk_probe()) + rec(pk_signed_garbage())
          + rec(kbdint()))
    write("userauth", "held_batch.bin",
          b"\x01" + rec(service(), hold=True) + rec(password("secret"), hold=True)
          + rec(chan_open(), hold=True) + rec(chan_request(0, "subsystem", True, s("sftp")), hold=True)
          + rec(chan_data(0, bytes(100))))
    write("userauth", "fake_success.bin", b"\x02" + rec(b"\x34") + rec(chan_open()))


if __name__ == "__main__":
    main()
