#!/bin/bash
# CLI contract tests for `octet` (meson test suite 'cli'): usage errors exit 2 with one line,
# missing or corrupt model and data files exit 1 with one line naming the file, and a failed
# export leaves no output file behind; the MLP commands on a tiny IDX set. The GPT commands are
# tested in test_cli_gpt.sh, the set-up and shared fixtures are in cli_common.sh.
# usage: test_cli.sh path/to/octet
set -u
source "$(dirname "$0")/cli_common.sh"

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
expect 2 "" "$octet" inspect
expect 2 "unknown command" "$octet" frobnicate
expect 2 "[0, 2147483647], got '-1'" "$octet" generate "$tmp/x" --seed -1
ok "--version" "octet 0." "$octet" --version
ok "train --help" "train gpt" "$octet" train --help
ok "help train gpt" "usage: octet train gpt" "$octet" help train gpt
ok "generate --help" "unset: a newline" "$octet" generate --help

# missing and corrupt files
expect 1 "$tmp/missing.safetensors" "$octet" eval --int8 "$tmp/missing.safetensors"
expect 1 "$tmp/corrupt.safetensors" "$octet" eval --int8 "$tmp/corrupt.safetensors"
expect 1 "$tmp/trunc.safetensors" "$octet" inspect "$tmp/trunc.safetensors"
expect 1 "$tmp/missing.safetensors" "$octet" inspect "$tmp/missing.safetensors"
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ -f "$images" ]; then
    expect 1 "$tmp/corrupt.safetensors" "$octet" predict "$tmp/corrupt.safetensors" "$images"
fi
# a run that diverges says so, exits 1 and saves nothing (it saved a NaN model no command loads)
if [ -f "$images" ]; then
    rc=0
    "$octet" train mlp --limit 500 --hidden 8 --epochs 4 --optim sgd --lr 10 --wd 10 \
        --schedule constant --save "$tmp/nan.safetensors" >/dev/null 2>"$tmp/err" || rc=$?
    [ "$rc" = 1 ] && grep -q "^octet: training diverged in epoch 3 (a loss of nan): nothing saved" \
        "$tmp/err" && [ ! -e "$tmp/nan.safetensors" ] ||
        { echo "FAIL: a diverged MLP run (exit $rc):"; cat "$tmp/err"; fails=$((fails + 1)); }
fi
# a batch smaller than the threads (the last of an epoch: 4 images in batches of 3) trains
ok "train mlp: a batch smaller than the threads" "test accuracy" "$octet" train mlp \
    --data "$tmp/tiny" --hidden 8 --batch 3 --threads 2 --epochs 2
ok "train mlp --qat: a batch smaller than the threads" "test accuracy" "$octet" train mlp --qat \
    --data "$tmp/tiny" --hidden 8 --batch 3 --threads 2 --epochs 2 --fp32-epochs 1 \
    --save "$tmp/tq-small.safetensors"
# ... and counts its QAT steps (batches of 3 and 1: 2 steps; shard 0 counts them)
"$octet" inspect "$tmp/tq-small.safetensors" | grep -q "octet.qat_steps = 2$" ||
    { echo "FAIL: QAT steps miscounted with a short batch"; fails=$((fails + 1)); }
# the confidence penalty (default 0) changes the updates, is logged, and is refused below 0
for p in 0 0.5; do
    "$octet" train mlp --data "$tmp/tiny" --hidden 8 --batch 2 --epochs 2 --confidence-penalty $p \
        --log "$tmp/mcp$p.log" >"$tmp/mcp$p.txt" 2>/dev/null
done
grep -qF '"confidence_penalty":0.5' "$tmp/mcp0.5.log" && grep -qF '"confidence_penalty":0.0' "$tmp/mcp0.log" &&
    [ "$(grep -o '"test_loss":[^,]*' "$tmp/mcp0.log")" != "$(grep -o '"test_loss":[^,]*' "$tmp/mcp0.5.log")" ] ||
    { echo "FAIL: train mlp --confidence-penalty"; cat "$tmp"/mcp0*; fails=$((fails + 1)); }
