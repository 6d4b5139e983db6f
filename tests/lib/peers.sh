# shellcheck shell=bash
# tests/lib/peers.sh -- start real SSH peers on loopback for shoal's interop
# tests, and a few helpers to check what `shoal exec` does against them.
#
# Source it from a bash script that runs with `set -euo pipefail`:
#
#   . "$SHOAL_SRC/tests/lib/peers.sh"
#   require_shoal          # exit 77 (ctest "skipped") until `shoal exec` exists
#   peers_init             # $T = private temp dir; EXIT trap cleans up
#   gen_user_keys          # $T/keys/{id_ed25519,id_ecdsa,id_rsa,id_ed25519_enc}
#   start_sshd             # $SSHD_PORT, $SSHD_LOG, ...; $T/known_hosts
#   run_shoal -p "$SSHD_PORT" -i "$T/keys/id_ed25519" "$PEER_USER@127.0.0.1" true
#   check_rc 0 "true exits 0"
#   finish                 # prints "N passed, N failed", exits 1 on failure
#
# Rules every helper keeps, because ctest runs these scripts in parallel, as
# root in CI, twice (normal and ASan builds) and without a TTY or stdin:
#   * only 127.0.0.1 is ever listened on or connected to;
#   * ports are chosen at run time (free_port) and reserved against other
#     tests running at the same time;
#   * every key is generated at run time under $T, never under ~/.ssh;
#   * every process started here is killed by the EXIT trap, and $T removed.
#
# The functions that start peers set global variables, so call them directly,
# never inside $(...) or a pipeline (a subshell would lose the variables).

# Debian's python3 has asyncssh and paramiko; the first python3 on PATH may be
# a pyenv one without them, so always name it explicitly.
PEERS_PYTHON=${PEERS_PYTHON:-/usr/bin/python3}
PEERS_SSHD=${PEERS_SSHD:-/usr/sbin/sshd}
PEERS_LIB=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# Port reservations shared by every test on this machine (see free_port).
PEERS_PORT_LOCKS=${PEERS_PORT_LOCKS:-${TMPDIR:-/tmp}/shoal-test-ports}
# Seconds one `shoal exec` may take before run_shoal gives up on it.
SHOAL_TIMEOUT=${SHOAL_TIMEOUT:-60}
# The local account that sshd/the Python servers run commands as. For root
# this is root (sshd is configured with PermitRootLogin yes); make_test_user
# provides a second account with a password.
PEER_USER=$(id -un)
export PEER_USER

PEERS_PIDS=()       # every peer process started (killed with its descendants)
PEERS_LOGS=()       # logs printed on failure
PEERS_SSHD_N=0      # sshd instances started so far (each gets $T/sshdN)
PEERS_SERVE_INSTANCES=()  # "pid:log" of each shoal serve started (finish checks the logs)
T_PASS=0
T_FAIL=0
T_TODO=0            # known bugs (check_known_bug), not counted as failures

# ---------------------------------------------------------------- basics

skip() { echo "SKIP: $*" >&2; exit 77; }
die() { echo "ERROR: $*" >&2; exit 1; }

# require_shoal: the interop tests are written against `shoal exec`; until it
# exists (its --help fails or shows no usage) they report "skipped" (77) so
# CI stays green.
require_shoal() {
    if [ -z "${SHOAL_BIN:-}" ] && [ -n "${SHOAL_BUILD:-}" ]; then
        SHOAL_BIN=$SHOAL_BUILD/shoal
    fi
    [ -n "${SHOAL_BIN:-}" ] || skip "SHOAL_BIN is not set"
    [ -x "$SHOAL_BIN" ] || skip "$SHOAL_BIN is not an executable"
    local help
    if ! help=$("$SHOAL_BIN" exec --help 2>&1 </dev/null); then
        skip "'shoal exec --help' fails: shoal exec is not implemented yet"
    fi
    case $help in
        *[Uu]sage*) ;;
        *) skip "'shoal exec --help' prints no usage: shoal exec is not implemented yet" ;;
    esac
}

# require_cmd CMD...: skip the test when a peer program is not installed.
require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || skip "$c is not installed"
    done
}

# peers_init: create $T and install the cleanup trap. Call once, first.
peers_init() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/shoal-test.XXXXXXXX")
    # sshd reads AuthorizedKeysFile as the *target* user, so a non-root test
    # user must be able to traverse $T (its private keys stay 0600).
    chmod 711 "$T"
    : >"$T/known_hosts"
    : >"$T/ports"
    trap _peers_cleanup EXIT
    # Turn signals into a normal exit so the EXIT trap still runs.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    # CI runs without stdin; a closed fd 0 would be reused by the first file
    # a child opens (e.g. ssh's socket), so make sure it is /dev/null at least.
    if ! { true <&0; } 2>/dev/null; then
        exec </dev/null
    fi
    export T
    # If this script is SIGKILLed its EXIT trap cannot run; the watchdog then
    # does the cleanup. Its output goes nowhere, so it never holds ctest's
    # pipes open.
    _peers_watchdog "$$" </dev/null >/dev/null 2>&1 &
    PEERS_WATCHDOG=$!
}

_peers_add_pid() {
    PEERS_PIDS+=("$1")
    echo "$1" >>"$T/pids"
}

_peers_watchdog() {
    while kill -0 "$1" 2>/dev/null; do sleep 1; done
    [ -d "$T" ] || exit 0
    local p
    if [ -s "$T/pids" ]; then
        while read -r p; do _peers_kill_tree "$p"; done <"$T/pids"
    fi
    if [ -s "$T/user_keys" ]; then
        PEERS_USER_KEYS_INSTALLED=1
        TEST_USER_HOME=$(cat "$T/user_keys")
        _peers_untrust_user_keys
    fi
    _peers_release_ports
    rm -rf "$T"
}

_peers_release_ports() {
    local port
    [ -s "$T/ports" ] || return 0
    while read -r port; do
        rmdir "$PEERS_PORT_LOCKS/$port" 2>/dev/null || true
    done <"$T/ports"
}

