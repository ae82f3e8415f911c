#!/usr/bin/python3
"""PyTorch reference for octet's Fashion-MNIST QAT benchmark (eager-mode torch.ao.quantization).

The MLP of torch_mlp.py (QuantStub -> fc1+ReLU -> fc2+ReLU -> fc3 -> DeQuantStub) trains
--fp32-epochs in float (Adam lr 1e-3, batch 128). Then, for each quantized engine in --engines:
a copy of that model gets Linear+ReLU fused, get_default_qat_qconfig(engine) (qnnpack:
per-tensor weights; onednn/fbgemm/x86: per-channel weights), prepare_qat, a fresh Adam, and
--qat-epochs QAT epochs (each timed); then convert() makes a true int8 model, evaluated with
torch.backends.quantized.engine = engine. Reported per engine: s per QAT epoch (best of the
QAT epochs), fake-quant and int8 test accuracy, time to run the 10k test images at batch 1
and 256, int8 state_dict size.
Also reported: fp32 accuracy, fp32 eval times at the same batches, fp32 state_dict size.

Eval timings are best and median of --eval-repeats passes after a short warm-up pass.
Run with OPENBLAS_NUM_THREADS=1. One JSON line on stdout.
"""

import argparse
import copy

import torch
import torch.ao.quantization as tq

from torch_common import (
    MLP,
    accuracy,
    emit,
    eval_seconds,
    load_fashion,
    log,
    set_threads,
    state_dict_bytes,
    timed,
    train_epoch,
)

EVAL_BATCHES = (1, 256)


def eval_times(model, xte, repeats):
    out = {}
    for b in EVAL_BATCHES:
        out[str(b)] = eval_seconds(model, xte, b, repeats)
        log(f"  eval batch {b}: best {out[str(b)]['best']:.3f} s, "
            f"median {out[str(b)]['median']:.3f} s for {xte.shape[0]} images")
    return out


def describe_qconfig(qconfig):
    """A short text such as 'act quint8 [0,255] per_tensor_affine; weight qint8 ...'."""

    def one(fq):
        return (f"{str(fq.dtype).replace('torch.', '')} [{fq.quant_min},{fq.quant_max}] "
                f"{str(fq.qscheme).replace('torch.', '')}")

    return f"act {one(qconfig.activation())}; weight {one(qconfig.weight())}"


def qat_for_engine(engine, fp32_model, args, data):
    xtr, ytr, xte, yte = data
    torch.backends.quantized.engine = engine
    model = copy.deepcopy(fp32_model)
    model.train()
    tq.fuse_modules_qat(model, [["fc1", "relu1"], ["fc2", "relu2"]], inplace=True)
    model.qconfig = tq.get_default_qat_qconfig(engine)
    tq.prepare_qat(model, inplace=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed + 1)
    epoch_secs = []
    for e in range(args.qat_epochs):
        dt, (loss, _) = timed(lambda: train_epoch(model, opt, xtr, ytr, args.batch, gen))
        epoch_secs.append(dt)
        log(f"[{engine}] QAT epoch {e + 1}: loss {loss:.4f} ({dt:.2f} s)")
    fq_acc = accuracy(model, xte, yte)
    model.eval()
    int8 = tq.convert(model)
    int8_acc = accuracy(int8, xte, yte)
    log(f"[{engine}] fake-quant test acc {fq_acc:.4f}, int8 test acc {int8_acc:.4f}")
    res = {
        "qconfig": describe_qconfig(tq.get_default_qat_qconfig(engine)),
        "qat_epoch_seconds": epoch_secs,
        "s_per_qat_epoch": min(epoch_secs) if epoch_secs else None,  # best of the QAT epochs
        "fakequant_test_acc": fq_acc,
        "int8_test_acc": int8_acc,
        "int8_eval_seconds": eval_times(int8, xte, args.eval_repeats),
        "int8_state_dict_bytes": state_dict_bytes(int8),
    }
    # Post-training dynamic quantization of the fp32 model (int8 weights, activations quantized
    # at run time), what `octet export --dynamic` does.
    dyn = tq.quantize_dynamic(copy.deepcopy(fp32_model).eval(), {torch.nn.Linear}, dtype=torch.qint8)
    res["dynamic_test_acc"] = accuracy(dyn, xte, yte)
    log(f"[{engine}] dynamic int8 test acc {res['dynamic_test_acc']:.4f}")
    res["dynamic_eval_seconds"] = eval_times(dyn, xte, args.eval_repeats)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--fp32-epochs", type=int, default=3)
    p.add_argument("--qat-epochs", type=int, default=2)
    p.add_argument("--engines", default=None,
                   help="comma list of quantized engines (default: qnnpack and onednn, or "
                        "fbgemm if onednn is not in torch.backends.quantized.supported_engines)")
    p.add_argument("--eval-repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.qat_epochs < 1:
        p.error("--qat-epochs must be >= 1 (convert needs calibrated observers)")
    supported = torch.backends.quantized.supported_engines
    if args.engines is None:
        engines = ["qnnpack", "onednn" if "onednn" in supported else "fbgemm"]
    else:
        engines = args.engines.split(",")
    for e in engines:
        if e not in supported:
            p.error(f"engine {e} not in torch.backends.quantized.supported_engines {supported}")
    set_threads(args.threads)
    data = load_fashion(args.data)
    xtr, ytr, xte, yte = data

    torch.manual_seed(args.seed)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    for e in range(args.fp32_epochs):
        dt, (loss, _) = timed(lambda: train_epoch(model, opt, xtr, ytr, args.batch, gen))
        log(f"fp32 epoch {e + 1}: loss {loss:.4f} ({dt:.2f} s)")
    fp32_acc = accuracy(model, xte, yte)
    log(f"fp32 test acc {fp32_acc:.4f}")
    log("fp32 eval:")
    results = {
        "fp32_epochs": args.fp32_epochs,
        "qat_epochs": args.qat_epochs,
        "fp32_test_acc": fp32_acc,
        "fp32_eval_seconds": eval_times(model, xte, args.eval_repeats),
        "fp32_state_dict_bytes": state_dict_bytes(model),
        "engines": {e: qat_for_engine(e, model, args, data) for e in engines},
    }
    emit("torch_qat_mlp", args.threads, results)


if __name__ == "__main__":
    main()
