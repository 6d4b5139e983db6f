#!/usr/bin/env bash
# What `shoal put` does to what is already there, over each transport
# (sftp, scp, cat) against OpenSSH's sshd, as scp would:
#   * a target that is a directory receives the file under the source's name;
#   * a symbolic link is followed: the link stays, the file it points to is
#     replaced;
#   * an existing file keeps its mode (unless --mode), a new one gets the
#     source's;
#   * --inplace writes the file itself: hard links and the inode survive,
#     so does the mode.
# And failures the client can see never leave a temporary file behind, or
# name it: uploads that a file-size limit on the server (RLIMIT_FSIZE, like
# a full disk) cuts in the middle, through shoal serve.
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
require_shoal
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"

head -c 300000 /dev/urandom >"$T/src.bin"
chmod 644 "$T/src.bin"
want=$(sha256sum <"$T/src.bin" | cut -d' ' -f1)
sha_of() { if [ -f "$1" ]; then sha256sum <"$1" | cut -d' ' -f1; else echo missing; fi; }
D=$T/up
mkdir -p "$D"
chown "$TEST_USER" "$D"
as_user() { runuser -u "$TEST_USER" -- "$@"; }

start_sshd
PUT=("$SHOAL_BIN" put -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SSHD_PORT" -o "UserKnownHostsFile=$T/kh"
    --no-progress -t 60 -H 127.0.0.1)
put() { RC=0; timeout -k 5 90 "${PUT[@]}" "$@" >"$T/out" 2>&1 || RC=$?; }

for via in sftp scp cat; do
    find "$D" -mindepth 1 -delete
    # ---- into a directory ----
    as_user mkdir "$D/dir"
    put --via "$via" "$T/src.bin" "$D/dir"
    check "$via: put to a directory: exit 0 (got $RC)" test "$RC" -eq 0
    check "$via: put to a directory: lands under the source's name" test "$(sha_of "$D/dir/src.bin")" = "$want"
    put --via "$via" "$T/src.bin" "$D/dir/"
    check "$via: put to dir/ (trailing slash): exit 0 (got $RC)" test "$RC" -eq 0
    check "$via: put to dir/: same file" test "$(sha_of "$D/dir/src.bin")" = "$want"

    # ---- a new file gets the source's mode ----
    put --via "$via" "$T/src.bin" "$D/new"
    check "$via: new file: mode of the source (644)" test "$(stat -c %a "$D/new")" = 644

    # ---- an existing file keeps its mode; --mode overrides ----
    as_user sh -c "echo old >'$D/kept' && chmod 600 '$D/kept'"
    put --via "$via" "$T/src.bin" "$D/kept"
    check "$via: over an existing file: exit 0 (got $RC)" test "$RC" -eq 0
    check "$via: over an existing file: content replaced" test "$(sha_of "$D/kept")" = "$want"
    check "$via: over an existing file: its mode 600 kept" test "$(stat -c %a "$D/kept")" = 600
    put --via "$via" --mode 0640 "$T/src.bin" "$D/kept"
    check "$via: --mode 0640 overrides" test "$(stat -c %a "$D/kept")" = 640

    # ---- a symbolic link is followed, and stays ----
    as_user sh -c "echo old >'$D/real' && chmod 600 '$D/real' && ln -s real '$D/link'"
    put --via "$via" "$T/src.bin" "$D/link"
    check "$via: through a symlink: exit 0 (got $RC)" test "$RC" -eq 0
    check "$via: through a symlink: the link is still a link" test -L "$D/link"
    check "$via: through a symlink: the file it points to has the new content" test "$(sha_of "$D/real")" = "$want"
    check "$via: through a symlink: that file keeps its mode" test "$(stat -c %a "$D/real")" = 600
    # A link to a directory: into that directory.
    as_user sh -c "mkdir '$D/realdir' && ln -s realdir '$D/dirlink'"
    put --via "$via" "$T/src.bin" "$D/dirlink"
    check "$via: a link to a directory: into it" test "$(sha_of "$D/realdir/src.bin")" = "$want"

    # ---- --inplace: hard links and the inode survive ----
    as_user sh -c "echo old >'$D/hl' && chmod 620 '$D/hl' && ln '$D/hl' '$D/hl2'"
    ino=$(stat -c %i "$D/hl")
    put --via "$via" --inplace "$T/src.bin" "$D/hl"
    check "$via: --inplace: exit 0 (got $RC)" test "$RC" -eq 0
    check "$via: --inplace: same inode" test "$(stat -c %i "$D/hl")" = "$ino"
    check "$via: --inplace: the other hard link has the new content too" test "$(sha_of "$D/hl2")" = "$want"
    check "$via: --inplace: mode kept (620)" test "$(stat -c %a "$D/hl")" = 620
    # Without it the upload is atomic: a new inode (documented).
    put --via "$via" "$T/src.bin" "$D/hl"
    check "$via: default (atomic): a new inode" test "$(stat -c %i "$D/hl")" != "$ino"

    # ---- a target that cannot be a file ----
    as_user mkdir -p "$D/dir/src.bin.d" "$D/nest/src.bin"
    put --via "$via" "$T/src.bin" "$D/nest"
    check "$via: dir/NAME is itself a directory: exit 1 (got $RC)" test "$RC" -eq 1
    check "$via: dir/NAME is itself a directory: said so" grep -qi "is a directory" "$T/out"
    check "$via: no temporary file left" test -z "$(find "$D" -name '.*.shoal-*')"