# peers_track PID [LOG]: have the EXIT trap kill PID (and its descendants),
# and print LOG on failure. For helpers a test starts itself (ssh-agent...).
peers_track() {
    _peers_add_pid "$1"
    if [ -n "${2:-}" ]; then PEERS_LOGS+=("$2"); fi
}

# _peers_descendants PID: PID's descendants, children first then grandchildren.
_peers_descendants() {
    ps -e -o pid=,ppid= 2>/dev/null | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            want[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) {
                    p = pids[i]
                    if (!(p in want) && (parent[p] in want)) { want[p] = 1; changed = 1; print p }
                }
            }
        }'
}

# _peers_kill_tree PID: TERM PID and everything below it (e.g. sshd's
# per-connection children and the commands they run), then KILL stragglers.
_peers_kill_tree() {
    local pid=$1 all p _
    kill -0 "$pid" 2>/dev/null || return 0
    all="$pid $(_peers_descendants "$pid" | tr '\n' ' ')"
    for p in $all; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 30); do
        local alive=0
        for p in $all; do
            if kill -0 "$p" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in $all; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

_peers_cleanup() {
    local rc=$? pid log
    set +e
    trap - EXIT
    if [ -n "${PEERS_WATCHDOG:-}" ]; then
        kill "$PEERS_WATCHDOG" 2>/dev/null
        wait "$PEERS_WATCHDOG" 2>/dev/null
    fi
    for pid in "${PEERS_PIDS[@]}"; do _peers_kill_tree "$pid"; done
    # On failure show what the peers said, last 100 lines of each.
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        for log in "${PEERS_LOGS[@]}"; do
            [ -s "$log" ] || continue
            {
                echo "----- ${log#"$T"/} (last 100 lines) -----"
                tail -n 100 "$log"
            } >&2
        done
    fi
    _peers_untrust_user_keys
    _peers_release_ports
    if [ -n "${PEERS_KEEP:-}" ]; then
        echo "PEERS_KEEP set: keeping $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}

# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds; fail after
# SECONDS. Every wait in these tests is bounded.
wait_for() {
    local secs=$1 _
    shift
    for _ in $(seq 1 $((secs * 10))); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# agent_answers SOCK: does an ssh-agent answer on SOCK? ssh-add -l exits 0
# (keys) or 1 (no keys) when it got an answer, 2 when it could not connect.
# The socket file appears at bind(), before listen(), so its existence alone
# races with ssh-agent's start (connect() then gets ECONNREFUSED).
agent_answers() {
    local rc=0
    SSH_AUTH_SOCK=$1 ssh-add -l >/dev/null 2>&1 </dev/null || rc=$?
    [ "$rc" -le 1 ]
}

# port_open PORT: does something accept TCP connections on 127.0.0.1:PORT?
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: print a TCP port that is free on 127.0.0.1 right now.
# Ports come from below the kernel's ephemeral range (so no outgoing
# connection can grab one between this check and the server's bind), are
# checked by binding them without SO_REUSEADDR (which also skips ports in
# TIME_WAIT), and are reserved with an atomic mkdir in $PEERS_PORT_LOCKS so
# two tests running in parallel never pick the same one. Reservations are
# released by the EXIT trap; ones older than 30 minutes count as stale.
# Servers still retry with another port if their bind fails.
free_port() {
    local port
    port=$("$PEERS_PYTHON" - "$PEERS_PORT_LOCKS" <<'EOF'
import os, random, socket, sys, time
locks = sys.argv[1]
os.makedirs(locks, exist_ok=True)
try:
    os.chmod(locks, 0o1777)
except OSError:
    pass
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        eph_lo = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    eph_lo = 32768
lo, hi = 20000, min(32000, eph_lo - 1)
if hi - lo < 1000:
    lo, hi = 1024, max(1025, eph_lo - 1)
rng = random.SystemRandom()
for _ in range(500):
    port = rng.randint(lo, hi)
    lock = os.path.join(locks, str(port))
    try:
        os.mkdir(lock)
    except FileExistsError:
        try:
            if time.time() - os.stat(lock).st_mtime < 1800:
                continue
            os.utime(lock)  # stale: take it over
        except OSError:
            continue
    except OSError:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        try:
            os.rmdir(lock)
        except OSError:
            pass
        continue
    s.close()
    print(port)
    sys.exit(0)
sys.exit("free_port: no free port found")
EOF
) || return 1
    # Remember the reservation for the EXIT trap (a file, since free_port is
    # normally called inside $(...)).
    if [ -n "${T:-}" ]; then echo "$port" >>"$T/ports"; fi
    echo "$port"
}

# _peers_random N: N random characters from [A-Za-z0-9].
_peers_random() {
    local s=""
    while [ "${#s}" -lt "$1" ]; do
        s=$s$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    done
    printf '%s' "${s:0:$1}"
}

# _peers_known_host PORT PUBFILE...: add "[127.0.0.1]:PORT type key" lines.
_peers_known_host() {
    local port=$1 f
    shift
    for f in "$@"; do
        awk -v h="[127.0.0.1]:$port" '{ print h, $1, $2 }' "$f" >>"$T/known_hosts"
    done
}

# ---------------------------------------------------------------- keys

# gen_user_keys: user keys in $T/keys and an authorized_keys with all of them:
#   id_ed25519, id_ecdsa (nistp256), id_rsa (3072 bits) -- no passphrase
#   id_ed25519_enc -- passphrase in $T/keys/pass
# Every key's comment is "shoal-test:$T" so make_test_user can find (and the
# EXIT trap remove) the lines it adds to the test user's authorized_keys.
gen_user_keys() {
    local k=$T/keys tag="shoal-test:$T"
    mkdir -p "$k"
    chmod 755 "$k"
    ssh-keygen -q -t ed25519 -N '' -C "$tag" -f "$k/id_ed25519"
    ssh-keygen -q -t ecdsa -b 256 -N '' -C "$tag" -f "$k/id_ecdsa"
    ssh-keygen -q -t rsa -b 3072 -N '' -C "$tag" -f "$k/id_rsa"
    (umask 077 && _peers_random 24 >"$k/pass")
    ssh-keygen -q -t ed25519 -N "$(cat "$k/pass")" -C "$tag" -f "$k/id_ed25519_enc"
    cat "$k/id_ed25519.pub" "$k/id_ecdsa.pub" "$k/id_rsa.pub" "$k/id_ed25519_enc.pub" \
        >"$k/authorized_keys"
    # Readable by the target user (see peers_init); sshd has StrictModes no.
    chmod 644 "$k/authorized_keys"
}

# gen_stranger_key NAME: a key that is in no authorized_keys ($T/keys/NAME).
gen_stranger_key() {
    ssh-keygen -q -t ed25519 -N '' -C "stranger" -f "$T/keys/$1"
}

# _peers_host_keys: host keys shared by every server of this test, generated
# once: ed25519, ecdsa 256/384/521 and rsa 3072, in OpenSSH format (which
# sshd, asyncssh and paramiko all read).
_peers_host_keys() {
    local h=$T/hostkeys
    [ -f "$h/ssh_host_ed25519_key" ] && return 0
    mkdir -p "$h"
    ssh-keygen -q -t ed25519 -N '' -C hostkey -f "$h/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -b 256 -N '' -C hostkey -f "$h/ssh_host_ecdsa256_key"
    ssh-keygen -q -t ecdsa -b 384 -N '' -C hostkey -f "$h/ssh_host_ecdsa384_key"
    ssh-keygen -q -t ecdsa -b 521 -N '' -C hostkey -f "$h/ssh_host_ecdsa521_key"
    ssh-keygen -q -t rsa -b 3072 -N '' -C hostkey -f "$h/ssh_host_rsa_key"
}

# ---------------------------------------------------------------- test user

# make_test_user: (root only; returns 1 otherwise) make sure the local user
# `shoaltest` exists with a known password, and authorize this test's keys
# for it. Sets TEST_USER=shoaltest and writes the password to $T/password.
#
# Why a separate user: password auth needs a password we know (root in CI has
# none), and dropbear only reads ~/.ssh/authorized_keys, which for root is the
# machine's real one, never to be touched.
#
# Tests run in parallel, so everything is done under one lock, and the
# password is generated once and kept (root-only) in /var/lib/shoal-test:
# re-randomizing it per test would break a test that is using it right now.
# Keys are appended (tagged with this test's $T) rather than replacing the
# file, and removed again by the EXIT trap; lines whose $T no longer exists
# (a test that was SIGKILLed) are pruned here.
make_test_user() {
    [ "$(id -u)" -eq 0 ] || return 1
    command -v useradd >/dev/null 2>&1 || return 1
    [ -f "$T/keys/authorized_keys" ] || gen_user_keys
    local state=/var/lib/shoal-test lockdir=/run/lock home
    mkdir -p "$lockdir"
    (
        flock -w 60 9 || exit 1
        if ! getent passwd shoaltest >/dev/null; then
            useradd -m -s /bin/bash -c "shoal interop tests" shoaltest || exit 1
        fi
        mkdir -p "$state"
        chmod 700 "$state"
        if [ ! -s "$state/password" ]; then
            (umask 077 && _peers_random 20 >"$state/password")
        fi
        # Always (re)set it: cheap, and repairs a locked or changed password.
        printf 'shoaltest:%s\n' "$(cat "$state/password")" | chpasswd || exit 1
        home=$(getent passwd shoaltest | cut -d: -f6)
        install -d -m 700 -o shoaltest -g shoaltest "$home" "$home/.ssh"
        local ak=$home/.ssh/authorized_keys tmp
        touch "$ak"
        tmp=$(mktemp "$home/.ssh/.ak.XXXXXX")
        # Keep foreign lines and live tests' lines; drop dead tests' lines.
        while IFS= read -r line; do
            case $line in
                *" shoal-test:"*)
                    local dir=${line##* shoal-test:}
                    [ -d "$dir" ] || continue ;;
            esac
            printf '%s\n' "$line"
        done <"$ak" >"$tmp"
        grep -F " shoal-test:$T" "$tmp" >/dev/null 2>&1 || cat "$T/keys/authorized_keys" >>"$tmp"
        chown shoaltest:shoaltest "$tmp"
        chmod 600 "$tmp"
        mv -f "$tmp" "$ak" || exit 1
    ) 9>"$lockdir/shoal-testuser.lock" || { echo "make_test_user: setting up shoaltest failed" >&2; return 1; }
    (umask 077 && cp /var/lib/shoal-test/password "$T/password")
    TEST_USER=shoaltest
    TEST_USER_HOME=$(getent passwd shoaltest | cut -d: -f6)
    PEERS_USER_KEYS_INSTALLED=1
    echo "$TEST_USER_HOME" >"$T/user_keys"   # for the watchdog
    export TEST_USER TEST_USER_HOME
}

# Remove this test's lines from ~shoaltest/.ssh/authorized_keys (EXIT trap).
_peers_untrust_user_keys() {
    [ -n "${PEERS_USER_KEYS_INSTALLED:-}" ] || return 0
    local ak=$TEST_USER_HOME/.ssh/authorized_keys
    (
        flock -w 30 9 || exit 0
        [ -f "$ak" ] || exit 0
        local tmp
        tmp=$(mktemp "$TEST_USER_HOME/.ssh/.ak.XXXXXX") || exit 0
        grep -v -F " shoal-test:$T" "$ak" >"$tmp" || true
        chown shoaltest:shoaltest "$tmp"
        chmod 600 "$tmp"
        mv -f "$tmp" "$ak"
    ) 9>/run/lock/shoal-testuser.lock
}

# ---------------------------------------------------------------- OpenSSH

# start_sshd [sshd_config lines...]: start a private OpenSSH sshd on
# 127.0.0.1:$SSHD_PORT in the foreground (-D) and wait until it listens.
#
# sshd takes the FIRST value it reads for most keywords, so the extra lines
# are written before the defaults below and override them (e.g. "LogLevel
# DEBUG", "UsePAM yes"). Extra lines from the first "Match" on go to the end
# of the file, where Match blocks have to be.
#
# Sets: SSHD_PORT, SSHD_PID, SSHD_LOG, SSHD_CONFIG, SSHD_DIR and
# SSHD_HOSTKEY_PUB (the ed25519 host key as "ssh-ed25519 AAAA..."), and adds
# "[127.0.0.1]:PORT type key" lines for all five host keys to $T/known_hosts.
# Each call starts another instance (in $T/sshd1, $T/sshd2, ...) sharing the
# host keys and $T/keys/authorized_keys; save the variables before the next.
#
# Notes on the environment commands get there:
#   * sshd runs the command with the user's login shell ("bash -c CMD" for
#     root), and Debian's bash sources ~/.bashrc when started by sshd. On
#     this machine root's .bashrc runs `pyenv init`, which adds ~0.1 s per
#     command -- accepted; it prints nothing, so outputs are not affected.
#   * UsePAM no (the default here): password auth checks /etc/shadow
#     directly; keyboard-interactive then has no back end at all (OpenSSH
#     only does kbd-int through PAM or BSD auth), so a kbd-int test needs an
#     instance started with "UsePAM yes" -- see openssh_auth.sh.
# shellcheck disable=SC2120 # the extra lines are optional
start_sshd() {
    [ -x "$PEERS_SSHD" ] || skip "$PEERS_SSHD is not installed"
    _peers_host_keys
    [ -f "$T/keys/authorized_keys" ] || gen_user_keys
    PEERS_SSHD_N=$((PEERS_SSHD_N + 1))
    local d=$T/sshd$PEERS_SSHD_N h=$T/hostkeys port pid _ line
    local -a head=() tail=()
    local in_match=0
    for line in "$@"; do
        case $line in [Mm]atch\ *) in_match=1 ;; esac
        if [ "$in_match" = 1 ]; then tail+=("$line"); else head+=("$line"); fi
    done
    mkdir -p "$d"
    # Privilege separation needs this directory when sshd runs as root.
    if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi
    for _ in 1 2 3; do
        port=$(free_port) || die "start_sshd: no free port"
        {
            echo "# written by tests/lib/peers.sh start_sshd"
            if [ "${#head[@]}" -gt 0 ]; then printf '%s\n' "${head[@]}"; fi
            cat <<EOF
ListenAddress 127.0.0.1
Port $port
AddressFamily inet
HostKey $h/ssh_host_ed25519_key
HostKey $h/ssh_host_ecdsa256_key
HostKey $h/ssh_host_ecdsa384_key
HostKey $h/ssh_host_ecdsa521_key
HostKey $h/ssh_host_rsa_key
PidFile $d/sshd.pid
AuthorizedKeysFile $T/keys/authorized_keys
# The files live in a temp dir sshd would call unsafe.
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication yes
PermitEmptyPasswords no
MaxAuthTries 10
MaxStartups 1000:30:1000
MaxSessions 200
LoginGraceTime 60
LogLevel VERBOSE
SyslogFacility AUTH
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
Subsystem sftp internal-sftp
AcceptEnv LANG LC_* SHOAL_*
EOF
            if [ "${#tail[@]}" -gt 0 ]; then printf '%s\n' "${tail[@]}"; fi
        } >"$d/sshd_config"
        "$PEERS_SSHD" -t -f "$d/sshd_config" >"$d/sshd-t.out" 2>&1 ||
            die "start_sshd: sshd -t rejects $d/sshd_config: $(cat "$d/sshd-t.out")"
        : >"$d/sshd.log"
        # Absolute path: sshd re-executes itself for every connection.
        # stdout/stderr to a file too: a peer must never hold the test's
        # output pipes (ctest waits for them to close).
        "$PEERS_SSHD" -f "$d/sshd_config" -E "$d/sshd.log" -D </dev/null >>"$d/sshd.stderr" 2>&1 &
        pid=$!
        _peers_add_pid "$pid"
        if wait_for 10 _peers_sshd_listening "$d/sshd.log" "$port" "$pid"; then
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null && grep -q "Address already in use" "$d/sshd.log"; then
            echo "start_sshd: port $port was taken, retrying" >&2
            continue
        fi
        cat "$d/sshd.log" >&2
        die "start_sshd: sshd did not start listening on 127.0.0.1:$port"
    done
    kill -0 "$pid" 2>/dev/null || die "start_sshd: sshd could not bind a port"
    # The log says it listens; make sure connections really are accepted.
    wait_for 10 port_open "$port" || die "start_sshd: 127.0.0.1:$port accepts no connection"
    PEERS_LOGS+=("$d/sshd.log" "$d/sshd.stderr")
    _peers_known_host "$port" "$h"/ssh_host_*_key.pub
    SSHD_PORT=$port
    SSHD_PID=$pid
    SSHD_LOG=$d/sshd.log
    SSHD_CONFIG=$d/sshd_config
    SSHD_DIR=$d
    SSHD_HOSTKEY_PUB=$(cut -d' ' -f1,2 "$h/ssh_host_ed25519_key.pub")
    export SSHD_PORT SSHD_PID SSHD_LOG SSHD_CONFIG SSHD_DIR SSHD_HOSTKEY_PUB
}

_peers_sshd_listening() {
    # "Server listening on 127.0.0.1 port N." is logged right after listen().
    grep -q "Server listening on 127.0.0.1 port $2\b" "$1" && return 0
    kill -0 "$3" 2>/dev/null || return 0   # died: stop waiting
    return 1
}

# ---------------------------------------------------------------- dropbear

# start_dropbear: start dropbear on 127.0.0.1:$DROPBEAR_PORT. Root only
# (returns 1 otherwise, or when dropbear is missing): dropbear has no option
# for the authorized_keys file and reads ~USER/.ssh/authorized_keys, so tests
# log in as TEST_USER (make_test_user), never as root, whose real
# authorized_keys is not ours to change.
# Host keys (ed25519, ecdsa-256, rsa-3072) are made by dropbearkey; their
# public halves (dropbearkey -y) go to $T/known_hosts.
# Sets DROPBEAR_PORT, DROPBEAR_PID, DROPBEAR_LOG.
start_dropbear() {
    command -v dropbear >/dev/null 2>&1 || return 1
    command -v dropbearkey >/dev/null 2>&1 || return 1
    make_test_user || return 1
    local d=$T/dropbear port pid _ t
    local -a rflags=()
    mkdir -p "$d"
    for t in ed25519:256 ecdsa:256 rsa:3072; do
        dropbearkey -t "${t%%:*}" -s "${t##*:}" -f "$d/host_${t%%:*}" >/dev/null 2>&1 ||
            die "start_dropbear: dropbearkey -t ${t%%:*} failed"
        dropbearkey -y -f "$d/host_${t%%:*}" | grep -E '^(ssh-|ecdsa-)' >"$d/host_${t%%:*}.pub"
        rflags+=(-r "$d/host_${t%%:*}")
    done
    for _ in 1 2 3; do
        port=$(free_port) || die "start_dropbear: no free port"
        : >"$d/dropbear.log"
        # -F foreground, -E log to stderr, -P our own pid file (not /var/run).
        dropbear -F -E -p "127.0.0.1:$port" "${rflags[@]}" -P "$d/dropbear.pid" \
            </dev/null >>"$d/dropbear.log" 2>&1 &
        pid=$!
        _peers_add_pid "$pid"
        if wait_for 10 _peers_up_or_dead "$port" "$pid" && kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if grep -q "Address already in use" "$d/dropbear.log"; then
            echo "start_dropbear: port $port was taken, retrying" >&2
            continue
        fi
        cat "$d/dropbear.log" >&2
        die "start_dropbear: dropbear did not start on 127.0.0.1:$port"
    done
    port_open "$port" || die "start_dropbear: could not bind a port"
    PEERS_LOGS+=("$d/dropbear.log")
    _peers_known_host "$port" "$d"/host_*.pub
    DROPBEAR_PORT=$port
    DROPBEAR_PID=$pid
    DROPBEAR_LOG=$d/dropbear.log
    export DROPBEAR_PORT DROPBEAR_PID DROPBEAR_LOG
}

_peers_up_or_dead() {
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 0
    return 1
}

# ---------------------------------------------------------------- Python

# start_asyncssh_server / start_paramiko_server: small exec-only servers
# (tests/lib/asyncssh_server.py, tests/lib/paramiko_server.py) run by
# /usr/bin/python3. They bind 127.0.0.1 port 0 themselves and print
# "READY <port>" once listening, so no port race is possible. They accept any
# user name, public keys from $T/keys/authorized_keys, and password (or
# keyboard-interactive) auth with the password in $PY_PASSWORD_FILE
# ($T/py_password, made here). Commands run as this process's user with
# /bin/sh -c; exit status and exit signal are reported.
# Sets ASYNCSSH_PORT/ASYNCSSH_LOG or PARAMIKO_PORT/PARAMIKO_LOG.
start_asyncssh_server() {
    _peers_start_py asyncssh "$PEERS_LIB/asyncssh_server.py"
    ASYNCSSH_PORT=$PEERS_PY_PORT
    ASYNCSSH_LOG=$PEERS_PY_LOG
    export ASYNCSSH_PORT ASYNCSSH_LOG
}

start_paramiko_server() {
    _peers_start_py paramiko "$PEERS_LIB/paramiko_server.py"
    PARAMIKO_PORT=$PEERS_PY_PORT
    PARAMIKO_LOG=$PEERS_PY_LOG
    export PARAMIKO_PORT PARAMIKO_LOG
}

_peers_start_py() {
    local name=$1 script=$2 h=$T/hostkeys pid log port
    "$PEERS_PYTHON" -c "import $name" 2>/dev/null || skip "python3-$name is not installed for $PEERS_PYTHON"
    _peers_host_keys
    [ -f "$T/keys/authorized_keys" ] || gen_user_keys
    PY_PASSWORD_FILE=$T/py_password
    [ -s "$PY_PASSWORD_FILE" ] || (umask 077 && _peers_random 20 >"$PY_PASSWORD_FILE")
    export PY_PASSWORD_FILE
    log=$T/$name-server.log
    # -u: unbuffered, so the READY line shows up at once.
    "$PEERS_PYTHON" -u -W ignore "$script" \
        --host-key "$h/ssh_host_ed25519_key" \
        --host-key "$h/ssh_host_ecdsa256_key" \
        --host-key "$h/ssh_host_rsa_key" \
        --authorized-keys "$T/keys/authorized_keys" \
        --password-file "$PY_PASSWORD_FILE" \
        </dev/null >"$log" 2>&1 &
    pid=$!
    _peers_add_pid "$pid"
    PEERS_LOGS+=("$log")
    if ! wait_for 20 _peers_py_ready "$log" "$pid" || ! kill -0 "$pid" 2>/dev/null; then
        cat "$log" >&2
        die "start_${name}_server: the server did not get ready"
    fi
    # READY is printed after listen(), so no probe connection is needed (it
    # would only put a failed handshake in the log).
    port=$(sed -n 's/^READY \([0-9][0-9]*\)$/\1/p' "$log" | head -n 1)
    [ -n "$port" ] || die "start_${name}_server: no port in the READY line"
    _peers_known_host "$port" "$h/ssh_host_ed25519_key.pub" "$h/ssh_host_ecdsa256_key.pub" \
        "$h/ssh_host_rsa_key.pub"
    PEERS_PY_PORT=$port
    PEERS_PY_LOG=$log
}

_peers_py_ready() {
    grep -q '^READY [0-9][0-9]*$' "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 0
    return 1
}

# ---------------------------------------------------------------- shoal serve

# require_shoal_serve: skip (77) unless $SHOAL_BIN has a `serve` command.
require_shoal_serve() {
    if [ -z "${SHOAL_BIN:-}" ] && [ -n "${SHOAL_BUILD:-}" ]; then
        SHOAL_BIN=$SHOAL_BUILD/shoal
    fi
    [ -n "${SHOAL_BIN:-}" ] || skip "SHOAL_BIN is not set"
    [ -x "$SHOAL_BIN" ] || skip "$SHOAL_BIN is not an executable"
    local help
    help=$("$SHOAL_BIN" serve --help 2>&1 </dev/null) || skip "'shoal serve --help' fails"
    case $help in
        *[Uu]sage*) ;;
        *) skip "'shoal serve --help' prints no usage" ;;
    esac
}

