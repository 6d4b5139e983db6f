#!/usr/bin/python3
"""bench/asyncssh_fanout.py -- the asyncssh peer of bench/fanout_run.sh.

Runs one command on every host of a hosts file, all connections at once on
one asyncio loop, and prints one line:

    ok=N failed=M wall_s=W

to stdout (and one line per failed host to stderr). Exit code 0 when every
host ran the command with exit status 0.

    /usr/bin/python3 bench/asyncssh_fanout.py -p PORT -l USER -i KEY \
        -k KNOWN_HOSTS -f HOSTSFILE [--kex ALG] [--hostkey-alg ALG] -- CMD

Run it with Debian's /usr/bin/python3 (python3-asyncssh 2.10.1); the first
python3 on PATH may be a pyenv one without asyncssh. Every setting is
explicit, so no ~/.ssh/config, agent or default key takes part: only the
given key, the given known_hosts (host key checked, as BatchMode/strict
checking would), the given key exchange and host key algorithm, and no
compression (asyncssh would otherwise negotiate zlib@openssh.com, which
the other clients do not).
"""
import argparse
import asyncio
import sys
import time
import warnings

# Debian's asyncssh 2.10 imports ciphers that cryptography deprecates; the
# warnings would land in the bench's stderr.
warnings.filterwarnings("ignore")

import asyncssh  # noqa: E402  (after the warnings filter)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-p", "--port", type=int, default=22)
    p.add_argument("-l", "--user", required=True)
    p.add_argument("-i", "--identity", required=True)
    p.add_argument("-k", "--known-hosts", required=True)
    p.add_argument("-f", "--hosts-file", required=True,
                   help="one host per line (host or host:port); # comments")
    p.add_argument("--kex", default="curve25519-sha256")
    p.add_argument("--hostkey-alg", default="ssh-ed25519")
    p.add_argument("command", nargs="+")
    return p.parse_args()


def read_hosts(path, default_port):
    hosts = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            host, _, port = line.rpartition(":")
            if host and port.isdigit():
                hosts.append((host, int(port)))
            else:
                hosts.append((line, default_port))
    return hosts


async def run_one(host, port, args, key, known_hosts, command):
    try:
        async with asyncssh.connect(
                host, port, username=args.user, client_keys=[key],
                known_hosts=known_hosts, agent_path=None, config=[],
                kex_algs=[args.kex], server_host_key_algs=[args.hostkey_alg],
                compression_algs=None, password=None,
                kbdint_auth=False, gss_auth=False, gss_kex=False) as conn:
            res = await conn.run(command, check=False, stdin=asyncssh.DEVNULL)
            if res.exit_status == 0:
                return None
            return "exit status %s" % (res.exit_status,)
    except (OSError, asyncssh.Error) as e:
        return "%s: %s" % (type(e).__name__, e)


async def main():
    args = parse_args()
    hosts = read_hosts(args.hosts_file, args.port)
    # Load the key and the known_hosts file once, as a fan-out tool would.
    key = asyncssh.read_private_key(args.identity)
    known_hosts = asyncssh.read_known_hosts(args.known_hosts)
    command = " ".join(args.command)
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(run_one(h, p, args, key, known_hosts, command) for h, p in hosts))
    wall = time.monotonic() - t0
    failed = 0
    for (h, p), err in zip(hosts, results):
        if err is not None:
            failed += 1
            print("%s:%d: %s" % (h, p, err), file=sys.stderr)
    print("ok=%d failed=%d wall_s=%.3f" % (len(hosts) - failed, failed, wall))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
