#!/usr/bin/env bash
# Interop: `shoal exec` against OpenSSH's sshd with every algorithm shoal
# implements: key exchange, host key, cipher and MAC.
#
# The full product (8 kex x 6 host key x (3 AEAD + 3 CTR x 6 MACs) = 1008
# connections) would take too long for CI, so it is covered in three parts,
# one connection each:
#   1. every kex x every host key algorithm   (default cipher and MAC)
#   2. every cipher x every MAC               (default kex and host key);
#      AEAD ciphers (chacha20-poly1305, AES-GCM) have no separate MAC
#   3. 20 random full combinations; the seed is printed, and
#      SHOAL_MATRIX_SEED=N repeats a run.
# Each connection runs `echo ok`. sshd runs at LogLevel DEBUG, whose
# "kex: ..." lines show what was really negotiated; every algorithm asked
# for is checked there, so a client that ignored an option would not pass.
# Combinations the local OpenSSH cannot do (per `ssh -Q`) are left out.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal

KEX_ALL=(curve25519-sha256 curve25519-sha256@libssh.org ecdh-sha2-nistp256 ecdh-sha2-nistp384
    ecdh-sha2-nistp521 diffie-hellman-group14-sha256 diffie-hellman-group16-sha512
    diffie-hellman-group18-sha512)
CIPHER_ALL=(chacha20-poly1305@openssh.com aes128-gcm@openssh.com aes256-gcm@openssh.com
    aes128-ctr aes192-ctr aes256-ctr)
MAC_ALL=(hmac-sha2-256 hmac-sha2-512 hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com
    hmac-sha1 hmac-sha1-etm@openssh.com)
HOSTKEY_ALL=(ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521
    rsa-sha2-256 rsa-sha2-512)

# supported_by_openssh QUERY NAME...: the NAMEs that `ssh -Q QUERY` lists.
supported_by_openssh() {
    local q=$1 have n
    shift
    if ! have=$(ssh -Q "$q" 2>/dev/null); then printf '%s\n' "$@"; return; fi
    for n in "$@"; do
        if grep -qxF -- "$n" <<<"$have"; then printf '%s\n' "$n"; fi
    done
}
mapfile -t KEX < <(supported_by_openssh kex "${KEX_ALL[@]}")
mapfile -t CIPHERS < <(supported_by_openssh cipher "${CIPHER_ALL[@]}")
mapfile -t MACS < <(supported_by_openssh mac "${MAC_ALL[@]}")
mapfile -t HOSTKEYS < <(supported_by_openssh key-sig "${HOSTKEY_ALL[@]}")
join_by_comma() { local IFS=,; echo "$*"; }
is_aead() { case $1 in chacha20-poly1305@openssh.com | *-gcm@openssh.com) return 0 ;; esac; return 1; }

peers_init
gen_user_keys
start_sshd "LogLevel DEBUG" \
    "KexAlgorithms $(join_by_comma "${KEX[@]}")" \
    "Ciphers $(join_by_comma "${CIPHERS[@]}")" \
    "MACs $(join_by_comma "${MACS[@]}")" \
    "HostKeyAlgorithms $(join_by_comma "${HOSTKEYS[@]}")"

DEST=$PEER_USER@127.0.0.1
COMMON=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -p "$SSHD_PORT" -i "$T/keys/id_ed25519")
ROWS=()

# negotiated MARK KEX HOSTKEY CIPHER MAC: sshd's log since MARK shows that
# exactly these were chosen ("-" = not asked for, not checked).
negotiated() {
    local mark=$1 kex=$2 hk=$3 cipher=$4 mac=$5 log dir
    log=$(log_since "$SSHD_LOG" "$mark")
    if [ "$kex" != - ] && ! grep -qF "kex: algorithm: $kex" <<<"$log"; then
        echo "kex $kex was not negotiated:"; grep -F "kex: " <<<"$log" | head -n 6; return 1
    fi
    if [ "$hk" != - ] && ! grep -qF "kex: host key algorithm: $hk" <<<"$log"; then
        echo "host key algorithm $hk was not negotiated:"; grep -F "kex: " <<<"$log" | head -n 6; return 1
    fi
    if [ "$cipher" != - ]; then
        local want_mac=$mac
        if is_aead "$cipher"; then want_mac="<implicit>"; fi
        for dir in "client->server" "server->client"; do
            if [ "$want_mac" = - ]; then
                grep -qF "kex: $dir cipher: $cipher MAC: " <<<"$log" && continue
            else
                grep -qF "kex: $dir cipher: $cipher MAC: $want_mac compression" <<<"$log" && continue
            fi
            echo "$dir cipher $cipher / MAC $mac was not negotiated:"
            grep -F "kex: " <<<"$log" | head -n 6
            return 1
        done
    fi
}