# start_shoal_serve [config lines...]: start `$SHOAL_BIN serve` in the
# foreground (-d: its log goes to stderr, here $SERVE_LOG) on a free port of
# 127.0.0.1, with the five shared host keys, and wait until it accepts
# connections.
#
# How the configuration is put together (precedence as shoal serve's: the
# command line beats the file entirely, Match blocks included):
#   * command line: -p PORT, -h for each host key, -o ListenAddress=127.0.0.1
#     (always: the tests stay on loopback), then every extra line before the
#     first "Match" as -o "Keyword=value" (or "Keyword value");
#   * a file ($SERVE_DIR/serve_config, given with -f): the defaults below
#     whose keyword the extra lines do not mention anywhere, then the extra
#     lines from the first "Match" on (Match blocks cannot be given as -o).
#     A Match block can therefore override a default, but not a keyword
#     given as an extra line before it.
# Defaults: AuthorizedKeysFile $T/keys/authorized_keys, StrictModes no (the
# files live in a temp dir), PermitRootLogin yes, PerSourcePenalties no (on
# by default, as in sshd 9.8: every test connects from 127.0.0.1, and one
# test's deliberate failures must not lock out its next logins; the tests of
# the penalties turn them on), and "Subsystem sftp
# /usr/lib/openssh/sftp-server" when that program exists.
#
# SERVE_FLAGS (default -d) are the logging flags: "" runs at the default
# level, as a production server would.
#
# Sets SERVE_PORT, SERVE_PID, SERVE_LOG, SERVE_DIR and SERVE_HOSTKEY_PUB
# (the ed25519 host key as "ssh-ed25519 AAAA..."), and adds
# "[127.0.0.1]:PORT type key" lines for all five host keys to $T/known_hosts.
# Each call starts another instance ($T/serve1, $T/serve2, ...) sharing the
# host keys; save the variables before the next call, and stop instances
# that are no longer needed with stop_shoal_serve.
start_shoal_serve() {
    require_shoal_serve
    _peers_host_keys
    [ -f "$T/keys/authorized_keys" ] || gen_user_keys
    PEERS_SERVE_N=$((${PEERS_SERVE_N:-0} + 1))
    local d=$T/serve$PEERS_SERVE_N h=$T/hostkeys port pid _ line kw in_match=0 k
    local -a opts=() tail=() hk=() defaults=() flags=()
    # shellcheck disable=SC2206 # SERVE_FLAGS is a list of words on purpose
    flags=(${SERVE_FLAGS--d})
    for line in "$@"; do
        case $line in [Mm]atch\ *) in_match=1 ;; esac
        if [ "$in_match" = 1 ]; then tail+=("$line"); else opts+=(-o "$line"); fi
    done
    for k in ed25519 ecdsa256 ecdsa384 ecdsa521 rsa; do
        hk+=(-h "$h/ssh_host_${k}_key")
    done
    defaults=("AuthorizedKeysFile $T/keys/authorized_keys" "StrictModes no" "PermitRootLogin yes"
        "PerSourcePenalties no")
    if [ -x /usr/lib/openssh/sftp-server ]; then
        defaults+=("Subsystem sftp /usr/lib/openssh/sftp-server")
    fi
    mkdir -p "$d"
    {
        echo "# written by tests/lib/peers.sh start_shoal_serve"
        for line in "${defaults[@]}"; do
            kw=${line%% *}
            if [ "$#" -gt 0 ] && printf '%s\n' "$@" | sed 's/^[[:space:]]*//' |
                grep -qiE "^${kw}([[:space:]=]|$)"; then
                continue
            fi
            printf '%s\n' "$line"
        done
        if [ "${#tail[@]}" -gt 0 ]; then printf '%s\n' "${tail[@]}"; fi
    } >"$d/serve_config"
    for _ in 1 2 3; do
        port=$(free_port) || die "start_shoal_serve: no free port"
        : >"$d/serve.log"
        # stdout/stderr to a file: a server must never hold the test's
        # output pipes (ctest waits for them to close).
        "$SHOAL_BIN" serve -f "$d/serve_config" -p "$port" "${hk[@]}" -o ListenAddress=127.0.0.1 \
            ${opts[@]+"${opts[@]}"} ${flags[@]+"${flags[@]}"} </dev/null >>"$d/serve.log" 2>&1 &
        pid=$!
        _peers_add_pid "$pid"
        PEERS_SERVE_INSTANCES+=("$pid:$d/serve.log")
        if wait_for 20 _peers_serve_listening "$d/serve.log" "$port" "$pid" && kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if grep -qi "address already in use" "$d/serve.log"; then
            echo "start_shoal_serve: port $port was taken, retrying" >&2
            continue
        fi
        cat "$d/serve.log" >&2
        die "start_shoal_serve: shoal serve did not start listening on 127.0.0.1:$port"
    done
    kill -0 "$pid" 2>/dev/null || die "start_shoal_serve: shoal serve could not bind a port"
    wait_for 10 port_open "$port" || die "start_shoal_serve: 127.0.0.1:$port accepts no connection"
    PEERS_LOGS+=("$d/serve.log")
    _peers_known_host "$port" "$h"/ssh_host_*_key.pub
    SERVE_PORT=$port
    SERVE_PID=$pid
    SERVE_LOG=$d/serve.log
    SERVE_DIR=$d
    SERVE_HOSTKEY_PUB=$(cut -d' ' -f1,2 "$h/ssh_host_ed25519_key.pub")
    export SERVE_PORT SERVE_PID SERVE_LOG SERVE_DIR SERVE_HOSTKEY_PUB
}

