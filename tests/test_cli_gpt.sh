#!/bin/bash
# CLI contract tests for `octet` (meson test suite 'cli'), the GPT commands on a tiny corpus:
# train (fp32, QAT), export, eval, generate, calibrate, import, checkpoints and --resume,
# signals, and their errors (one line, exit 1 or 2, no partial output). The general and MLP
# checks are in test_cli.sh, the set-up and shared fixtures in cli_common.sh.
# usage: test_cli_gpt.sh path/to/octet
set -u
source "$(dirname "$0")/cli_common.sh"

# the GPT commands on a tiny corpus: train (fp32 with AdamW; QAT with int8 embeddings and the
# default Muon), export, eval with a bit-for-bit comparison, generate; then their errors
ok "train gpt" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --optim adamw --save "$tmp/g.safetensors"
ok "train gpt --qat" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --qat --embed-bits 8 --threads 2 \
    --save "$tmp/gq.safetensors"
ok "export gpt" "int8 embeddings" "$octet" export "$tmp/gq.safetensors" -o "$tmp/g8.safetensors"
ok "eval --compare" "bit-identical at 32/32 positions" "$octet" eval --int8 "$tmp/g8.safetensors" \
    --text "$tmp/tiny.txt" --eval-batches 1 --windows 2 --compare "$tmp/gq.safetensors"
ok "eval names its text" "windows of 16 from $tmp/tiny.txt" "$octet" eval "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --eval-batches 1 --windows 2
# a model records the text it was trained on (octet.source, absolute), its export too, and
# eval, calibrate and train --from default to it; a recorded text that is gone is one error
text_abs=$(realpath "$tmp/tiny.txt")
ok "the model records its text" "octet.source = $text_abs" "$octet" inspect "$tmp/gq.safetensors"
ok "the export records its text" "octet.source = $text_abs" "$octet" inspect "$tmp/g8.safetensors"
"$octet" export "$tmp/gq.safetensors" --no-source -o "$tmp/g8ns.safetensors" >/dev/null &&
    ! "$octet" inspect "$tmp/g8ns.safetensors" | grep -q "octet.source" ||
    { echo "FAIL: export --no-source kept octet.source"; fails=$((fails + 1)); }
ok "eval: the recorded text" "windows of 16 from $text_abs" "$octet" eval "$tmp/g.safetensors" \
    --eval-batches 1 --windows 2
ok "eval --int8: the recorded text" "windows of 16 from $text_abs" "$octet" eval --int8 \
    "$tmp/g8.safetensors" --eval-batches 1 --windows 2
ok "calibrate: the recorded text" "saved" "$octet" calibrate "$tmp/g.safetensors" --batches 1 \
    -o "$tmp/gsrc.safetensors"
ok "train --from: the recorded text" "final val loss" "$octet" train gpt --from "$tmp/g.safetensors" \
    --steps 2 --eval-batches 1 --save "$tmp/gsrc2.safetensors"
cp "$tmp/tiny.txt" "$tmp/gone.txt"
"$octet" train gpt "${gpt_flags[@]}" --text "$tmp/gone.txt" --save "$tmp/ggone.safetensors" >/dev/null 2>&1
rm "$tmp/gone.txt"
expect 1 "ggone.safetensors was trained on $(dirname "$text_abs")/gone.txt, which cannot be read" \
    "$octet" eval "$tmp/ggone.safetensors"
# the recorded text is an input too; a data/kjv.txt that is not the repository's is recorded by
# its absolute path; a path that is not UTF-8 is not recorded (the model is saved all the same)
expect 2 "-o ./tiny.txt: the same file as --text" bash -c "cd '$tmp' && '$octet' calibrate \
    g.safetensors -o ./tiny.txt"
# an octet installed elsewhere (a copy outside the tree) finds the default corpus in the source
# tree it was built from, or says where it looked
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$tmp/bin" && cp "$octet" "$tmp/bin/octet"
tiny_arch="--layers 1 --heads 2 --width 16 --context 16 --mlp 32 --batch 2"
if [ -f "$src/data/kjv.txt" ]; then
    ok "installed octet: the default corpus" "val loss" bash -c "cd '$tmp' && \
        '$tmp/bin/octet' train gpt $tiny_arch --steps 1"
else
    expect 1 "data/kjv.txt not found (here, above octet's directory or in $src)" bash -c \
        "cd '$tmp' && '$tmp/bin/octet' train gpt $tiny_arch --steps 1"
fi
mkdir -p "$tmp/local/data" && cp "$tmp/tiny.txt" "$tmp/local/data/kjv.txt"
(cd "$tmp/local" && "$octet" train gpt "${gpt_flags[@]}" --text data/kjv.txt --save k.safetensors) >/dev/null 2>&1
ok "a local data/kjv.txt" "octet.source = $(realpath "$tmp/local/data/kjv.txt")" "$octet" inspect \
    "$tmp/local/k.safetensors"
cp "$tmp/tiny.txt" "$tmp/$(printf 'bad\xff.txt')"
ok "a path that is not UTF-8" "saved" "$octet" train gpt "${gpt_flags[@]}" \
    --text "$tmp/$(printf 'bad\xff.txt')" --save "$tmp/gbad.safetensors"
"$octet" inspect "$tmp/gbad.safetensors" | grep -q "octet.source" &&
    { echo "FAIL: a path that is not UTF-8 was recorded"; fails=$((fails + 1)); }
# two outputs of one run may not be one file, however spelled
expect 2 "--checkpoint ./gy.safetensors: the same file as --save" bash -c "cd '$tmp' && \
    '$octet' train gpt --text tiny.txt --steps 2 --save gy.safetensors --checkpoint ./gy.safetensors"
expect 2 "--kernel: needs --int8" "$octet" eval "$tmp/g.safetensors" --kernel portable
# a run resumed from another directory reads its recorded text and writes its checkpoint, log and
# model where the run it continues wrote them (given as relative paths)
(cd "$tmp" && "$octet" train gpt "${gpt_flags[@]}" --text tiny.txt --steps 8 --eval-every 4 \
    --checkpoint rel.safetensors --log rel.log --save rel-model.safetensors --stop-after 4) \
    >/dev/null 2>&1
mkdir -p "$tmp/elsewhere"
ok "resume from another directory" "stopped after step 6" bash -c "cd '$tmp/elsewhere' && \
    '$octet' train gpt --resume ../rel.safetensors --stop-after 6"
ok "resume from another directory to the end" "final val loss" bash -c "cd '$tmp/elsewhere' && \
    '$octet' train gpt --resume ../rel.safetensors"
[ -n "$(ls "$tmp/elsewhere")" ] &&
    { echo "FAIL: a resumed run wrote into the current directory"; fails=$((fails + 1)); }
[ -f "$tmp/rel-model.safetensors" ] && grep -q '"event":"final"' "$tmp/rel.log" &&
    grep -q '"resumed_after":6}' "$tmp/rel.log" ||
    { echo "FAIL: a resumed run did not write its model and log where the run wrote them"; fails=$((fails + 1)); }
# outputs given with ".." are recorded resolved: the run resumes after its directory is gone
mkdir -p "$tmp/dd/sub"
(cd "$tmp/dd/sub" && "$octet" train gpt "${gpt_flags[@]}" --steps 8 --eval-every 4 \
    --checkpoint ../dd.ck --save ../dd.safetensors --stop-after 4) >/dev/null 2>&1
rmdir "$tmp/dd/sub"
ok "resume after its directory is gone" "final val loss" bash -c "cd '$tmp' && \
    '$octet' train gpt --resume dd/dd.ck"
[ -f "$tmp/dd/dd.safetensors" ] || { echo "FAIL: resumed run: no model at ../dd.safetensors"; fails=$((fails + 1)); }
ok "generate" "and t" "$octet" generate "$tmp/g8.safetensors" --prompt "and t" -n 20
# without --prompt: a newline, or for a text without one its first character (it used to fail)
for i in $(seq 200); do printf 'abcd efg '; done >"$tmp/nonl.txt"
"$octet" train gpt "${gpt_flags[@]}" --text "$tmp/nonl.txt" --steps 2 --save "$tmp/nonl.safetensors" \
    >/dev/null 2>&1
ok "generate without --prompt, no newline in the text" " " "$octet" generate \
    "$tmp/nonl.safetensors" -n 20
for i in $(seq 200); do printf 'abcde\0'; done >"$tmp/nul.txt" # NUL first: not a prompt
"$octet" train gpt "${gpt_flags[@]}" --text "$tmp/nul.txt" --steps 2 --save "$tmp/nul.safetensors" \
    >/dev/null 2>&1
ok "generate without --prompt, NUL and no newline in the text" "a" "$octet" generate \
    "$tmp/nul.safetensors" -n 5
