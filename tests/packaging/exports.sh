#!/usr/bin/env bash
# packaging.exports: libshoal.so exports the public API and nothing else.
#   * every defined dynamic symbol starts with shoal_ and none with shoal__
#     (the internal helpers), except the version node SHOAL_<N> itself;
#   * the SONAME is libshoal.so.<N>, and the real file is libshoal.so.X.Y.Z;
#   * libshoal.a holds all four library tiers (one symbol of each).
# Usage: exports.sh LIBDIR VERSION SOVERSION
set -euo pipefail
libdir=$1 version=$2 soversion=$3
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }
command -v nm >/dev/null || { echo "SKIP: nm is not installed"; exit 77; }

so=$libdir/libshoal.so.$version
[ -f "$so" ] || { echo "not ok - $so exists"; exit 1; }

# "ADDRESS TYPE NAME[@@VERSION]" per line; the version node itself is an
# absolute (A) symbol. Read once: grep -q on a pipe would SIGPIPE nm.
dyn=$(nm -D --defined-only "$so" | awk '{ sub(/@.*/, "", $NF); print $2, $NF }')
static_syms=$( (nm --defined-only "$libdir/libshoal.a" 2>/dev/null || true) | awk 'NF >= 3 { print $NF }')
bad=$(echo "$dyn" | awk '
    $1 == "A" && $2 ~ /^SHOAL_[0-9]+$/ { next }
    $2 !~ /^shoal_/ || $2 ~ /^shoal__/ { print $2 }')
if [ -z "$bad" ]; then
    ok "only shoal_ symbols are exported, no shoal__ helper"
else
    not_ok "symbols outside the public API are exported:"
    while read -r sym; do echo "  $sym"; done <<<"$bad"
fi
n=$(echo "$dyn" | grep -c ' shoal_' || true)
if [ "$n" -ge 50 ]; then ok "the public API is exported ($n symbols)"; else not_ok "only $n shoal_ symbols exported"; fi
for sym in shoal_version shoal_strerror shoal_session_new_client shoal_session_new_server shoal_uv_conn_new shoal_run shoal_serve_config_new; do
    if echo "$dyn" | awk '{ print $2 }' | grep -x "$sym" >/dev/null; then
        ok "$sym is exported"
    else
        not_ok "$sym is exported"
    fi
done

soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
if [ "$soname" = "libshoal.so.$soversion" ]; then ok "SONAME $soname"; else not_ok "SONAME is '$soname', not libshoal.so.$soversion"; fi
for l in libshoal.so "libshoal.so.$soversion"; do
    if [ -L "$libdir/$l" ] && [ "$(readlink -f "$libdir/$l")" = "$(readlink -f "$so")" ]; then
        ok "$l -> libshoal.so.$version"
    else
        not_ok "$l is a link to libshoal.so.$version"
    fi
done

# libshoal.a: the four tiers (core, uv, fleet, serve).
for sym in shoal_session_new_client shoal_uv_conn_new shoal_fleet_new shoal_serve_config_new; do
    if echo "$static_syms" | grep -x "$sym" >/dev/null; then
        ok "libshoal.a defines $sym"
    else
        not_ok "libshoal.a defines $sym"
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
