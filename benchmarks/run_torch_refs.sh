#!/bin/bash
# Runs the PyTorch reference benchmarks (torch_mlp.py, torch_qat_mlp.py, torch_gpt.py) with
# OPENBLAS_NUM_THREADS=1 for torch threads 1 and 2, once with the environment as it is and
# once with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`, keeps every JSON result line in
# OUT/results.jsonl and prints a table. Needs Debian's python3-torch (/usr/bin/python3).
#
# usage: benchmarks/run_torch_refs.sh [--out DIR] [--text CORPUS] [--quick]
#   --out DIR      where to keep results.jsonl and the logs (default: a new mktemp -d)
#   --text CORPUS  GPT corpus (default: OUT/kjv.txt from `bible -l0 gen1:1-rev22:21`)
#   --quick        fewer epochs/steps (a smoke test of the scripts, not a measurement)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-/usr/bin/python3}
out=""
text=""
mlp_epochs=3
qat_args=(--fp32-epochs 3 --qat-epochs 2)
gpt_steps=20
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --quick) mlp_epochs=1; qat_args=(--fp32-epochs 1 --qat-epochs 1 --eval-repeats 1)
        gpt_steps=3; shift ;;
    *) echo "usage: $0 [--out DIR] [--text CORPUS] [--quick]" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/octet-torch-refs.XXXXXX")
mkdir -p "$out"
if [ -z "$text" ]; then
    text=$out/kjv.txt
    bible -l0 gen1:1-rev22:21 >"$text"
fi
results=$out/results.jsonl
: >"$results"

# run SCRIPT ARGS...: runs one script once, with OPENBLAS_NUM_THREADS=1, in the environment
# named by $envname (asis or unset); stderr goes to OUT/NN-SCRIPT.ENVNAME.log.
n=0
run() {
    local script=$1; shift
    n=$((n + 1))
    local log
    log=$(printf '%s/%02d-%s.%s.log' "$out" "$n" "${script%.py}" "$envname")
    echo "== $envname: $script $*" >&2
    local line
    if [ "$envname" = asis ]; then
        line=$(env OPENBLAS_NUM_THREADS=1 "$py" "$here/$script" "$@" 2>"$log")
    else
        line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
            "$py" "$here/$script" "$@" 2>"$log")
    fi
    printf '{"envname": "%s", "record": %s}\n' "$envname" "$line" >>"$results"
}

for envname in asis unset; do
    for t in 1 2; do
        run torch_mlp.py --threads "$t" --time-epochs "$mlp_epochs"
        run torch_qat_mlp.py --threads "$t" "${qat_args[@]}"
        run torch_gpt.py --threads "$t" --text "$text" --steps 0 --bench-steps "$gpt_steps"
    done
done

"$py" - "$results" <<'EOF'
import json, sys

rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rec = r["record"]
    rows.setdefault((r["envname"], str(rec["threads"])), {})[rec["script"]] = rec

def ms(x):
    return f"{1000 * x:.0f}"

print("env: asis = environment as it is; unset = env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
print("all runs: OPENBLAS_NUM_THREADS=1; eval = 10k test images, batch 1 / batch 256, ms (best)")
print("load = highest 1-minute load average seen when a script finished (2 cores)")
hdr = ["env", "thr", "mlp s/ep", "qat s/ep", "fp32 eval", "int8 eval", "int8 acc",
       "gpt fp32 tok/s", "gpt qat tok/s", "load"]
table = [hdr]
for (envname, thr), s in sorted(rows.items()):
    mlp = s["torch_mlp"]["results"]
    qat = s["torch_qat_mlp"]["results"]
    gpt = s["torch_gpt"]["results"]
    fe = qat["fp32_eval_seconds"]
    int8 = " ".join(f"{e}:{ms(v['int8_eval_seconds']['1']['best'])}/"
                    f"{ms(v['int8_eval_seconds']['256']['best'])}"
                    for e, v in qat["engines"].items())
    acc = " ".join(f"{e}:{v['int8_test_acc']:.4f}" for e, v in qat["engines"].items())
    qs = min(v["s_per_qat_epoch"] for v in qat["engines"].values())
    table.append([envname, thr, f"{mlp['s_per_epoch']:.3f}", f"{qs:.3f}",
                  f"{ms(fe['1']['best'])}/{ms(fe['256']['best'])}", int8, acc,
                  f"{gpt['bench_fp32']['tokens_per_s']:.0f}",
                  f"{gpt['bench_qat']['tokens_per_s']:.0f}",
                  f"{max(r.get('loadavg', [0])[0] for r in s.values()):.1f}"])
widths = [max(len(row[i]) for row in table) for i in range(len(hdr))]
for row in table:
    print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
EOF
echo "results: $results" >&2