"$octet" export "$tmp/nonl.safetensors" --dynamic -o "$tmp/nonl8.safetensors" >/dev/null
ok "generate an export without --prompt, no newline in the text" " " "$octet" generate \
    "$tmp/nonl8.safetensors" -n 20
# the QAT model samples its simulated int8 forward pass: its export's text, also past the context
for s in 1 2; do
    "$octet" generate "$tmp/gq.safetensors" --prompt "and t" -n 60 --seed $s >"$tmp/gen-q" 2>/dev/null
    "$octet" generate "$tmp/g8.safetensors" --prompt "and t" -n 60 --seed $s >"$tmp/gen-8" 2>/dev/null
    cmp -s "$tmp/gen-q" "$tmp/gen-8" && [ "$(wc -c <"$tmp/gen-q")" = 66 ] ||
        { echo "FAIL: generate: the QAT model's text differs from its export's (seed $s)"; fails=$((fails + 1)); }
done
# wrong kinds of file and flags that do not apply
expect 1 "an int8 GPT export, where an fp32 or QAT MLP model" "$octet" predict "$tmp/g8.safetensors" \
    "$tmp/tiny/t10k-images-idx3-ubyte"
expect 1 "an int8 GPT export, where an fp32 GPT or MLP model" "$octet" export "$tmp/g8.safetensors" --float16 -o "$tmp/g.out"
expect 1 "already an int8 export" "$octet" calibrate "$tmp/g8.safetensors" -o "$tmp/g.out"
expect 1 "already an octet model file (an int8 GPT export)" "$octet" import "$tmp/g8.safetensors" -o "$tmp/g.out"
expect 2 "--compare: needs --int8" "$octet" eval "$tmp/g.safetensors" --compare "$tmp/gq.safetensors"
expect 2 "--eval-batches" "$octet" eval "$tmp/g.safetensors" --full --eval-batches 2
expect 2 "--batch: an MLP flag" "$octet" eval "$tmp/g.safetensors" --batch 2
ok "inspect gpt" "h.0.mlp.fc" "$octet" inspect "$tmp/g8.safetensors"
head -c 3000 "$tmp/g8.safetensors" >"$tmp/g8-cut.safetensors"
expect 1 "$tmp/g8-cut.safetensors" "$octet" inspect "$tmp/g8-cut.safetensors"
# export --torch: the float weights as a PyTorch state dict (nanoGPT's names), which imports back
# to the same model (the same validation loss), for a fp32 GPT, a QAT GPT and an MLP
ok "export --torch gpt" "PyTorch state dict" "$octet" export "$tmp/gq.safetensors" --torch \
    -o "$tmp/gq.pt.safetensors"
"$octet" inspect "$tmp/gq.pt.safetensors" | grep -q 'transformer.h.0.attn.c_attn.weight' ||
    { echo "FAIL: export --torch does not use nanoGPT's names"; fails=$((fails + 1)); }
ok "import of export --torch" "saved" "$octet" import "$tmp/gq.pt.safetensors" --heads 2 \
    --gelu tanh --text "$tmp/tiny.txt" -o "$tmp/gq.back.safetensors"
"$octet" eval "$tmp/g.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 >"$tmp/a.txt"
"$octet" export "$tmp/g.safetensors" --torch -o "$tmp/g.pt.safetensors" >/dev/null
# (heads, GELU and vocabulary from the metadata export --torch wrote)
"$octet" import "$tmp/g.pt.safetensors" -o "$tmp/g.back.safetensors" >/dev/null
"$octet" eval "$tmp/g.back.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 >"$tmp/b.txt"
[ "$(grep -o 'val loss [0-9.]*' "$tmp/a.txt")" = "$(grep -o 'val loss [0-9.]*' "$tmp/b.txt")" ] ||
    { echo "FAIL: export --torch then import changes the GPT's loss"; fails=$((fails + 1)); }
expect 2 "exclude each other" "$octet" export "$tmp/g.safetensors" --torch --dynamic -o "$tmp/x"
sed 's/"vocab_bytes":"\[10,/"vocab_bytes":"[-1,/' "$tmp/g.pt.safetensors" >"$tmp/bad.pt.safetensors"
expect 1 "metadata 'vocab_bytes' must be a JSON array" "$octet" import "$tmp/bad.pt.safetensors" \
    -o "$tmp/x.safetensors"
# --full: the whole validation split in consecutive windows (a last batch shorter than 32)
ok "eval --full" "the whole split" "$octet" eval "$tmp/gq.safetensors" --text "$tmp/tiny.txt" --full
grep -q '^eval [0-9]*/[0-9]* .*ETA' "$tmp/err" || { echo "FAIL: eval --full shows no progress"; fails=$((fails + 1)); }
ok "eval --int8 --full --compare" "bit-identical at 256/256 positions" "$octet" eval --int8 \
    "$tmp/g8.safetensors" --text "$tmp/tiny.txt" --full --compare "$tmp/gq.safetensors"
# --stride S: windows every S characters, each scoring the characters the one before did not
# reach; S = the context scores what --full scores (the same loss); with S = 4 the validation
# split (264 characters) holds (264 - 1 - 16) / 4 + 1 = 62 windows, and the engine's loss equals
# its QAT model's; S above the context is a usage error
"$octet" eval "$tmp/gq.safetensors" --text "$tmp/tiny.txt" --full >"$tmp/a.txt" 2>/dev/null
"$octet" eval "$tmp/gq.safetensors" --text "$tmp/tiny.txt" --stride 16 >"$tmp/b.txt" 2>/dev/null
"$octet" eval "$tmp/gq.safetensors" --text "$tmp/tiny.txt" --stride 4 >"$tmp/c.txt" 2>/dev/null
"$octet" eval --int8 "$tmp/g8.safetensors" --text "$tmp/tiny.txt" --stride 4 \
    --compare "$tmp/gq.safetensors" >"$tmp/d.txt" 2>/dev/null
loss_of() { grep -o 'val loss [0-9.]*' "$1" | grep -o '[0-9.]*$'; }
[ "$(loss_of "$tmp/a.txt")" = "$(loss_of "$tmp/b.txt")" ] ||
    { echo "FAIL: eval --stride 16 (the context) differs from --full"; fails=$((fails + 1)); }
grep -q "62 windows of 16 every 4 characters" "$tmp/c.txt" ||
    { echo "FAIL: eval --stride 4 does not take 62 windows"; fails=$((fails + 1)); }
[ "$(loss_of "$tmp/c.txt")" = "$(loss_of "$tmp/d.txt")" ] &&
    grep -q "bit-identical at 992/992 positions" "$tmp/d.txt" ||
    { echo "FAIL: eval --int8 --stride 4 differs from its QAT model"; fails=$((fails + 1)); }
expect 2 "--stride 17: above the model's context 16" "$octet" eval "$tmp/gq.safetensors" \
    --text "$tmp/tiny.txt" --stride 17
# round_trip NAME FLAGS...: `train gpt --qat FLAGS` saves a model whose int8 export the engine
# runs bit for bit (export, then eval --int8 --compare)
round_trip() {
    local name=$1
    shift
    ok "train gpt --qat $name" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --qat "$@" \
        --save "$tmp/rt.safetensors"
    ok "export $name" "int8" "$octet" export "$tmp/rt.safetensors" -o "$tmp/rt8.safetensors"
    ok "eval --compare $name" "bit-identical at 32/32 positions" "$octet" eval --int8 \
        "$tmp/rt8.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 --windows 2 \
        --compare "$tmp/rt.safetensors"
}
round_trip "4-bit weights, 6-bit activations" --weight-bits 4 --act-bits 6
# a QAT model's figures name its widths; "int8" is for 8-bit models only
ok "eval 4-bit QAT" "QAT (simulated 4-bit weights, 6-bit activations) val loss" "$octet" eval \
    "$tmp/rt.safetensors" --text "$tmp/tiny.txt" --eval-batches 1
ok "eval int8 QAT" "QAT (simulated int8) val loss" "$octet" eval "$tmp/gq.safetensors" \
    --text "$tmp/tiny.txt" --eval-batches 1
# 4-bit codes are stored as 4-bit indices into a codebook, not as int8
"$octet" inspect "$tmp/rt8.safetensors" | grep -q 'weight_idx .* U8' ||
    { echo "FAIL: a 4-bit export does not pack its weights"; fails=$((fails + 1)); }
