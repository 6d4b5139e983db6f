#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: the SFTP upload API (include/shoal/sftp.h) through
# tests/interop/sftp_put.c against
#   - OpenSSH's sshd with /usr/lib/openssh/sftp-server,
#   - `shoal serve` with "Subsystem sftp /usr/lib/openssh/sftp-server",
#   - python3-asyncssh's SFTP server, when tests/lib/asyncssh_server.py
#     offers one (it does not yet: that part is skipped with a note).
# For each server: 0 B, 1 B, 32767/32768/32769 B and 5 MiB files arrive
# intact (sha256) with the requested mode (umask does not change it); an
# existing target is replaced; uploads into a missing or non-writable
# directory fail and leave neither the target nor a temporary file; an
# aborted upload leaves nothing behind.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"

PUT=${SHOAL_BUILD:-}/tests/interop_sftp_put
[ -n "${SHOAL_BUILD:-}" ] || skip "SHOAL_BUILD is not set"
[ -x "$PUT" ] || skip "$PUT is not built"
SFTP_SERVER=/usr/lib/openssh/sftp-server
[ -x "$SFTP_SERVER" ] || skip "$SFTP_SERVER is not installed"

peers_init
gen_user_keys
KEY=$T/keys/id_ed25519

mkdir -p "$T/src"
for n in 0 1 32767 32768 32769; do
    head -c "$n" /dev/urandom >"$T/src/f$n"
done
head -c $((5 * 1024 * 1024)) /dev/urandom >"$T/src/f5m"

# put LABEL PORT TARGET LOCAL [MODE]: run the upload program; $RC, $T/err.
put() {
    local port=$2 target=$3 local=$4
    shift 4
    run_cmd "$PUT" 127.0.0.1 "$port" "${PUT_USER:-$PEER_USER}" "$KEY" "$T/known_hosts" "$target" "$local" "$@"
    if [ "$RC" != 0 ]; then sed 's/^/    # /' "$T/err"; fi
}

# A second account for the non-writable directory check when running as
# root (root writes anywhere).
RO_USER=
if [ "$(id -u)" -eq 0 ]; then
    if make_test_user; then RO_USER=$TEST_USER; fi
else
    RO_USER=$PEER_USER
fi

same_file() { cmp -s "$1" "$2"; }
mode_is() { [ "$(stat -c %a "$1")" = "$2" ]; }
absent() { [ ! -e "$1" ]; }
no_temp_in() { [ -z "$(find "$1" -maxdepth 1 -name '.*.shoal-*' -print)" ]; }

# suite LABEL PORT DIR: the upload checks against one server; DIR is where
# the files go (the servers run as this user, on this machine).
suite() {
    local label=$1 port=$2 dir=$3 f
    mkdir -p "$dir"
    chmod 755 "$T" "$dir"
    for f in f0 f1 f32767 f32768 f32769 f5m; do
        put "$label" "$port" "$dir/$f" "$T/src/$f" 640
        check_rc 0 "$label: upload of $f exits 0"
        check "$label: $f arrives intact (sha256)" \
            test "$(sha256sum <"$dir/$f" | cut -d' ' -f1)" = "$(sha256sum <"$T/src/$f" | cut -d' ' -f1)"
        check "$label: $f has mode 640" mode_is "$dir/$f" 640
    done
    # Mode bits the umask would clear, and replacing an existing file.
    put "$label" "$port" "$dir/f1" "$T/src/f32769" 777
    check_rc 0 "$label: replacing an existing file exits 0"
    check "$label: the replaced file has the new content" same_file "$dir/f1" "$T/src/f32769"
    check "$label: mode 777 survives the server's umask" mode_is "$dir/f1" 777
    check "$label: no temporary file is left after successful uploads" no_temp_in "$dir"

    # Failures: missing directory, non-writable directory.
    put "$label" "$port" "$dir/missing/sub/x" "$T/src/f1"
    check_rc 1 "$label: upload into a missing directory fails"
    check_err_has "missing/sub/" "$label: the error names the path"
    check "$label: nothing under the target name (missing dir)" absent "$dir/missing/sub/x"
    put "$label" "$port" "$dir/f1/x" "$T/src/f1"
    check_rc 1 "$label: upload below a regular file fails"
    check "$label: the regular file is untouched" same_file "$dir/f1" "$T/src/f32769"
    if [ -n "$RO_USER" ]; then
        mkdir -p "$dir/ro"
        chmod 555 "$dir/ro"
        PUT_USER=$RO_USER put "$label" "$port" "$dir/ro/x" "$T/src/f32768"
        check_rc 1 "$label: upload into a non-writable directory fails ($RO_USER)"
        check_err_has "ro/\\.x\\.shoal-[0-9a-f]{16}: permission denied" \
            "$label: the error names the temporary file and says permission denied"
        check "$label: nothing under the target name (read-only dir)" absent "$dir/ro/x"
        check "$label: no temporary file in the read-only dir" no_temp_in "$dir/ro"
        chmod 755 "$dir/ro"
    else
        echo "note: no second account: the non-writable directory check is skipped"
    fi
    # A directory where the target should be: the data goes to the temp
    # file, the final rename fails, and the temp file must be removed.
    mkdir -p "$dir/isdir/inner"
    put "$label" "$port" "$dir/isdir" "$T/src/f5m"
    check_rc 1 "$label: upload onto a non-empty directory fails at the rename"
    check "$label: the directory is untouched" test -d "$dir/isdir/inner"
    check "$label: no temporary file after the failed rename" no_temp_in "$dir"
    # Aborted in the middle: nothing under the target, no temp file.
    SFTP_PUT_ABORT_AFTER=1048576 put "$label" "$port" "$dir/aborted" "$T/src/f5m"
    check_rc 1 "$label: an aborted upload reports failure"
    check_err_has "cancelled" "$label: the abort is reported as cancelled"
    check "$label: nothing under the target name after the abort" absent "$dir/aborted"
    check "$label: no temporary file after the abort" no_temp_in "$dir"
}