done

# ---- shoal put --clean-temp: what killed uploads leave ----
for via in sftp scp cat; do
    find "$D" -mindepth 1 -delete
    as_user sh -c "cd '$D' && echo a >.x.shoal-0123456789abcdef && echo b >.y.bin.shoal-fedcba9876543210 &&
        echo c >.z.shoal-00000000000000ff && echo d >.keep.shoal-0123 && echo e >.other-0123456789abcdef &&
        mkdir .dir.shoal-aaaaaaaaaaaaaaaa && touch -d '2 days ago' .x.shoal-* .y.bin.shoal-* .keep.shoal-* .other-*"
    put --via "$via" --clean-temp "$D"
    check "$via: --clean-temp: exit 0 (got $RC)" test "$RC" -eq 0
    check "$via: --clean-temp: old leftovers removed" test ! -e "$D/.x.shoal-0123456789abcdef" -a \
        ! -e "$D/.y.bin.shoal-fedcba9876543210"
    check "$via: --clean-temp: each named in the output" sh -c "grep -q 'removed .*/.x.shoal-0123456789abcdef' '$T/out' &&
        grep -q 'removed .*/.y.bin.shoal-fedcba9876543210' '$T/out'"
    check "$via: --clean-temp: a fresh one (an upload in progress) kept" test -e "$D/.z.shoal-00000000000000ff"
    check "$via: --clean-temp: other names kept" test -e "$D/.keep.shoal-0123" -a -e "$D/.other-0123456789abcdef"
    check "$via: --clean-temp: directories kept" test -d "$D/.dir.shoal-aaaaaaaaaaaaaaaa"
    put --via "$via" --clean-temp --older-than 0 "$D"
    check "$via: --clean-temp --older-than 0: the fresh one too" test ! -e "$D/.z.shoal-00000000000000ff"
done
put --clean-temp "$D/no-such-dir"
check "--clean-temp of a missing directory: exit 1 (got $RC)" test "$RC" -eq 1

# ---- failures mid-upload: a 1 MiB file-size limit on the server ----
head -c $((4 << 20)) /dev/urandom >"$T/big"
mkdir -p "$T/lim"
chown "$TEST_USER" "$T/lim"
ulimit -S -f 1024 # inherited by shoal serve and the sessions it runs; not by what runs later here
start_shoal_serve "Subsystem sftp /usr/lib/openssh/sftp-server"
ulimit -S -f unlimited
for via in scp cat sftp; do
    RC=0
    timeout -k 5 90 "$SHOAL_BIN" put -l "$TEST_USER" -i "$T/keys/id_ed25519" -p "$SERVE_PORT" \
        -o "UserKnownHostsFile=$T/kh" --no-progress -t 60 --via "$via" -H 127.0.0.1 \
        "$T/big" "$T/lim/f.$via" >"$T/out" 2>&1 || RC=$?
    check "$via: cut by the server's file-size limit: exit 1 (got $RC)" test "$RC" -eq 1
    check "$via: cut: nothing under the target name" test ! -e "$T/lim/f.$via"
    left=$(find "$T/lim" -name ".f.$via.shoal-*")
    if [ -n "$left" ]; then
        # Only when the server side cannot remove it (sftp-server itself
        # was killed by the limit): the message must name it.
        check "$via: cut: the leftover is named in the message" grep -qF "${left##*/}" "$T/out"
    else
        ok "$via: cut: the temporary file was removed"
    fi
    rm -f "$T"/lim/.f.*
done
finish