round_trip "exact GELU" --gelu erf
# rotary position embedding, with and without the learned positions (then also with int8
# embeddings): the export's config, generation, and export --torch then import (positions from
# its metadata) to the same validation loss
rope_checks() {
    local pos=$1
    shift
    round_trip "--positions $pos" --positions "$pos" "$@"
    "$octet" inspect "$tmp/rt8.safetensors" | grep -q " $pos positions" ||
        { echo "FAIL: inspect does not show an export's $pos positions"; fails=$((fails + 1)); }
    # the QAT model's text is its export's, also past the context (16) where the window slides
    "$octet" generate "$tmp/rt.safetensors" --prompt "and t" -n 60 >"$tmp/gen-q" 2>/dev/null
    "$octet" generate "$tmp/rt8.safetensors" --prompt "and t" -n 60 >"$tmp/gen-8" 2>/dev/null
    cmp -s "$tmp/gen-q" "$tmp/gen-8" && [ "$(wc -c <"$tmp/gen-q")" = 66 ] ||
        { echo "FAIL: generate: a $pos QAT model's text differs from its export's"; fails=$((fails + 1)); }
    ok "train gpt $pos" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --positions "$pos" \
        --save "$tmp/rf.safetensors"
    "$octet" eval "$tmp/rf.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 >"$tmp/a.txt"
    "$octet" export "$tmp/rf.safetensors" --torch -o "$tmp/rt.pt.safetensors" >/dev/null
    ok "import $pos" " $pos positions" "$octet" import "$tmp/rt.pt.safetensors" \
        -o "$tmp/rt.back.safetensors"
    "$octet" eval "$tmp/rt.back.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 >"$tmp/b.txt"
    [ "$(grep -o 'val loss [0-9.]*' "$tmp/a.txt")" = "$(grep -o 'val loss [0-9.]*' "$tmp/b.txt")" ] ||
        { echo "FAIL: export --torch then import of a $pos GPT changes its loss"; fails=$((fails + 1)); }
}
rope_checks learned+rope
cp "$tmp/rt.pt.safetensors" "$tmp/lp.pt.safetensors" # a state dict with wpe
rope_checks rope --embed-bits 8
"$octet" inspect "$tmp/rf.safetensors" | grep -q "wpe.weight" &&
    { echo "FAIL: a --positions rope model has a wpe tensor"; fails=$((fails + 1)); }
expect 1 "no 2-D tensor for 'wpe.weight': not a GPT state dict in nanoGPT's layout (without one, --positions rope)" \
    "$octet" import "$tmp/rt.pt.safetensors" --positions learned -o "$tmp/rt.x.safetensors"
expect 1 "has a learned position embedding 'wpe.weight', but --positions is rope" "$octet" \
    import "$tmp/lp.pt.safetensors" --positions rope -o "$tmp/rt.x.safetensors"
expect 2 "--positions 'rotary': expected learned, learned+rope or rope" "$octet" train gpt \
    "${gpt_flags[@]}" --positions rotary
expect 2 "--positions rope (the default) needs an even head size, not 3" "$octet" \
    train gpt "${gpt_flags[@]}" --heads 5 --width 15
expect 2 "--positions: the architecture comes from --from" "$octet" train gpt \
    --text "$tmp/tiny.txt" --from "$tmp/rf.safetensors" --positions learned
# mixed precision: 2-bit weights but for the 8-bit LM head; the head alone is stored as int8
round_trip "2-bit weights, an 8-bit head" --weight-bits 2 --layer-bits 'lm_head=8'
"$octet" generate "$tmp/rt.safetensors" -n 4 2>&1 >/dev/null |
    grep -qF "QAT (simulated at least 2-bit weights, 8-bit activations), the tokens of its export" ||
    { echo "FAIL: generate does not name a mixed QAT model's widths"; fails=$((fails + 1)); }
"$octet" inspect "$tmp/rt8.safetensors" >"$tmp/out"
{ grep -q 'lm_head.weight_q .* I8' "$tmp/out" && grep -q 'h.0.mlp.fc.weight_idx .* U8' "$tmp/out" &&
    grep -qE '^  lm_head .* int8 ' "$tmp/out" && grep -qE '^  h\.0\.mlp\.fc .* 2-bit idx ' "$tmp/out"; } ||
    { echo "FAIL: --layer-bits lm_head=8 did not keep the head at int8"; fails=$((fails + 1)); }
expect 2 "train gpt: --act-quant: 2 given, a GPT takes one for all its points" "$octet" train gpt \
    "${gpt_flags[@]}" --qat --act-quant lsq,ema
expect 2 "train gpt: --layer-bits 'lm_head': expected PATTERN=BITS" "$octet" train gpt \
    "${gpt_flags[@]}" --qat --layer-bits lm_head
expect 2 "--layer-bits pattern 'h.1.*' matches no layer (h.0.attn.qkv ... lm_head)" "$octet" train \
    gpt "${gpt_flags[@]}" --qat --layer-bits 'h.1.*=4'
expect 2 "--layer-bits needs --qat" "$octet" train gpt "${gpt_flags[@]}" --layer-bits lm_head=8
# per-tensor weights: one scale per layer, the same in every channel of the export
round_trip "per-tensor 4-bit weights" --weight-bits 4 --per-tensor-weights
"$octet" inspect "$tmp/rt8.safetensors" | grep -E '^  h\.0\.mlp\.fc ' | grep -qE ' ([0-9.e-]+)\.\.\1$' ||
    { echo "FAIL: --per-tensor-weights exported different channel scales"; fails=$((fails + 1)); }
expect 2 "--per-tensor-weights needs --qat" "$octet" train gpt "${gpt_flags[@]}" --per-tensor-weights
round_trip "power-of-two 3-bit weights (codes 0, +-1, +-2, +-4)" --weight-quant pow2 --weight-bits 3
# their 7 codes are stored as 3-bit indices into a codebook of 8
"$octet" inspect "$tmp/rt8.safetensors" | grep -qE 'h\.0\.mlp\.fc\.weight_codebook +I8 +\(8\)' ||
    { echo "FAIL: a 3-bit export does not pack 3-bit indices"; fails=$((fails + 1)); }
round_trip "a codebook of 2^3 int8 codes" --weight-quant kmeans --weight-bits 3
expect 2 "--gelu 'exact'" "$octet" train gpt "${gpt_flags[@]}" --gelu exact
ok "calibrate kmeans" "4-bit codebook weights" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 2 --weight-quant kmeans --weight-bits 4 -o "$tmp/gck.safetensors"
ok "calibrate --layer-bits" "4-bit (lm_head=8) weights" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 2 --weight-bits 4 --layer-bits lm_head=8 -o "$tmp/gcl.safetensors"
ok "calibrate --sensitivity" "h.0.mlp.proj" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 2 --sensitivity 2
grep -q "lm_head" "$tmp/out" && [ "$(grep -c '^  h\.0\.\|^  lm_head' "$tmp/out")" = 5 ] ||
    { echo "FAIL: calibrate --sensitivity does not list the 5 linears"; fails=$((fails + 1)); }
expect 2 "-o and --sensitivity exclude each other" "$octet" calibrate "$tmp/g.safetensors" \
    --sensitivity 4 -o "$tmp/x.safetensors"
expect 2 "kmeans codebooks take 2..7 bits" "$octet" train gpt "${gpt_flags[@]}" --qat \
    --weight-quant kmeans
expect 2 "pow2 weights take 2..4 bits" "$octet" train gpt "${gpt_flags[@]}" --qat --weight-quant pow2
expect 2 "--weight-bits needs --qat" "$octet" train gpt "${gpt_flags[@]}" --weight-bits 4
# every QAT-only flag needs --qat, even at its default value
for flag in "--weight-quant lsq" "--act-quant minmax" "--qat-steps 5" "--freeze-after 3" \
    "--act-bits 8" "--embed-bits 0"; do
    expect 2 "${flag%% *} needs --qat" "$octet" train gpt "${gpt_flags[@]}" $flag
done
# validation at the end of the fp32 phase (here also an --eval-every step) runs once, with the
# phase's train loss; the banner gives the embeddings' bits and when the observers freeze
ok "train gpt --qat --eval-every" "fp32 phase done" "$octet" train gpt "${gpt_flags[@]}" --qat \
    --steps 8 --eval-every 4 --freeze-after 2 --embed-bits 4 --log "$tmp/phase.jsonl"
[ "$(grep -c '"event":"eval"' "$tmp/phase.jsonl")" = 2 ] && [ "$(grep -c '^step 4/8 ' "$tmp/out")" = 1 ] &&
    ! grep -q '"train_loss":0\.0,' "$tmp/phase.jsonl" ||
    { echo "FAIL: the fp32 phase's end is validated other than once: $(cat "$tmp/out")"; fails=$((fails + 1)); }
grep -qF "4-bit embeddings for the last 4 steps, observers freeze after 2 of them" "$tmp/err" ||
    { echo "FAIL: train gpt --qat banner: $(cat "$tmp/err")"; fails=$((fails + 1)); }
