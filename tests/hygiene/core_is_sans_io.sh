#!/bin/sh
# hygiene.core_is_sans_io: the core (shoal_core: src/*.c and src/wire crypto
# keys session transport auth conn sftp config) never includes libuv, opens
# a socket, reads a clock or opens a file (one documented exception below). The driver (src/uv) and the engines above it
# (src/fleet, src/serve) may. Usage: core_is_sans_io.sh SOURCE_DIR
root=${1:?usage: core_is_sans_io.sh SOURCE_DIR}
cd "$root/src" || exit 2
core=$(ls *.c *.h 2>/dev/null; for d in wire crypto keys session transport auth conn sftp config; do
    [ -d "$d" ] && find "$d" -name '*.[ch]'; done)
bad=0
hits=$(grep -nE '#include [<"]uv\.h|socket\(|gettimeofday|clock_gettime|time\(NULL\)' $core)
if [ -n "$hits" ]; then
    echo "I/O in the sans-I/O core:" >&2
    echo "$hits" | sed 's|^|  src/|' >&2
    bad=1
fi
# Files: the core parses from memory; the driver (src/uv/files.c) reads.
# The one exception, src/keys/knownhosts.c: the known_hosts database reads
# its files and appends new keys to the first one under its own lock
# (docs/ARCHITECTURE.md, "Files in the core").
files_core=$(echo "$core" | grep -v '^keys/knownhosts\.c$')
hits=$(grep -nE '(^|[^A-Za-z0-9_])(fopen|open|openat|opendir|creat)\(' $files_core |
       grep -vE '^[^:]*:[0-9]+:[[:space:]]*(\*|/\*|//)')
if [ -n "$hits" ]; then
    echo "files opened in the core (read them in src/uv and pass the bytes):" >&2
    echo "$hits" | sed 's|^|  src/|' >&2
    bad=1
fi
exit $bad
