#!/bin/sh
# hygiene.core_is_sans_io: the core (shoal_core: src/*.c and src/wire crypto
# keys session transport auth conn sftp config) never includes libuv, opens
# a socket or reads a clock. The driver (src/uv) and the engines above it
# (src/fleet, src/serve) may. Usage: core_is_sans_io.sh SOURCE_DIR
root=${1:?usage: core_is_sans_io.sh SOURCE_DIR}
cd "$root/src" || exit 2
core=$(ls *.c *.h 2>/dev/null; for d in wire crypto keys session transport auth conn sftp config; do
    [ -d "$d" ] && find "$d" -name '*.[ch]'; done)
hits=$(grep -nE '#include [<"]uv\.h|socket\(|gettimeofday|clock_gettime|time\(NULL\)' $core)
if [ -n "$hits" ]; then
    echo "I/O in the sans-I/O core:" >&2
    echo "$hits" | sed 's|^|  src/|' >&2
    exit 1
fi
exit 0
