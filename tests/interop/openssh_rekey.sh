#!/usr/bin/env bash
# Interop: `shoal exec -o RekeyLimit=1M` against OpenSSH's sshd while 64 MiB
# move down, then up; then 32 MiB both ways at once (remote `cat` echoing
# stdin back), and 32 MiB down with a CTR cipher + ETM MAC instead of the
# default AEAD.
# The data must arrive intact (sha256) and sshd must have seen several
# re-keyings.
#
# How re-keyings are counted: with "LogLevel DEBUG" sshd logs
# "debug1: SSH2_MSG_KEXINIT received" for every key exchange; the first one
# of a connection happens before authentication and carries "[preauth]",
# every later one (a re-key, which the client starts after RekeyLimit bytes)
# does not. So: lines without "[preauth]" since the transfer began.
# 64 MiB with a 1 MiB limit should give ~64 (OpenSSH's ssh: 35 down, 85 up);
# fewer than MIN_REKEYS fails.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal
peers_init
gen_user_keys
start_sshd "LogLevel DEBUG"

MIN_REKEYS=${MIN_REKEYS:-8}
DEST=$PEER_USER@127.0.0.1
COMMON=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -p "$SSHD_PORT" -i "$T/keys/id_ed25519" -o RekeyLimit=1M)

# rekeys_since MARK: how many re-keyings sshd logged since MARK.
rekeys_since() {
    log_since "$SSHD_LOG" "$1" | grep "SSH2_MSG_KEXINIT received" | grep -vc "\[preauth\]" || true
}

check_rekeys() {
    local n
    n=$(rekeys_since "$1")
    echo "# $2: sshd saw $n re-keyings"
    check "$2: at least $MIN_REKEYS re-keyings (saw $n)" [ "$n" -ge "$MIN_REKEYS" ]
}

head -c 67108864 /dev/urandom >"$T/data"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
head -c 33554432 "$T/data" >"$T/half"
want_half=$(sha256sum <"$T/half" | cut -d' ' -f1)

# ---- download: the remote side sends 64 MiB
mark=$(log_mark "$SSHD_LOG")
run_shoal "${COMMON[@]}" "$DEST" "cat '$T/data'" </dev/null
check_rc 0 "download exits 0"
check_sha256 "$want" "download: 64 MiB arrive intact across re-keyings"
check_rekeys "$mark" "download"

# ---- upload: we send 64 MiB, the remote side hashes them
mark=$(log_mark "$SSHD_LOG")
run_shoal "${COMMON[@]}" "$DEST" sha256sum <"$T/data"
check_rc 0 "upload exits 0"
check_out "$want  -" "upload: 64 MiB arrive intact across re-keyings"
check_rekeys "$mark" "upload"

# ---- both ways at once: remote cat echoes 32 MiB back while they arrive
mark=$(log_mark "$SSHD_LOG")
run_shoal "${COMMON[@]}" "$DEST" cat <"$T/half"
check_rc 0 "echo exits 0"
check_sha256 "$want_half" "echo: 32 MiB round-trip intact across re-keyings"
check_rekeys "$mark" "echo"

# ---- same download with a CTR cipher and an encrypt-then-MAC MAC
mark=$(log_mark "$SSHD_LOG")
run_shoal "${COMMON[@]}" -c aes128-ctr -o MACs=hmac-sha2-256-etm@openssh.com "$DEST" "cat '$T/half'" </dev/null
check_rc 0 "download (aes128-ctr + hmac-sha2-256-etm) exits 0"
check_sha256 "$want_half" "download (aes128-ctr + hmac-sha2-256-etm): intact across re-keyings"
check_rekeys "$mark" "download (aes128-ctr + hmac-sha2-256-etm)"

finish