expect 2 "--confidence-penalty" "$octet" train mlp --confidence-penalty -0.1
# images without a labels file are predicted without labels
if [ -f "$tmp/tiny.safetensors" ]; then
    cp "$tmp/tiny/train-images-idx3-ubyte" "$tmp/unlabeled.idx"
    ok "predict without labels" "image 0: class" "$octet" predict "$tmp/tiny.safetensors" \
        "$tmp/unlabeled.idx"
    grep -q "label" "$tmp/out" && { echo "FAIL: predict without labels printed labels"; fails=$((fails + 1)); }
    ok "predict with labels" "(label 0)" "$octet" predict "$tmp/tiny.safetensors" \
        "$tmp/tiny/train-images-idx3-ubyte"
    # a labels file guessed from the name that does not fit: a note, then the images alone
    cp "$tmp/tiny/train-images-idx3-ubyte" "$tmp/x-images-idx3-ubyte"
    printf '\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03' >"$tmp/x-labels-idx1-ubyte"
    ok "predict, a guessed labels file that does not fit" "image 3: class" "$octet" predict \
        "$tmp/tiny.safetensors" "$tmp/x-images-idx3-ubyte"
    grep -q "note: no labels: $tmp/x-labels-idx1-ubyte: 3 labels" "$tmp/err" ||
        { echo "FAIL: predict: no note on a guessed labels file"; fails=$((fails + 1)); }
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

# train mlp: bad flag values are usage errors
expect 2 "--lr" "$octet" train mlp --lr abc
expect 2 "--hidden" "$octet" train mlp --hidden 256,0
expect 2 "--optim" "$octet" train mlp --optim adagrad
expect 2 "--optim muon" "$octet" train mlp --optim muon
expect 2 "--activation" "$octet" train mlp --activation swish
expect 2 "--schedule" "$octet" train mlp --schedule wsd
expect 2 "--decay" "$octet" train gpt --schedule linear --decay 0
expect 2 "--act-quant" "$octet" train mlp --qat --act-quant bogus
expect 2 "--epochs" "$octet" train mlp --epochs
expect 2 "unexpected" "$octet" train mlp extra-argument

# the tiny IDX data set (in cli_common.sh): training an MLP on it prints its accuracy
mkdir -p "$tmp/trunc"
if [ "$tiny_rc" = 0 ]; then
    grep -q "test accuracy" "$tmp/tiny-train.out" || { echo "FAIL: train mlp on tiny data printed no accuracy"; fails=$((fails + 1)); }
else
    echo "FAIL: train mlp on a tiny IDX data set:"; cat "$tmp/tiny-train.err"; fails=$((fails + 1))
fi
expect 2 "--warmup" "$octet" train mlp --data "$tmp/tiny" --epochs 2 --batch 2 --hidden 8 --warmup 4
# truncated data set: one line naming the file, exit 1
cp "$tmp/tiny/"*labels* "$tmp/tiny/t10k-images-idx3-ubyte" "$tmp/trunc/"
head -c 20 "$tmp/tiny/train-images-idx3-ubyte" >"$tmp/trunc/train-images-idx3-ubyte"
expect 1 "$tmp/trunc/train-images-idx3-ubyte" "$octet" train mlp --data "$tmp/trunc" --epochs 1
expect 1 "$tmp/nodata" "$octet" train mlp --data "$tmp/nodata" --epochs 1
# a model that does not fit the data: one line, exit 1
if [ -f "$tmp/fp32.safetensors" ]; then
    expect 1 "$tmp/fp32.safetensors" "$octet" eval "$tmp/fp32.safetensors" --data "$tmp/tiny"