# try PART KEX HOSTKEY CIPHER MAC: one connection; "-" = shoal's default.
# Part 2 passes the cipher with -c, parts 1 and 3 with -o Ciphers=.
try() {
    local part=$1 kex=$2 hk=$3 cipher=$4 mac=$5 mark result=ok
    local -a args=()
    [ "$kex" = - ] || args+=(-o "KexAlgorithms=$kex")
    [ "$hk" = - ] || args+=(-o "HostKeyAlgorithms=$hk")
    if [ "$cipher" != - ]; then
        if [ "$part" = 2 ]; then args+=(-c "$cipher"); else args+=(-o "Ciphers=$cipher"); fi
    fi
    [ "$mac" = - ] || args+=(-o "MACs=$mac")
    mark=$(log_mark "$SSHD_LOG")
    run_shoal "${COMMON[@]}" "${args[@]}" "$DEST" 'echo ok' </dev/null
    local desc="kex=$kex hostkey=$hk cipher=$cipher mac=$mac"
    if [ "$RC" != 0 ] || [ "$(cat "$T/out")" != ok ]; then
        result="FAIL(rc=$RC)"
        _report_failure "$desc" "exit 0 and stdout 'ok'" "exit $RC, stdout $(printf %q "$(head -c 100 "$T/out")")"
    elif ! negotiated "$mark" "$kex" "$hk" "$cipher" "$mac" >"$T/neg.out" 2>&1; then
        result="FAIL(negotiated)"
        not_ok "$desc"
        sed 's/^/    /' "$T/neg.out"
    else
        ok "$desc"
    fi
    ROWS+=("$(printf '%-4s %-30s %-21s %-30s %-30s %s' "$part" "$kex" "$hk" "$cipher" "$mac" "$result")")
}

start=$SECONDS

# 1. every kex x every host key algorithm
for kex in "${KEX[@]}"; do
    for hk in "${HOSTKEYS[@]}"; do
        try 1 "$kex" "$hk" - -
    done
done

# 2. every cipher x every MAC (AEAD ciphers once, without MACs)
for cipher in "${CIPHERS[@]}"; do
    if is_aead "$cipher"; then
        try 2 - - "$cipher" -
        continue
    fi
    for mac in "${MACS[@]}"; do
        try 2 - - "$cipher" "$mac"
    done
done

# 3. a random sample of full combinations
ALL=()
for kex in "${KEX[@]}"; do
    for hk in "${HOSTKEYS[@]}"; do
        for cipher in "${CIPHERS[@]}"; do
            if is_aead "$cipher"; then
                ALL+=("$kex $hk $cipher -")
            else
                for mac in "${MACS[@]}"; do ALL+=("$kex $hk $cipher $mac"); done
            fi
        done
    done
done
seed=${SHOAL_MATRIX_SEED:-$(( $(date +%s) % 32768 ))}
echo "# random sample: seed $seed (rerun with SHOAL_MATRIX_SEED=$seed), ${#ALL[@]} combinations in all"
RANDOM=$seed
declare -A picked=()
n=0
while [ "$n" -lt 20 ] && [ "$n" -lt "${#ALL[@]}" ]; do
    i=$(( (RANDOM * 32768 + RANDOM) % ${#ALL[@]} ))
    [ -z "${picked[$i]:-}" ] || continue
    picked[$i]=1
    n=$((n + 1))
    # shellcheck disable=SC2086 # the entry is four words on purpose
    try 3 ${ALL[$i]}
done

echo
echo "# summary (part 1: kex x host key, 2: cipher x MAC, 3: random; '-' = default)"
printf '%-4s %-30s %-21s %-30s %-30s %s\n' part kex hostkey cipher mac result
printf '%s\n' "${ROWS[@]}"
echo "# ${#ROWS[@]} connections in $((SECONDS - start)) s"
finish
