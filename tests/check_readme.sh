#!/usr/bin/env bash
# The README's library example must be tests/example.c verbatim (which the suite compiles and
# runs), so the documented code cannot rot. usage: check_readme.sh README.md tests/example.c
set -euo pipefail
block=$(awk '/^```c$/ {on = 1; next} /^```$/ && on {exit} on' "$1")
if [ "$block" != "$(cat "$2")" ]; then
    echo "check_readme: the C example in $1 differs from $2" >&2
    diff <(printf '%s\n' "$block") "$2" >&2 || true
    exit 1
fi
echo "check_readme: README example matches $2"