ok "train gpt --qat-steps 1" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --qat --steps 2 \
    --qat-steps 1
grep -qF "for the last 1 steps, observers never freeze" "$tmp/err" ||
    { echo "FAIL: train gpt --qat-steps 1 banner: $(cat "$tmp/err")"; fails=$((fails + 1)); }
# --from: fine-tuning starts from the saved weights (a step at lr 1e-9 keeps the saved model's
# validation loss), and a QAT fine-tune exports to an engine that matches it bit for bit
ok "eval gpt" "val loss" "$octet" eval "$tmp/g.safetensors" --text "$tmp/tiny.txt" --eval-batches 1
saved=$(grep -o 'val loss [0-9.]*' "$tmp/out")
ok "train gpt --from" "final $saved" "$octet" train gpt --text "$tmp/tiny.txt" --steps 1 \
    --eval-batches 1 --batch 2 --lr 1e-9 --from "$tmp/g.safetensors"
# the confidence penalty: 0.1 by default, --from included; it changes the update but not the
# reported training loss (the plain cross-entropy: the same at step 1)
grep -qF "confidence penalty 0.1," "$tmp/err" ||
    { echo "FAIL: train gpt --from without the penalty: $(cat "$tmp/err")"; fails=$((fails + 1)); }
for p in 0 0.5; do
    "$octet" train gpt "${gpt_flags[@]}" --steps 1 --eval-every 1 --confidence-penalty $p \
        --log "$tmp/cp$p.log" >"$tmp/cp$p.txt" 2>"$tmp/cp$p.err"
done
"$octet" train gpt "${gpt_flags[@]}" --steps 1 2>&1 | grep -qF "confidence penalty 0.1," &&
    grep -qF '"confidence_penalty":0.5' "$tmp/cp0.5.log" &&
    [ "$(grep -o 'train loss [0-9.]*' "$tmp/cp0.txt")" = "$(grep -o 'train loss [0-9.]*' "$tmp/cp0.5.txt")" ] &&
    [ "$(grep -o 'val loss [0-9.]*' "$tmp/cp0.txt")" != "$(grep -o 'val loss [0-9.]*' "$tmp/cp0.5.txt")" ] ||
    { echo "FAIL: --confidence-penalty:"; cat "$tmp"/cp0*.txt "$tmp"/cp0*.log; fails=$((fails + 1)); }
