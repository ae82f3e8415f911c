#!/bin/bash
# CLI contract tests for `octet` (meson test suite 'cli'): usage errors exit 2 with one line,
# missing or corrupt model and data files exit 1 with one line naming the file, and a failed
# export leaves no output file behind. usage: test_cli.sh path/to/octet
set -u
octet=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/octet-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect CODE WORD CMD...: runs CMD, checks its exit status, that stderr is one line, and that
# it contains WORD (skipped when empty).
expect() {
    local code=$1 word=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" != "$code" ] || [ "$lines" != 1 ] || { [ -n "$word" ] && ! grep -qF -- "$word" "$tmp/err"; }; then
        echo "FAIL: $* -> exit $rc (want $code), $lines stderr lines (want 1, containing '$word'):"
        cat "$tmp/err"
        fails=$((fails + 1))
    fi
}

printf 'not a safetensors file at all' >"$tmp/corrupt.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{}}' >"$tmp/trunc.safetensors"
: >"$tmp/empty.idx"

# usage errors
expect 2 "--bogus" "$octet" eval --int8 "$tmp/x" --bogus
expect 2 "--batch" "$octet" eval --int8 "$tmp/x" --batch 0
expect 2 "--kernel" "$octet" eval --int8 "$tmp/x" --kernel sse9
expect 2 "--int8" "$octet" eval
expect 2 "-o" "$octet" export "$tmp/model.safetensors"
expect 2 "--count" "$octet" predict "$tmp/m" "$tmp/t10k-images-idx3-ubyte" --count x
expect 2 "labels" "$octet" predict "$tmp/m" "$tmp/images.idx"
expect 2 "" "$octet" inspect
expect 2 "unknown command" "$octet" frobnicate

# missing and corrupt files
expect 1 "$tmp/missing.safetensors" "$octet" eval --int8 "$tmp/missing.safetensors"
expect 1 "$tmp/corrupt.safetensors" "$octet" eval --int8 "$tmp/corrupt.safetensors"
expect 1 "$tmp/trunc.safetensors" "$octet" inspect "$tmp/trunc.safetensors"
expect 1 "$tmp/missing.safetensors" "$octet" inspect "$tmp/missing.safetensors"
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ -f "$images" ]; then
    expect 1 "$tmp/corrupt.safetensors" "$octet" predict "$tmp/corrupt.safetensors" "$images"
fi
expect 1 "$tmp/empty.idx" "$octet" predict "$tmp/missing.safetensors" "$tmp/empty.idx" \
    --labels "$tmp/empty.idx"

# a failed export leaves nothing behind
expect 1 "$tmp/missing.safetensors" "$octet" export "$tmp/missing.safetensors" -o "$tmp/out.int8"
expect 1 "$tmp/corrupt.safetensors" "$octet" export "$tmp/corrupt.safetensors" -o "$tmp/out.int8"
expect 1 "" "$octet" export "$tmp/trunc.safetensors" -o "$tmp/out.int8"
if [ -f "$images" ] && "$octet" train mlp --epochs 1 --limit 256 --hidden 16 \
    --save "$tmp/fp32.safetensors" >/dev/null 2>&1; then
    expect 1 "--qat" "$octet" export "$tmp/fp32.safetensors" -o "$tmp/out.int8"
fi
if ls "$tmp" | grep -q "out.int8"; then
    echo "FAIL: a failed export left $(ls "$tmp" | grep out.int8)"
    fails=$((fails + 1))
fi

[ "$fails" = 0 ] && echo "cli: all checks passed"
exit $((fails > 0))