_peers_serve_listening() {
    # "listening on port N (K host keys)" is logged once every listener is up.
    grep -q "listening on port $2 " "$1" && return 0
    kill -0 "$3" 2>/dev/null || return 0   # died: stop waiting
    return 1
}

# _peers_serve_sanitizers: (from finish) stop every shoal serve instance
# (SIGTERM: it shuts down cleanly, so LeakSanitizer gets to run) and fail
# the test for each log holding an ASan/LSan/UBSan report.
_peers_serve_sanitizers() {
    local inst pid log
    for inst in ${PEERS_SERVE_INSTANCES[@]+"${PEERS_SERVE_INSTANCES[@]}"}; do
        pid=${inst%%:*}
        log=${inst#*:}
        _peers_kill_tree "$pid"
        [ -f "$log" ] || continue
        if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer" "$log"; then
            not_ok "shoal serve ($log): sanitizer report"
            grep -m 1 -A 60 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log" | sed 's/^/    | /'
        fi
    done
}

# stop_shoal_serve [PID]: stop an instance (default: the last one started)
# and everything it runs.
stop_shoal_serve() {
    _peers_kill_tree "${1:-$SERVE_PID}"
}

# add_serve_password USER PASSWORD_FILE [FILE]: append "USER:crypt-hash" for
# the password in PASSWORD_FILE (openssl passwd -6, i.e. SHA-512 crypt) to
# FILE (default $T/serve_passwords), the format of shoal serve's PasswordFile.
add_serve_password() {
    local f=${3:-$T/serve_passwords} hash
    hash=$(openssl passwd -6 -stdin <"$2") || die "add_serve_password: openssl passwd failed"
    (umask 077 && printf '%s:%s\n' "$1" "$hash" >>"$f")
}

# run_cmd CMD...: like run_shoal for any client program: stdout to $T/out,
# stderr to $T/err, exit code to $RC, bounded by $SHOAL_TIMEOUT seconds.
run_cmd() {
    RC=0
    timeout -k 5 "$SHOAL_TIMEOUT" "$@" >"$T/out" 2>"$T/err" || RC=$?
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
        echo "note: timed out after ${SHOAL_TIMEOUT}s: $*" >&2
    fi
}

# ---------------------------------------------------------------- checks

# run_shoal ARGS...: run `$SHOAL_BIN exec ARGS` (bounded by $SHOAL_TIMEOUT
# seconds); stdout goes to $T/out, stderr to $T/err, the exit code to $RC.
# stdin is inherited: redirect or pipe into run_shoal as needed.
run_shoal() {
    RC=0
    timeout -k 5 "$SHOAL_TIMEOUT" "$SHOAL_BIN" exec "$@" >"$T/out" 2>"$T/err" || RC=$?
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
        echo "note: shoal exec timed out after ${SHOAL_TIMEOUT}s: $*" >&2
    fi
}

ok() {
    T_PASS=$((T_PASS + 1))
    echo "ok - $*"
}

not_ok() {
    T_FAIL=$((T_FAIL + 1))
    echo "not ok - $*"
}

# _show FILE: the first lines of FILE, indented, for failure reports.
_show() {
    if [ -s "$1" ]; then
        head -c 2000 "$1" | head -n 20 | sed 's/^/    | /'
    else
        echo "    (empty)"
    fi
}

_report_failure() {
    not_ok "$1"
    echo "    expected: $2"
    echo "    got:      $3"
    echo "  stderr of the last shoal exec:"
    _show "$T/err"
}

# check_rc WANT DESC: the last run_shoal exited with WANT.
check_rc() {
    if [ "$RC" = "$1" ]; then ok "$2"; return 0; fi
    _report_failure "$2" "exit code $1" "exit code $RC"
    return 0
}

# check_out WANT DESC: the last run_shoal's stdout is exactly WANT (plus the
# newline that $(...) would strip).
check_out() {
    local got
    got=$(cat "$T/out")
    if [ "$got" = "$1" ]; then ok "$2"; return 0; fi
    _report_failure "$2" "stdout $(printf %q "$1")" "stdout $(printf %q "${got:0:300}")"
    return 0
}

# check_err WANT DESC: the last run_shoal's stderr is exactly WANT.
check_err() {
    local got
    got=$(cat "$T/err")
    if [ "$got" = "$1" ]; then ok "$2"; return 0; fi
    _report_failure "$2" "stderr $(printf %q "$1")" "stderr $(printf %q "${got:0:300}")"
    return 0
}

# check_err_has ERE DESC: stderr of the last run_shoal matches ERE.
check_err_has() {
    if grep -Eq -- "$1" "$T/err"; then ok "$2"; return 0; fi
    _report_failure "$2" "stderr matching /$1/" "no match"
    return 0
}

# check_sha256 WANT DESC: sha256 of the last run_shoal's stdout is WANT.
check_sha256() {
    local got size
    got=$(sha256sum <"$T/out" | cut -d' ' -f1)
    size=$(wc -c <"$T/out")
    if [ "$got" = "$1" ]; then ok "$2"; return 0; fi
    _report_failure "$2" "sha256 $1" "sha256 $got of $size bytes"
    return 0
}

# check DESC CMD...: generic check, passes when CMD succeeds. What CMD prints
# is shown only when it fails.
check() {
    local desc=$1
    shift
    if "$@" >"$T/check.out" 2>&1; then
        ok "$desc"
    else
        not_ok "$desc"
        echo "    failed: $*"
        sed 's/^/    /' "$T/check.out"
    fi
    return 0
}

# check_known_bug DESC CMD...: like check, for a behaviour that is known to
# be wrong: a failure prints "not ok ... # TODO known bug" and does not fail
# the test; a pass is reported so the mark can be removed.
check_known_bug() {
    local desc=$1
    shift
    if "$@" >"$T/check.out" 2>&1; then
        ok "$desc (known bug no longer reproduces: make this a plain check)"
    else
        T_TODO=$((T_TODO + 1))
        echo "not ok - $desc # TODO known bug"
        sed 's/^/    /' "$T/check.out"
    fi
    return 0
}

# log_mark FILE: current size of FILE, for log_since.
log_mark() { stat -c %s "$1"; }

# log_since FILE MARK: what FILE got after log_mark returned MARK.
log_since() { tail -c +"$(($2 + 1))" "$1"; }

# ---------------------------------------------------------------- suites

# check_exec_basics LABEL PORT USER KEY...: the exec checks every server
# gets (dropbear.sh, asyncssh.sh, paramiko.sh): log in with each KEY, exit
# statuses 0/1/42, stdout vs stderr, stdin and its EOF, 1 MiB each way
# (sha256), and a command killed by SIGTERM (shoal: 143 and a message; with
# SHOAL_COMPAT_SSH=1, ssh's 255).
check_exec_basics() {
    local label=$1 port=$2 dest=$3@127.0.0.1 k want
    shift 3
    local -a c=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
        -o BatchMode=yes -p "$port")
    for k in "$@"; do
        run_shoal "${c[@]}" -i "$k" "$dest" 'echo ok' </dev/null
        check_rc 0 "$label: login with ${k##*/}"
        check_out ok "$label: login with ${k##*/}: command ran"
    done
    c+=(-i "$1")
    run_shoal "${c[@]}" "$dest" 'exit 0' </dev/null
    check_rc 0 "$label: exit 0"
    run_shoal "${c[@]}" "$dest" 'exit 1' </dev/null
    check_rc 1 "$label: exit 1"
    run_shoal "${c[@]}" "$dest" 'exit 42' </dev/null
    check_rc 42 "$label: exit 42"
    run_shoal "${c[@]}" "$dest" 'echo out1; echo err1 >&2; echo out2; echo err2 >&2' </dev/null
    check_out $'out1\nout2' "$label: stdout carries only stdout"
    check_err $'err1\nerr2' "$label: stderr carries only stderr"
    # Not "printf | run_shoal": run_shoal would run in a subshell, and $RC
    # would not reach check_rc.
    run_shoal "${c[@]}" "$dest" cat < <(printf 'a\nb\n')
    check_rc 0 "$label: cat of stdin exits 0"
    check_out $'a\nb' "$label: stdin is forwarded"
    run_shoal "${c[@]}" "$dest" 'wc -c' </dev/null
    check_out 0 "$label: EOF on stdin reaches the command"
    want=$(head -c 1048576 /dev/zero | tr '\0' z | sha256sum | cut -d' ' -f1)
    run_shoal "${c[@]}" "$dest" "head -c 1048576 /dev/zero | tr '\\0' z" </dev/null
    check_rc 0 "$label: 1 MiB download exits 0"
    check_sha256 "$want" "$label: 1 MiB download intact"
    head -c 1048576 /dev/urandom >"$T/up1m"
    want=$(sha256sum <"$T/up1m" | cut -d' ' -f1)
    run_shoal "${c[@]}" "$dest" 'sha256sum' <"$T/up1m"
    check_out "$want  -" "$label: 1 MiB upload intact"
    run_shoal "${c[@]}" "$dest" 'kill -TERM $$' </dev/null
    if [ "${SHOAL_COMPAT_SSH:-0}" = 1 ]; then
        check_rc 255 "$label: killed by TERM: ssh exits 255"
    else
        check_rc 143 "$label: killed by TERM: exit code 128+15"
        check_err_has "remote command killed by signal TERM" "$label: killed by TERM: message"
    fi
}

