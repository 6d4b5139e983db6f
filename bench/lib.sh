# shellcheck shell=bash disable=SC2034 # the variables set here are used by the scripts that source it
# bench/lib.sh -- the server and client command lines shared by bench/run.sh
# and bench/profile.sh. Source it from bash after setting SRC (project root)
# and SHOAL (path of the shoal binary); it sources tests/lib/peers.sh.
#
#   bench_setup     # $T, keys, one private sshd; sets PORT, KEY, USER_AT,
#                   # SSHD_PID, SERVER_ENV and the arrays SSH, SHOAL_EXEC, FAN
#
# The EXIT trap installed by peers_init kills the sshd (and everything it
# started) and removes $T.

# shellcheck source=../tests/lib/peers.sh
. "$SRC/tests/lib/peers.sh"

BUILD_DIR=$(dirname -- "$SHOAL")
FANOUT=$BUILD_DIR/bench/shoal_bench_fanout
TIMER=$BUILD_DIR/bench/shoal_bench_time
# bench/serve_run.sh: holds many idle connections open.
HOLD=$BUILD_DIR/bench/shoal_bench_hold
KEX=curve25519-sha256
HKA=ssh-ed25519

bench_setup() {
    peers_init
    unset SSH_AUTH_SOCK
    # sshd runs commands with the user's login shell, and Debian's bash
    # sources ~/.bashrc for commands run by sshd; on the development machine
    # root's .bashrc runs `pyenv init`, ~0.1 s of server CPU per connection.
    # So sshd gets a private mount namespace with an empty directory
    # bind-mounted over the user's home: the clients' environment is
    # untouched, and the server's per-connection CPU is sshd's own.
    mkdir -p "$T/emptyhome"
    local home
    home=$(getent passwd "$(id -un)" | cut -d: -f6)
    SERVER_ENV="sshd sees the user's real home (rc files included)"
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
    if [ "$(id -u)" -eq 0 ] && [ -d "$home" ] &&
        unshare -m -- sh -c 'mount --bind "$1" "$2"' _ "$T/emptyhome" "$home" 2>/dev/null; then
        cat >"$T/sshd-wrapper" <<WRAPPER
#!/bin/sh
# Keeps the pid of the final sshd (unshare and sh exec), so peers.sh tracks it.
exec unshare -m -- /bin/sh -c 'mount --bind "\$0" "$home" && exec /usr/sbin/sshd "\$@"' "$T/emptyhome" "\$@"
WRAPPER
        chmod 755 "$T/sshd-wrapper"
        PEERS_SSHD=$T/sshd-wrapper
        SERVER_ENV="sshd in a private mount namespace with an empty $home"
    else
        echo "bench: WARNING: cannot give sshd an empty home (needs root and unshare);" \
            "server CPU and wall times include the remote shell's rc files" >&2
    fi

    gen_user_keys
    # First value wins in sshd_config: these override peers.sh's defaults.
    start_sshd "LogLevel INFO" "MaxStartups 1000:30:1000" "MaxSessions 200"
    KEY=$T/keys/id_ed25519
    USER_AT=$PEER_USER@127.0.0.1
    PORT=$SSHD_PORT

    # Both clients: only this key, no agent, no config files, strict host
    # key checking against the test's known_hosts, same kex and host key.
    SSH=(ssh -F /dev/null -p "$PORT" -i "$KEY" -o IdentitiesOnly=yes -o IdentityAgent=none
        -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$T/known_hosts"
        -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no -o ControlPath=none
        -o "KexAlgorithms=$KEX" -o "HostKeyAlgorithms=$HKA" -o LogLevel=ERROR)
    SHOAL_EXEC=("$SHOAL" exec -p "$PORT" -i "$KEY" -o IdentityAgent=none -o BatchMode=yes
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$T/known_hosts"
        -o GlobalKnownHostsFile=/dev/null -o "KexAlgorithms=$KEX" -o "HostKeyAlgorithms=$HKA")
    FAN=("$FANOUT" -p "$PORT" -i "$KEY" -k "$T/known_hosts" -o "KexAlgorithms=$KEX" -o "HostKeyAlgorithms=$HKA")
}
