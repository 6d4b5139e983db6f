#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# shellcheck disable=SC2119 # start_shoal_serve with no extra config lines
# packaging.install: libshoal as a user gets it.
#   * `cmake --install BUILD --prefix TMP` lays out bin/, lib/ (libshoal.so*,
#     libshoal.a, pkgconfig/libshoal.pc, cmake/shoal/), include/shoal/,
#     share/man/man{1,5,8}/, share/bash-completion/completions/shoal;
#   * every examples/*.c builds against that prefix with
#     `cc $(pkg-config --cflags --libs libshoal)` only (no -I into the
#     source tree), and run_one also through find_package(shoal) in a tiny
#     CMake project (shared and static);
#   * each example runs as the EXAMPLES table below says, against a private
#     OpenSSH sshd, a private `shoal serve`, or tiny_server (which is itself
#     an example: stock ssh is its client).
# Needs SHOAL_BUILD (the build tree); skipped (77) without cc/pkg-config/cmake/sshd.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
SRC=${SHOAL_SRC:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)}
[ -n "${SHOAL_BUILD:-}" ] || skip "SHOAL_BUILD is not set"
require_shoal
require_shoal_serve
require_cmd cc pkg-config cmake ssh ssh-keygen
unset SSH_AUTH_SOCK SSH_AGENT_PID
peers_init

# Each example: where it runs, the exit code it must give, fixed strings
# its output (stdout and stderr) must hold (";" between them), and its
# command line. PORT, USER, KEY (a private key), KH (a known_hosts file
# with the server's keys), HOSTKEY and AUTHKEYS are replaced.
#   against: sshd | serve (shoal serve) | tiny (tiny_server, started first)
EXAMPLES=$(cat <<'TABLE'
sshd  | 0  | hi;exit status 0       | run_one -p PORT -l USER -i KEY -o UserKnownHostsFile=KH -o StrictHostKeyChecking=yes 127.0.0.1 'echo hi'
serve | 3  | oops;exit status 3     | run_one -p PORT -l USER -i KEY -o UserKnownHostsFile=KH 127.0.0.1 'echo oops >&2; exit 3'
tiny  | 0  | hi there;exit status 0 | run_one -p PORT -l USER -i KEY -o UserKnownHostsFile=KH 127.0.0.1 'echo hi there'
sshd  | 0  | [1] one 3;[2] two 3;[3] three done;[3] three to stderr;[3] exit status 0 | multiplex -p PORT -l USER -i KEY -o UserKnownHostsFile=KH 127.0.0.1
serve | 1  | [1] a;[2] exit status 7;[3] c   | multiplex -p PORT -l USER -i KEY -o UserKnownHostsFile=KH 127.0.0.1 'echo a' 'exit 7' 'echo c'
sshd  | 0  | poll says hi;exit status 0  | poll_session -p PORT -l USER -i KEY -k KH 127.0.0.1 'echo poll says hi'
serve | 5  | exit status 5          | poll_session -p PORT -l USER -i KEY -k KH 127.0.0.1 'exit 5'
tiny  | 0  | USER;exit status 0     | poll_session -p PORT -l USER -i KEY -k KH 127.0.0.1 whoami
sshd  | 0  | 127.0.0.1: hi;127.0.0.1: ok | fleet_run -p PORT -l USER -i KEY -o UserKnownHostsFile=KH -o StrictHostKeyChecking=yes -c 'echo hi' 127.0.0.1
serve | 1  | 127.0.0.1! oops;127.0.0.1: failed: exit | fleet_run -p PORT -l USER -i KEY -o UserKnownHostsFile=KH -c 'echo oops >&2; exit 4' 127.0.0.1
TABLE
)
# tiny_server itself is started from this line (its clients are in the table
# above and the ssh checks below).
TINY_CMD="tiny_server -h HOSTKEY -p PORT -a AUTHKEYS -P sesame"

prefix=$T/prefix
pc() { PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config "$@"; }

# ---- install
run_cmd cmake --install "$SHOAL_BUILD" --prefix "$prefix"
check_rc 0 "cmake --install --prefix TMP"
version=$("$SHOAL_BIN" --version | awk '{ print $2 }')
for f in bin/shoal lib/libshoal.so "lib/libshoal.so.${version%%.*}" "lib/libshoal.so.$version" lib/libshoal.a \
    include/shoal/version.h include/shoal/session.h include/shoal/uv.h lib/pkgconfig/libshoal.pc \
    lib/cmake/shoal/shoalConfig.cmake lib/cmake/shoal/shoalConfigVersion.cmake \
    share/man/man1/shoal.1 share/man/man1/shoal-exec.1 share/man/man1/shoal-run.1 share/man/man1/shoal-put.1 \
    share/man/man1/shoal-agent.1 share/man/man8/shoal-serve.8 share/man/man5/shoal_serve_config.5 \
    share/bash-completion/completions/shoal; do
    check "installed $f" test -e "$prefix/$f"
