#!/usr/bin/env bash
# Interop, library level: the FULL algorithm product against OpenSSH's sshd,
# every kex x host key x cipher x MAC (9 x 7 x (3 AEAD + 3 CTR x 6 MACs) =
# 1323 connections), each running `echo ok`, in one process on one uv loop:
# tests/interop/algmatrix.c. It checks the output, the exit status and that
# shoal_session_algorithm() reports exactly the algorithms asked for.
#
# sshd is started with whatever of those algorithms its defaults leave out
# (on Debian 12's OpenSSH 9.2: diffie-hellman-group14-sha1 and the ssh-rsa
# host key algorithm) added with "+"; algorithms this OpenSSH build cannot do
# at all (not in `ssh -Q`) are left out and the program reports those
# combinations as skipped, with the reason, instead of failing them.
#
# Environment:
#   SHOAL_MATRIX_CONCURRENCY  connections at a time (default 8)
#   SHOAL_MATRIX_KEX          comma list: only these key exchanges
#                             (set by the split scripts, if any)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
[ -n "${SHOAL_BUILD:-}" ] || skip "SHOAL_BUILD is not set"
PROG=$SHOAL_BUILD/tests/interop_algmatrix
[ -x "$PROG" ] || skip "interop_algmatrix not built"
[ -x "$PEERS_SSHD" ] || skip "$PEERS_SSHD is not installed"
require_cmd ssh ssh-keygen

WANT_KEX=(curve25519-sha256 curve25519-sha256@libssh.org ecdh-sha2-nistp256 ecdh-sha2-nistp384
    ecdh-sha2-nistp521 diffie-hellman-group14-sha256 diffie-hellman-group16-sha512
    diffie-hellman-group18-sha512 diffie-hellman-group14-sha1)
WANT_HOSTKEY=(ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521
    rsa-sha2-256 rsa-sha2-512 ssh-rsa)
WANT_CIPHERS=(chacha20-poly1305@openssh.com aes128-gcm@openssh.com aes256-gcm@openssh.com
    aes128-ctr aes192-ctr aes256-ctr)
WANT_MACS=(hmac-sha2-256 hmac-sha2-512 hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com
    hmac-sha1 hmac-sha1-etm@openssh.com)

# sshd_value CONFIG KEYWORD: the effective value (a comma list) per sshd -T.
# For the defaults (CONFIG /dev/null) sshd -T still wants a host key it can
# read, which as non-root /etc/ssh's are not: $T/probe_hostkey.
sshd_value() {
    local -a o=()
    if [ "$1" = /dev/null ]; then o=(-o "HostKey=$T/probe_hostkey"); fi
    "$PEERS_SSHD" -T -f "$1" "${o[@]}" 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'
}
in_comma_list() { case ",$1," in *",$2,"*) return 0 ;; esac; return 1; }

# missing_from KEYWORD QUERY NAME...: the NAMEs that sshd does not enable by
# default but this OpenSSH can do (`ssh -Q QUERY`), as a comma list. NAMEs it
# cannot do at all are reported and left out.
missing_from() {
    local kw=$1 q=$2 enabled have n out=""
    shift 2
    enabled=$(sshd_value /dev/null "$kw")
    [ -n "$enabled" ] || die "sshd -T does not show its default $kw"
    have=$(ssh -Q "$q" 2>/dev/null || true)
    for n in "$@"; do
        in_comma_list "$enabled" "$n" && continue
        if ! grep -qxF -- "$n" <<<"$have"; then
            echo "# $n: this OpenSSH cannot do it (not in ssh -Q $q); its combinations are skipped" >&2
            continue
        fi
        out=${out:+$out,}$n
    done
    echo "$out"
}

peers_init
gen_user_keys
ssh-keygen -q -t ed25519 -N '' -C probe -f "$T/probe_hostkey"
user=$PEER_USER
if [ "$(id -u)" -eq 0 ]; then
    # As root, sshd runs the command through root's shell and rc files
    # (on a developer machine: pyenv init, ~0.1 s each); shoaltest has a
    # plain bash and an empty home.
    make_test_user || skip "cannot create the shoaltest user"
    user=$TEST_USER
fi

extra=("MaxStartups 1000:30:1000")
add=$(missing_from kexalgorithms kex "${WANT_KEX[@]}")
[ -z "$add" ] || extra+=("KexAlgorithms +$add")
add=$(missing_from hostkeyalgorithms key-sig "${WANT_HOSTKEY[@]}")
[ -z "$add" ] || extra+=("HostKeyAlgorithms +$add")
add=$(missing_from ciphers cipher "${WANT_CIPHERS[@]}")
[ -z "$add" ] || extra+=("Ciphers +$add")
add=$(missing_from macs mac "${WANT_MACS[@]}")
[ -z "$add" ] || extra+=("MACs +$add")
echo "# sshd_config additions:"
printf '#   %s\n' "${extra[@]}"
start_sshd "${extra[@]}"

# What the running server really enables: combinations outside of it are
# skipped by the program with a printed reason.
SHOAL_MATRIX_SERVER_KEX=$(sshd_value "$SSHD_CONFIG" kexalgorithms)
SHOAL_MATRIX_SERVER_HOSTKEY=$(sshd_value "$SSHD_CONFIG" hostkeyalgorithms)
SHOAL_MATRIX_SERVER_CIPHERS=$(sshd_value "$SSHD_CONFIG" ciphers)
SHOAL_MATRIX_SERVER_MACS=$(sshd_value "$SSHD_CONFIG" macs)
if [ -z "$SHOAL_MATRIX_SERVER_KEX" ] || [ -z "$SHOAL_MATRIX_SERVER_HOSTKEY" ] ||
    [ -z "$SHOAL_MATRIX_SERVER_CIPHERS" ] || [ -z "$SHOAL_MATRIX_SERVER_MACS" ]; then
    die "sshd -T -f $SSHD_CONFIG does not list the server's algorithms"
fi
export SHOAL_MATRIX_SERVER_KEX SHOAL_MATRIX_SERVER_HOSTKEY SHOAL_MATRIX_SERVER_CIPHERS SHOAL_MATRIX_SERVER_MACS

rc=0
"$PROG" "$SSHD_PORT" "$T/keys/id_ed25519" "$T/known_hosts" "$user" "${SHOAL_MATRIX_CONCURRENCY:-8}" || rc=$?
exit "$rc"
