#!/usr/bin/python3
"""Plain PyTorch reference of aimd-al's active-learning loop, for its time per step.

The same loop as plugins/aimd/aimd_loop.cpp: seed frames at random, then at every step a fresh
DKL model (bench/dkl_reference.py's extractor, exact GP and Adam, as cmf's) trained on every frame
evaluated so far, on the targets standardised over that set and negated (the model maximises),
the posterior over every frame, and the acquisition (ucb on the negated target is aimd-al's lcb).
Reads the feature rows and targets that cmf_bench_aimd writes:

  aimd_reference.py --features F.f32 --width W --targets T.f64 [--steps 30] [--seed-frames 5]
                    [--epochs 20] [--acquisition ucb|mu|ei|random] [--threads N] [--seed 0]

and prints one JSON object: the median seconds of a step (training, prediction, choice) and
the evaluations at which the true minimum was reached (or -1).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dkl_reference as ref  # noqa: E402  (the same model code as the dkl bench's peer)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--features", required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed-frames", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--acquisition", default="ucb", choices=("ucb", "mu", "ei", "random"))
    p.add_argument("--architecture", default="small", choices=tuple(ref.ARCHITECTURES))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    feats = np.fromfile(args.features, dtype=np.float32).reshape(-1, args.width)
    truth = np.fromfile(args.targets, dtype=np.float64)
    n = truth.shape[0]
    feats_t = torch.from_numpy(feats)
    true_min = int(np.argmin(truth))
    order = list(rng.choice(n, size=args.seed_frames, replace=False))
    seconds = []
    found = -1
    for k, i in enumerate(order):
        if i == true_min:
            found = k + 1
    for _ in range(args.steps):
        start = time.perf_counter()
        t = truth[order]
        sd = t.std(ddof=1) if len(t) > 1 else 1.0
        sd = sd if sd > 1e-12 else 1.0
        y = np.zeros(n)
        y[order] = -(t - t.mean()) / sd
        y_t = torch.from_numpy(y)
        idx = torch.tensor(order, dtype=torch.long)
        net, gp, lo, hi, _ = ref.train(torch, feats_t, y_t, idx, args.epochs, args.architecture)
        mean, var = ref.predict(torch, net, gp, lo, hi, feats_t, y_t, idx)
        measured = np.zeros(n, dtype=bool)
        measured[order] = True
        nxt = ref.acquire(args.acquisition, mean, var, measured, y[order], rng)
        seconds.append(time.perf_counter() - start)
        order.append(nxt)
        if nxt == true_min and found < 0:
            found = len(order)
    print(json.dumps({"impl": "pytorch", "threads": torch.get_num_threads(),
                      "step_seconds": float(np.median(seconds)), "found_minimum_at": found}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