fi
# saving into a missing directory fails before training and leaves nothing behind
expect 1 "$tmp/no/such/dir" "$octet" train mlp --data "$tmp/tiny" --epochs 1 --batch 2 \
    --hidden 4 --save "$tmp/no/such/dir/m.safetensors"
[ -e "$tmp/no" ] && { echo "FAIL: a failed --save created $tmp/no"; fails=$((fails + 1)); }
expect 2 "--layer-bits needs --qat" "$octet" train mlp --data "$tmp/tiny" --epochs 1 --layer-bits fc0=8
# a truncated model file
if [ -f "$tmp/tiny.safetensors" ]; then
    head -c 100 "$tmp/tiny.safetensors" >"$tmp/tiny-cut.safetensors"
    expect 1 "$tmp/tiny-cut.safetensors" "$octet" eval "$tmp/tiny-cut.safetensors" --data "$tmp/tiny"
    # the model records its data directory: eval defaults to it (Fashion-MNIST would not fit)
    ok "the MLP records its data" "octet.source = $(realpath "$tmp/tiny")" "$octet" inspect \
        "$tmp/tiny.safetensors"
    ok "eval: the recorded data" "test accuracy" "$octet" eval "$tmp/tiny.safetensors"
fi

# the classes come from the labels (here 0..25), the normalization from the training pixels
mkdir -p "$tmp/tiny26" "$tmp/tinybig"
cp "$tmp/tiny/"*images* "$tmp/tiny26/"
printf '\x00\x00\x08\x01\x00\x00\x00\x04\x00\x19\x02\x03' >"$tmp/tiny26/train-labels-idx1-ubyte"
cp "$tmp/tiny26/train-labels-idx1-ubyte" "$tmp/tiny26/t10k-labels-idx1-ubyte"
ok "train mlp on 26 classes" "test accuracy" "$octet" train mlp --data "$tmp/tiny26" --epochs 1 \
    --batch 2 --hidden 8 --save "$tmp/tiny26.safetensors"
ok "26 classes, tiny pixels' statistics" "sizes = 4,8,26" "$octet" inspect "$tmp/tiny26.safetensors"
ok "tiny pixels' mean 0.4706" "input_mean = 0.470600009" "$octet" inspect "$tmp/tiny26.safetensors"
ok "tiny pixels' std 0.2892" "input_std = 0.289200008" "$octet" inspect "$tmp/tiny26.safetensors"
expect 1 "classes" "$octet" eval "$tmp/tiny.safetensors" --data "$tmp/tiny26"
cp "$tmp/tiny/"*images* "$tmp/tiny/train-labels-idx1-ubyte" "$tmp/tinybig/"
cp "$tmp/tiny26/t10k-labels-idx1-ubyte" "$tmp/tinybig/"
expect 1 "the test labels go up to 25, the training labels to 3" "$octet" train mlp \
    --data "$tmp/tinybig" --epochs 1 --batch 2
printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08' \
    >"$tmp/tinybig/t10k-images-idx3-ubyte"
cp "$tmp/tiny/t10k-labels-idx1-ubyte" "$tmp/tinybig/"
expect 1 "the test images are 1x2, the training images 2x2" "$octet" train mlp \
    --data "$tmp/tinybig" --epochs 1 --batch 2
# train mlp: every QAT flag needs --qat; --from without it fine-tunes a fp32 model in fp32 (the
# saved model has no quantizers), and a QAT model only under QAT
if [ -f "$tmp/tiny.safetensors" ]; then
    ok "train mlp --from (fp32)" "fp32 test accuracy" "$octet" train mlp --data "$tmp/tiny" \
        --epochs 1 --batch 2 --from "$tmp/tiny.safetensors" --save "$tmp/tft.safetensors"
    "$octet" inspect "$tmp/tft.safetensors" | grep -q "octet.qat" &&
        { echo "FAIL: an fp32 fine-tune saved quantizers"; fails=$((fails + 1)); }
