#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop: git over ssh against `shoal serve` with "CommandPolicy git" and
# "GitRoot $T/git" -- the git preset:
#   * git push of a real repository into a bare repository created at test
#     time, the pushed commit verified in the bare repository;
#   * git clone (with and without ".git", with a "~/" path), git fetch of a
#     second push, git archive --remote (git-upload-archive);
#   * refusals, each exit 1 with a clear message on stderr: a non-git
#     command, a shell, a path escaping GitRoot ("/../../etc"), a symlink
#     out of GitRoot, a repository that does not exist, a git command with
#     a shell command appended; the sftp subsystem.
# git runs with an empty configuration (GIT_CONFIG_GLOBAL=/dev/null,
# GIT_CONFIG_NOSYSTEM=1) and reaches the server through GIT_SSH_COMMAND.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_cmd ssh
command -v git >/dev/null 2>&1 || skip "git is not installed (Debian package git)"
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys

G=$T/git
mkdir -p "$G"
git init -q --bare -b main "$G/repo.git"
git init -q --bare "$T/outside.git"
ln -s "$T/outside.git" "$G/link.git"
ln -s /etc "$G/etc"
start_shoal_serve "CommandPolicy git" "GitRoot $G"

KEY=$T/keys/id_ed25519
SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o IdentitiesOnly=yes -i "$KEY")
GIT_SSH_COMMAND="${SSH[*]}"
GIT_CONFIG_GLOBAL=/dev/null
GIT_CONFIG_NOSYSTEM=1
GIT_TERMINAL_PROMPT=0
GIT_AUTHOR_NAME="shoal test" GIT_AUTHOR_EMAIL="test@shoal.invalid"
GIT_COMMITTER_NAME="shoal test" GIT_COMMITTER_EMAIL="test@shoal.invalid"
export GIT_SSH_COMMAND GIT_CONFIG_GLOBAL GIT_CONFIG_NOSYSTEM GIT_TERMINAL_PROMPT
export GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
URL=ssh://$PEER_USER@127.0.0.1:$SERVE_PORT

# ---- a real repository: a few commits, a binary file, a tag
W=$T/work
git init -q -b main "$W"
(
    cd "$W"
    printf 'hello from shoal\n' >README
    head -c 300000 /dev/urandom >blob.bin
    mkdir -p src && seq 1 5000 >src/numbers.txt
    git add -A && git commit -q -m "first"
    printf 'second line\n' >>README
    git commit -q -am "second"
    git tag -a v1 -m "version 1"
)
head1=$(git -C "$W" rev-parse HEAD)

run_cmd git -C "$W" push "$URL/repo.git" main v1
check_rc 0 "git push over shoal serve exits 0"
check "the pushed commit is in the bare repository" \
    test "$(git --git-dir="$G/repo.git" rev-parse refs/heads/main)" = "$head1"
check "the pushed tag is there too" git --git-dir="$G/repo.git" rev-parse -q --verify refs/tags/v1
check "the bare repository is consistent (git fsck)" git --git-dir="$G/repo.git" fsck --no-progress

run_cmd git clone -q "$URL/repo.git" "$T/clone1"
check_rc 0 "git clone exits 0"
check "the clone has the pushed commit" test "$(git -C "$T/clone1" rev-parse HEAD)" = "$head1"
check "the clone's files are the same" diff -r --exclude=.git "$W" "$T/clone1"
run_cmd git clone -q "$URL/repo" "$T/clone2"
check_rc 0 "git clone without .git exits 0"
run_cmd git clone -q "$URL/~/repo.git" "$T/clone3"
check_rc 0 "git clone of ~/repo.git (GitRoot-relative) exits 0"

# ---- a second push, fetched by the first clone
(
    cd "$W"
    printf 'third\n' >>README
    git commit -q -am "third"
)
head2=$(git -C "$W" rev-parse HEAD)
run_cmd git -C "$W" push -q "$URL/repo.git" main
check_rc 0 "a second push exits 0"
run_cmd git -C "$T/clone1" pull -q --ff-only
check_rc 0 "git pull exits 0"
check "the pull brought the second push" test "$(git -C "$T/clone1" rev-parse HEAD)" = "$head2"
run_cmd git archive --format=tar --remote="$URL/repo.git" main README
check_rc 0 "git archive --remote (git-upload-archive) exits 0"
check "git archive --remote: README is in the archive" tar -tf "$T/out" README

# ---- refusals
S=("${SSH[@]}" -p "$SERVE_PORT" "$PEER_USER@127.0.0.1")
refused() {
    local desc=$1
    check_rc 1 "$desc: exit 1"
    check "$desc: a clear message on stderr" grep -q "^shoal: " "$T/err"
    echo "#   $(head -n 1 "$T/err")"
}
run_cmd "${S[@]}" ls </dev/null
refused "a non-git command (ls)"
run_cmd "${SSH[@]}" -T -p "$SERVE_PORT" "$PEER_USER@127.0.0.1" </dev/null
refused "a shell"
run_cmd "${S[@]}" "git-upload-pack '/../../etc'" </dev/null
refused "git-upload-pack '/../../etc'"
run_cmd "${S[@]}" "git-upload-pack 'repo.git'; id" </dev/null
refused "git-upload-pack with a command appended"
check "... and nothing ran" test ! -s "$T/out"
run_cmd "${S[@]}" "git-upload-pack 'link.git'" </dev/null
refused "a symlink to a repository outside GitRoot"
run_cmd "${S[@]}" "git-upload-pack 'etc'" </dev/null
refused "a symlink to /etc"
run_cmd "${S[@]}" "git-receive-pack 'nosuch.git'" </dev/null
refused "a repository that does not exist"

if [ -x /usr/lib/openssh/sftp-server ] && command -v sftp >/dev/null 2>&1; then
    run_cmd sftp -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes \
        -o BatchMode=yes -o IdentitiesOnly=yes -i "$KEY" -b - -P "$SERVE_PORT" "$PEER_USER@127.0.0.1" <<<"ls"
    check "the sftp subsystem is refused by the git preset" test "$RC" -ne 0
    check "sftp refused: the message reaches sftp's stderr" grep -q "^shoal: " "$T/err"
fi

run_cmd git clone -q "$URL/../../etc" "$T/clone-etc"
check "git clone $URL/../../etc fails" test "$RC" -ne 0
check "git clone ../../etc: the server's message reaches git's stderr" \
    grep -q "^shoal: repository path" "$T/err"
check "git clone ../../etc: nothing was cloned" test ! -e "$T/clone-etc/passwd"
run_cmd git clone -q "$URL/link.git" "$T/clone-link"
check "git clone through a symlink out of GitRoot fails" test "$RC" -ne 0
check "git clone through a symlink: the server's message" grep -q "^shoal: repository path" "$T/err"

finish
