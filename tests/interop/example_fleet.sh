#!/usr/bin/env bash
# examples/fleet_run (a program that uses the public headers only) against
# a private OpenSSH sshd listening on three loopback addresses: the
# command's output per host in the order given, ok / failed lines, exit
# codes 0, 1 and 2.
set -euo pipefail
. "$SHOAL_SRC/tests/lib/peers.sh"
FLEET_RUN=${SHOAL_BUILD:-}/examples/fleet_run
[ -n "${SHOAL_BUILD:-}" ] && [ -x "$FLEET_RUN" ] || skip "examples/fleet_run is not built"
peers_init
gen_user_keys
make_test_user || skip "needs root to create the test user"
start_sshd "ListenAddress 127.0.0.2" "ListenAddress 127.0.0.3"
check_re() { check "$1" grep -Eq -- "$3" "$2"; }

# No key or known_hosts of the user running the tests, no agent.
FR=(env -u SSH_AUTH_SOCK HOME="$T" "$FLEET_RUN" -p "$SSHD_PORT" -l "$TEST_USER" -i "$T/keys/id_ed25519"
    -o "UserKnownHostsFile=$T/ex_kh")
HOSTS=(127.0.0.1 127.0.0.2 127.0.0.3)

rc=0
"${FR[@]}" -c 'echo "at $(echo $SSH_CONNECTION | cut -d" " -f3)"; echo to-stderr >&2' "${HOSTS[@]}" \
    >"$T/o1" 2>"$T/e1" || rc=$?
check "3 hosts: exit code 0" test "$rc" -eq 0
for h in "${HOSTS[@]}"; do
    check_re "3 hosts: $h ran the command on its own address" "$T/o1" "^${h//./\\.}: at ${h//./\\.}\$"
    check_re "3 hosts: $h ok" "$T/o1" "^${h//./\\.}: ok\$"
    check_re "3 hosts: $h's stderr marked" "$T/e1" "^${h//./\\.}! to-stderr\$"
done
check "3 hosts: results in the order given" test "$(grep ': ok$' "$T/o1" | cut -d: -f1 | tr '\n' ' ')" = \
    "127.0.0.1 127.0.0.2 127.0.0.3 "
check "3 hosts: accept-new remembered each host" test "$(wc -l <"$T/ex_kh")" -eq 3

# The known_hosts now holds them: strict checking passes.
rc=0
"${FR[@]}" -o StrictHostKeyChecking=yes -c true "${HOSTS[@]}" >"$T/o2" 2>&1 || rc=$?
check "strict after accept-new: exit code 0" test "$rc" -eq 0
check "strict after accept-new: 3 ok" test "$(grep -c ': ok$' "$T/o2")" -eq 3

# A failing command everywhere: exit code 1 and the class per host.
rc=0
"${FR[@]}" -c 'exit 3' "${HOSTS[@]}" >"$T/o3" 2>&1 || rc=$?
check "exit 3: exit code 1" test "$rc" -eq 1
check "exit 3: every host failed with its exit status" test "$(grep -c ': failed: exit status' "$T/o3")" -eq 3

# One host that refuses connections among good ones.
rc=0
"${FR[@]}" -c 'echo up' 127.0.0.1 127.0.0.4 127.0.0.3 >"$T/o4" 2>&1 || rc=$?
check "one refused: exit code 1" test "$rc" -eq 1
check_re "one refused: classified" "$T/o4" '^127\.0\.0\.4: failed: refused: '
check "one refused: the others ran" test "$(grep -c ': up$' "$T/o4")" -eq 2

# A user without the key: authentication fails.
rc=0
env -u SSH_AUTH_SOCK HOME="$T" "$FLEET_RUN" -p "$SSHD_PORT" -l "$TEST_USER" -o "UserKnownHostsFile=$T/ex_kh" \
    -c true 127.0.0.2 >"$T/o5" 2>&1 || rc=$?
check "no key: exit code 1" test "$rc" -eq 1
check_re "no key: auth failure" "$T/o5" '^127\.0\.0\.2: failed: auth: '

# Usage errors: exit code 2.
rc=0
"$FLEET_RUN" 127.0.0.1 >"$T/o6" 2>&1 || rc=$?
check "no -c: exit code 2" test "$rc" -eq 2
check_re "no -c: usage" "$T/o6" '^usage: fleet_run'
rc=0
"$FLEET_RUN" -o NoSuchOption=1 -c true 127.0.0.1 >"$T/o7" 2>&1 || rc=$?
check "bad -o: exit code 2" test "$rc" -eq 2

finish