# check_password_login LABEL PORT USER PASSWORD_FILE: password auth, the
# password given through SSH_ASKPASS (+ SSH_ASKPASS_REQUIRE=force), then a
# wrong password fails with 255.
check_password_login() {
    local label=$1 port=$2 dest=$3@127.0.0.1 pwfile=$4
    mkdir -p "$T/home" && chmod 700 "$T/home"
    # shellcheck disable=SC2016 # expanded by the askpass script, not here
    printf '#!/bin/sh\ncat "$PEERS_ASKPASS_FILE"\n' >"$T/askpass-file"
    chmod 755 "$T/askpass-file"
    printf 'not-the-password\n' >"$T/wrong-password"
    local -a c=(-o "UserKnownHostsFile=$T/known_hosts" -o StrictHostKeyChecking=yes
        -o BatchMode=no -o PubkeyAuthentication=no -o PasswordAuthentication=yes -p "$port")
    HOME=$T/home PEERS_ASKPASS_FILE=$pwfile SSH_ASKPASS=$T/askpass-file SSH_ASKPASS_REQUIRE=force \
        DISPLAY='' run_shoal "${c[@]}" "$dest" 'echo ok' </dev/null
    check_rc 0 "$label: password login exits 0"
    check_out ok "$label: password login: command ran"
    HOME=$T/home PEERS_ASKPASS_FILE=$T/wrong-password SSH_ASKPASS=$T/askpass-file \
        SSH_ASKPASS_REQUIRE=force DISPLAY='' run_shoal "${c[@]}" "$dest" 'echo ok' </dev/null
    check_rc 255 "$label: wrong password exits 255"
}

# finish: print the plain "N passed, N failed" line and exit accordingly.
finish() {
    _peers_serve_sanitizers
    echo "${0##*/}: $T_PASS passed, $T_FAIL failed"
    if [ "$T_TODO" -gt 0 ]; then echo "${0##*/}: $T_TODO known bug(s) marked TODO"; fi
    [ "$T_FAIL" -eq 0 ] || exit 1
    exit 0
}
