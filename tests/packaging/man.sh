#!/usr/bin/env bash
# packaging.man: the man pages in docs/man exist and lint clean, failing on
# any warning: `mandoc -T lint -W warning` (Debian's mandoc, installed by
# scripts/install-deps.sh), else `groff -man -ww -z` with nothing on stderr.
# Usage: man.sh SOURCE_DIR
set -euo pipefail
src=$1
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }

if command -v mandoc >/dev/null; then
    lint() { mandoc -T lint -W warning "$1" 2>&1; }
    how="mandoc -T lint -W warning"
elif command -v groff >/dev/null; then
    lint() {
        local out
        out=$(groff -man -ww -z "$1" 2>&1) || { echo "$out"; return 1; }
        [ -z "$out" ] || { echo "$out"; return 1; }
    }
    how="groff -man -ww -z"
else
    echo "SKIP: neither mandoc nor groff is installed"
    exit 77
fi

for page in shoal.1 shoal-exec.1 shoal-run.1 shoal-put.1 shoal-agent.1 shoal-serve.8 shoal_serve_config.5; do
    [ -f "$src/docs/man/$page" ] || not_ok "docs/man/$page exists"
done
for f in "$src"/docs/man/*.[158]; do
    name=$(basename "$f")
    if out=$(lint "$f"); then
        ok "$name: $how"
    else
        not_ok "$name: $how:"
        printf '%s\n' "$out" | sed 's/^/  /'
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