fi
for f in "--fp32-epochs 1" "--freeze-after 3" "--weight-bits 4" \
    "--act-bits 4" "--layer-bits fc0=8" "--per-tensor-weights" "--weight-quant lsq" \
    "--act-quant pact" "--obs-momentum 0.1"; do
    expect 2 "${f%% *} needs --qat" "$octet" train mlp --data "$tmp/tiny" --epochs 1 $f
done
expect 2 "--fp32-epochs 2 leaves no QAT epoch" "$octet" train mlp --qat --data "$tmp/tiny" \
    --epochs 2 --fp32-epochs 2
# the help shows the real defaults: --wd's is 0 (adamw's 0.01 said in words), --data takes
# uncompressed IDX files too (as the tiny set is)
"$octet" train mlp --help >"$tmp/out"
grep -qE -- '--wd X .*adamw: 0.01 unless given.*\(default 0\)$' "$tmp/out" &&
    grep -qE -- "--data DIR .*gzip'ed or not" "$tmp/out" ||
    { echo "FAIL: train mlp --help: --wd or --data:"; grep -E -- '--wd|--data' "$tmp/out"; fails=$((fails + 1)); }
# --log: a config event first, then one event per epoch that says whether it was QAT
ok "train mlp --qat --log" "qat   train loss" "$octet" train mlp --qat --data "$tmp/tiny" \
    --epochs 2 --batch 2 --hidden 8 --log "$tmp/mlp.jsonl" --save "$tmp/tq8.safetensors"
{ sed -n 1p "$tmp/mlp.jsonl" | grep -q '^{"event":"config","sizes":\[4,8,4\],"activation":"relu",.*"qat":true,"fp32_epochs":1,"qat_config":{"weight_bits":8,' &&
    sed -n 2p "$tmp/mlp.jsonl" | grep -q '^{"event":"epoch","epoch":1,"qat":false,' &&
    sed -n 3p "$tmp/mlp.jsonl" | grep -q '^{"event":"epoch","epoch":2,"qat":true,'; } ||
    { echo "FAIL: train mlp --log:"; cat "$tmp/mlp.jsonl"; fails=$((fails + 1)); }
# --compare needs the export's own architecture; an output may not be one of the run's inputs
"$octet" train mlp --qat --data "$tmp/tiny" --epochs 2 --batch 2 --hidden 6 \
    --save "$tmp/tq6.safetensors" >/dev/null 2>&1
"$octet" export "$tmp/tq8.safetensors" -o "$tmp/tq8.int8.safetensors" >/dev/null
expect 1 "a QAT model of other layer sizes, where the QAT model the export came from is expected" \
    "$octet" eval --int8 "$tmp/tq8.int8.safetensors" --data "$tmp/tiny" --compare "$tmp/tq6.safetensors"
expect 1 "an fp32 model, where the QAT model" "$octet" eval --int8 "$tmp/tq8.int8.safetensors" \
    --data "$tmp/tiny" --compare "$tmp/tiny.safetensors"
# an int8 export given as MODEL is evaluated as with --int8
ok "eval of an int8 export" "int8 test accuracy" "$octet" eval "$tmp/tq8.int8.safetensors" \
    --data "$tmp/tiny" --compare "$tmp/tq8.safetensors"
expect 2 "the same file as the model" "$octet" export "$tmp/tq8.safetensors" -o "$tmp/tq8.safetensors"
expect 2 "the same file as a file of --data" "$octet" train mlp --data "$tmp/tiny" --epochs 1 \
    --save "$tmp/tiny/t10k-images-idx3-ubyte"
expect 2 "a QAT model, fine-tuned under QAT only: add --qat" "$octet" train mlp \
    --from "$tmp/tq8.safetensors" --data "$tmp/tiny" --epochs 1
expect 2 "--log $tmp/tq8.safetensors: the same file as --from" "$octet" train mlp --qat \
    --from "$tmp/tq8.safetensors" --data "$tmp/tiny" --epochs 1 --log "$tmp/tq8.safetensors"
