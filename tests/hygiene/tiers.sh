#!/bin/sh
# hygiene.tiers: each tier includes only downward.
#   core (src/wire crypto keys session transport auth conn sftp config, and
#   src/*.c): no libuv, no driver or engine header;
#   driver (src/uv): no engine header;
#   engines (src/fleet, src/serve): not each other's headers.
# Usage: tiers.sh SOURCE_DIR
root=${1:?usage: tiers.sh SOURCE_DIR}
cd "$root/src" || exit 2
bad=0
check() { # what, regex, paths...
    what=$1 re=$2
    shift 2
    hits=$(for p in "$@"; do [ -e "$p" ] && grep -nE "$re" $( [ -d "$p" ] && echo -r ) "$p" --include='*.c' --include='*.h'; done)
    if [ -n "$hits" ]; then
        echo "$what:" >&2
        echo "$hits" | sed 's|^|  src/|' >&2
        bad=1
    fi
}
inc='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]'
check "the core includes libuv, the driver or an engine" \
    "$inc(uv\.h|uv/|shoal/uv[^\">]*\.h|shoal/fleet\.h|shoal/serve\.h|fleet/|serve/)" \
    wire crypto keys session transport auth conn sftp config $(ls *.c *.h 2>/dev/null)
check "the driver includes an engine" "$inc(shoal/fleet\.h|shoal/serve\.h|fleet/|serve/)" uv
check "the fan-out engine includes the server engine" "$inc(shoal/serve\.h|serve/|serve_)" fleet
check "the server engine includes the fan-out engine" "$inc(shoal/fleet\.h|fleet/|fleet_)" serve
exit $bad
