#!/usr/bin/python3
"""Run a program on a new pseudo-terminal and drive it from a small script.

    pty_run.py [--rows N] [--cols N] [--timeout SECS] SCRIPT -- PROGRAM ARGS...

The program (e.g. `ssh -tt host`) gets a fresh session whose controlling
terminal is the slave side of a pty sized ROWS x COLS before it starts, so
ssh sends that size in its pty-req. SCRIPT is a file of steps, one a line:

    send TEXT          write TEXT and a newline ("\\n" in TEXT is a newline)
    expect REGEX       wait until everything read so far matches REGEX
                       (re.search, DOTALL); only output after the previous
                       expect's match counts
    resize ROWS COLS   change the pty's size and send SIGWINCH to the
                       program, as a terminal emulator does
    sleep SECS

After the steps it waits for the program to exit. Everything read from the
pty goes to stdout; the exit code is the program's (128+N for a signal), or
99 when an expect times out (the step is named on stderr).
"""
import argparse
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("script")
    ap.add_argument("program", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    prog = a.program[1:] if a.program and a.program[0] == "--" else a.program
    if not prog:
        ap.error("no program")
    with open(a.script) as f:
        steps = [line.rstrip("\n") for line in f if line.strip()]

    master, slave = os.openpty()
    set_size(slave, a.rows, a.cols)

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(prog, stdin=slave, stdout=slave, stderr=slave,
                         preexec_fn=child_setup, close_fds=True)
    os.close(slave)
    out = bytearray()
    seen = 0  # output before this offset was consumed by an earlier expect
    deadline_all = time.monotonic() + a.timeout * 4

    def pump(timeout):
        r, _, _ = select.select([master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the slave side is closed
            return False
        if not data:
            return False
        out.extend(data)
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return True

    rc = None
    for step in steps:
        verb, _, arg = step.partition(" ")
        if verb == "send":
            os.write(master, arg.replace("\\n", "\n").encode() + b"\n")
        elif verb == "expect":
            rx = re.compile(arg.encode(), re.DOTALL)
            end = time.monotonic() + a.timeout
            while True:
                m = rx.search(bytes(out), seen)
                if m:
                    seen = m.end()
                    break
                alive = pump(0.1)
                if time.monotonic() > end or (not alive and p.poll() is not None):
                    sys.stderr.write("pty_run: timed out at step: %s\n" % step)
                    rc = 99
                    break
                if not alive:
                    time.sleep(0.05)
            if rc is not None:
                break
        elif verb == "resize":
            rows, cols = (int(x) for x in arg.split())
            set_size(master, rows, cols)
            p.send_signal(signal.SIGWINCH)
        elif verb == "sleep":
            end = time.monotonic() + float(arg)
            while time.monotonic() < end:
                pump(0.05)
        else:
            sys.stderr.write("pty_run: unknown step: %s\n" % step)
            rc = 98
            break
    if rc is not None:
        p.kill()
        p.wait()
        return rc
    while p.poll() is None and time.monotonic() < deadline_all:
        pump(0.1)
    while pump(0):  # what is left
        if not select.select([master], [], [], 0)[0]:
            break
    if p.poll() is None:
        p.kill()
        p.wait()
        sys.stderr.write("pty_run: the program did not exit\n")
        return 97
    return 128 - p.returncode if p.returncode < 0 else p.returncode


if __name__ == "__main__":
    sys.exit(main())