expect 2 "--save $tmp/tiny.txt: the same file as --text" "$octet" train gpt "${gpt_flags[@]}" \
    --save "$tmp/tiny.txt"
"$octet" eval "$tmp/tq8.safetensors" --data "$tmp/tiny" >/dev/null 2>&1 && grep -q "^and the light" "$tmp/tiny.txt" ||
    { echo "FAIL: a refused run changed its input"; fails=$((fails + 1)); }
expect 2 "unknown kind 'train foo'" "$octet" train foo
expect 2 "got '32,'" "$octet" train mlp --hidden 32,
if [ -f "$tmp/tiny.safetensors" ]; then
    # --from takes the layers and activation from the file: their flags are refused
    "$octet" train mlp --data "$tmp/tiny" --epochs 1 --batch 2 --hidden 6,5 \
        --save "$tmp/t65.safetensors" >/dev/null 2>&1
    ok "train mlp --qat --from (its layers)" "qat   train loss" "$octet" train mlp --qat \
        --from "$tmp/t65.safetensors" --data "$tmp/tiny" --epochs 1 --batch 2 \
        --save "$tmp/t65q.safetensors"
    ok "--from keeps the layers" "octet.sizes = 4,6,5,4" "$octet" inspect "$tmp/t65q.safetensors"
    for f in "--hidden 6,5" "--activation tanh" "--activation relu"; do
        expect 2 "${f%% *}: the architecture comes from --from $tmp/t65.safetensors" "$octet" \
            train mlp --qat --from "$tmp/t65.safetensors" --data "$tmp/tiny" --epochs 1 $f
    done
    # a tanh model stays tanh: QAT (ReLU only) refuses it, naming the file
    "$octet" train mlp --data "$tmp/tiny" --epochs 1 --batch 2 --hidden 8 --activation tanh \
        --save "$tmp/ttanh.safetensors" >/dev/null 2>&1
    expect 2 "--from $tmp/ttanh.safetensors: the MLP must use relu" "$octet" train mlp --qat \
        --from "$tmp/ttanh.safetensors" --data "$tmp/tiny" --epochs 1
    expect 2 "--init: the weights come from --from" "$octet" train mlp --qat \
        --from "$tmp/t65.safetensors" --data "$tmp/tiny" --epochs 1 --init xavier_uniform
    expect 1 "--from $tmp/tiny.safetensors: the model takes 4 inputs for 4 classes, the images in $tmp/tiny26 have 4 pixels and 26 classes" \
        "$octet" train mlp --qat --from "$tmp/tiny.safetensors" --data "$tmp/tiny26" --epochs 1
    # --fp32-epochs from a fp32 model: its warm-up (0 unless given)
    ok "train mlp --qat --from --fp32-epochs" "fp32 warm-up done" "$octet" train mlp --qat \
        --from "$tmp/tiny.safetensors" --data "$tmp/tiny" --epochs 2 --batch 2 --fp32-epochs 1
    grep -q "^epoch 1/2  fp32 " "$tmp/out" && grep -q "^epoch 2/2  qat " "$tmp/out" ||
        { echo "FAIL: --from --fp32-epochs 1:"; cat "$tmp/out"; fails=$((fails + 1)); }
    ok "train mlp --qat --from (no warm-up)" "epoch 1/1  qat " "$octet" train mlp --qat \
        --from "$tmp/tiny.safetensors" --data "$tmp/tiny" --epochs 1 --batch 2
    # --from a QAT model keeps all its quantization settings (per-tensor weights, bits, layer
    # bits, quantizers) and refuses the flags that would change them, --fp32-epochs too
    ok "calibrate mlp per-tensor" "4-bit per-tensor (fc1=6) weights" "$octet" calibrate \
        "$tmp/tiny.safetensors" --data "$tmp/tiny" --batches 2 --per-tensor-weights \
        --weight-bits 4 --layer-bits fc1=6 --act-bits 7 --act-quant minmax -o "$tmp/tpt.safetensors"
    ok "train mlp --qat --from per-tensor" "qat   train loss" "$octet" train mlp --qat \
        --from "$tmp/tpt.safetensors" --data "$tmp/tiny" --epochs 1 --batch 2 \
        --save "$tmp/tptf.safetensors"
    for m in tpt tptf; do "$octet" inspect "$tmp/$m.safetensors" | grep -F "octet.qat ="; done >"$tmp/out"
    [ "$(sort -u "$tmp/out" | wc -l)" = 1 ] && grep -qF '"per_tensor_weights":true' "$tmp/out" ||
        { echo "FAIL: --from a per-tensor QAT model changed its settings:"; cat "$tmp/out"; fails=$((fails + 1)); }
    ok "export per-tensor fine-tune" "layers" "$octet" export "$tmp/tptf.safetensors" \
        -o "$tmp/tptf8.safetensors"
    [ "$("$octet" inspect "$tmp/tptf8.safetensors" | grep -cE '^  fc[01] .* ([0-9.e-]+)\.\.\1$')" = 2 ] ||
        { echo "FAIL: the per-tensor fine-tune exports per-channel scales"; fails=$((fails + 1)); }
    for f in "--per-tensor-weights" "--weight-bits 4" "--layer-bits fc1=6" "--act-quant minmax" \
        "--fp32-epochs 1"; do
        expect 2 "a QAT model, whose quantizers come with it: drop ${f%% *}" "$octet" train mlp \
            --qat --from "$tmp/tpt.safetensors" --data "$tmp/tiny" --epochs 2 $f
    done
