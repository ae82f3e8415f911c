#!/usr/bin/python3
"""PyTorch reference for octet's char-level GPT benchmark.

Decoder-only GPT, pre-LayerNorm, 4 layers, 4 heads, width 128, context 128, MLP 512, GELU
(tanh approximation), learned positional embeddings, no dropout, GPT-2 init (normal std 0.02,
residual projections std 0.02/sqrt(2*n_layer), zero biases), untied embeddings unless --tied;
--positions learned+rope also rotates q and k as octet's (GPT-NeoX layout, base 10000), and
--positions rope does only that (no wpe).
Causal attention is written out (q@k^T/sqrt(hs), masked_fill, softmax, @v): torch 1.13 has no
F.scaled_dot_product_attention. AdamW (lr 1e-3 constant unless --schedule cosine or
linear with --warmup, --min-lr, --decay and --clip, as octet's recipes; betas 0.9/0.999,
weight decay 0.1 on parameters with >= 2 dims: Linear weights and both embeddings), batch
32. --optim muon uses Muon for the blocks' Linear weights instead (written out below as
octet's OCT_OPTIM_MUON and torch 2.9's torch.optim.Muon with adjust_lr_fn="match_rms_adamw"
compute it, in float32, here with q, k and v orthogonalized apart and a momentum warmup as in
octet's GPT recipe: torch 1.13 has no Muon) and AdamW for the rest, with the same lr.

Data: the corpus file is read as bytes; the vocabulary is its sorted unique bytes; the first
90% is the training split, the rest validation. Training windows are drawn with a seeded
torch.Generator; validation loss (nats/char) is the mean over --val-batches fixed random
validation batches (their own seeded generator, the same batches every time).

QAT: every nn.Linear (attention qkv and projection, MLP, lm_head) becomes
QuantStub -> qat.Linear -> DeQuantStub via torch.ao.quantization.prepare_qat: uint8
per-tensor activation fake-quant on the input and the output, int8 per-channel symmetric
weight fake-quant. LayerNorm, softmax, GELU and the attention matmuls stay float.
--qconfig octet uses activations [0,255] and weights [-127,127] (octet's NUMERICS.md);
--qconfig fbgemm uses get_default_qat_qconfig('fbgemm') (7-bit reduce_range activations).

Modes (both may be given; --steps 0 skips training):
  --steps N [--qat-after S]   train N steps (fp32 before step S, QAT from step S on; S < 0 =
                              never), report validation loss and tokens/s of the run (steps
                              after the first 5; a mixed run mixes fp32 and QAT speeds)
  --bench-steps K             fresh fp32 and fresh QAT models: 5 warm-up steps, then K timed
                              steps each; report tokens/s
  --save FILE, --sample P     after --steps (fp32): the state dict as safetensors for
                              `octet import`; the greedy continuation of prompt P (--sample-n)
tokens/s = batch*context / median step time ("tokens_per_s_mean" = from the total time).
Run with OPENBLAS_NUM_THREADS=1. One JSON line on stdout.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.ao.quantization as tq
from torch import nn
from torch.nn import functional as F

from torch_common import emit, log, save_safetensors, set_threads, summarize

WARMUP_STEPS = 5


def rope_tables(T, hs):
    """cos and sin (T, hs/2) of octet's rotary angles t * 10000^(-2i/hs) (float64, then float32)."""
    inv = 10000.0 ** (-2.0 * torch.arange(hs // 2, dtype=torch.float64) / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def rope(x, c, s):
    """octet's oct_nl_rope_row on x (B, heads, T, hs): each head's first half paired with its
    second, rotated by the angles of its position (c, s: (T, hs/2))."""
    a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.rope = cfg.positions != "learned"
        if self.rope:
            c, s = rope_tables(cfg.block, cfg.n_embd // cfg.n_head)
            self.register_buffer("rope_cos", c, persistent=False)
            self.register_buffer("rope_sin", s, persistent=False)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.c_proj.residual_proj = True
        mask = torch.tril(torch.ones(cfg.block, cfg.block, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, cfg.block, cfg.block), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.rope:
            c, s = self.rope_cos[:T], self.rope_sin[:T]
            q, k = rope(q, c, s), rope(k, c, s)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(cfg.mlp, cfg.n_embd)
        self.c_proj.residual_proj = True

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, cfg, vocab):
        super().__init__()
        self.wte = nn.Embedding(vocab, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block, cfg.n_embd) if cfg.positions != "rope" else None
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, vocab, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                std = 0.02 / math.sqrt(2 * cfg.n_layer) if hasattr(m, "residual_proj") else 0.02
                nn.init.normal_(m.weight, mean=0.0, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if cfg.tied:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


@torch.no_grad()
def greedy(model, vocab_bytes, prompt, n, block):
    """n characters after prompt, each the most likely one (octet generate --temperature 0)."""
    lut = {int(b): i for i, b in enumerate(vocab_bytes)}
    ids = [lut[b] for b in prompt.encode()]
    model.eval()
    for _ in range(n):
        logits = model(torch.tensor([ids[-block:]]))
        ids.append(int(logits[0, -1].argmax()))
    model.train()
    return bytes(int(vocab_bytes[i]) for i in ids).decode("latin-1")


def make_qconfig(name):
    if name == "fbgemm":
        return tq.get_default_qat_qconfig("fbgemm")
    act = tq.FusedMovingAvgObsFakeQuantize.with_args(
        observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
        dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False)
    weight = tq.FusedMovingAvgObsFakeQuantize.with_args(
        observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0, reduce_range=False)
    return tq.QConfig(activation=act, weight=weight)


def prepare_qat(model, qconfig):
    """Wraps every nn.Linear as QuantStub -> Linear -> DeQuantStub with the qconfig and lets
    torch.ao.quantization swap in qat.Linear and insert the fake-quant modules. Parameters
    keep their identity (qat.Linear.from_float reuses them), so the optimizer carries on."""

    def wrap(parent):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                seq = nn.Sequential(tq.QuantStub(), child, tq.DeQuantStub())
                seq.qconfig = qconfig
                setattr(parent, name, seq)
            else:
                wrap(child)

    wrap(model)
    model.train()
    tq.prepare_qat(model, inplace=True)


def newton_schulz5(g):
    """Five quintic Newton-Schulz iterations on g / ||g||_F (octet's oct_muon_orthogonalize)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.T if g.size(0) > g.size(1) else g
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.size(0) > g.size(1) else x


class Muon(torch.optim.Optimizer):
    """buf += (1 - mu)(g - buf); d = g + mu (buf - g); p *= 1 - lr wd;
    p -= lr * 0.2 * sqrt(max(rows, cols)) * NS5(d), each of a matrix's blocks[p] row blocks
    (the fused q/k/v weight: 3) orthogonalized and scaled on its own; mu rises linearly from
    0.85 to momentum over the first momentum_warmup steps (octet's oct_gpt_muon_blocks and
    momentum_warmup)."""

    def __init__(self, params, lr, blocks, momentum=0.95, weight_decay=0.1, momentum_warmup=0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.blocks, self.momentum_warmup, self.steps = blocks, momentum_warmup, 0

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            if self.steps < self.momentum_warmup:
                mu = 0.85 + self.steps / self.momentum_warmup * (mu - 0.85)
            for p in group["params"]:
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - mu)
                d = p.grad.lerp(buf, mu)
                k = self.blocks[p]
                update = torch.cat([newton_schulz5(b) for b in d.chunk(k)]) if k > 1 \
                    else newton_schulz5(d)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * 0.2 * math.sqrt(max(p.shape[0] // k, p.shape[1])))
        self.steps += 1


class Optimizers:
    """Steps several optimizers as one; param_groups lists all their groups."""

    def __init__(self, opts):
        self.opts = opts
        self.param_groups = [g for o in opts for g in o.param_groups]

    def zero_grad(self, set_to_none=True):
        for o in self.opts:
            o.zero_grad(set_to_none=set_to_none)

    def step(self):
        for o in self.opts:
            o.step()


def make_optimizer(model, args):
    hidden = [m.weight for b in model.blocks for m in b.modules()
              if isinstance(m, nn.Linear)] if args.optim == "muon" else []
    ids = {id(p) for p in hidden}
    params = [p for p in model.parameters() if id(p) not in ids]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    adamw = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    if not hidden:
        return adamw
    blocks = {m.weight: 3 for b in model.blocks for m in b.attn.modules()  # c_attn, maybe wrapped
              if isinstance(m, nn.Linear) and m.out_features == 3 * m.in_features}
    return Optimizers([Muon(hidden, args.lr, {p: blocks.get(p, 1) for p in hidden},
                            weight_decay=args.weight_decay,
                            momentum_warmup=args.muon_momentum_warmup), adamw])


def load_corpus(path):
    raw = np.fromfile(path, dtype=np.uint8)
    vocab = np.unique(raw)
    lut = np.zeros(256, dtype=np.int64)
    lut[vocab] = np.arange(len(vocab))
    tokens = torch.from_numpy(lut[raw])
    n_train = int(0.9 * len(tokens))
    return tokens[:n_train], tokens[n_train:], vocab


def get_batch(data, batch, block, gen):
    ix = torch.randint(len(data) - block, (batch,), generator=gen)
    x = torch.stack([data[i : i + block] for i in ix.tolist()])
    y = torch.stack([data[i + 1 : i + 1 + block] for i in ix.tolist()])
    return x, y


def lr_at(args, step):
    """octet's oct_lr_at: linear warmup over --warmup steps, then constant, cosine decay to
    --min-lr x lr at --steps, or linear: constant, then a straight line down to --min-lr x lr
    over the last --decay fraction of the steps after warmup."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.schedule == "constant":
        return args.lr
    t, span, lo = step - args.warmup, args.steps - args.warmup, args.lr * args.min_lr
    if t >= span:
        return lo
    if args.schedule == "linear":
        decay = round(args.decay * span) or span
        return args.lr if span - t >= decay else lo + (span - t) / decay * (args.lr - lo)
    return lo + 0.5 * (1.0 + math.cos(math.pi * t / span)) * (args.lr - lo)


def train_step(model, opt, data, args, gen, step=0):
    x, y = get_batch(data, args.batch, args.block, gen)
    if args.confidence_penalty > 0:  # octet's --confidence-penalty: cross-entropy - X entropy
        logp = F.log_softmax(model(x), dim=-1)
        ce = F.nll_loss(logp.view(-1, logp.shape[-1]), y.view(-1))
        loss = ce - args.confidence_penalty * -(logp.exp() * logp).sum(-1).mean()
    else:
        ce = loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if args.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    for g in opt.param_groups:
        g["lr"] = lr_at(args, step)
    opt.step()
    return ce.detach()


@torch.no_grad()
def val_loss(model, val, args):
    model.eval()
    gen = torch.Generator().manual_seed(args.seed + 1000)
    losses = [float(model(*get_batch(val, args.batch, args.block, gen)))
              for _ in range(args.val_batches)]
    model.train()
    return sum(losses) / len(losses)


def timed_steps(model, opt, data, args, gen, n, first=0):
    """Runs n steps (numbered from first), each timed with perf_counter; returns (seconds list,
    last loss)."""
    secs, loss = [], None
    for i in range(n):
        t0 = time.perf_counter()
        loss = float(train_step(model, opt, data, args, gen, first + i))
        secs.append(time.perf_counter() - t0)
    return secs, loss


def tokens_per_s(secs, args):
    """Tokens/s from the median step time (robust to other jobs on the machine) and from the
    total time."""
    tok = args.batch * args.block
    return {"median": tok / summarize(secs)["median"], "mean": tok * len(secs) / sum(secs)}


def bench(train, vocab, args, qat):
    torch.manual_seed(args.seed)
    model = GPT(args, vocab)
    if qat:
        prepare_qat(model, make_qconfig(args.qconfig))
    opt = make_optimizer(model, args)
    gen = torch.Generator().manual_seed(args.seed)
    timed_steps(model, opt, train, args, gen, WARMUP_STEPS)
    secs, loss = timed_steps(model, opt, train, args, gen, args.bench_steps)
    tps = tokens_per_s(secs, args)
    log(f"{'qat' if qat else 'fp32'}: {tps['median']:.0f} tokens/s (median of {len(secs)} steps), "
        f"{tps['mean']:.0f} (total time), loss {loss:.4f}")
    return {"tokens_per_s": tps["median"], "tokens_per_s_mean": tps["mean"],
            "step_seconds": summarize(secs)}


def train_run(train, val, vocab, args, vocab_bytes):
    torch.manual_seed(args.seed)
    model = GPT(args, vocab)
    opt = make_optimizer(model, args)
    gen = torch.Generator().manual_seed(args.seed)
    secs, curve = [], []
    step = 0
    while step < args.steps:
        if step == args.qat_after:
            prepare_qat(model, make_qconfig(args.qconfig))
            log(f"step {step}: switched to QAT")
        n = min(args.log_every, args.steps - step)
        if 0 <= args.qat_after and step < args.qat_after:
            n = min(n, args.qat_after - step)
        s, loss = timed_steps(model, opt, train, args, gen, n, step)
        secs += s
        step += n
        curve.append({"step": step, "train_loss": loss})
        log(f"step {step}: train loss {loss:.4f}, {args.batch * args.block * n / sum(s):.0f} tok/s")
    vl = val_loss(model, val, args)
    log(f"validation loss after {args.steps} steps: {vl:.4f} nats/char")
    if args.save:
        save_safetensors(args.save, model, {  # the architecture, as octet's export --torch
            "n_layer": str(args.n_layer), "n_head": str(args.n_head), "n_embd": str(args.n_embd),
            "block_size": str(args.block), "vocab_size": str(len(vocab_bytes)), "gelu": "tanh",
            "positions": args.positions, "vocab_bytes": json.dumps([int(b) for b in vocab_bytes])})
        log(f"saved {args.save}")
    timed = secs[WARMUP_STEPS:] if len(secs) > WARMUP_STEPS else secs
    tps = tokens_per_s(timed, args)
    sample = greedy(model, vocab_bytes, args.sample, args.sample_n, args.block) if args.sample else None
    return {"steps": args.steps, "qat_after": args.qat_after, "val_loss": vl, "sample": sample,
            "tokens_per_s": tps["median"], "tokens_per_s_mean": tps["mean"], "curve": curve,
            "train_seconds": sum(secs)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--text", default="/tmp/kjv.txt",
                   help="corpus (default /tmp/kjv.txt: bible -l0 gen1:1-rev22:21 > /tmp/kjv.txt)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--qat-after", type=int, default=-1, help="switch to QAT at this step")
    p.add_argument("--bench-steps", type=int, default=0)
    p.add_argument("--qconfig", choices=["octet", "fbgemm"], default="octet")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--block", type=int, default=128, help="context length")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--mlp", type=int, default=512)
    p.add_argument("--tied", action="store_true", help="tie lm_head to the token embedding")
    p.add_argument("--positions", choices=["learned", "learned+rope", "rope"], default="learned",
                   help="learned+rope: also rotary embedding of q and k, rope: that alone "
                        "(octet's --positions)")
    p.add_argument("--optim", choices=["adamw", "muon"], default="adamw",
                   help="muon: Muon for the blocks' Linear weights, AdamW for the rest")
    p.add_argument("--muon-momentum-warmup", type=int, default=300,
                   help="muon: steps over which the momentum rises from 0.85 to 0.95")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=["constant", "cosine", "linear"], default="constant",
                   help="after --warmup steps: constant lr, cosine decay to --min-lr x lr, or "
                   "constant then linear decay to it")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--min-lr", type=float, default=0.1, help="cosine, linear: final lr / lr")
    p.add_argument("--decay", type=float, default=1.0,
                   help="linear: fraction of the steps after warmup spent decaying")
    p.add_argument("--clip", type=float, default=0.0, help="clip the gradient norm (0: off)")
    p.add_argument("--confidence-penalty", type=float, default=0.0,
                   help="train on cross-entropy minus X times the entropy of the predictions "
                   "(octet's --confidence-penalty; reported losses stay the cross-entropy)")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--val-batches", type=int, default=20)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--save", help="after --steps: the model's state dict as safetensors (for "
                   "octet import)")
    p.add_argument("--sample", help="after --steps: greedy continuation of this prompt")
    p.add_argument("--sample-n", type=int, default=100, help="characters --sample adds")
    args = p.parse_args()
    if (args.save or args.sample) and (args.steps <= 0 or args.qat_after >= 0):
        p.error("--save and --sample need an fp32 run: --steps N without --qat-after")
    if args.steps <= 0 and args.bench_steps <= 0:
        p.error("nothing to do: give --steps N and/or --bench-steps K")
    if not 0 <= args.confidence_penalty <= 10:
        p.error(f"--confidence-penalty {args.confidence_penalty}: expected a number in [0, 10]")
    set_threads(args.threads)
    train, val, vocab_bytes = load_corpus(args.text)
    vocab = len(vocab_bytes)
    log(f"{args.text}: {len(train)} train / {len(val)} val chars, vocab {vocab}")
    results = {"vocab": vocab, "batch": args.batch, "block": args.block, "tied": args.tied,
               "positions": args.positions,
               "optim": args.optim,
               "muon_momentum_warmup": args.muon_momentum_warmup,
               "qconfig": args.qconfig, "lr": args.lr, "schedule": args.schedule,
               "warmup": args.warmup, "min_lr": args.min_lr, "decay": args.decay, "clip": args.clip,
               "betas": [args.beta1, args.beta2],
               "weight_decay": args.weight_decay,
               "confidence_penalty": args.confidence_penalty,
               "params": sum(p.numel() for p in GPT(args, vocab).parameters())}
    if args.bench_steps > 0:
        results["bench_fp32"] = bench(train, vocab, args, qat=False)
        results["bench_qat"] = bench(train, vocab, args, qat=True)
    if args.steps > 0:
        results["train"] = train_run(train, val, vocab, args, vocab_bytes)
    emit("torch_gpt", args.threads, results)


if __name__ == "__main__":
    main()