expect 2 "--confidence-penalty" "$octet" train gpt "${gpt_flags[@]}" --confidence-penalty -1
# a QAT fine-tune's default lr follows its narrowest weights: 1e-4, 1e-3 at 3 bits, 3e-3 at 2
# (1e-3 with lsq); so does the default weight quantizer: lsq at 3 bits or fewer, per channel,
# else min-max
for case in "--weight-bits 4:lr 0.0001:(minmax" "--layer-bits lm_head=3:lr 0.001:(lsq" \
    "--weight-bits 2:lr 0.001:(lsq" "--weight-bits 2 --per-tensor-weights:lr 0.003:(minmax"; do
    flags=${case%%:*} want=${case#*:}
    "$octet" train gpt --text "$tmp/tiny.txt" --steps 1 --eval-batches 1 --batch 2 \
        --from "$tmp/g.safetensors" --qat $flags >"$tmp/out" 2>&1
    grep -qF "${want%%:*} " "$tmp/out" && grep -qF "weights ${want#*:}" "$tmp/out" ||
        { echo "FAIL: train gpt --from --qat $flags does not train at ${want%%:*} with ${want#*:}"; fails=$((fails + 1)); }
done
"$octet" train mlp --data "$tmp/tiny" --epochs 2 --batch 2 --hidden 8 --qat --weight-bits 3 2>&1 | grep -qF "weights (lsq)" ||
    { echo "FAIL: train mlp --qat --weight-bits 3 does not default to lsq"; fails=$((fails + 1)); }
ok "train gpt --from --qat" "final val loss" "$octet" train gpt --text "$tmp/tiny.txt" --steps 4 \
    --eval-every 0 --eval-batches 1 --batch 2 --from "$tmp/g.safetensors" --qat \
    --save "$tmp/gf.safetensors"
ok "export --from" "int8" "$octet" export "$tmp/gf.safetensors" -o "$tmp/gf8.safetensors"
ok "eval --compare --from" "bit-identical at 32/32 positions" "$octet" eval --int8 \
    "$tmp/gf8.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 --windows 2 \
    --compare "$tmp/gf.safetensors"
printf 'Zebras and the light.\n%.0s' $(seq 20) >"$tmp/zebra.txt"
expect 1 "'Z'" "$octet" train gpt --text "$tmp/zebra.txt" --from "$tmp/g.safetensors" \
    --save "$tmp/gz.safetensors"
[ -e "$tmp/gz.safetensors" ] && { echo "FAIL: a failed --from left its --save"; fails=$((fails + 1)); }
expect 2 "--layers" "$octet" train gpt --text "$tmp/tiny.txt" --from "$tmp/g.safetensors" --layers 2
expect 2 "QAT model, fine-tuned under QAT only: add --qat" "$octet" train gpt \
    --text "$tmp/tiny.txt" --from "$tmp/gq.safetensors"
expect 2 "drop --weight-bits" "$octet" train gpt --text "$tmp/tiny.txt" \
    --from "$tmp/gq.safetensors" --qat --weight-bits 4
expect 1 "$tmp/none.safetensors" "$octet" train gpt --text "$tmp/tiny.txt" \
    --from "$tmp/none.safetensors"
# export --float16: half the file, the same loss to 3 decimals, and every command reads it
ok "export --float16" "float16 GPT" "$octet" export "$tmp/g.safetensors" --float16 -o "$tmp/g16.safetensors"
[ "$(stat -c %s "$tmp/g16.safetensors")" -lt "$(( $(stat -c %s "$tmp/g.safetensors") * 6 / 10 ))" ] ||
    { echo "FAIL: the float16 file is not about half the fp32 file"; fails=$((fails + 1)); }
ok "eval gpt fp32" "val loss" "$octet" eval "$tmp/g.safetensors" --text "$tmp/tiny.txt" --eval-batches 2
l32=$(grep -o 'val loss [0-9.]*' "$tmp/out" | cut -c10-14)
ok "eval float16" "val loss $l32" "$octet" eval "$tmp/g16.safetensors" --text "$tmp/tiny.txt" \
    --eval-batches 2
ok "checkpoint fp32" "stopped" "$octet" train gpt "${gpt_flags[@]}" --eval-every 2 \
    --checkpoint "$tmp/cf.safetensors" --stop-after 3
ok "export checkpoint --float16" "float16 GPT" "$octet" export "$tmp/cf.safetensors" --float16 \
    -o "$tmp/cf16.safetensors"
"$octet" inspect "$tmp/cf16.safetensors" | grep -q 'optim/\|octet.train' &&
    { echo "FAIL: --float16 kept a checkpoint's run state"; fails=$((fails + 1)); }
ok "generate float16" "and t" "$octet" generate "$tmp/g16.safetensors" --prompt "and t" -n 10
expect 1 "a QAT model" "$octet" export "$tmp/gq.safetensors" --float16 -o "$tmp/x16.safetensors"
expect 1 "an int8 GPT export, where" "$octet" export "$tmp/g8.safetensors" --float16 \
    -o "$tmp/x16.safetensors"
[ -e "$tmp/x16.safetensors" ] && { echo "FAIL: a refused --float16 wrote its output"; fails=$((fails + 1)); }
# export --dynamic (post-training dynamic int8): from a fp32 or QAT model, about a quarter of the
# fp32 file, the loss within 0.02 of fp32's, and eval, generate and inspect read it
ok "export --dynamic" "dynamic activations" "$octet" export "$tmp/g.safetensors" --dynamic \
    --embed-bits 8 -o "$tmp/gd.safetensors"
ok "eval --int8 dynamic" "dynamic int8 val loss" "$octet" eval --int8 "$tmp/gd.safetensors" \
    --text "$tmp/tiny.txt" --eval-batches 2
ld=$(grep -o 'val loss [0-9.]*' "$tmp/out" | cut -c10-)
awk -v a="$ld" -v b="$l32" 'BEGIN {d = a - b; exit !(a != "" && d < 0.02 && d > -0.02)}' ||
    { echo "FAIL: dynamic int8 loss $ld far from fp32 $l32"; fails=$((fails + 1)); }
ok "generate dynamic" "and t" "$octet" generate "$tmp/gd.safetensors" --prompt "and t" -n 10
ok "export --dynamic of a QAT model" "dynamic activations" "$octet" export "$tmp/gq.safetensors" \
    --dynamic -o "$tmp/gqd.safetensors"
expect 1 "has dynamic activations" "$octet" eval --int8 "$tmp/gd.safetensors" --text "$tmp/tiny.txt" \
    --compare "$tmp/g.safetensors"
expect 2 "exclude each other" "$octet" export "$tmp/g.safetensors" --dynamic --float16 -o "$tmp/xd.safetensors"
expect 2 "--embed-bits goes with --dynamic" "$octet" export "$tmp/gq.safetensors" --embed-bits 8 \
    -o "$tmp/xd.safetensors"
expect 2 "--embed-bits" "$octet" export "$tmp/g.safetensors" --dynamic --embed-bits 1 -o "$tmp/xd.safetensors"
expect 1 "already an int8 export" "$octet" export "$tmp/gd.safetensors" --dynamic -o "$tmp/xd.safetensors"
if [ -f "$tmp/tiny.safetensors" ]; then
    ok "export mlp --dynamic" "int8 MLP with dynamic activations" "$octet" export \
        "$tmp/tiny.safetensors" --dynamic -o "$tmp/td.safetensors"
    ok "eval mlp dynamic" "dynamic int8 test accuracy" "$octet" eval --int8 "$tmp/td.safetensors" \
        --data "$tmp/tiny"
    ok "inspect mlp dynamic" "dynamic activations" "$octet" inspect "$tmp/td.safetensors"
    # export --torch of the MLP (fc1, fc2, ...; its normalization in the metadata) imports back
    ok "export --torch mlp" "MLP's float weights" "$octet" export "$tmp/tiny.safetensors" --torch \
        -o "$tmp/tiny.pt.safetensors"
    ok "import of export --torch mlp" "saved" "$octet" import "$tmp/tiny.pt.safetensors" \
        -o "$tmp/tiny.back.safetensors"
    for m in tiny tiny.back; do
        "$octet" eval "$tmp/$m.safetensors" --data "$tmp/tiny" | grep -o 'accuracy.*loss [0-9.]*'
    done >"$tmp/out"
    [ "$(sort -u "$tmp/out" | wc -l)" = 1 ] && grep -q fc1.weight <("$octet" inspect "$tmp/tiny.pt.safetensors") ||
        { echo "FAIL: export --torch then import changes the MLP"; fails=$((fails + 1)); }
    # ... with the data it records, and so does an MLP without activations
    [ "$("$octet" inspect "$tmp/tiny.back.safetensors" | grep octet.source)" = \
        "$("$octet" inspect "$tmp/tiny.safetensors" | grep octet.source)" ] ||
        { echo "FAIL: export --torch then import loses the recorded data"; fails=$((fails + 1)); }
    "$octet" train mlp --data "$tmp/tiny" --epochs 1 --batch 2 --hidden 8 --activation none \
        --save "$tmp/tnone.safetensors" >/dev/null 2>&1
    "$octet" export "$tmp/tnone.safetensors" --torch -o "$tmp/tnone.pt.safetensors" >/dev/null
    ok "import of export --torch mlp, no activation" "4-8-4, none" "$octet" import \
        "$tmp/tnone.pt.safetensors" -o "$tmp/tnone.back.safetensors"
    expect 2 "has no embeddings" "$octet" export "$tmp/tiny.safetensors" --dynamic --embed-bits 8 \
        -o "$tmp/xd.safetensors"
    "$octet" train mlp --data "$tmp/tiny" --epochs 1 --batch 2 --hidden 8 --activation gelu \
        --save "$tmp/tgelu.safetensors" >/dev/null 2>&1
    expect 1 "$tmp/tgelu.safetensors: mlp: dynamic int8 needs ReLU" "$octet" export \
        "$tmp/tgelu.safetensors" --dynamic -o "$tmp/xd.safetensors"
    expect 1 "$tmp/tgelu.safetensors: qat: the MLP must use relu" "$octet" calibrate \
        "$tmp/tgelu.safetensors" --data "$tmp/tiny" -o "$tmp/xd.safetensors"
fi
[ -e "$tmp/xd.safetensors" ] && { echo "FAIL: a refused --dynamic wrote its output"; fails=$((fails + 1)); }
# outputs are written atomically (renamed over the old file): an existing FIFO (or device, such
# as /dev/null) is refused before any work and stays what it was
mkfifo "$tmp/fifo"
expect 1 "exists and is not a regular file" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" -o "$tmp/fifo"
expect 1 "exists and is not a regular file" "$octet" export "$tmp/gq.safetensors" -o "$tmp/fifo"
expect 1 "--save $tmp/fifo: exists" "$octet" train gpt "${gpt_flags[@]}" --save "$tmp/fifo"
# a --log is appended to in place: a FIFO without a reader is refused rather than waited on
expect 1 "--log $tmp/fifo: cannot open for writing: a FIFO with no reader" timeout 20 "$octet" \
    train gpt "${gpt_flags[@]}" --log "$tmp/fifo"
[ -p "$tmp/fifo" ] || { echo "FAIL: an output replaced a FIFO"; fails=$((fails + 1)); }
# a --log that cannot be written (/dev/full fails every write) is reported at its first record
# in one line; the run goes on, saves its model and exits 1
log_full() {
    rm -f "$tmp/lf.safetensors"
    "$@" --log /dev/full --save "$tmp/lf.safetensors" >/dev/null 2>"$tmp/err"
    local rc=$? want="--log /dev/full: write failed: No space left on device; the run goes on"
    if [ $rc != 1 ] || [ "$(grep -c -- "$want" "$tmp/err")" != 1 ] || [ ! -s "$tmp/lf.safetensors" ]; then
        echo "FAIL: $* --log /dev/full: exit $rc (want 1), $(ls "$tmp/lf.safetensors" 2>&1)"
        cat "$tmp/err"; fails=$((fails + 1))
    fi
}
log_full "$octet" train mlp --data "$tmp/tiny" --epochs 2 --batch 2 --hidden 8
log_full "$octet" train gpt "${gpt_flags[@]}"
# a FIFO as an input is refused at once, naming it, rather than waited on (for a writer)
expect 1 "$tmp/fifo: not a regular file (a FIFO)" timeout 20 "$octet" inspect "$tmp/fifo"
expect 1 "$tmp/fifo: not a regular file (a FIFO)" timeout 20 "$octet" eval "$tmp/g.safetensors" \
    --text "$tmp/fifo"
mkdir "$tmp/fifos" && mkfifo "$tmp/fifos/t10k-images-idx3-ubyte" "$tmp/fifos/t10k-labels-idx1-ubyte"
if [ -f "$tmp/tiny.safetensors" ]; then
    expect 1 "t10k-images-idx3-ubyte: not a regular file (a FIFO)" timeout 20 "$octet" eval \
        "$tmp/tiny.safetensors" --data "$tmp/fifos"
fi
# octet calibrate (post-training quantization): a fp32 GPT, calibrated, exports to an engine that
# matches it bit for bit; its errors leave no output
ok "calibrate gpt" "simulated quantized val loss" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 3 --embed-bits 8 -o "$tmp/gc.safetensors"
# the calibrated ranges fit: the simulated int8 loss is within 0.02 of the fp32 loss
awk '/simulated/ {d = $(NF - 3) - $NF; exit !(d < 0.02 && d > -0.02)}' "$tmp/out" ||
    { echo "FAIL: calibrated int8 loss far from fp32: $(cat "$tmp/out")"; fails=$((fails + 1)); }
ok "export calibrated" "int8 embeddings" "$octet" export "$tmp/gc.safetensors" -o "$tmp/gc8.safetensors"
ok "calibrate --embed-bits 4" "4-bit embeddings" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 1 --embed-bits 4 -o "$tmp/gc4.safetensors"
ok "export --embed-bits 4" "4-bit embeddings" "$octet" export "$tmp/gc4.safetensors" -o "$tmp/gc4.8.safetensors"
ok "eval --compare calibrated" "bit-identical at 32/32 positions" "$octet" eval --int8 \
    "$tmp/gc8.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 --windows 2 \
    --compare "$tmp/gc.safetensors"
expect 1 "already has quantization ranges" "$octet" calibrate "$tmp/gq.safetensors" \
    --text "$tmp/tiny.txt" -o "$tmp/cal.safetensors"
expect 2 "--act-quant 'lsq'" "$octet" calibrate "$tmp/g.safetensors" --act-quant lsq \
    --text "$tmp/tiny.txt" -o "$tmp/cal.safetensors"
# export_matches NAME MODEL: MODEL's int8 export runs bit for bit as MODEL on the tiny text
export_matches() {
    ok "export $1" "int8" "$octet" export "$tmp/$2.safetensors" -o "$tmp/$2.i8.safetensors"
    ok "eval --compare $1" "bit-identical at 32/32 positions" "$octet" eval --int8 \
        "$tmp/$2.i8.safetensors" --text "$tmp/tiny.txt" --eval-batches 1 --windows 2 \
        --compare "$tmp/$2.safetensors"
}
ok "calibrate pow2" "4-bit power-of-two weights" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 2 --weight-quant pow2 --weight-bits 4 -o "$tmp/gcp.safetensors"
export_matches "calibrated pow2" gcp
# histogram calibration: ranges of least squared error (not min-max's), an export that matches
# bit for bit; QAT refuses it
for a in minmax hist; do
    ok "calibrate --act-quant $a" "($a observers" "$octet" calibrate "$tmp/g.safetensors" \
        --text "$tmp/tiny.txt" --batches 2 --act-quant $a --act-bits 4 -o "$tmp/gh-$a.safetensors"
    export_matches "calibrated $a" "gh-$a"
    "$octet" inspect "$tmp/gh-$a.i8.safetensors" | grep -v "safetensors" >"$tmp/gh-$a.txt"
done
cmp -s "$tmp/gh-minmax.txt" "$tmp/gh-hist.txt" &&
    { echo "FAIL: calibrate --act-quant hist gives min-max's ranges"; fails=$((fails + 1)); }
expect 2 "--act-quant hist: only for \`octet calibrate\`" "$octet" train gpt "${gpt_flags[@]}" \
    --qat --act-quant hist
expect 2 "--act-quant hist: only for" "$octet" train mlp --qat --act-quant ema,hist,ema
# least-squared-error weight scales: an export that matches bit for bit; QAT refuses them
ok "calibrate --weight-quant mse" "4-bit clipped weights" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 2 --weight-quant mse --weight-bits 4 -o "$tmp/gm.safetensors"
export_matches "calibrated mse" gm
# GPTQ: the codes it chose are the export's, bit for bit, for a GPT (for an MLP: test_cli.sh)
ok "calibrate --weight-quant gptq" "3-bit GPTQ weights" "$octet" calibrate "$tmp/g.safetensors" \
    --text "$tmp/tiny.txt" --batches 2 --weight-quant gptq --weight-bits 3 -o "$tmp/gg.safetensors"
# one GPTQ pass per layer in the order of the forward pass, each seeing the codes chosen before it
passes=$(grep -o 'GPTQ [0-9]*/[0-9]* [^ ]*' "$tmp/err" | uniq | tr '\n' ' ')
want="GPTQ 1/5 h.0.attn.qkv GPTQ 2/5 h.0.attn.proj GPTQ 3/5 h.0.mlp.fc GPTQ 4/5 h.0.mlp.proj "
[ "$passes" = "${want}GPTQ 5/5 lm_head " ] ||
    { echo "FAIL: calibrate --weight-quant gptq passes: '$passes'"; fails=$((fails + 1)); }
export_matches "calibrated gptq" gg
# QAT from a calibrated (GPTQ) model keeps its quantizers, and its export matches bit for bit
ok "train gpt --from calibrated --qat" "final val loss" "$octet" train gpt --text "$tmp/tiny.txt" \
    --from "$tmp/gg.safetensors" --qat --steps 10 --batch 2 --eval-batches 1 --warmup 0 \
    --schedule constant --log "$tmp/ggf.jsonl" --save "$tmp/ggf.safetensors"
grep '"step":10,' "$tmp/ggf.jsonl" | grep -q '"lr":0.001,' ||
    { echo "FAIL: a 3-bit QAT model's fine-tune does not train at its default lr 1e-3"; fails=$((fails + 1)); }
export_matches "gptq fine-tune" ggf
"$octet" inspect "$tmp/ggf.safetensors" | grep -q '"weight_mode":"lsq"' ||
    { echo "FAIL: the fine-tune of a GPTQ model lost its quantizers"; fails=$((fails + 1)); }
expect 2 "per channel only" "$octet" calibrate "$tmp/g.safetensors" --text "$tmp/tiny.txt" \
    --weight-quant gptq --per-tensor-weights -o "$tmp/cal.safetensors"
expect 2 "--weight-quant mse: only for" "$octet" train mlp --qat --weight-quant mse
expect 2 "--weight-quant mse: only for" "$octet" train gpt "${gpt_flags[@]}" --qat --weight-quant mse
expect 2 "--weight-quant 'lsq'" "$octet" calibrate "$tmp/g.safetensors" --weight-quant lsq \
    --text "$tmp/tiny.txt" -o "$tmp/cal.safetensors"
expect 2 "-o" "$octet" calibrate "$tmp/g.safetensors" --text "$tmp/tiny.txt"
expect 2 "--batches" "$octet" calibrate "$tmp/g.safetensors" --batches 0 -o "$tmp/cal.safetensors"
expect 1 "'Z'" "$octet" calibrate "$tmp/g.safetensors" --text "$tmp/zebra.txt" \
    -o "$tmp/cal.safetensors"
[ -e "$tmp/cal.safetensors" ] && { echo "FAIL: a failed calibrate wrote its output"; fails=$((fails + 1)); }
# octet import (the conversion itself is tested in test_gpt): its usage and file errors
expect 2 "--gelu 'fast'" "$octet" import "$tmp/g.pt.safetensors" --heads 2 --gelu fast -o "$tmp/imp.safetensors"
# a text that is not ASCII: octet's tokens are bytes, nanoGPT's characters (a warning)
{ cat "$tmp/tiny.txt"; printf 'caf\xc3\xa9\n'; } >"$tmp/cafe.txt"
"$octet" import "$tmp/g.pt.safetensors" --text "$tmp/cafe.txt" -o "$tmp/imp.safetensors" 2>&1 |
    grep -q "cafe.txt is not ASCII: octet's tokens are its distinct bytes" ||
    { echo "FAIL: import of a text that is not ASCII does not warn"; fails=$((fails + 1)); }
# a text whose validation split is shorter than a window: one line naming it
printf 'and the light was good; and the days passed.\n' >"$tmp/short.txt"
expect 1 "$tmp/short.txt: the validation split (its last 10%) holds 5 characters, fewer than a window" \
    "$octet" eval "$tmp/g.safetensors" --text "$tmp/short.txt"
expect 1 "$tmp/short.txt: the validation split" "$octet" eval --int8 "$tmp/g8.safetensors" \
    --text "$tmp/short.txt"
expect 1 "--int8 $tmp/g.safetensors: an fp32 GPT model, where an int8 export is expected" \
    "$octet" eval --int8 "$tmp/g.safetensors" --text "$tmp/tiny.txt"
# a state dict given to eval: the error says what it is and how to convert it (not a flag error)
expect 1 "\`octet import\` converts a PyTorch state dict), where an MLP or GPT model or an int8" \
    "$octet" eval "$tmp/g.pt.safetensors" --text "$tmp/tiny.txt"
LC_ALL=C sed 's/"n_head"/"n_hexx"/' "$tmp/g.pt.safetensors" >"$tmp/nohead.pt.safetensors"
expect 2 "--heads" "$octet" import "$tmp/nohead.pt.safetensors" -o "$tmp/imp.safetensors"
expect 1 "already an octet model" "$octet" import "$tmp/g.safetensors" -o "$tmp/imp.safetensors"
expect 2 "-o" "$octet" import "$tmp/g.safetensors" --heads 2 --text "$tmp/tiny.txt"
expect 1 "already an octet model" "$octet" import "$tmp/g.safetensors" --heads 2 \
    --text "$tmp/tiny.txt" -o "$tmp/imp.safetensors"
expect 1 "$tmp/none.safetensors" "$octet" import "$tmp/none.safetensors" --heads 2 \
    --text "$tmp/tiny.txt" -o "$tmp/imp.safetensors"
expect 1 "$tmp/none.txt" "$octet" import "$tmp/g.pt.safetensors" --heads 2 --text "$tmp/none.txt" \
    -o "$tmp/imp.safetensors"
expect 2 "--activation: an MLP flag" "$octet" import "$tmp/g.pt.safetensors" --heads 2 \
    --activation relu -o "$tmp/imp.safetensors"
if [ -f "$tmp/tiny.safetensors" ]; then
    expect 2 "--heads: a GPT flag" "$octet" import "$tmp/tiny.pt.safetensors" --heads 2 \
        -o "$tmp/imp.safetensors"
    expect 1 "already an octet model" "$octet" import "$tmp/tiny.safetensors" -o "$tmp/imp.safetensors"
fi
[ -e "$tmp/imp.safetensors" ] && { echo "FAIL: a failed import wrote its output"; fails=$((fails + 1)); }
# --checkpoint, --stop-after and --resume: runs stopped after step 5 (fp32 phase) and after
# step 9 (QAT, observers frozen), then resumed, save the bytes of the run that never stopped
# (QAT, dropout and two data-parallel shards); a checkpoint is a model file too
run_flags=("${gpt_flags[@]}" --steps 12 --eval-every 4 --qat --qat-steps 6 --dropout 0.1 --threads 2)
ok "train gpt (not stopped)" "final val loss" "$octet" train gpt "${run_flags[@]}" \
    --save "$tmp/r0.safetensors"
grep -o 'step [0-9]*/12  train loss [0-9.]*' "$tmp/out" >"$tmp/r0.losses"
for stop in 5 9; do
    ok "train gpt --stop-after $stop" "stopped after step $stop" "$octet" train gpt \
        "${run_flags[@]}" --save "$tmp/r$stop.safetensors" --checkpoint "$tmp/c$stop.safetensors" \
        --stop-after $stop
    [ -e "$tmp/r$stop.safetensors" ] && { echo "FAIL: a stopped run wrote --save"; fails=$((fails + 1)); }
    ok "eval checkpoint $stop" "val loss" "$octet" eval "$tmp/c$stop.safetensors" \
        --text "$tmp/tiny.txt" --eval-batches 1 --windows 2
    ok "train gpt --resume $stop" "final val loss" "$octet" train gpt \
        --resume "$tmp/c$stop.safetensors"
    cmp -s "$tmp/r0.safetensors" "$tmp/r$stop.safetensors" ||
        { echo "FAIL: stopped after step $stop and resumed: another model"; fails=$((fails + 1)); }
    # ... and reports the same training losses (their mean since the last validation)
    grep -o 'step [0-9]*/12  train loss [0-9.]*' "$tmp/out" | grep -vxF -f "$tmp/r0.losses" |
        grep -q . && { echo "FAIL: resumed after step $stop: other train losses"; fails=$((fails + 1)); }
done
expect 1 "already ended" "$octet" train gpt --resume "$tmp/c5.safetensors"
# a run whose last update diverges (its loss checked before it) says so and saves nothing
rc=0
"$octet" train gpt "${gpt_flags[@]}" --steps 11 --warmup 0 --lr 10 --wd 10 --optim adamw --clip 0 \
    --save "$tmp/nan.safetensors" >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "^octet: training diverged at step 11 (a loss of nan): nothing saved" \
    "$tmp/err" && [ ! -e "$tmp/nan.safetensors" ] ||
    { echo "FAIL: a diverged GPT run (exit $rc):"; cat "$tmp/err"; fails=$((fails + 1)); }
# a new run does not overwrite another run's checkpoint
cp "$tmp/c5.safetensors" "$tmp/c5-copy.safetensors"
expect 1 "--checkpoint $tmp/c5.safetensors holds the checkpoint of a finished run (step 12 of 12)" \
    "$octet" train gpt "${run_flags[@]}" --checkpoint "$tmp/c5.safetensors"
cmp -s "$tmp/c5.safetensors" "$tmp/c5-copy.safetensors" ||
    { echo "FAIL: a refused run changed the checkpoint"; fails=$((fails + 1)); }
# ... nor a model, nor another checkpoint than the one it resumes
cp "$tmp/r0.safetensors" "$tmp/r0-copy.safetensors"
expect 1 "--checkpoint $tmp/r0-copy.safetensors exists and is no checkpoint" "$octet" train gpt \
    "${run_flags[@]}" --checkpoint "$tmp/r0-copy.safetensors"
cmp -s "$tmp/r0.safetensors" "$tmp/r0-copy.safetensors" ||
    { echo "FAIL: a refused run changed the model"; fails=$((fails + 1)); }
expect 2 "--lr" "$octet" train gpt --resume "$tmp/c5.safetensors" --lr 1
expect 2 "--stop-after" "$octet" train gpt "${run_flags[@]}" --stop-after 3
expect 2 "--checkpoint" "$octet" train gpt --save "$tmp/x.safetensors" --checkpoint "$tmp/x.safetensors"
expect 1 "not a checkpoint" "$octet" train gpt --resume "$tmp/r0.safetensors"
ok "train gpt --stop-after 2" "stopped" "$octet" train gpt "${run_flags[@]}" \
    --checkpoint "$tmp/c2.safetensors" --stop-after 2
expect 2 "--stop-after 2: --resume $tmp/c2.safetensors is after step 2 already" "$octet" train gpt \
    --resume "$tmp/c2.safetensors" --stop-after 2
expect 1 "--checkpoint $tmp/c5.safetensors holds the checkpoint of a finished run" "$octet" \
    train gpt --resume "$tmp/c2.safetensors" --checkpoint "$tmp/c5.safetensors"
expect 1 "before the QAT steps" "$octet" export "$tmp/c2.safetensors" -o "$tmp/c2.int8"
expect 1 "the checkpoint of a QAT run before its QAT steps: finish the run with 'octet train gpt --resume" \
    "$octet" calibrate "$tmp/c2.safetensors" --text "$tmp/tiny.txt" -o "$tmp/c2.cal"
set_meta "$tmp/c2.safetensors" "$tmp/c2-on.safetensors" octet.qat_on "maybe"
expect 1 "'octet.qat_on' is 'maybe', expected true or false" "$octet" eval "$tmp/c2-on.safetensors" \
    --text "$tmp/tiny.txt"
[ -e "$tmp/c2.int8" ] && { echo "FAIL: a refused export wrote its output"; fails=$((fails + 1)); }
expect 2 "--qat-steps" "$octet" train gpt --qat --qat-steps 0
tac "$tmp/tiny.txt" >"$tmp/tiny-reversed.txt"
expect 1 "not the run's text" "$octet" train gpt --resume "$tmp/c2.safetensors" \
    --text "$tmp/tiny-reversed.txt"
head -c 3000 "$tmp/c2.safetensors" >"$tmp/c2-cut.safetensors"
expect 1 "$tmp/c2-cut.safetensors" "$octet" train gpt --resume "$tmp/c2-cut.safetensors"
LC_ALL=C sed 's/optim_step/optim_stex/' "$tmp/c2.safetensors" >"$tmp/c2-bad.safetensors"
expect 1 "malformed" "$octet" train gpt --resume "$tmp/c2-bad.safetensors"
LC_ALL=C sed 's/muon_m/muon_x/' "$tmp/c2.safetensors" >"$tmp/c2-bad.safetensors"
expect 1 "optimizer tensor" "$octet" train gpt --resume "$tmp/c2-bad.safetensors"
# a checkpoint whose recorded options differ from what this octet resolves (as after a change of
# defaults) is refused, naming the option
LC_ALL=C sed 's/--warmup=1 /--warmup=0 /' "$tmp/c2.safetensors" >"$tmp/c2-bad.safetensors"
expect 1 "--warmup=0 (this octet: --warmup=1)" "$octet" train gpt --resume "$tmp/c2-bad.safetensors"
LC_ALL=C sed 's/momentum-warmup=300/momentum-warmup=301/' "$tmp/c2.safetensors" >"$tmp/c2-bad.safetensors"
expect 1 "other defaults" "$octet" train gpt --resume "$tmp/c2-bad.safetensors"
# recorded arguments that do not parse (a file edited by hand) are one error naming the file
for a in help bogu; do
    LC_ALL=C sed 's/"\[\\"--text\\"/"[\\"--'$a'\\"/' "$tmp/c2.safetensors" >"$tmp/c2-bad.safetensors"
    expect 1 "c2-bad.safetensors: its recorded arguments are invalid: $([ $a = help ] &&
        echo "--help: a request for help" || echo "--bogu: unknown flag")" "$octet" train gpt \
        --resume "$tmp/c2-bad.safetensors"
