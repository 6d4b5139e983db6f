#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# shellcheck disable=SC2016 # the remote shell expands the commands' variables
# Interop: stock OpenSSH clients (ssh, scp, sftp) against `shoal serve`:
#   * ssh exec: a login with each user key type (checked in the server's
#     log), exit statuses 0/1/42, stdout vs stderr, stdin and its EOF, a
#     command killed by SIGTERM (ssh exits 255 after an "exit-signal"),
#     64 MiB each way (sha256);
#   * the environment: SendEnv/SetEnv through AcceptEnv, nothing else of
#     the server's own environment, SSH_CONNECTION / SSH_CLIENT;
#   * ssh -tt: a shell on a pty, fed from a pipe (tty, TERM, exit status),
#     and driven on a real terminal (tests/lib/pty_run.py) for the pty size
#     and a window change;
#   * scp in both modes (SFTP, OpenSSH 9's default, and -O, the legacy
#     protocol that runs the remote `scp`) and an sftp batch
#     (put/ls/rename/get/rm/mkdir/rmdir), over "Subsystem sftp
#     /usr/lib/openssh/sftp-server", files of 0 B, 1 B, 32 KiB-1/32 KiB/
#     32 KiB+1 and 10 MiB compared by sha256.
# Logs in as the user running the test (root in CI); commands run on this
# machine, so "remote" paths are under $T too.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
require_shoal_serve
require_cmd ssh scp sftp
[ -x /usr/lib/openssh/sftp-server ] || skip "/usr/lib/openssh/sftp-server is not installed"
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init
gen_user_keys
start_shoal_serve "AcceptEnv LC_* SHOAL_*"

DEST=$PEER_USER@127.0.0.1
KEY=$T/keys/id_ed25519
SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o IdentitiesOnly=yes -p "$SERVE_PORT")
SCP=(scp -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o IdentitiesOnly=yes -P "$SERVE_PORT" -i "$KEY" -q)
SFTP=(sftp -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o IdentitiesOnly=yes -P "$SERVE_PORT" -i "$KEY" -q)
sha() { sha256sum <"$1" | cut -d' ' -f1; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# served MARK PATTERN: the server's log since MARK has a line matching the
# fixed string PATTERN.
served() {
    if log_since "$SERVE_LOG" "$1" | grep -F -- "$2" >/dev/null; then return 0; fi
    echo "no line with '$2' in the server's log; it says:"
    log_since "$SERVE_LOG" "$1" | tail -n 20 | sed 's/^/| /'
    return 1
}

# ---- a login with each user key type
for k in id_ed25519 id_ecdsa id_rsa; do
    case $k in
        id_ed25519) type=ssh-ed25519 ;;
        id_ecdsa) type=ecdsa-sha2-nistp256 ;;
        id_rsa) type=ssh-rsa ;;
    esac
    fp=$(ssh-keygen -lf "$T/keys/$k.pub" | awk '{ print $2 }')
    mark=$(log_mark "$SERVE_LOG")
    run_cmd "${SSH[@]}" -i "$T/keys/$k" "$DEST" 'echo ok' </dev/null
    check_rc 0 "publickey $k: exits 0"
    check_out ok "publickey $k: command ran"
    check "publickey $k: the server logged $type $fp" served "$mark" "accepted publickey $type $fp"
done

# ---- exit statuses, stdout vs stderr, stdin
S=("${SSH[@]}" -i "$KEY" "$DEST")
for st in 0 1 42; do
    run_cmd "${S[@]}" "exit $st" </dev/null
    check_rc "$st" "exit $st"
done
run_cmd "${S[@]}" 'echo out1; echo err1 >&2; echo out2; echo err2 >&2' </dev/null
check_out $'out1\nout2' "stdout carries only stdout"
check_err $'err1\nerr2' "stderr carries only stderr"
run_cmd "${S[@]}" cat < <(printf 'a\nb\n')
check_rc 0 "cat of stdin exits 0"
check_out $'a\nb' "stdin is forwarded"
run_cmd "${S[@]}" 'wc -c' </dev/null
check_out 0 "EOF on stdin reaches the command"
run_cmd "${S[@]}" 'echo "[$1]"' </dev/null
check_out '[]' "the command runs through a shell (-c)"

# ---- killed by a signal: exit-signal, ssh exits 255
run_cmd "${SSH[@]}" -v -i "$KEY" "$DEST" 'kill -TERM $$' </dev/null
check_rc 255 "killed by TERM: ssh exits 255"
check_err_has "rtype exit-signal" "killed by TERM: the server sent exit-signal"
run_cmd "${S[@]}" 'sh -c "kill -KILL \$\$"; echo "after=$?"' </dev/null
check_out "after=137" "a child killed by KILL inside the command does not end the session"

