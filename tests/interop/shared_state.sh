#!/usr/bin/env bash
# shellcheck disable=SC2317 # helper functions run through check()
# Interop, library level: the fan-out options of shoal_uv_options against
# OpenSSH's sshd, through tests/interop/shared_state.c: one in-memory
# known_hosts database (known_hosts_db) and preloaded private keys (keys,
# no identity_files) shared by 50 connections, on one loop and on two loop
# threads; an ssh-agent connection limiter (agent_limiter) of 2 per loop
# with a real ssh-agent; and a changed host key, which every connection must
# refuse naming the file and line of the old key.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/peers.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/peers.sh"
[ -n "${SHOAL_BUILD:-}" ] || skip "SHOAL_BUILD is not set"
PROG=$SHOAL_BUILD/tests/interop_shared_state
[ -x "$PROG" ] || skip "interop_shared_state not built"
require_cmd ssh-keygen ssh-agent ssh-add
peers_init
gen_user_keys
gen_stranger_key id_stranger
start_sshd

N=50
# As the test account when root: sshd runs each `echo ok` through the
# user's shell, and root's rc files on a development machine can cost
# 100 ms of CPU per connection.
LOGIN=$PEER_USER
if make_test_user; then LOGIN=$TEST_USER; fi
USER_ARGS=(-p "$SSHD_PORT" -u "$LOGIN")
fp() { ssh-keygen -lf "$1.pub" | awk '{ print $2 }'; }
# accepted_count MARK FINGERPRINT: "Accepted" lines for that key since MARK.
accepted_count() { log_since "$SSHD_LOG" "$1" | grep "Accepted publickey" | grep -cF -- "$2" || true; }
# run_prog LABEL ARGS...: runs the program, its TAP lines go to the log;
# one check per run (the program's own checks are listed on failure).
run_prog() {
    local label=$1
    shift
    if timeout -k 5 300 "$PROG" "$@" >"$T/prog.out" 2>&1; then
        ok "$label"
    else
        not_ok "$label"
        sed 's/^/    /' "$T/prog.out"
    fi
    grep -E '^(ok|not ok|#)' "$T/prog.out" | sed 's/^/    | /' || true
}
# kh_has_server_key FILE: FILE has exactly one line, for [127.0.0.1]:PORT,
# holding the server's ed25519 host key.
kh_has_server_key() {
    local got
    [ "$(wc -l <"$1")" -eq 1 ] || { echo "$1 has $(wc -l <"$1") lines"; cat "$1"; return 1; }
    got=$(ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$1" | grep -v '^#' | awk '{ print $2" "$3 }')
    [ "$got" = "$SSHD_HOSTKEY_PUB" ] || { echo "entry: '$got', want '$SSHD_HOSTKEY_PUB'"; return 1; }
}

# ---- shared database + preloaded keys, one loop, accept-new from empty
: >"$T/kh_one"
mark=$(log_mark "$SSHD_LOG")
run_prog "one loop: $N connections, shared known_hosts db (accept-new), preloaded keys" \
    -m accept "${USER_ARGS[@]}" -k "$T/kh_one" -n "$N" -i "$T/keys/id_ed25519" -i "$T/keys/id_ecdsa"
check "one loop: exactly one known_hosts line was added, with the server's key" kh_has_server_key "$T/kh_one"
check "one loop: sshd accepted the preloaded key $N times" \
    test "$(accepted_count "$mark" "$(fp "$T/keys/id_ed25519")")" -eq "$N"

# Hashed: the same, written hashed (no clear-text name in the file).
: >"$T/kh_two"
run_prog "two loop threads: $N connections, one db and the same preloaded keys for both" \
    -m accept "${USER_ARGS[@]}" -k "$T/kh_two" -n "$N" -t 2 -i "$T/keys/id_ecdsa"
check "two loop threads: exactly one known_hosts line was added, with the server's key" \
    kh_has_server_key "$T/kh_two"

# ---- ssh-agent with a limiter of 2 per loop. The agent has the only key
# sshd accepts; the preloaded one is a stranger (offered after the agent's).
ssh-agent -D -a "$T/agent.sock" >"$T/agent.log" 2>&1 </dev/null &
peers_track $! "$T/agent.log"
wait_for 10 agent_answers "$T/agent.sock" || die "ssh-agent does not answer on $T/agent.sock"
SSH_AUTH_SOCK=$T/agent.sock ssh-add -q "$T/keys/id_rsa" </dev/null
: >"$T/kh_agent"
mark=$(log_mark "$SSHD_LOG")
run_prog "agent limiter 2: $N connections through ssh-agent, never more than 2 agent sockets" \
    -m accept "${USER_ARGS[@]}" -k "$T/kh_agent" -n "$N" -i "$T/keys/id_stranger" \
    -a "$T/agent.sock" -l 2
check "agent limiter: sshd accepted the agent's key $N times" \
    test "$(accepted_count "$mark" "$(fp "$T/keys/id_rsa")")" -eq "$N"
check "agent limiter: one known_hosts line" kh_has_server_key "$T/kh_agent"
: >"$T/kh_agent2"
run_prog "agent limiter 2 per loop, two loop threads" \
    -m accept "${USER_ARGS[@]}" -k "$T/kh_agent2" -n "$N" -t 2 -a "$T/agent.sock" -l 2
# A limiter of 1 still lets everyone through, one at a time.
: >"$T/kh_agent3"
run_prog "agent limiter 1: 20 connections, one agent socket at a time" \
    -m accept "${USER_ARGS[@]}" -k "$T/kh_agent3" -n 20 -a "$T/agent.sock" -l 1
# An agent socket that does not exist: every slot is given back on failure.
: >"$T/kh_noagent"
run_prog "agent limiter with a dead agent socket: keys still work, no slot leaks" \
    -m accept "${USER_ARGS[@]}" -k "$T/kh_noagent" -n 20 -i "$T/keys/id_ed25519" \
    -a "$T/no-such-agent.sock" -l 2

# ---- changed host key: the db holds another key for the server (line 2)
ssh-keygen -q -t ed25519 -N '' -C impostor -f "$T/impostor"
{
    echo "unrelated.invalid $(cut -d' ' -f1,2 "$T/impostor.pub")"
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$T/impostor.pub")"
} >"$T/kh_bad"
mark=$(log_mark "$SSHD_LOG")
run_prog "changed host key: all $N connections fail with HOSTKEY_MISMATCH naming kh_bad:2" \
    -m mismatch "${USER_ARGS[@]}" -k "$T/kh_bad" -n "$N" -L 2 -i "$T/keys/id_ed25519"
no_auth() {
    if log_since "$SSHD_LOG" "$1" | grep -E "Accepted |Failed |Postponed "; then return 1; fi
}
check "changed host key: no authentication attempted" no_auth "$mark"

finish
