#!/bin/sh
# hygiene.public_only: outside src/ nothing includes a private header.
# A quoted include must be "shoal/..." (include/shoal/, the public API) or a
# file of the program's own tree (relative to the including file, or for the
# shoal command to apps/shoal), and never resolve into src/.
# Exempt (white-box by design): tests/unit, tests/lib, fuzz, and tests/fault
# (fault-injection peers that forge protocol messages through the session
# internals). Usage: public_only.sh SOURCE_DIR
root=$(cd "${1:?usage: public_only.sh SOURCE_DIR}" && pwd -P)

# Known exceptions, "file:include", each with the work that removes it.
# None today: keep it that way.
allow=""

bad=0
files=$(cd "$root" && find . \( -path ./src -o -path ./tests/unit -o -path ./tests/lib -o -path ./fuzz \
        -o -path ./tests/fault -o -path './build*' -o -path ./.git \) -prune -o \
        \( -name '*.c' -o -name '*.h' \) -type f -print | sed 's|^\./||' | sort)
for f in $files; do
    dir=$(dirname "$f")
    incs=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$root/$f")
    for inc in $incs; do
        case "$inc" in shoal/*) continue ;; esac
        case " $allow " in *" $f:$inc "*) continue ;; esac
        found=
        for base in "$dir" apps/shoal; do
            [ "$base" = apps/shoal ] && case "$f" in apps/shoal/*) ;; *) continue ;; esac
            if [ -f "$root/$base/$inc" ]; then
                real=$(cd "$(dirname "$root/$base/$inc")" && pwd -P)
                case "$real/" in "$root/src/"*) ;; *) found=1 ;; esac
            fi
        done
        if [ -z "$found" ]; then
            echo "$f: #include \"$inc\" is not public (use include/shoal/)" >&2
            bad=1
        fi
    done
done
exit $bad
