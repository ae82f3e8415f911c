#!/bin/bash
# One command, side by side: seconds per training epoch of the 784-256-128-10 ReLU MLP
# (batch 128, Adam) in octet (fp32 and QAT epochs) and in PyTorch (torch_mlp.py,
# torch_qat_mlp.py), each at threads 1 and 2 with OPENBLAS_NUM_THREADS=1 for PyTorch, best
# epoch of 3. Runs twice: with the environment as it is, and with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset in that command alone (the CPU's native OpenBLAS kernel); prints the
# OpenBLAS core of each run and the PyTorch-best / octet-best ratios.
#
# usage: benchmarks/run_train.sh [BUILD_DIR (default build-release)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-release}
octet=$build/octet
py=${PYTHON:-/usr/bin/python3}
[ -x "$octet" ] || { echo "run_train: $octet not built (meson setup $build --buildtype=release && ninja -C $build)" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/octet-train-bench.XXXXXX")

# in_env NAME CMD...: runs CMD with the environment as it is (asis) or without the OpenBLAS
# core overrides (native).
in_env() {
    local name=$1; shift
    if [ "$name" = asis ]; then "$@"; else env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; fi
}

for envname in asis native; do
    for t in 1 2; do
        in_env "$envname" "$octet" train mlp --epochs 3 --threads "$t" \
            --log "$out/octet-fp32-$envname-$t.jsonl" >/dev/null 2>&1
        in_env "$envname" "$octet" train mlp --qat --epochs 4 --fp32-epochs 1 --freeze-after 0 --threads "$t" \
            --log "$out/octet-qat-$envname-$t.jsonl" >/dev/null 2>&1
    done
    in_env "$envname" env OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_mlp.py" --time-epochs 3 \
        --threads best >"$out/torch-fp32-$envname.json" 2>/dev/null
    for t in 1 2; do
        in_env "$envname" env OPENBLAS_NUM_THREADS=1 "$py" "$here/torch_qat_mlp.py" \
            --fp32-epochs 1 --qat-epochs 3 --engines onednn --threads "$t" --eval-repeats 1 \
            >"$out/torch-qat-$envname-$t.json" 2>/dev/null
    done
done

"$py" - "$out" <<'PYEOF'
import json, sys
out = sys.argv[1]

def octet(kind, env, t):
    recs = [json.loads(l) for l in open(f"{out}/octet-{kind}-{env}-{t}.jsonl")]
    core = next(r["openblas_core"] for r in recs if r["event"] == "config")
    # QAT runs: the QAT epochs only (the first epoch is the fp32 warm-up)
    epochs = [r for r in recs if r["event"] == "epoch" and r["qat"] == (kind == "qat")]
    return min(r["seconds"] for r in epochs), core

def last_json(path):
    return json.loads(open(path).read().strip().splitlines()[-1])

print(f"{'env':7} {'openblas core':14} {'work':5} {'octet s/epoch (threads)':>24} "
      f"{'torch s/epoch (threads)':>24} {'torch/octet':>12}")
for env in ("asis", "native"):
    o = {t: octet("fp32", env, t) for t in (1, 2)}
    ot = min((o[t][0], t) for t in (1, 2))
    tr = last_json(f"{out}/torch-fp32-{env}.json")["results"]
    by = tr["s_per_epoch_by_threads"]
    tt = min((by[str(t)]["best"], t) for t in (1, 2) if str(t) in by)
    print(f"{env:7} {o[1][1]:14} {'fp32':5} {ot[0]:20.3f} ({ot[1]}) {tt[0]:20.3f} ({tt[1]}) "
          f"{tt[0] / ot[0]:11.2f}x")
    q = {t: octet("qat", env, t) for t in (1, 2)}
    qt = min((q[t][0], t) for t in (1, 2))
    tq = []
    for t in (1, 2):
        r = last_json(f"{out}/torch-qat-{env}-{t}.json")["results"]["engines"]["onednn"]
        tq.append((r["s_per_qat_epoch"], t))
    tq = min(tq)
    print(f"{env:7} {q[1][1]:14} {'QAT':5} {qt[0]:20.3f} ({qt[1]}) {tq[0]:20.3f} ({tq[1]}) "
          f"{tq[0] / qt[0]:11.2f}x")
    print(f"{env:7} {'':14} QAT/fp32 epoch cost in octet: {qt[0] / ot[0]:.2f}x")
PYEOF
echo "logs: $out" >&2