# ---- 64 MiB each way
head -c 67108864 /dev/urandom >"$T/big"
want=$(sha "$T/big")
start=$(date +%s.%N)
run_cmd "${S[@]}" "cat '$T/big'" </dev/null
end=$(date +%s.%N)
check_rc 0 "64 MiB download exits 0"
check_sha256 "$want" "64 MiB download intact"
echo "# 64 MiB download: $(elapsed "$start" "$end") s"
start=$(date +%s.%N)
run_cmd "${S[@]}" sha256sum <"$T/big"
end=$(date +%s.%N)
check_rc 0 "64 MiB upload exits 0"
check_out "$want  -" "64 MiB upload intact"
echo "# 64 MiB upload: $(elapsed "$start" "$end") s"
rm -f "$T/big" "$T/out"

# ---- environment
LC_SHOAL_A=from-sendenv SHOAL_LEAK=1 run_cmd "${SSH[@]}" -i "$KEY" -o SendEnv=LC_SHOAL_A \
    -o "SetEnv=LC_SHOAL_B=from-setenv SHOAL_X=x NOT_ACCEPTED=1" "$DEST" \
    'echo "$LC_SHOAL_A|$LC_SHOAL_B|$SHOAL_X|${NOT_ACCEPTED-unset}|${SHOAL_LEAK-unset}"' </dev/null
check_out "from-sendenv|from-setenv|x|unset|unset" \
    "SendEnv/SetEnv pass AcceptEnv LC_* SHOAL_*; nothing else comes through"
home=$(getent passwd "$PEER_USER" | cut -d: -f6)
run_cmd "${S[@]}" 'echo "$HOME|$USER|$LOGNAME|$(pwd)"' </dev/null
check_out "$home|$PEER_USER|$PEER_USER|$home" "HOME, USER, LOGNAME, cwd"
# The environment the shell was started with (before any rc file).
run_cmd "${S[@]}" 'tr "\0" "\n" </proc/$$/environ | cut -d= -f1 | sort | tr "\n" " "' </dev/null
check_out "HOME LOGNAME PATH SHELL SSH_CLIENT SSH_CONNECTION USER " "the command's whole environment (no pty)"
run_cmd "${S[@]}" 'echo "$SSH_CONNECTION|$SSH_CLIENT"' </dev/null
conn=$(cut -d'|' -f1 "$T/out")
client=$(cut -d'|' -f2 "$T/out")
check "SSH_CONNECTION starts with the client's address and port" \
    grep -qE '^127\.0\.0\.1 [0-9]+ ' "$T/out"
check "SSH_CONNECTION ends with the server's address and port ($conn)" \
    test "${conn##* }" = "$SERVE_PORT"
check "SSH_CLIENT ends with the server's port ($client)" \
    test "${client##* }" = "$SERVE_PORT"

# ---- a shell on a pty, fed from a pipe
printf '%s\n' 'tty' 'echo "T=$TERM"' 'exit 7' >"$T/shell-in"
TERM=vt100 run_cmd "${SSH[@]}" -tt -i "$KEY" "$DEST" <"$T/shell-in"
check_rc 7 "ssh -tt shell: exit 7"
check "ssh -tt shell: tty is a /dev/pts device" grep -q '/dev/pts/[0-9]' "$T/out"
check "ssh -tt shell: TERM from the client" grep -q 'T=vt100' "$T/out"
TERM=vt100 run_cmd "${SSH[@]}" -tt -i "$KEY" "$DEST" 'tty; exit 5' </dev/null
check_rc 5 "ssh -tt exec on a pty: exit 5"
check "ssh -tt exec: the command has a tty" grep -q '^/dev/pts/[0-9]' "$T/out"
TERM=vt100 run_cmd "${SSH[@]}" -tt -i "$KEY" "$DEST" 'tr "\0" "\n" </proc/$$/environ | grep ^TERM=' </dev/null
check "ssh -tt exec: TERM=vt100 in the command's environment" grep -q '^TERM=vt100' "$T/out"
run_cmd "${SSH[@]}" -T -i "$KEY" "$DEST" 'tty' </dev/null
check_out "not a tty" "ssh -T: no tty"

# ---- a real terminal: pty size and a window change
if "$PEERS_PYTHON" -c 'import pty' 2>/dev/null; then
    cat >"$T/pty-steps" <<'EOF'
