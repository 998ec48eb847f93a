"""Trainer throughput vs a bare PyTorch loop over the same tensors, same process.

    python bench/trainer_throughput.py [--model lenet] [--epochs 2] [--repeats 3]

Both loops train the same architecture from the same initial weights on the
same resident MNIST tensors with the same batch size and optimiser; runs are
interleaved (bare, trainer, bare, ...) so drift in machine load hits both.
Prints images/second for each and the trainer's share of the bare loop.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from unlearnkit import TrainConfig, build_model, fit, load_dataset, split_dataset
from unlearnkit.env import environment
from unlearnkit.reporting.tables import render


def bare_loop(model, x, y, config, seed):
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    g = torch.Generator().manual_seed(seed)
    model.train()
    n = x.shape[0]
    for _ in range(config.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, config.batch_size):
            b = perm[i : i + config.batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ds = load_dataset(args.dataset)
    split = split_dataset(ds, seed=0)
    view = split.train
    x, y = view.x[view.indices], view.y[view.indices]  # the bare loop gets the rows pre-gathered
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05)
    images = args.epochs * len(view)

    bare, ours = [], []
    for r in range(args.repeats):
        m = build_model(args.model, ds.input_shape, ds.num_classes, seed=r)
        t = time.perf_counter()
        bare_loop(m, x, y, config, seed=r)
        bare.append(images / (time.perf_counter() - t))
        m = build_model(args.model, ds.input_shape, ds.num_classes, seed=r)
        t = time.perf_counter()
        fit(m, view, config, seed=r)
        ours.append(images / (time.perf_counter() - t))

    env = environment()
    print(f"{args.dataset} / {args.model}, {len(view)} images x {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.repeats} interleaved repeats; torch {env['torch']}, {env['torch_threads']} threads, "
          f"{env['cpu_count']} CPUs")  # fmt: skip
    rows = [
        ["bare PyTorch loop", f"{statistics.median(bare):,.0f}", f"{min(bare):,.0f}", f"{max(bare):,.0f}"],
        ["unlearnkit.fit", f"{statistics.median(ours):,.0f}", f"{min(ours):,.0f}", f"{max(ours):,.0f}"],
    ]
    print(render(["loop", "images/s (median)", "min", "max"], rows))
    print(f"trainer / bare (median): {statistics.median(ours) / statistics.median(bare):.1%}")


if __name__ == "__main__":
    main()
