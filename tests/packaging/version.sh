#!/usr/bin/env bash
# packaging.version: `shoal --version` and every subcommand's --version
# print "shoal X.Y.Z" with X.Y.Z = shoal_version() of libshoal.so (as
# printed by print_version, which also checks the version.h macros) and
# = project(VERSION).
# Usage: version.sh PRINT_VERSION PROJECT_VERSION   (SHOAL_BIN in the environment)
set -euo pipefail
print_version=$1 project_version=$2
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }

lib=$("$print_version") || { echo "not ok - print_version runs"; exit 1; }
if [ "$lib" = "$project_version" ]; then ok "shoal_version() is $lib"; else not_ok "shoal_version() is '$lib', project(VERSION) $project_version"; fi
for sub in "" exec run put agent serve; do
    name="shoal${sub:+ $sub} --version"
    # shellcheck disable=SC2086 # an empty $sub is no argument
    if out=$("$SHOAL_BIN" $sub --version </dev/null 2>&1) && [ "$out" = "shoal $lib" ]; then
        ok "$name: $out"
    else
        not_ok "$name prints '$out', want 'shoal $lib'"
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