send echo "S=$(stty size)=E T=$TERM"
expect S=40 120=E T=vt100
resize 50 132
sleep 0.5
send echo "S=$(stty size)=E"
expect S=50 132=E
send exit 3
EOF
    TERM=vt100 run_cmd "$PEERS_PYTHON" "$PEERS_LIB/pty_run.py" --rows 40 --cols 120 "$T/pty-steps" -- \
        "${SSH[@]}" -tt -i "$KEY" "$DEST"
    check_rc 3 "terminal: shell exits 3"
    check "terminal: the pty has the client's size (40x120)" grep -q 'S=40 120=E' "$T/out"
    check "terminal: a window change resizes it (50x132)" grep -q 'S=50 132=E' "$T/out"
fi

# ---- scp, both protocols, and sftp
L=$T/lfiles R=$T/rfiles D=$T/dfiles
mkdir -p "$L" "$R/sftp" "$R/legacy" "$D/sftp" "$D/legacy"
: >"$L/f0"
printf 'x' >"$L/f1"
for n in 32767 32768 32769 10485760; do head -c "$n" /dev/urandom >"$L/f$n"; done
files=(f0 f1 f32767 f32768 f32769 f10485760)
same() { [ -f "$2" ] && [ "$(sha "$1")" = "$(sha "$2")" ]; }
for mode in sftp legacy; do
    flag=()
    if [ "$mode" = legacy ]; then flag=(-O); fi
    src=()
    for f in "${files[@]}"; do src+=("$L/$f"); done
    run_cmd "${SCP[@]}" ${flag[@]+"${flag[@]}"} "${src[@]}" "$DEST:$R/$mode/" </dev/null
    check_rc 0 "scp $mode: upload of ${#files[@]} files exits 0"
    for f in "${files[@]}"; do
        check "scp $mode: upload of $f intact" same "$L/$f" "$R/$mode/$f"
    done
    run_cmd "${SCP[@]}" ${flag[@]+"${flag[@]}"} "$DEST:$R/$mode/*" "$D/$mode/" </dev/null
    check_rc 0 "scp $mode: download of ${#files[@]} files exits 0"
    for f in "${files[@]}"; do
        check "scp $mode: download of $f intact" same "$L/$f" "$D/$mode/$f"
    done
done
run_cmd "${SCP[@]}" "$DEST:$R/no-such-file" "$D/" </dev/null
check "scp: a missing remote file fails" test "$RC" -ne 0

mkdir -p "$T/sftp-local"
cat >"$T/sftp-batch" <<EOF
lcd $T/sftp-local
cd $R
mkdir up
put $L/f32769 up/a
put $L/f10485760 up/big
ls -l up
rename up/a up/b
get up/b b
get up/big big
rm up/b
rm up/big
rmdir up
ls
EOF
run_cmd "${SFTP[@]}" -b "$T/sftp-batch" "$DEST" </dev/null
check_rc 0 "sftp batch: exits 0"
check "sftp batch: ls -l lists the uploaded files" grep -qE ' 10485760 .*up/big' "$T/out"
check "sftp batch: renamed file downloaded intact" same "$L/f32769" "$T/sftp-local/b"
check "sftp batch: 10 MiB downloaded intact" same "$L/f10485760" "$T/sftp-local/big"
check "sftp batch: rm and rmdir removed the remote files" test ! -e "$R/up"
printf 'get %s/no-such-file\n' "$R" >"$T/sftp-batch2"
run_cmd "${SFTP[@]}" -b "$T/sftp-batch2" "$DEST" </dev/null
check "sftp batch: a failing get makes sftp exit non-zero" test "$RC" -ne 0

# ---- the client re-keys every 1 MiB (RekeyLimit) while data flows both ways
RC=0
timeout 120 "${SSH[@]}" -i "$KEY" -o RekeyLimit=1M "$DEST" 'head -c 33554432 /dev/zero' 2>"$T/err" | sha256sum | cut -d' ' -f1 >"$T/sum" || RC=$?
check "32 MiB download with a re-key every 1 MiB: intact" [ "$(cat "$T/sum")" = "$(head -c 33554432 /dev/zero | sha256sum | cut -d' ' -f1)" ]
head -c 16777216 /dev/urandom >"$T/rk_blob"
RC=0
timeout 120 "${SSH[@]}" -i "$KEY" -o RekeyLimit=1M "$DEST" sha256sum <"$T/rk_blob" >"$T/out" 2>"$T/err" || RC=$?
check "16 MiB upload with a re-key every 1 MiB: intact" [ "$(cut -d' ' -f1 "$T/out")" = "$(sha256sum "$T/rk_blob" | cut -d' ' -f1)" ]

finish