# ---- OpenSSH sshd with the sftp-server program
# start_sshd configures "Subsystem sftp internal-sftp" (and sshd refuses a
# second Subsystem line): switch it to the sftp-server program and have
# sshd re-read its configuration (SIGHUP: it re-executes itself, same pid).
start_sshd
sed -i "s|^Subsystem sftp .*|Subsystem sftp $SFTP_SERVER|" "$SSHD_CONFIG"
sshd_listening_twice() { [ "$(grep -c "Server listening on 127.0.0.1 port $SSHD_PORT\b" "$SSHD_LOG")" -ge 2 ]; }
kill -HUP "$SSHD_PID"
wait_for 10 sshd_listening_twice || die "sshd did not come back after SIGHUP"
wait_for 10 port_open "$SSHD_PORT" || die "sshd accepts no connection after SIGHUP"
suite "sshd" "$SSHD_PORT" "$T/up-sshd"

# ---- the same sshd without an sftp subsystem: a clear refusal
sed -i "/^Subsystem sftp /d" "$SSHD_CONFIG"
sshd_listening_thrice() { [ "$(grep -c "Server listening on 127.0.0.1 port $SSHD_PORT\b" "$SSHD_LOG")" -ge 3 ]; }
kill -HUP "$SSHD_PID"
wait_for 10 sshd_listening_thrice || die "sshd did not come back after the second SIGHUP"
wait_for 10 port_open "$SSHD_PORT" || die "sshd accepts no connection after the second SIGHUP"
put "sshd" "$SSHD_PORT" "$T/up-sshd/refused" "$T/src/f1"
check_rc 1 "sshd without sftp: the upload fails"
check_err_has "refused the sftp subsystem" "sshd without sftp: the error says the subsystem was refused"
check "sshd without sftp: nothing uploaded" absent "$T/up-sshd/refused"

# ---- shoal serve (its default configuration has Subsystem sftp sftp-server)
serve_help=$("${SHOAL_BIN:-$SHOAL_BUILD/shoal}" serve --help 2>&1 </dev/null || true)
if [[ $serve_help == *[Uu]sage* ]]; then
    # shellcheck disable=SC2119 # no extra configuration lines
    start_shoal_serve
    suite "shoal serve" "$SERVE_PORT" "$T/up-serve"
else
    echo "note: shoal serve is not available: its part is skipped"
fi

# ---- python3-asyncssh
if grep -qi sftp "$PEERS_LIB/asyncssh_server.py"; then
    start_asyncssh_server
    # It serves every user as its own process user: no read-only check.
    RO_USER='' suite "asyncssh" "$ASYNCSSH_PORT" "$T/up-asyncssh"
else
    echo "note: tests/lib/asyncssh_server.py has no SFTP server: the asyncssh part is skipped"
fi

finish