fi

# octet calibrate of MLPs (of GPTs: test_cli_gpt.sh)
# GPTQ: the codes it chose are the export's, bit for bit, for an MLP (for a GPT: test_cli_gpt.sh)
if [ -f "$tmp/tiny.safetensors" ]; then
    ok "calibrate mlp gptq" "2-bit GPTQ weights" "$octet" calibrate "$tmp/tiny.safetensors" \
        --data "$tmp/tiny" --batches 2 --weight-quant gptq --weight-bits 2 -o "$tmp/tg.safetensors"
    "$octet" export "$tmp/tg.safetensors" -o "$tmp/tg8.safetensors" >/dev/null
    ok "eval --compare mlp gptq" "logits bit-identical on 4/4" "$octet" eval --int8 \
        "$tmp/tg8.safetensors" --data "$tmp/tiny" --compare "$tmp/tg.safetensors"
    # QAT from it keeps its quantizers (QAT from the first epoch) and exports bit for bit
    ok "train mlp --from calibrated --qat" "qat   train loss" "$octet" train mlp --qat \
        --from "$tmp/tg.safetensors" --data "$tmp/tiny" --epochs 1 --batch 2 \
        --save "$tmp/tgf.safetensors"
    "$octet" export "$tmp/tgf.safetensors" -o "$tmp/tgf8.safetensors" >/dev/null
    ok "eval --compare mlp gptq fine-tune" "logits bit-identical on 4/4" "$octet" eval --int8 \
        "$tmp/tgf8.safetensors" --data "$tmp/tiny" --compare "$tmp/tgf.safetensors"
    expect 2 "drop --act-bits" "$octet" train mlp --qat --from "$tmp/tg.safetensors" \
        --data "$tmp/tiny" --epochs 1 --batch 2 --act-bits 4
    # calibrate (min-max ranges), export and eval; export --float16
    ok "calibrate mlp" "simulated quantized test accuracy" "$octet" calibrate "$tmp/tiny.safetensors" \
        --data "$tmp/tiny" --batches 2 -o "$tmp/tc.safetensors"
    ok "export calibrated mlp" "layers" "$octet" export "$tmp/tc.safetensors" -o "$tmp/tc8.safetensors"
    ok "eval calibrated mlp" "accuracy" "$octet" eval --int8 "$tmp/tc8.safetensors" --data "$tmp/tiny"
    ok "export mlp --float16" "float16 MLP" "$octet" export "$tmp/tiny.safetensors" --float16 \
        -o "$tmp/t16.safetensors"
    ok "eval mlp float16" "test accuracy" "$octet" eval "$tmp/t16.safetensors" --data "$tmp/tiny"
    expect 2 "--embed-bits" "$octet" calibrate "$tmp/tiny.safetensors" --data "$tmp/tiny" \
        --embed-bits 8 -o "$tmp/cal.safetensors"
