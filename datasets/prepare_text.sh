#!/bin/sh
# Writes the default text corpus for `octet` character-level language models: the King James
# Bible from the Debian package bible-kjv, Genesis 1:1 to Revelation 22:21, unwrapped (-l0),
# plain ASCII, about 4.3 MB. The default output, data/kjv.txt under the repository root, is
# OCT_DEFAULT_TEXT in include/octet/data.h (the trainer resolves it from the repository root).
#
# Usage: datasets/prepare_text.sh [OUTPUT]
# Installs bible-kjv with apt-get if the `bible` command is missing (as root; otherwise it
# prints the command to run). The file is written atomically: a temporary file, then mv.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$repo/data/kjv.txt"}

if ! command -v bible >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "prepare_text.sh: the 'bible' command is missing; install it with:" >&2
        echo "    sudo apt-get install -y bible-kjv" >&2
        exit 1
    fi
    echo "prepare_text.sh: installing bible-kjv" >&2
    apt-get install -y bible-kjv || { apt-get update && apt-get install -y bible-kjv; }
fi

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT INT TERM
bible -l0 gen1:1-rev22:21 >"$tmp"
if [ ! -s "$tmp" ]; then
    echo "prepare_text.sh: 'bible -l0 gen1:1-rev22:21' printed nothing" >&2
    exit 1
fi
chmod 644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT INT TERM
echo "$out: $(wc -c <"$out") bytes"
