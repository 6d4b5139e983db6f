#!/usr/bin/env bash
# packaging.man: the man pages in docs/man exist and lint clean, failing on
# any warning: `mandoc -T lint -W warning` (Debian's mandoc, installed by
# scripts/install-deps.sh), else `groff -man -ww -z` with nothing on stderr.
# With SHOAL_BIN set, every flag a subcommand's --help names (and --help,
# --version) must be in its man page and in the bash completion's flags
# for it (scripts/completions/shoal.bash): a new flag needs both.
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
# ---- flags: --help vs the man page and the completion
if [ -n "${SHOAL_BIN:-}" ] && [ -x "$SHOAL_BIN" ]; then
    if command -v mandoc >/dev/null; then render() { mandoc -T ascii "$1" | col -b; }; else render() { groff -man -T ascii "$1" 2>/dev/null | col -b; }; fi
    for sub in exec run put agent serve; do
        page=$src/docs/man/shoal-$sub.1
        [ "$sub" = serve ] && page=$src/docs/man/shoal-serve.8
        [ -f "$page" ] || continue
        text=$(render "$page")
        flags=$("$SHOAL_BIN" "$sub" --help 2>&1 </dev/null | grep -oE '(^|[][ ,|(])--?[a-zA-Z][a-zA-Z-]*' |
            sed 's/^[][ ,|(]//' | sort -u)
        # shellcheck disable=SC1090 # the file under test
        completion=$(bash -c ". '$src/scripts/completions/shoal.bash'; COMP_WORDS=(shoal $sub -); COMP_CWORD=2;
                              _shoal; printf '%s\n' \"\${COMPREPLY[@]}\"")
        missing_man="" missing_comp=""
        for f in $flags --help --version; do
            grep -qE -- "(^|[^a-zA-Z-])$f([^a-zA-Z-]|\$)" <<<"$text" || missing_man="$missing_man $f"
            grep -qx -- "$f" <<<"$completion" || missing_comp="$missing_comp $f"
        done
        if [ -z "$missing_man" ]; then ok "$(basename "$page") has every flag of shoal $sub --help"; else not_ok "$(basename "$page") lacks:$missing_man"; fi
        if [ -z "$missing_comp" ]; then ok "bash completion has every flag of shoal $sub --help"; else not_ok "bash completion for $sub lacks:$missing_comp"; fi
    done
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