fi
if [ -f "$tmp/fp32.safetensors" ]; then
    expect 1 "takes 784 inputs" "$octet" calibrate "$tmp/fp32.safetensors" --data "$tmp/tiny" \
        -o "$tmp/cal.safetensors"
fi
[ -e "$tmp/cal.safetensors" ] && { echo "FAIL: a failed calibrate wrote its output"; fails=$((fails + 1)); }

# ---- model and data files that load with one line naming the file and the key or tensor ----
if [ -f "$tmp/tiny.safetensors" ]; then
    # import: the metadata export --torch writes must agree with the tensors and the flags' ranges
    "$octet" export "$tmp/tiny.safetensors" --torch -o "$tmp/tiny2.pt.safetensors" >/dev/null
    set_meta "$tmp/tiny2.pt.safetensors" "$tmp/bad.pt.safetensors" std "9999999"
    expect 1 "metadata 'std' is '9999999', expected a number in [1e-09, 1e+06] (as --std)" \
        "$octet" import "$tmp/bad.pt.safetensors" -o "$tmp/imp2.safetensors"
    set_meta "$tmp/tiny2.pt.safetensors" "$tmp/bad.pt.safetensors" mean "nan"
    expect 1 "metadata 'mean' is 'nan'" "$octet" import "$tmp/bad.pt.safetensors" \
        -o "$tmp/imp2.safetensors"
    set_meta "$tmp/tiny2.pt.safetensors" "$tmp/bad.pt.safetensors" activation "elu"
    expect 1 "metadata 'activation' is 'elu', expected relu, gelu, tanh or none" "$octet" import \
        "$tmp/bad.pt.safetensors" -o "$tmp/imp2.safetensors"
    # a recorded data path with a control character is not carried over (errors are one line)
    # (perl writes the JSON escape \n in place, padded to the old length)
    perl -0777 -pe 'BEGIN { $n = q{"octet.source":"/x\nfake: y"} }
        s/("octet.source":"[^"]*")/$n . " " x (length($1) - length($n))/e' \
        "$tmp/tiny2.pt.safetensors" >"$tmp/bad.pt.safetensors"
    "$octet" inspect "$tmp/bad.pt.safetensors" | grep -q "^fake: y" &&
        "$octet" import "$tmp/bad.pt.safetensors" -o "$tmp/imp4.safetensors" >/dev/null &&
        ! "$octet" inspect "$tmp/imp4.safetensors" | grep -q "octet.source" ||
        { echo "FAIL: import carried a recorded path with a newline"; fails=$((fails + 1)); }
    # a state dict for PyTorch has no octet.crc32: saved again from PyTorch with its metadata
    # (the data in another order), it still imports
    "$octet" inspect "$tmp/tiny2.pt.safetensors" | grep -q "octet.crc32" &&
        { echo "FAIL: export --torch wrote a checksum"; fails=$((fails + 1)); }
    # a GPT's metadata keys do not matter in an MLP (nor the GELU form without a GELU)
    LC_ALL=C sed 's/"format":"pt"/"gelu":"xy"  /' "$tmp/tiny2.pt.safetensors" >"$tmp/bad.pt.safetensors"
    ok "import: a GELU form without a GELU" "saved" "$octet" import "$tmp/bad.pt.safetensors" \
        -o "$tmp/imp2.safetensors"
    expect 1 "metadata 'gelu' is 'xy': an octet MLP's GELU is the tanh form" "$octet" import \
        "$tmp/bad.pt.safetensors" --activation gelu -o "$tmp/imp3.safetensors"
    # the input normalization must be finite
    set_meta "$tmp/tiny.safetensors" "$tmp/bad.safetensors" octet.input_std "inf"
    expect 1 "$tmp/bad.safetensors: metadata 'octet.input_std' is not a finite number: 'inf'" \
        "$octet" eval "$tmp/bad.safetensors" --data "$tmp/tiny"
    # export --float16 loads the model first: a model no command reads is refused, writing nothing
    set_meta "$tmp/tiny.safetensors" "$tmp/bad.safetensors" octet.sizes "abc"
    expect 1 "$tmp/bad.safetensors: bad octet.sizes 'abc'" "$octet" export "$tmp/bad.safetensors" \
        --float16 -o "$tmp/bad16.safetensors"
    set_meta "$tmp/tiny.safetensors" "$tmp/bad.safetensors" octet.activation "x"
    expect 1 "$tmp/bad.safetensors" "$octet" export "$tmp/bad.safetensors" --float16 \
        -o "$tmp/bad16.safetensors"
    # ... and so is a weight that float16 would make infinite (a state dict written byte by byte:
    # one 4x4 layer whose first weight is 70000.0)
    hdr='{"fc1.weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}'
    { printf "$(printf '\\x%02x' ${#hdr})\0\0\0\0\0\0\0%s\x00\xb8\x88\x47" "$hdr"; head -c 60 /dev/zero; } \
        >"$tmp/big.pt.safetensors"
    "$octet" import "$tmp/big.pt.safetensors" -o "$tmp/big.safetensors" >/dev/null
    expect 1 "tensor 'fc0.weight' holds 70000 at index 0, beyond float16's range" "$octet" export \
        "$tmp/big.safetensors" --float16 -o "$tmp/bad16.safetensors"
    [ -e "$tmp/bad16.safetensors" ] && { echo "FAIL: a refused --float16 wrote its output"; fails=$((fails + 1)); }
    # calibrate checks its data as eval does: training labels beyond the model's classes (an
    # assertion before) and test images of another size (calibrated and reported before)
    mkdir -p "$tmp/cal-labels" "$tmp/cal-dims"
    cp "$tmp/tiny/"*images* "$tmp/tiny/t10k-labels-idx1-ubyte" "$tmp/cal-labels/"
    cp "$tmp/tiny26/train-labels-idx1-ubyte" "$tmp/cal-labels/"
    expect 1 "$tmp/tiny.safetensors takes 4 inputs for 4 classes, but the training images in $tmp/cal-labels have 4 pixels (2x2) and labels up to 25" \
        "$octet" calibrate "$tmp/tiny.safetensors" --data "$tmp/cal-labels" -o "$tmp/cal2.safetensors"
    cp "$tmp/tiny/"*labels* "$tmp/tiny/train-images-idx3-ubyte" "$tmp/cal-dims/"
    printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x03' >"$tmp/cal-dims/t10k-images-idx3-ubyte"
    printf '\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c' >>"$tmp/cal-dims/t10k-images-idx3-ubyte"
    expect 1 "the test images in $tmp/cal-dims have 3 pixels (1x3)" "$octet" calibrate \
        "$tmp/tiny.safetensors" --data "$tmp/cal-dims" -o "$tmp/cal2.safetensors"
    expect 1 "the test images in $tmp/cal-dims have 3 pixels (1x3)" "$octet" eval \
        "$tmp/tiny.safetensors" --data "$tmp/cal-dims"
    [ -e "$tmp/cal2.safetensors" ] && { echo "FAIL: a refused calibrate wrote its output"; fails=$((fails + 1)); }
fi

[ "$fails" = 0 ] && echo "cli: all checks passed"
exit $((fails > 0))
