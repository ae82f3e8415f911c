#!/bin/bash
# One command, side by side: training throughput of the char-level GPT (4 layers, 4 heads,
# width 128, context 128, MLP 512, batch 32) in octet and in PyTorch (torch_gpt.py), fp32 and
# QAT with AdamW and learned positions, and fp32 with Muon and the rotary embedding instead of
# learned positions (octet's default model; torch_gpt.py writes out the same rule), threads 1 and 2 (PyTorch with
# OPENBLAS_NUM_THREADS=1), on the KJV corpus; with --loss,
# also the validation loss of both after the same 1,200 steps of the same recipe (AdamW lr 1e-3
# constant, betas 0.9/0.999, weight decay 0.1, no clipping), and PyTorch's model imported into
# octet (`octet import`): greedy continuations compared, its loss on octet's windows. Also
# octet's generation speed at batch 1, fp32 model against int8 export and dynamic int8 export,
# with learned positions and for the default model.
# Prints the ratios.
#
# usage: benchmarks/run_gpt.sh [BUILD_DIR (default build-release)] [--loss]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-release}
loss=${2:-}
octet=$build/octet
py=${PYTHON:-/usr/bin/python3}
[ -x "$octet" ] || { echo "run_gpt: $octet not built" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/octet-gpt-bench.XXXXXX")
text=$out/kjv.txt
bible -l0 gen1:1-rev22:21 >"$text"

for t in 1 2; do
    "$octet" train gpt --text "$text" --confidence-penalty 0 --positions learned --optim adamw \
        --steps 60 --eval-every 0 --eval-batches 1 --threads "$t" --log "$out/octet-fp32-$t.jsonl" \
        --save "$out/fp32.safetensors" >/dev/null 2>&1
    "$octet" train gpt --text "$text" --confidence-penalty 0 --positions learned --optim adamw \
        --qat --steps 80 --qat-steps 79 --freeze-after 0 --eval-every 0 --eval-batches 1 \
        --threads "$t" --log "$out/octet-qat-$t.jsonl" --save "$out/qat.safetensors" >/dev/null 2>&1
    "$octet" train gpt --text "$text" --confidence-penalty 0 --optim muon --steps 60 \
        --eval-every 0 --eval-batches 1 --threads "$t" --log "$out/octet-muon-$t.jsonl" \
        --save "$out/rope.safetensors" >/dev/null 2>&1
    OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_gpt.py" --text "$text" --steps 0 --bench-steps 20 \
        --threads "$t" >"$out/torch-$t.json" 2>/dev/null
    OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_gpt.py" --text "$text" --steps 0 --bench-steps 20 \
        --threads "$t" --optim muon --positions rope >"$out/torch-muon-$t.json" 2>/dev/null
done
# Generation at batch 1 (KV cache, 1 thread, 20,000 characters): the fp32 model, the int8
# export and the fp32 model's dynamic int8 export, best of 3; and the same for the default model
# (RoPE; fp32 from the Muon run, int8 from a short QAT run).
"$octet" train gpt --text "$text" --qat --steps 20 --qat-steps 19 --freeze-after 0 --eval-every 0 \
    --eval-batches 1 --save "$out/qat-rope.safetensors" >/dev/null 2>&1
"$octet" export "$out/qat.safetensors" -o "$out/int8.safetensors" >/dev/null
"$octet" export "$out/fp32.safetensors" --dynamic -o "$out/dynamic.safetensors" >/dev/null
"$octet" export "$out/qat-rope.safetensors" -o "$out/rope-int8.safetensors" >/dev/null
for i in 1 2 3; do
    for m in fp32 int8 dynamic rope rope-int8; do
        "$octet" generate "$out/$m.safetensors" --prompt "In the beginning" -n 20000 --seed "$i" \
            2>>"$out/gen-$m.txt" >/dev/null
    done
done
if [ "$loss" = --loss ]; then
    "$octet" train gpt --text "$text" --confidence-penalty 0 --positions learned --optim adamw \
        --steps 1200 --lr 1e-3 --schedule constant --warmup 0 --beta2 0.999 --wd 0.1 --clip 0 \
        --eval-every 0 --threads 2 --log "$out/octet-loss.jsonl" >/dev/null 2>&1
    OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_gpt.py" --text "$text" --steps 1200 --threads 1 \
        --save "$out/torch.safetensors" --sample "In the beginning" --sample-n 100 \
        >"$out/torch-loss.json" 2>/dev/null
    # PyTorch's model in octet: import, greedy continuation of the same prompt, validation loss
    "$octet" import "$out/torch.safetensors" --heads 4 --gelu tanh --text "$text" \
        -o "$out/imported.safetensors" >/dev/null
    "$octet" generate "$out/imported.safetensors" --prompt "In the beginning" -n 100 \
        --temperature 0 >"$out/imported-sample.txt" 2>/dev/null
    "$octet" eval "$out/imported.safetensors" --text "$text" >"$out/imported-eval.txt"
fi

"$py" - "$out" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
B, T = 32, 128

def octet_tps(path, first):
    recs = [json.loads(l) for l in open(path) if '"train"' in l]
    a = next(r for r in recs if r["step"] == first)
    b = recs[-1]
    return (b["step"] - a["step"]) * B * T / (b["seconds"] - a["seconds"])

def torch_res(path):
    return json.loads(open(path).read().strip().splitlines()[-1])["results"]

rows = {}
for t in (1, 2):
    tr = torch_res(f"{out}/torch-{t}.json")
    rows[t] = (octet_tps(f"{out}/octet-fp32-{t}.jsonl", 20), octet_tps(f"{out}/octet-qat-{t}.jsonl", 30),
               tr["bench_fp32"]["tokens_per_s"], tr["bench_qat"]["tokens_per_s"],
               octet_tps(f"{out}/octet-muon-{t}.jsonl", 20),
               torch_res(f"{out}/torch-muon-{t}.json")["bench_fp32"]["tokens_per_s"])
print(f"{'threads':8} {'octet fp32':>11} {'torch fp32':>11} {'octet QAT':>10} {'torch QAT':>10}"
      f" {'octet Muon':>11} {'torch Muon':>11}  (tokens/s; fp32 and QAT with AdamW)")
for t, r in rows.items():
    print(f"{t:<8} {r[0]:11.0f} {r[2]:11.0f} {r[1]:10.0f} {r[3]:10.0f} {r[4]:11.0f} {r[5]:11.0f}")
of, oq, om = (max(r[i] for r in rows.values()) for i in (0, 1, 4))
tf, tq, tm = (max(r[i] for r in rows.values()) for i in (2, 3, 5))
print(f"best vs best: fp32 {of / tf:.2f}x, QAT {oq / tq:.2f}x, fp32 with Muon {om / tm:.2f}x "
      f"(octet / PyTorch)")
gen = {m: max(float(l.split()[-2]) for l in open(f"{out}/gen-{m}.txt") if "tok/s" in l)
       for m in ("fp32", "int8", "dynamic", "rope", "rope-int8")}
print(f"generation, batch 1: fp32 {gen['fp32']:.0f}, int8 {gen['int8']:.0f} characters/s "
      f"({gen['int8'] / gen['fp32']:.2f}x), dynamic int8 {gen['dynamic']:.0f} "
      f"({gen['dynamic'] / gen['fp32']:.2f}x); the default model (RoPE): fp32 {gen['rope']:.0f}, "
      f"int8 {gen['rope-int8']:.0f} ({gen['rope-int8'] / gen['rope']:.2f}x)")
if os.path.exists(f"{out}/octet-loss.jsonl"):
    ol = [json.loads(l) for l in open(f"{out}/octet-loss.jsonl") if '"final"' in l][-1]["val_loss"]
    tl = torch_res(f"{out}/torch-loss.json")["train"]["val_loss"]
    print(f"val loss after 1200 steps: octet {ol:.4f}, PyTorch {tl:.4f} nats/char (difference {ol - tl:+.4f})")
    ts = torch_res(f"{out}/torch-loss.json")["train"]["sample"]
    os_ = open(f"{out}/imported-sample.txt", encoding="latin-1").read().rstrip("\n")
    same = next((i for i, (a, b) in enumerate(zip(ts, os_)) if a != b), min(len(ts), len(os_)))
    il = float(open(f"{out}/imported-eval.txt").read().split("val loss ")[1].split()[0])
    print(f"PyTorch's model imported (octet import): greedy continuation "
          f"{'identical' if ts == os_ else f'differs from character {same}'} "
          f"({len(ts)} characters); val loss {il:.4f} on octet's windows")
PYEOF
echo "logs: $out" >&2
