#!/usr/bin/env bash
# README command one, the main job: installs what is missing, builds octet, trains the default
# 784-256-128-10 MLP on Fashion-MNIST in fp32 and with QAT (fp32 warm-up, then fake-quant),
# exports the QAT model as true int8, evaluates it with the integer engine, and prints the
# fp32 / QAT / int8 accuracies and file sizes; for comparison also quantizes the fp32 model
# after training (octet calibrate; and octet export --dynamic) and runs it as int8. Outputs go to
# runs/ (OCTET_RUNS).
set -euo pipefail
cd "$(dirname "$0")/.."
source trainers/deps.sh
octet_install_deps

meson setup build-release --buildtype=release >/dev/null 2>&1 ||
    meson setup build-release --buildtype=release --reconfigure >/dev/null
ninja -C build-release octet >/dev/null
octet=./build-release/octet
runs=${OCTET_RUNS:-runs}
mkdir -p "$runs"
threads=${OCTET_THREADS:-$(nproc)} # OCTET_THREADS=1 bash trainers/quickstart.sh: one thread

echo "== fp32 training (10 epochs)"
$octet train mlp --threads "$threads" --save "$runs/mlp.fp32.safetensors" \
    --log "$runs/mlp.fp32.jsonl" | tee "$runs/fp32.txt"
echo "== QAT training (fp32 warm-up, then simulated int8)"
$octet train mlp --qat --threads "$threads" --save "$runs/mlp.qat.safetensors" \
    --log "$runs/mlp.qat.jsonl" | tee "$runs/qat.txt"
echo "== export to int8"
$octet export "$runs/mlp.qat.safetensors" -o "$runs/mlp.int8.safetensors"
echo "== integer engine evaluation"
$octet eval --int8 "$runs/mlp.int8.safetensors" --threads "$threads" \
    --compare "$runs/mlp.qat.safetensors" | tee "$runs/int8.txt"

echo "== for comparison: post-training quantization of the fp32 model (no training)"
$octet calibrate "$runs/mlp.fp32.safetensors" --threads "$threads" \
    -o "$runs/mlp.ptq.safetensors" | tee "$runs/ptq.txt"
$octet export "$runs/mlp.ptq.safetensors" -o "$runs/mlp.ptq.int8.safetensors" >/dev/null
$octet eval --int8 "$runs/mlp.ptq.int8.safetensors" --threads "$threads" \
    --compare "$runs/mlp.ptq.safetensors" | tee "$runs/ptq-int8.txt"
echo "== and dynamic quantization of the fp32 model (int8 weights, activations at run time)"
$octet export "$runs/mlp.fp32.safetensors" --dynamic -o "$runs/mlp.dynamic.safetensors" >/dev/null
$octet eval --int8 "$runs/mlp.dynamic.safetensors" --threads "$threads" | tee "$runs/dynamic.txt"

acc() { grep -oE 'test accuracy [0-9.]+%' "$1" | tail -1 | grep -oE '[0-9.]+%'; }
size() { stat -c %s "$1"; }
echo
echo "== summary"
fp32_size=$(size "$runs/mlp.fp32.safetensors")
row() { printf '%-24s %9s %10s %9s\n' "$1" "$2" "$3" "$(awk -v a="$3" -v b="$fp32_size" 'BEGIN { printf "%.1f%%", 100 * a / b }')"; }
printf '%-24s %9s %10s %9s\n' model accuracy bytes "of fp32"
row "fp32" "$(acc "$runs/fp32.txt")" "$fp32_size"
row "QAT (simulated int8)" "$(acc "$runs/qat.txt")" "$(size "$runs/mlp.qat.safetensors")"
row "int8 engine" "$(acc "$runs/int8.txt")" "$(size "$runs/mlp.int8.safetensors")"
row "int8 engine, PTQ" "$(acc "$runs/ptq-int8.txt")" "$(size "$runs/mlp.ptq.int8.safetensors")"
row "int8 engine, dynamic" "$(acc "$runs/dynamic.txt")" "$(size "$runs/mlp.dynamic.safetensors")"
grep -h 'bit-identical' "$runs/int8.txt"
