#!/bin/sh
# Installs the Debian packages the build and tests need, when run as root.
# Idempotent and quiet when everything is present.
set -e
PKGS="build-essential cmake pkg-config libssl-dev libuv1-dev libcmocka-dev libcrypt-dev libjansson-dev pssh pdsh clang libclang-rt-14-dev
openssh-server openssh-client dropbear-bin python3-asyncssh python3-paramiko git openssl mandoc"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing" >&2
    echo "run 'sudo make deps' (or install them) and try again" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