done
# an argument that is not UTF-8 could not be read back by --resume: refused before the run
expect 1 "argument '--save=$tmp/x\xff' is not valid UTF-8 and cannot be recorded for --resume" "$octet" \
    train gpt "${gpt_flags[@]}" --save "$tmp/x"$'\xff' --checkpoint "$tmp/cu.safetensors"
[ -e "$tmp/cu.safetensors" ] && { echo "FAIL: a refused --checkpoint was written"; fails=$((fails + 1)); }
# SIGINT (Ctrl-C) with --checkpoint: the run ends after the current step with a checkpoint
# (exit 130) and resumes from it
"$octet" train gpt "${gpt_flags[@]}" --steps 1000000 --checkpoint "$tmp/int.safetensors" \
    --log "$tmp/int.jsonl" >"$tmp/int.out" 2>/dev/null &
pid=$!
# a watchdog ends the run if the signal is lost, and itself with the run
(for _ in $(seq 3000); do sleep 0.1; kill -0 $pid || exit; done; kill -KILL $pid) >/dev/null 2>&1 &
# the handler is in place once the run logs its first steps (background jobs ignore SIGINT)
for _ in $(seq 600); do grep -q '"train"' "$tmp/int.jsonl" 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
step=$(grep -o 'interrupted after step [0-9]*' "$tmp/int.out" | grep -o '[0-9]*$')
if [ "$rc" != 130 ] || [ -z "$step" ]; then
    echo "FAIL: SIGINT: exit $rc (want 130), output: $(cat "$tmp/int.out")"; fails=$((fails + 1))
