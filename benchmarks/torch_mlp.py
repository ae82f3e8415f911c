#!/usr/bin/python3
"""PyTorch reference for octet's Fashion-MNIST MLP benchmark.

784-256-128-10 ReLU MLP (nn.Linear default init), Adam (lr 1e-3), batch 128, cross-entropy,
inputs normalized with (x/255 - 0.2860)/0.3530, shuffled minibatches (last one partial).

  --epochs N --schedule constant|cosine   train N epochs, report test accuracy per epoch
  --time-epochs N                         report seconds per training epoch (best of N;
                                          the median and all samples are in the JSON too)

Timing covers only the training loop over the 60000 in-memory float images (batch gather,
zero_grad, forward, backward, step); 20 warm-up steps run first and are not timed.
--threads best times torch threads 1 and 2 and reports both and the faster; accuracy runs use
the last thread count tried. Run with OPENBLAS_NUM_THREADS=1. One JSON line on stdout.
"""

import argparse

import torch

from torch_common import (
    MLP,
    accuracy,
    cosine_lr,
    emit,
    load_fashion,
    log,
    parse_threads,
    save_safetensors,
    set_threads,
    summarize,
    timed,
    train_epoch,
)

WARMUP_STEPS = 20


def make_model(seed, lr):
    torch.manual_seed(seed)
    model = MLP()
    return model, torch.optim.Adam(model.parameters(), lr=lr)


def time_epochs(args, data, threads):
    xtr, ytr = data[0], data[1]
    set_threads(threads)
    model, opt = make_model(args.seed, args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    n_warm = WARMUP_STEPS * args.batch
    train_epoch(model, opt, xtr[:n_warm], ytr[:n_warm], args.batch, gen)
    secs = []
    for e in range(args.time_epochs):
        dt, (loss, _) = timed(lambda: train_epoch(model, opt, xtr, ytr, args.batch, gen))
        secs.append(dt)
        log(f"threads {threads} timed epoch {e + 1}: {dt:.3f} s (loss {loss:.4f})")
    return summarize(secs)


def train_for_accuracy(args, data, threads):
    xtr, ytr, xte, yte = data
    set_threads(threads)
    model, opt = make_model(args.seed, args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = -(-xtr.shape[0] // args.batch)
    total = args.epochs * steps_per_epoch
    lr_at = (lambda s: cosine_lr(args.lr, s, total)) if args.schedule == "cosine" else None
    per_epoch = []
    step = 0
    for e in range(args.epochs):
        dt, (loss, steps) = timed(
            lambda: train_epoch(model, opt, xtr, ytr, args.batch, gen, lr_at, step)
        )
        step += steps
        acc = accuracy(model, xte, yte)
        per_epoch.append({"epoch": e + 1, "train_loss": loss, "test_acc": acc, "seconds": dt})
        log(f"epoch {e + 1}: loss {loss:.4f} test acc {acc:.4f} ({dt:.2f} s)")
    if args.save:
        save_safetensors(args.save, model)
        log(f"saved {args.save}")
    return {"schedule": args.schedule, "threads": threads, "epochs": per_epoch}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", default="1", help="torch threads: 1, 2 or best (default 1)")
    p.add_argument("--epochs", type=int, default=0, help="train N epochs, report accuracy")
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="constant lr, or per-step cosine decay from lr to 0 over all epochs")
    p.add_argument("--time-epochs", type=int, default=0, help="time N training epochs")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="after --epochs: the state dict as safetensors (octet import)")
    args = p.parse_args()
    if args.epochs <= 0 and args.time_epochs <= 0:
        p.error("give --epochs N and/or --time-epochs N")
    thread_list = parse_threads(args.threads)
    data = load_fashion(args.data)
    results = {"batch": args.batch, "lr": args.lr, "seed": args.seed}
    if args.time_epochs > 0:
        timing = {str(t): time_epochs(args, data, t) for t in thread_list}
        fastest = min(thread_list, key=lambda t: timing[str(t)]["best"])
        results["s_per_epoch_by_threads"] = timing
        results["fastest_threads"] = fastest
        results["s_per_epoch"] = timing[str(fastest)]["best"]
        log("s/epoch best (median): " + ", ".join(
            f"threads {t}: {timing[str(t)]['best']:.3f} ({timing[str(t)]['median']:.3f})"
            for t in thread_list))
    if args.epochs > 0:
        results["train"] = train_for_accuracy(args, data, thread_list[-1])
        results["final_test_acc"] = results["train"]["epochs"][-1]["test_acc"]
    emit("torch_mlp", args.threads, results)


if __name__ == "__main__":
    main()
