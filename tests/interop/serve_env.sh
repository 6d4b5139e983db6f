#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016 # helpers run through check(); remote commands in single quotes
# Interop: client environment ("env" requests) against `shoal serve`, with
# a real `git clone` and OpenSSH's ssh (SendEnv / SetEnv):
#   * the git preset with "AcceptEnv GIT_*": GIT_CONFIG_PARAMETERS with
#     uploadpack.packObjectsHook (a command git-upload-pack runs instead of
#     pack-objects) is refused: the clone works, the hook never runs;
#   * the git preset with "AcceptEnv LD_*": LD_PRELOAD (a library built here
#     whose constructor leaves a mark) is refused: the clone works, the
#     library is never loaded;
#   * under a command policy nothing else passes even when AcceptEnv names
#     it in full, except GIT_PROTOCOL=version=N (the clone then speaks
#     protocol v2);
#   * without a command policy the dangerous names (LD_*, GIT_*, BASH_ENV,
#     PATH...) pass only when AcceptEnv names them in full, never through a
#     wildcard; GIT_PROTOCOL's value is checked; SSH_ORIGINAL_COMMAND is the
#     server's, whatever the client sends;
#   * every refusal is logged (verbose level), the name escaped.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_cmd ssh
command -v git >/dev/null 2>&1 || skip "git is not installed (Debian package git)"
CC=$(command -v cc || command -v gcc || true)
[ -n "$CC" ] || skip "no C compiler to build the LD_PRELOAD library"
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys
KEY=$T/keys/id_ed25519
DEST=$PEER_USER@127.0.0.1

