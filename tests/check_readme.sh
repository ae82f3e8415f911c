#!/usr/bin/env bash
# A C example of the README must be the given file verbatim (which the suite compiles and runs),
# so the documented code cannot rot: the README's ```c block that starts with the file's first
# line. usage: check_readme.sh README.md tests/example.c
set -euo pipefail
first=$(head -n 1 "$2")
block=$(awk -v first="$first" '/^```c$/ {on = 1; n = 0; next}
    /^```$/ && on {if (keep) exit; on = 0; next}
    on {n++; if (n == 1) {keep = ($0 == first); buf = ""} if (keep) print}' "$1")
if [ "$block" != "$(cat "$2")" ]; then
    echo "check_readme: the C example in $1 differs from $2" >&2
    diff <(printf '%s\n' "$block") "$2" >&2 || true
    exit 1
fi
echo "check_readme: README example matches $2"