done
check "installed bin/shoal --version is shoal $version" \
    sh -c "[ \"\$('$prefix/bin/shoal' --version)\" = 'shoal $version' ]"
check "pkg-config libshoal --modversion is $version" sh -c "[ \"\$(PKG_CONFIG_PATH='$prefix/lib/pkgconfig' pkg-config --modversion libshoal)\" = '$version' ]"
check "pkg-config --cflags names only the installed include dir" \
    sh -c "PKG_CONFIG_PATH='$prefix/lib/pkgconfig' pkg-config --cflags libshoal | grep -q -- '-I$prefix' && ! PKG_CONFIG_PATH='$prefix/lib/pkgconfig' pkg-config --cflags libshoal | grep -q -- '$SRC'"
check "bash completion loads and completes subcommands" \
    bash -c ". '$prefix/share/bash-completion/completions/shoal' && complete -p shoal >/dev/null &&
             COMP_WORDS=(shoal se); COMP_CWORD=1; _shoal; [ \"\${COMPREPLY[*]}\" = serve ]"
check "bash completion lists run's flags" \
    bash -c ". '$prefix/share/bash-completion/completions/shoal' &&
             COMP_WORDS=(shoal run --st); COMP_CWORD=2; _shoal; [ \"\${COMPREPLY[*]}\" = '--stream --stdin' ]"

# ---- every installed header compiles on its own (it includes what it needs)
bad_headers=""
for h in "$prefix"/include/shoal/*.h; do
    printf '#include <shoal/%s>\nint shoal_header_check;\n' "$(basename "$h")" >"$T/h.c"
    # shellcheck disable=SC2046 # pkg-config's words
    cc -Wall -Wextra -Werror -fsyntax-only $(pc --cflags libshoal) "$T/h.c" 2>"$T/h.err" ||
        bad_headers="$bad_headers $(basename "$h")"
done
if [ -z "$bad_headers" ]; then ok "every installed header compiles alone"; else not_ok "headers that do not compile alone:$bad_headers"; _show "$T/h.err"; fi

# ---- build the examples against the prefix, with pkg-config only
mkdir -p "$T/bin"
built=()
for src in "$SRC"/examples/*.c; do
    name=$(basename "$src" .c)
    # shellcheck disable=SC2046 # pkg-config's words
    if run_cmd cc -Wall -Wextra -Werror -o "$T/bin/$name" "$src" $(pc --cflags --libs libshoal) && [ "$RC" = 0 ]; then
        ok "examples/$name.c builds with pkg-config libshoal"
        built+=("$name")
    else
        check_rc 0 "examples/$name.c builds with pkg-config libshoal"
    fi
done
export LD_LIBRARY_PATH=$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -x "$T/bin/run_one" ]; then
    check "run_one uses the installed libshoal.so" \
        sh -c "ldd '$T/bin/run_one' | grep -F '$prefix/lib/libshoal.so.${version%%.*}'"
fi

# ---- find_package(shoal) in a tiny CMake project
mkdir -p "$T/fp"
cat >"$T/fp/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(uses_shoal C)
find_package(shoal ${version%.*} REQUIRED)
add_executable(run_one_cmake "$SRC/examples/run_one.c")
target_link_libraries(run_one_cmake PRIVATE shoal::shoal)
add_executable(run_one_static "$SRC/examples/run_one.c")
target_link_libraries(run_one_static PRIVATE shoal::shoal_static)
CMAKE
run_cmd cmake -S "$T/fp" -B "$T/fp/build" -DCMAKE_PREFIX_PATH="$prefix"
check_rc 0 "find_package(shoal) configures"
run_cmd cmake --build "$T/fp/build"
check_rc 0 "run_one builds with shoal::shoal and shoal::shoal_static"
if [ -x "$T/fp/build/run_one_static" ]; then
    check "shoal::shoal_static links libshoal.a (no libshoal.so needed)" \
        sh -c "! ldd '$T/fp/build/run_one_static' | grep -q libshoal"
fi

# ---- servers: sshd, shoal serve, tiny_server
gen_user_keys
start_sshd
start_shoal_serve
have() { printf '%s\n' "${built[@]}" | grep -qx "$1"; }
subst() { # subst PORT TEXT
    local s=$2
    s=${s//PORT/$1}
    s=${s//USER/$PEER_USER}
    s=${s//AUTHKEYS/$T/keys/authorized_keys}
    s=${s//HOSTKEY/$T/hostkeys/ssh_host_ed25519_key}
    s=${s//KEY/$T/keys/id_ed25519}
    s=${s//KH/$T/known_hosts}
    printf '%s' "$s"
}
TINY_PORT=
if have tiny_server; then
    TINY_PORT=$(free_port)
    eval "set -- $(subst "$TINY_PORT" "$TINY_CMD")"
    shift
    "$T/bin/tiny_server" "$@" </dev/null >"$T/tiny.log" 2>&1 &
    peers_track "$!" "$T/tiny.log"
    if wait_for 10 grep -q "listening on 127.0.0.1:$TINY_PORT" "$T/tiny.log"; then
        ok "tiny_server listens"
        _peers_known_host "$TINY_PORT" "$T/hostkeys/ssh_host_ed25519_key.pub"
    else
        not_ok "tiny_server listens"
        _show "$T/tiny.log"
        TINY_PORT=
    fi
fi

# ---- the table
while IFS='|' read -r against want_rc want cmd; do
    against=${against// /}
    want_rc=${want_rc// /}
    case $against in '' | '#'*) continue ;; esac
    want=$(echo "$want" | sed 's/^ *//; s/ *$//')
    case $against in
        sshd) port=$SSHD_PORT ;;
        serve) port=$SERVE_PORT ;;
        tiny) port=$TINY_PORT ;;
        *) die "EXAMPLES: unknown server '$against'" ;;
    esac
    eval "set -- $(subst "${port:-0}" "$cmd")"
    name=$1
    shift
    # "NAME against SERVER: its arguments after the host"
    rest=${cmd##*127.0.0.1}
    desc="$name against $against${rest:+:$rest}"
    if ! have "$name"; then not_ok "$desc (not built)"; continue; fi
    if [ -z "$port" ]; then not_ok "$desc (no $against server)"; continue; fi
    run_cmd "$T/bin/$name" "$@" </dev/null
    check_rc "$want_rc" "$desc: exit code $want_rc"
    IFS=';' read -r -a wants <<<"$(subst "$port" "$want")"
    for w in "${wants[@]}"; do
        check "$desc: output has '$w'" grep -qF -- "$w" "$T/out" "$T/err"
    done
    if [ "$name" = multiplex ] && [ "${cmd##*127.0.0.1}" = "" ]; then
        # The demo commands overlap: two's first line comes before one's last.
        check "$desc: the three commands ran at once" \
            awk '/^\[2\] two 1/ { two = NR } /^\[1\] one 3/ { one = NR } END { exit !(two && one && two < one) }' "$T/out"
    fi
done <<<"$EXAMPLES"

# ---- tiny_server with stock ssh as its client
if [ -n "$TINY_PORT" ]; then
    SSH=(ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes
        -o IdentitiesOnly=yes -p "$TINY_PORT" -i "$T/keys/id_ed25519" "$PEER_USER@127.0.0.1")
    run_cmd "${SSH[@]}" echo hello from ssh </dev/null
    check_rc 0 "ssh -> tiny_server: echo exits 0"
    check "ssh -> tiny_server: echo answered in-process" grep -qx "hello from ssh" "$T/out"
    run_cmd "${SSH[@]}" date </dev/null
    check "ssh -> tiny_server: date" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "$T/out"
    run_cmd "${SSH[@]}" 'exit 42' </dev/null
    check_rc 42 "ssh -> tiny_server: exit 42"
    run_cmd "${SSH[@]}" ls /etc </dev/null
    check_rc 127 "ssh -> tiny_server: a command that is not built in exits 127"
    check "ssh -> tiny_server: ... with a message on stderr" grep -qF "not a built-in command" "$T/err"
    check "ssh -> tiny_server: ... and no process was spawned for it" sh -c "! grep -q '^passwd$' '$T/out'"
    run_cmd ssh -F /dev/null -o "UserKnownHostsFile=$T/known_hosts" -o BatchMode=yes -o IdentitiesOnly=yes \
        -p "$TINY_PORT" -i "$T/keys/id_ecdsa_missing" -o PubkeyAuthentication=no "$PEER_USER@127.0.0.1" echo x </dev/null
    check_rc 255 "ssh -> tiny_server: no key, no password: refused"
    # The password callback, through shoal exec with SSH_ASKPASS.
    printf '#!/bin/sh\necho sesame\n' >"$T/askpass" && chmod 700 "$T/askpass"
    SSH_ASKPASS=$T/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=none run_cmd "$SHOAL_BIN" exec -p "$TINY_PORT" \
        -o "UserKnownHostsFile=$T/known_hosts" -o PubkeyAuthentication=no -o IdentityAgent=none \
        "$PEER_USER@127.0.0.1" echo by password </dev/null
    check_rc 0 "shoal exec -> tiny_server: password login (custom callback)"
    check "shoal exec -> tiny_server: ... echo answered" grep -qx "by password" "$T/out"
fi
finish