# ---- what an escape would leave behind
mkdir -p "$T/marks"
chmod 1777 "$T/marks"
cat >"$T/hook.sh" <<EOF
#!/bin/sh
echo hook-ran >"$T/marks/hook"
exec "\$@"
EOF
chmod 755 "$T/hook.sh"
cat >"$T/evil.c" <<EOF
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void)
{
    int fd = open("$T/marks/preload", O_WRONLY | O_CREAT | O_APPEND, 0666);
    if (fd >= 0) {
        write(fd, "loaded\n", 7);
        close(fd);
    }
}
EOF
"$CC" -shared -fPIC -o "$T/evil.so" "$T/evil.c" || die "cannot build the LD_PRELOAD library"
chmod 755 "$T/evil.so"
no_marks() { [ -z "$(ls -A "$T/marks")" ]; }
# served_since MARK TEXT / served_since0 TEXT: the current server's log
# (since MARK) has TEXT.
served_since() { log_since "$SERVE_LOG" "$1" | grep -qF -- "$2"; }
served_since0() { grep -qF -- "$1" "$SERVE_LOG"; }
clear_marks() { rm -f "$T/marks"/*; }
# The library really works when it is loaded (so a missing mark means refused).
LD_PRELOAD=$T/evil.so /bin/true
check "the LD_PRELOAD library leaves its mark when loaded" test -s "$T/marks/preload"
clear_marks

# ---- a repository to clone
G=$T/git
mkdir -p "$G"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="shoal test" GIT_AUTHOR_EMAIL="test@shoal.invalid"
export GIT_COMMITTER_NAME="shoal test" GIT_COMMITTER_EMAIL="test@shoal.invalid"
git init -q -b main "$T/work"
(cd "$T/work" && seq 1 3000 >numbers && git add numbers && git commit -q -m first)
git clone -q --bare "$T/work" "$G/repo.git"
head_commit=$(git -C "$T/work" rev-parse HEAD)

# git's ssh: ours, with the client environment to send. The variables are
# set for ssh only (git itself must not read GIT_CONFIG_PARAMETERS, and
# LD_PRELOAD must not load into the local ssh): SendEnv takes it from
# ssh's own environment, SetEnv from the command line.
cat >"$T/ssh-env" <<EOF
#!/bin/sh
GIT_CONFIG_PARAMETERS="'uploadpack.packObjectsHook'='$T/hook.sh'" exec ssh -F /dev/null \\
    -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \\
    -o IdentitiesOnly=yes -i "$KEY" -o SendEnv=GIT_CONFIG_PARAMETERS -o "SetEnv=LD_PRELOAD=$T/evil.so" "\$@"
EOF
chmod 755 "$T/ssh-env"
export GIT_SSH=$T/ssh-env GIT_SSH_VARIANT=ssh
clone() { # DIR [git -c options...]: clone through shoal serve into $T/DIR
    local dir=$1
    shift
    rm -rf "${T:?}/$dir"
    run_cmd git "$@" clone -q "ssh://$DEST:$SERVE_PORT/repo.git" "$T/$dir"
}
cloned() { test "$(git -C "$T/$1" rev-parse HEAD)" = "$head_commit"; }

# ================================================================ the two escapes
for accept in 'GIT_*' 'LD_*' '*'; do
    start_shoal_serve "CommandPolicy git" "GitRoot $G" "AcceptEnv $accept"
    mark=$(log_mark "$SERVE_LOG")
    clear_marks
    clone "clone-$accept"
    check_rc 0 "git preset, AcceptEnv $accept: git clone works"
    check "git preset, AcceptEnv $accept: the clone has the commit" cloned "clone-$accept"
    check "git preset, AcceptEnv $accept: no packObjectsHook ran, no LD_PRELOAD library was loaded ($(ls "$T/marks"))" \
        no_marks
    check "git preset, AcceptEnv $accept: the GIT_CONFIG_PARAMETERS refusal is logged" \
        served_since "$mark" "ignoring env request GIT_CONFIG_PARAMETERS="
    check "git preset, AcceptEnv $accept: the LD_PRELOAD refusal is logged" \
        served_since "$mark" "ignoring env request LD_PRELOAD="
    stop_shoal_serve "$SERVE_PID"
done
grep -m 2 "ignoring env request" "$SERVE_LOG" | sed 's/^/# /' || true

# Named in full, still nothing under a command policy.
start_shoal_serve "CommandPolicy git" "GitRoot $G" "AcceptEnv GIT_CONFIG_PARAMETERS LD_PRELOAD"
clear_marks
clone clone-full
check_rc 0 "git preset, AcceptEnv naming both in full: git clone works"
check "git preset, AcceptEnv naming both in full: neither passes a command policy" no_marks
check "git preset: the reason is the command policy" served_since0 "accepts no environment but GIT_PROTOCOL"
stop_shoal_serve "$SERVE_PID"

# GIT_PROTOCOL passes (validated): the clone speaks protocol v2.
for accept in "GIT_PROTOCOL" "LANG"; do
    start_shoal_serve "CommandPolicy git" "GitRoot $G" "AcceptEnv $accept"
    GIT_TRACE_PACKET=$T/trace.$accept clone "clone-v2-$accept" -c protocol.version=2
    check_rc 0 "git preset, AcceptEnv $accept: a protocol v2 clone works"
    if [ "$accept" = GIT_PROTOCOL ]; then
        check "git preset, AcceptEnv GIT_PROTOCOL: GIT_PROTOCOL=version=2 reaches git-upload-pack (v2 spoken)" \
            grep -q "< version 2" "$T/trace.$accept"
    else
        check "git preset without AcceptEnv GIT_PROTOCOL: the server speaks v0" \
            sh -c "! grep -q '< version 2' '$T/trace.$accept'"
    fi
    stop_shoal_serve "$SERVE_PID"
done

# ================================================================ without a command policy
SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o IdentitiesOnly=yes -i "$KEY")
# (PATH is the server's unless passed; the login shell's start-up files
# may add to it, so the check is that the client's value is not in it.)
show='echo "LD=${LD_PRELOAD-unset} GC=${GIT_CONFIG_PARAMETERS-unset} BE=${BASH_ENV-unset} GP=${GIT_PROTOCOL-unset} L=${LC_SHOAL-unset}"; case :$PATH: in *:/evil/bin:*) echo PATH=client;; esac'
start_shoal_serve "AcceptEnv *"
clear_marks
# (ssh takes one SetEnv option: all variables in it.)
run_cmd "${SSH[@]}" -p "$SERVE_PORT" \
    -o "SetEnv=LD_PRELOAD=$T/evil.so BASH_ENV=$T/hook.sh PATH=/evil/bin GIT_CONFIG_PARAMETERS=x GIT_PROTOCOL=version=2 LC_SHOAL=ok" \
    "$DEST" "$show" </dev/null
check_rc 0 "AcceptEnv *: the command runs"
check_out "LD=unset GC=unset BE=unset GP=unset L=ok" "AcceptEnv *: only the ordinary name passes a wildcard"
check "AcceptEnv *: no library was loaded" no_marks
stop_shoal_serve "$SERVE_PID"

start_shoal_serve "AcceptEnv LD_PRELOAD GIT_PROTOCOL LC_*"
clear_marks
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -o "SetEnv=LD_PRELOAD=$T/evil.so GIT_PROTOCOL=version=2" \
    "$DEST" "$show" </dev/null
check_out "LD=$T/evil.so GC=unset BE=unset GP=version=2 L=unset" \
    "AcceptEnv naming LD_PRELOAD and GIT_PROTOCOL in full: both pass"
check "AcceptEnv naming LD_PRELOAD in full: the administrator's choice holds (the library loaded)" \
    test -s "$T/marks/preload"
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -o "SetEnv=GIT_PROTOCOL=version=2;id" "$DEST" "$show" </dev/null
check "GIT_PROTOCOL other than version=N is refused ($(cat "$T/out"))" grep -q "GP=unset" "$T/out"
check "... and logged" served_since0 "GIT_PROTOCOL must be version=N"
stop_shoal_serve "$SERVE_PID"

# The server's own variables come last: a forced command sees the real
# original command even when the client sends one and AcceptEnv names it.
start_shoal_serve "AcceptEnv SSH_ORIGINAL_COMMAND SSH_CONNECTION" \
    'ForceCommand echo "orig=$SSH_ORIGINAL_COMMAND conn=${SSH_CONNECTION%% *}"'
run_cmd "${SSH[@]}" -p "$SERVE_PORT" -o 'SetEnv=SSH_ORIGINAL_COMMAND=spoofed SSH_CONNECTION="1.2.3.4 1 2 3"' \
    "$DEST" 'the real one' </dev/null
check_out "orig=the real one conn=127.0.0.1" "SSH_ORIGINAL_COMMAND and SSH_CONNECTION are the server's, not the client's"
stop_shoal_serve "$SERVE_PID"

# A refused name with control characters is logged escaped, on one line.
start_shoal_serve "AcceptEnv *"
mark=$(log_mark "$SERVE_LOG")
"$PEERS_PYTHON" - "$SERVE_PORT" "$KEY" "$PEER_USER" <<'EOF' >"$T/py.out" 2>&1 || true
import sys, paramiko
port, key, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = paramiko.Transport(("127.0.0.1", port))
t.start_client(timeout=30)
t.auth_publickey(user, paramiko.Ed25519Key(filename=key))
ch = t.open_session()
ch.set_environment_variable("LD_PRELOAD\nforged line", "x\ny")  # no reply is asked for
ch.exec_command("true")
ch.recv_exit_status()
t.close()
EOF
check "an env request with a newline in its name is refused, logged on one line, escaped ($(cat "$T/py.out"))" \
    served_since "$mark" 'ignoring env request LD_PRELOAD\012forged line=x\012y: invalid name'
check "... with no line of its own for the forged part" sh -c "! grep -q '^forged line' '$SERVE_LOG'"
stop_shoal_serve "$SERVE_PID"

finish