else
    ok "resume after SIGINT" "stopped after step $((step + 1))" "$octet" train gpt \
        --resume "$tmp/int.safetensors" --stop-after $((step + 1))
fi
# SIGINT during the write of a model ends the process as the signal does (exit 130) and removes
# its temporary file. `timeout --foreground` starts the command with SIGINT at its default (a
# background job ignores it) and forwards the signal. temp_is FILE 1|0 waits until a temporary
# file of FILE exists (1) or not (0) while $pid runs.
temp_is() {
    for _ in $(seq 6000); do
        kill -0 $pid 2>/dev/null || return 1
        compgen -G "$1.tmp.*" >/dev/null
        [ $? = $((1 - $2)) ] && return 0
        sleep 0.005
    done
    return 1
}
"$octet" train mlp --data "$tmp/tiny" --epochs 1 --batch 2 --hidden 4096,4096 \
    --save "$tmp/big.safetensors" >/dev/null 2>&1
big="$tmp/big.pt.safetensors"
for _ in 1 2 3; do # again if the write ended before the signal
    echo old >"$big"
    timeout --foreground -s INT 120 "$octet" export "$tmp/big.safetensors" --torch -o "$big" \
        >/dev/null 2>&1 &
    pid=$!
    temp_is "$big" 1 && kill -INT $pid
    wait $pid
    rc=$?
    [ "$rc" = 0 ] || break
