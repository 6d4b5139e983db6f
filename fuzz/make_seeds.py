#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the transport fuzz targets:

  fuzz/corpus/client_session/  server byte streams (first byte: chunk size)
  fuzz/corpus/kexinit/         bare KEXINIT payloads
  fuzz/corpus/packet/          selector byte + stream or payload

Everything is plaintext and deterministic (fixed cookies, no keys), so
re-running the script reproduces the committed files byte for byte.
Usage: python3 fuzz/make_seeds.py   (from anywhere)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"
STRICT_S = "kex-strict-s-v00@openssh.com"


def u32(v):
    return struct.pack(">I", v)


def sshstr(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def frame(payload):
    """A plaintext binary packet (RFC 4253 6): at least 4 bytes of padding,
    whole packet a multiple of 8."""
    pad = 8 - ((5 + len(payload)) % 8)
    if pad < 4:
        pad += 8
    return u32(1 + len(payload) + pad) + bytes([pad]) + payload + bytes(range(0xA0, 0xA0 + pad))


def kexinit(kex="curve25519-sha256,ecdh-sha2-nistp256", strict=False, hostkey=None, cipher=None, mac=None,
            comp="none,zlib@openssh.com", first_follows=False):
    kex = kex + ",ext-info-s" + ("," + STRICT_S if strict else "")
    hostkey = hostkey or "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519"
    cipher = cipher or "chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com"
    mac = mac or "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-256"
    lists = [kex, hostkey, cipher, cipher, mac, mac, comp, comp, "", ""]
    cookie = bytes((0x5A ^ i) for i in range(16))
    body = b"".join(sshstr(x) for x in lists)
    return b"\x14" + cookie + body + bytes([1 if first_follows else 0]) + u32(0)


def ignore(data=b"x"):
    return b"\x02" + sshstr(data)


def debug(text="hello"):
    return b"\x04\x01" + sshstr(text) + sshstr("")


def disconnect(reason=11, text="bye"):
    return b"\x01" + u32(reason) + sshstr(text) + sshstr("")


def bad_reply():
    # KEX_ECDH_REPLY with an empty host key, a short point and no signature.
    return b"\x1f" + sshstr(b"") + sshstr(b"\x09" * 31) + sshstr(b"")


def write(sub, name, data):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    # client_session: byte 0 = chunk size (0 = all at once).
    write("client_session", "kexinit_whole.bin", b"\x00" + VERSION + frame(kexinit()))
    write("client_session", "kexinit_strict_ignore.bin",
          b"\x07" + VERSION + frame(kexinit(strict=True)) + frame(ignore()))
    write("client_session", "prebanner_bytewise.bin",
          b"\x01" + b"Welcome\r\nto the host\n" + VERSION + frame(kexinit()) + frame(ignore()) + frame(debug())
          + frame(bad_reply()))
    write("client_session", "first_follows.bin",
          b"\x00" + VERSION + frame(kexinit(kex="ecdh-sha2-nistp521,curve25519-sha256", first_follows=True))
          + frame(bad_reply()) + frame(bad_reply()))
    write("client_session", "disconnect.bin", b"\x05" + VERSION + frame(disconnect()))
    write("client_session", "newkeys_early.bin", b"\x00" + VERSION + frame(kexinit()) + frame(b"\x15"))
    write("client_session", "dh_group14.bin",
          b"\x20" + VERSION + frame(kexinit(kex="diffie-hellman-group14-sha256")) + frame(bad_reply()))

    # kexinit: the payload alone.
    write("kexinit", "plain.bin", kexinit())
    write("kexinit", "strict.bin", kexinit(strict=True))
    write("kexinit", "first_follows.bin", kexinit(kex="ecdh-sha2-nistp384,curve25519-sha256", first_follows=True))
    write("kexinit", "aes_ctr_hmac.bin", kexinit(cipher="aes256-ctr", mac="hmac-sha2-512"))
    write("kexinit", "zlib_only.bin", kexinit(comp="zlib"))
    write("kexinit", "no_cipher.bin", kexinit(cipher="3des-cbc"))

    # packet: byte 0 bits 0-1 cipher (chacha, aes128-gcm, aes128-ctr+hmac-sha2-256,
    # aes256-ctr+hmac-sha2-512-etm), bits 2-3 mode (0 raw stream, 1 valid
    # packet then stream, 2-3 round trip with the rest as padding choice + payload).
    for c in range(4):
        write("packet", "roundtrip_%d.bin" % c, bytes([0x08 | c, 2]) + ignore(b"round trip payload"))
        write("packet", "prefixed_%d.bin" % c, bytes([0x04 | c]) + u32(28) + bytes(range(40)))
        write("packet", "raw_%d.bin" % c, bytes([c]) + u32(0x7FFFFFFF) + bytes(12))
    write("packet", "roundtrip_empty.bin", b"\x0c")
    write("packet", "raw_short.bin", b"\x01\x00\x00\x00\x0c\x04")


if __name__ == "__main__":
    main()
