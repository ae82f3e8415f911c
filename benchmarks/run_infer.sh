#!/bin/bash
# Runs bench_infer (octet's int8 engine vs fp32 OpenBLAS on the 10k Fashion-MNIST test images)
# next to torch_qat_mlp.py's int8 eval timings (PyTorch eager int8 after QAT, same MLP shape,
# same batches 1 and 256), and prints octet's time and the PyTorch / octet ratio per batch,
# thread count and PyTorch engine; then the same for dynamic quantization (octet's engine with
# dynamic activations against torch.ao.quantization.quantize_dynamic). Needs Debian's python3-torch (/usr/bin/python3).
#
# usage: benchmarks/run_infer.sh [BUILD_DIR, default build] [--quick]
#   --quick  one QAT epoch and one eval repeat in PyTorch (a smoke test, not a measurement)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
quick=()
[ "${2:-}" = --quick ] && quick=(--fp32-epochs 1 --qat-epochs 1 --eval-repeats 1)
py=${PYTHON:-/usr/bin/python3}
out=$(mktemp -d "${TMPDIR:-/tmp}/octet-infer.XXXXXX")

OCTET_BENCH_JSON=1 OPENBLAS_NUM_THREADS=1 "$build/benchmarks/bench_infer" 3 2>"$out/octet.jsonl"
for t in 1 2; do
    OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_qat_mlp.py" --threads "$t" "${quick[@]}" \
        >"$out/torch-$t.json" 2>"$out/torch-$t.log"
done

"$py" - "$out" <<'PYEOF'
import json, sys
out = sys.argv[1]
octet = [json.loads(l) for l in open(f"{out}/octet.jsonl") if l.startswith("{")]
print("\nbatch threads  octet int8 (best kernel) s   torch int8 s (engine)        torch/octet")
for t in (1, 2):
    rec = json.loads(open(f"{out}/torch-{t}.json").read().strip().splitlines()[-1])
    engines = rec["results"]["engines"]
    for b in (1, 256):
        mine = min(r["seconds"] for r in octet if r["batch"] == b and r["threads"] == t
                   and r["engine"].startswith("int8"))
        for name, e in engines.items():
            theirs = e["int8_eval_seconds"][str(b)]["best"]
            print(f"{b:<5} {t:<7}  {mine:26.4f}   {theirs:10.4f} ({name:10s})   {theirs / mine:8.2f}x")
# Post-training dynamic quantization: octet's dynamic engine against torch's quantize_dynamic
# (which uses the quantized engine set last in torch_qat_mlp.py; the best of all is taken).
print("\nbatch threads  octet dynamic int8 s        torch quantize_dynamic s      torch/octet")
for t in (1, 2):
    rec = json.loads(open(f"{out}/torch-{t}.json").read().strip().splitlines()[-1])
    engines = rec["results"]["engines"]
    for b in (1, 256):
        mine = min(r["seconds"] for r in octet if r["batch"] == b and r["threads"] == t
                   and r["engine"].startswith("dynamic"))
        theirs = min(e["dynamic_eval_seconds"][str(b)]["best"] for e in engines.values())
        print(f"{b:<5} {t:<7}  {mine:20.4f}   {theirs:26.4f}   {theirs / mine:14.2f}x")
PYEOF
echo "logs: $out" >&2