done
if [ "$rc" = 0 ]; then
    echo "note: SIGINT during an export not tested: the write ended before the signal"
elif [ "$rc" != 130 ] || compgen -G "$big.tmp.*" >/dev/null || [ "$(cat "$big")" != old ]; then
    echo "FAIL: SIGINT during export: exit $rc (want 130), left: $(ls "$big"* | tr "\n" " ")"
    fails=$((fails + 1))
fi
rm -f "$tmp/big"*
# with --checkpoint, a second SIGINT (here during the checkpoint written after the step that the
# first one interrupted) ends the run at once, leaving no temporary file
ck="$tmp/ck2.safetensors"
for _ in 1 2 3; do # again if the second signal came after the write (a slow poll, a fast disk)
    rm -f "$ck" # a new run refuses another run's checkpoint
    timeout --foreground -s INT 300 "$octet" train gpt "${gpt_flags[@]}" --layers 2 --width 512 \
        --mlp 2048 --steps 1000 --eval-every 1 --checkpoint "$ck" >"$tmp/ck2.out" 2>&1 &
    pid=$!
    { temp_is "$ck" 1 && temp_is "$ck" 0 && kill -INT $pid && temp_is "$ck" 1 && kill -INT $pid; } ||
        kill -TERM $pid 2>/dev/null
    wait $pid
    rc=$?
    grep -q "interrupted after" "$tmp/ck2.out" || break
done
if grep -q "interrupted after" "$tmp/ck2.out"; then
    echo "note: a second SIGINT during a checkpoint not tested: the write ended before it"
elif [ "$rc" != 130 ] || compgen -G "$ck.tmp.*" >/dev/null; then
    echo "FAIL: a second SIGINT: exit $rc (want 130), left: $(ls "$ck"* | tr "\n" " ")"
    fails=$((fails + 1))
fi
rm -f "$ck"*
# out of memory (under a 1 GB address-space limit) is one line and exit 1, not an abort; not
# under AddressSanitizer, which needs more address space than that to start
if ! grep -qa __asan_init "$octet"; then
    in_1gb() { (ulimit -v 1000000 && exec "$@"); }
    oom="octet: out of memory: could not allocate"
    expect 1 "$oom" in_1gb "$octet" eval "$tmp/g.safetensors" --text "$tmp/tiny.txt" \
        --windows 65536 --eval-batches 1
    expect 1 "$oom" in_1gb "$octet" train mlp --data "$tmp/tiny" --hidden 65536,65536
fi
# a tiny --decay still decays over at least one step: the lr holds at its peak until the last
ok "train gpt --decay" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --optim adamw --steps 20 \
    --warmup 0 --lr 0.001 --decay 0.01 --log "$tmp/decay.jsonl"
grep -q '"step":10,"loss":[^,]*,"lr":0.001,' "$tmp/decay.jsonl" ||
    { echo "FAIL: --decay 0.01 did not hold the lr at step 10"; fails=$((fails + 1)); }
# the default warmup (200 steps) shrinks to a tenth of a short run, so its lr decays
ok "train gpt warmup" "final val loss" "$octet" train gpt "${gpt_flags[@]}" --steps 20 \
    --log "$tmp/warm.jsonl"
lrs=$(grep -o '"lr":[0-9.e+-]*' "$tmp/warm.jsonl" | tail -n +2 | cut -d: -f2 | tr '\n' ' ')
awk -v l="$lrs" 'BEGIN { split(l, a, " "); exit !(a[2] < a[1]) }' ||
    { echo "FAIL: a 20-step run's lr did not decay: $lrs"; fails=$((fails + 1)); }
expect 2 "--warmup" "$octet" train gpt --steps 10 --warmup 10
expect 2 "--heads" "$octet" train gpt --heads 3
expect 2 "--optim" "$octet" train gpt --optim sgd
expect 2 "--embed-bits" "$octet" train gpt --embed-bits 8
expect 2 "--embed-bits" "$octet" train gpt --qat --embed-bits 1
expect 1 "$tmp/none.txt" "$octet" train gpt --text "$tmp/none.txt"
expect 1 "--qat" "$octet" export "$tmp/g.safetensors" -o "$tmp/g.out"
expect 1 "--compare" "$octet" eval --int8 "$tmp/g8.safetensors" --text "$tmp/tiny.txt" \
    --eval-batches 1 --compare "$tmp/g.safetensors"
# the same one line for an export and a model: what is wrong and what the model knows
for f in g8 g; do
    expect 2 "the model knows only the characters of its training text" "$octet" generate \
        "$tmp/$f.safetensors" --prompt "xyzzy"
done
[ -e "$tmp/g.out" ] && { echo "FAIL: a failed GPT export left $tmp/g.out"; fails=$((fails + 1)); }

# ---- model and data files that load with one line naming the file and the key or tensor ----
# a QAT GPT's step count must be a count (an empty one read as 0 before)
set_meta "$tmp/gq.safetensors" "$tmp/bad.safetensors" octet.qat_steps ""
expect 1 "$tmp/bad.safetensors: metadata 'octet.qat_steps' is '', expected a count" "$octet" eval \
    "$tmp/bad.safetensors" --text "$tmp/tiny.txt" --eval-batches 1
# an int8 GPT's "gelu" is a string when present (0 loaded as tanh before)
LC_ALL=C sed 's|\\"gelu\\":\\"tanh\\"|\\"gelu\\":0       |' "$tmp/g8.safetensors" >"$tmp/bad8.safetensors"
expect 1 '"gelu" must be "tanh" or "erf"' "$octet" eval --int8 "$tmp/bad8.safetensors" \
    --text "$tmp/tiny.txt" --eval-batches 1
# import: the metadata export --torch writes must agree with the tensors and the flags' ranges
set_meta "$tmp/g.pt.safetensors" "$tmp/bad.pt.safetensors" vocab_size "-1"
expect 1 "metadata 'vocab_size' is '-1', but the tensors give" "$octet" import \
    "$tmp/bad.pt.safetensors" -o "$tmp/imp2.safetensors"
set_meta "$tmp/g.pt.safetensors" "$tmp/bad.pt.safetensors" n_head "0"
expect 1 "metadata 'n_head' is '0', expected an integer in [1, 4096] (as --heads)" "$octet" import \
    "$tmp/bad.pt.safetensors" -o "$tmp/imp2.safetensors"
set_meta "$tmp/g.pt.safetensors" "$tmp/bad.pt.safetensors" gelu "fast"
expect 1 "metadata 'gelu' is 'fast', expected tanh or erf" "$octet" import \
    "$tmp/bad.pt.safetensors" -o "$tmp/imp2.safetensors"

[ "$fails" = 0 ] && echo "cli gpt: all checks passed"
exit $((fails > 0))
