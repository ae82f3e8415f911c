#!/usr/bin/env bash
# The README's deployment example (tests/deploy.c, linked with the integer engine only) must
# generate what `octet generate --temperature 0` generates from the same int8 export.
# usage: check_deploy.sh OCTET DEPLOY
set -euo pipefail
octet=$1 deploy=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/octet-deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 60); do printf 'and the light was good; and %d days passed.\n' "$i"; done >"$tmp/text.txt"
"$octet" train gpt --text "$tmp/text.txt" --layers 1 --heads 2 --width 16 --context 16 --mlp 32 \
    --batch 4 --steps 40 --eval-every 0 --eval-batches 1 --qat --embed-bits 8 \
    --save "$tmp/g.safetensors" >/dev/null 2>&1
"$octet" export "$tmp/g.safetensors" -o "$tmp/g8.safetensors" >/dev/null
want=$("$octet" generate "$tmp/g8.safetensors" --prompt "and the" -n 40 --temperature 0 2>/dev/null)
got=$("$deploy" "$tmp/g8.safetensors" "and the" 40)
if [ "$got" != "$want" ]; then
    printf 'check_deploy: deploy printed\n%s\noctet generate printed\n%s\n' "$got" "$want" >&2
    exit 1
fi
# a prompt character outside the vocabulary, and a missing file, fail with a message
if "$deploy" "$tmp/g8.safetensors" "XYZ" 5 2>/dev/null || "$deploy" "$tmp/none" "and" 5 2>/dev/null; then
    echo "check_deploy: deploy accepted a bad prompt or a missing file" >&2
    exit 1
fi
echo "check_deploy: deploy generates what octet generate does ($(printf '%s' "$got" | wc -c) bytes)"
