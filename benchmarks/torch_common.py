"""Shared helpers for the PyTorch reference benchmarks (torch_mlp.py, torch_qat_mlp.py,
torch_gpt.py).

These scripts are the PyTorch side of octet's side-by-side benchmarks. They need Debian's
PyTorch (run them with /usr/bin/python3) and nothing else: Fashion-MNIST is read from the
dataset-fashion-mnist package (IDX files, gzip + numpy, no torchvision, no downloads).
Every script prints human-readable progress on stderr and exactly ONE JSON line on stdout,
so a shell wrapper can collect the numbers. Nothing here touches OPENBLAS_* variables: the
caller decides the environment (the JSON records what it was).
"""

import gzip
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MEAN = 0.2860
FASHION_STD = 0.3530
ENV_KEYS = ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")


def log(*args):
    """Prints a human-readable line on stderr (stdout is reserved for the JSON line)."""
    print(*args, file=sys.stderr, flush=True)


def emit(script, threads, results):
    """Prints the single JSON result line on stdout. The load average is recorded because the
    machine may be shared: timings under load > cores are pessimistic, with 2 threads badly."""
    record = {
        "loadavg": list(os.getloadavg()),
        "script": script,
        "torch": torch.__version__,
        "threads": threads,
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "results": results,
    }
    print(json.dumps(record, sort_keys=True), flush=True)


def parse_threads(text):
    """'1', '2' or 'best' (= try 1 and 2) -> list of torch thread counts."""
    if text == "best":
        return [1, 2]
    n = int(text)
    if n < 1:
        raise ValueError("threads must be >= 1 or 'best'")
    return [n]


def set_threads(n):
    torch.set_num_threads(n)
    if torch.get_num_threads() != n:
        raise RuntimeError(f"torch.set_num_threads({n}) gave {torch.get_num_threads()}")


def summarize(seconds):
    """Best, median and all samples of a list of timings, in seconds."""
    return {
        "best": min(seconds),
        "median": statistics.median(seconds),
        "all": [round(s, 6) for s in seconds],
    }


def timed(fn):
    """Runs fn() once and returns (seconds, result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def read_idx_gz(path):
    """Reads a gzip'ed IDX file (unsigned-byte data only) into a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} bytes of data, got {data.size}")
    return data.reshape(tuple(dims))


def load_fashion(directory=FASHION_DIR):
    """Returns (x_train, y_train, x_test, y_test) as float32 (N,784) normalized with
    (x/255 - 0.2860)/0.3530 and int64 labels, all as in-memory torch tensors."""

    def images(name):
        x = read_idx_gz(os.path.join(directory, name)).reshape(-1, 784).astype(np.float32)
        return torch.from_numpy((x / 255.0 - FASHION_MEAN) / FASHION_STD)

    def labels(name):
        return torch.from_numpy(read_idx_gz(os.path.join(directory, name)).astype(np.int64))

    return (
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"),
        labels("t10k-labels-idx1-ubyte.gz"),
    )


class MLP(nn.Module):
    """784-256-128-10 ReLU MLP with nn.Linear's default init. The QuantStub/DeQuantStub pair is
    the identity until torch.ao.quantization prepares the model for QAT."""

    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.fc1 = nn.Linear(784, 256)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 128)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(128, 10)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        return self.dequant(self.fc3(x))


def cosine_lr(base_lr, step, total_steps):
    """Per-step cosine decay from base_lr (step 0) towards 0 (step total_steps)."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def train_epoch(model, opt, x, y, batch, gen, lr_at=None, step0=0):
    """One pass over (x, y) in shuffled minibatches (the last one partial). lr_at(step), if
    given, sets the learning rate before each step. Returns (mean loss, steps taken)."""
    model.train()
    n = x.shape[0]
    perm = torch.randperm(n, generator=gen)
    loss_sum = torch.zeros(())
    steps = 0
    for i in range(0, n, batch):
        idx = perm[i : i + batch]
        if lr_at is not None:
            for g in opt.param_groups:
                g["lr"] = lr_at(step0 + steps)
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        steps += 1
    return float(loss_sum) / steps, steps


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / x.shape[0]


@torch.no_grad()
def eval_seconds(model, x, batch, repeats):
    """Times forward passes over all of x at the given batch size (no labels, no argmax),
    after one untimed warm-up pass over the first 10 batches. Returns summarize(...)."""
    model.eval()
    n = x.shape[0]

    def one_pass(limit):
        for i in range(0, limit, batch):
            model(x[i : i + batch])

    one_pass(min(n, 10 * batch))
    return summarize([timed(lambda: one_pass(n))[0] for _ in range(repeats)])


def state_dict_bytes(model):
    """Size in bytes of torch.save(model.state_dict()) written to a temporary file."""
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        torch.save(model.state_dict(), f.name)
        return os.path.getsize(f.name)


def save_safetensors(path, model, metadata=None):
    """Writes model's state dict as a safetensors file (float32), as safetensors.torch.save_model
    does: a tensor that shares storage with an earlier one (a tied lm_head) is left out; metadata
    (a dict of strings) as its __metadata__. Written to a temporary file first, then renamed."""
    header, blobs, seen, offset = {}, [], set(), 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in model.state_dict().items():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
