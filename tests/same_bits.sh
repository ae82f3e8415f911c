#!/usr/bin/env bash
# Checks that two builds of octet compute the same bits, e.g. the release build (whose hot C loops
# have AVX2 and AVX-512 clones picked at run time, src/core/clones.h) and a portable build
# (meson -Dclones=false): each trains a small MLP and a tiny GPT with QAT (tanh and exact GELU),
# exports them (static and dynamic int8) and samples text and class probabilities from the
# exports; every file must be the same byte for byte.
#
# usage: tests/same_bits.sh OCTET_A OCTET_B
set -euo pipefail
a=$(realpath "$1") b=$(realpath "$2")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/octet-bits.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 200); do printf 'and the light was good; and %d days passed.\n' "$i"; done >"$tmp/text.txt"
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

# run OCTET DIR: the work, its outputs in DIR (the same relative names for both builds)
run() {
    local octet=$1
    mkdir -p "$2" && cd "$2"
    local gpt=(--text "$tmp/text.txt" --layers 1 --heads 2 --width 32 --context 32 --mlp 64
        --batch 4 --steps 30 --eval-every 0 --eval-batches 1 --qat --embed-bits 8)
    "$octet" train gpt "${gpt[@]}" --save gpt.safetensors >/dev/null 2>&1
    "$octet" train gpt "${gpt[@]}" --gelu erf --threads 2 --save erf.safetensors >/dev/null 2>&1
    for m in gpt erf; do
        "$octet" export $m.safetensors -o $m.i8.safetensors >/dev/null
        "$octet" export $m.safetensors --dynamic -o $m.dyn.safetensors >/dev/null
        for e in i8 dyn; do
            "$octet" generate $m.$e.safetensors --prompt "and the" -n 200 --seed 3 >$m.$e.txt 2>/dev/null
        done
    done
    if [ -f "$images" ]; then
        "$octet" train mlp --qat --epochs 2 --limit 3000 --hidden 64,32 --threads 2 \
            --save mlp.safetensors >/dev/null 2>&1
        "$octet" export mlp.safetensors -o mlp.i8.safetensors >/dev/null
        "$octet" export mlp.safetensors --dynamic -o mlp.dyn.safetensors >/dev/null
        for e in i8 dyn; do
            "$octet" predict mlp.$e.safetensors "$images" --count 200 >mlp.$e.txt
        done
    fi
}
(run "$a" "$tmp/a")
(run "$b" "$tmp/b")
fails=0
for f in "$tmp"/a/*; do
    name=$(basename "$f")
    cmp -s "$f" "$tmp/b/$name" || { echo "FAIL: $name differs between $1 and $2"; fails=$((fails + 1)); }
done
echo "same_bits: $(ls "$tmp/a" | wc -l) files compared, $fails differ"
[ "$fails" -eq 0 ]
