#!/usr/bin/python3
"""Plain PyTorch reference of cmf's Reptile meta-training (`cmf run reptile`).

Used to compare the speed (and sanity-check the behaviour) of the C++/LibTorch
implementation in plugins/ml/reptile.cpp.  The data preparation, the DKL model
(MLP feature extractor + exact GP) and the meta-training loop are written
directly in torch/numpy; no GP library is used.  The inner loops use autograd
and torch.optim.Adam, the way one would write it in PyTorch.

Threading, as cmf's reptile does it and as a PyTorch user who knows the
machine would: OpenBLAS on one thread (--blas-threads, which sets
OPENBLAS_NUM_THREADS before torch is imported) and PyTorch's own operations on
one thread (--threads), because the inner loops of an iteration are
independent and run side by side instead (--workers): the process and
WORKERS - 1 processes forked from it each adapt their share of the iteration's
tasks (slots w, w + WORKERS, ...) from the same theta, held in shared memory,
and write their phi_i into a shared buffer; the process then averages them in
slot order. Every random choice is seeded per (seed, iteration, slot), so the
result does not depend on WORKERS.

Tasks: experiment HDF5 files with
    /image    float32 [H, W]
    /spectra  float32 [H, W, E]
    /energy   float32 [E]
Every full WINDOWxWINDOW patch of /image is a point; its target is the spectrum
at the patch centre, average-pooled by POOL channels, min-max normalised over
the task and reduced by the scalarizer (as cmf's tasks.cpp).

Algorithm (Nichol, Achiam and Schulman 2018, as cmf does it):
    theta <- the parameters of a fresh model
    for it in 0 .. I-1:
        epsilon = --epsilon + (--epsilon-final - --epsilon) * it / I
        sample --tasks-per-iteration tasks
        for each: model <- theta; fresh Adam (--inner-extractor-lr for the
                  extractor, --inner-lr for the GP's hyperparameters);
                  --inner-steps steps, each on --batch-size points drawn
                  without replacement; phi_i <- its parameters
        theta <- theta + epsilon * (mean_i phi_i - theta)

Output, one JSON object per line on stdout:
    {"iteration": k, "meta_loss": ..., "adapted_loss": ..., "epsilon": ...,
     "seconds": ...}                         for k = 1 .. I (cmf's metric steps)
    {"impl": "pytorch", "total_seconds": T, "prepare_seconds": P,
     "iterations": I, "tasks": N, "threads": ..., "workers": ...,
     "blas_threads": ...}
meta_loss is, as in cmf, the mean over the sampled tasks of theta's loss on the
first inner batch; adapted_loss the mean of the last inner step's loss.
total_seconds covers the meta-training only; prepare_seconds the reading and
preparation of the tasks.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

PROG = "reptile_reference"
LOG_2PI = math.log(2.0 * math.pi)
INITIAL_NOISE = 0.01
ARCHITECTURES = {"small": (64, 64), "large": (1000, 500, 50)}  # as cmf's --architecture
EMBEDDING = 2


class UsageError(Exception):
    """A problem with the arguments or inputs, reported as `reptile_reference: error: ...`."""


def fail(msg):
    sys.stderr.write("%s: error: %s\n" % (PROG, msg))
    sys.exit(1)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        fail("%s (see --help)" % message)


def build_parser():
    p = _Parser(prog=PROG,
                description="PyTorch reference timing of cmf's Reptile meta-training.")
    p.add_argument("--tasks", nargs="+", required=True, metavar="FILE",
                   help="experiment HDF5 files (/image, /spectra, /energy)")
    p.add_argument("--iterations", type=int, default=9, help="meta-iterations (default 9)")
    p.add_argument("--tasks-per-iteration", type=int, default=10,
                   help="tasks sampled per iteration (default 10)")
    p.add_argument("--inner-steps", type=int, default=16,
                   help="Adam steps of each inner loop (default 16)")
    p.add_argument("--inner-lr", type=float, default=0.01,
                   help="Adam's learning rate in the inner loop, for the GP's "
                        "hyperparameters (default 0.01)")
    p.add_argument("--inner-extractor-lr", type=float, default=0.001,
                   help="Adam's learning rate in the inner loop, for the feature "
                        "extractor (default 0.001)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="points per inner step (default 64)")
    p.add_argument("--epsilon", type=float, default=1.0,
                   help="meta step size at the first iteration (default 1, as cmf's)")
    p.add_argument("--epsilon-final", type=float, default=0.0,
                   help="meta step size at the last iteration (default 0)")
    p.add_argument("--architecture", default="small", choices=tuple(ARCHITECTURES),
                   help="feature extractor, as cmf's (default small: F-64-64-2; "
                        "large: F-1000-500-50-2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads(N) in every process (default 1)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OPENBLAS_NUM_THREADS for every process; 0 keeps the "
                        "environment's (default 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes running an iteration's inner loops side by side "
                        "(default 1: this process alone)")
    p.add_argument("--window", type=int, default=16, help="patch size in pixels (default 16)")
    p.add_argument("--pool", type=int, default=32,
                   help="spectral channels averaged into one (default 32)")
    p.add_argument("--scalarizer", default="band-peak:0.85:0.95",
                   help="band-peak:LO:HI or band-mean:LO:HI in eV (default band-peak:0.85:0.95)")
    p.add_argument("--out", default=None,
                   help="save theta (a dict of tensors) here with torch.save")
    return p


def parse_scalarizer(text):
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("band-peak", "band-mean"):
        raise UsageError("bad --scalarizer %r (expected band-peak:LO:HI or band-mean:LO:HI)"
                         % text)
    try:
        lo, hi = float(parts[1]), float(parts[2])
    except ValueError:
        raise UsageError("bad --scalarizer %r (LO and HI must be numbers)" % text)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise UsageError("bad --scalarizer %r (need finite LO <= HI)" % text)
    return parts[0], lo, hi


def check_args(args):
    if args.iterations < 1:
        raise UsageError("--iterations must be at least 1")
    if args.tasks_per_iteration < 1:
        raise UsageError("--tasks-per-iteration must be at least 1")
    if args.inner_steps < 1:
        raise UsageError("--inner-steps must be at least 1")
    if args.batch_size < 2:
        raise UsageError("--batch-size must be at least 2")
    for name in ("inner_lr", "inner_extractor_lr"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise UsageError("--%s must be a positive number" % name.replace("_", "-"))
    for name in ("epsilon", "epsilon_final"):
        if not math.isfinite(getattr(args, name)):
            raise UsageError("--%s must be a finite number" % name.replace("_", "-"))
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.blas_threads < 0:
        raise UsageError("--blas-threads must not be negative")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.window < 1 or args.pool < 1:
        raise UsageError("--window and --pool must be positive")
    if args.seed < 0:
        raise UsageError("--seed must not be negative")
    return parse_scalarizer(args.scalarizer)


# --------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------

def read_experiment(path):
    import h5py
    if not os.path.isfile(path):
        raise UsageError("task '%s' does not exist" % path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UsageError("task '%s' is not a readable HDF5 file (%s)" % (path, exc))
    with f:
        data = {}
        for name in ("image", "spectra", "energy"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise UsageError("task '%s' has no /%s dataset" % (path, name))
            data[name] = np.asarray(f[name][()], dtype=np.float32)
    image, spectra, energy = data["image"], data["spectra"], data["energy"]
    if image.ndim != 2:
        raise UsageError("/image of '%s' is not two-dimensional (shape %s)"
                         % (path, image.shape))
    if spectra.ndim != 3 or spectra.shape[:2] != image.shape:
        raise UsageError("/spectra of '%s' does not match /image %s (shape %s)"
                         % (path, image.shape, spectra.shape))
    if energy.ndim != 1 or energy.shape[0] != spectra.shape[2]:
        raise UsageError("/energy of '%s' has shape %s, /spectra has %d channels"
                         % (path, energy.shape, spectra.shape[2]))
    return image, spectra, energy


def prepare_task(path, window, pool, scalarizer):
    """(features float32 [N, window^2], targets float64 [N]) of one experiment."""
    image, spectra, energy = read_experiment(path)
    h, w = image.shape
    if window > h or window > w:
        raise UsageError("a window of %d pixels does not fit in the %dx%d image of '%s'"
                         % (window, h, w, path))
    channels = spectra.shape[2]
    groups = channels // pool
    if groups < 1:
        raise UsageError("task '%s' has %d channels, fewer than --pool %d"
                         % (path, channels, pool))
    rows, cols = h - window + 1, w - window + 1

    # Features: the patches, row-major by their top-left corner, scaled by one
    # minimum and maximum over all of them.
    patches = np.lib.stride_tricks.sliding_window_view(image, (window, window))
    x = patches.reshape(rows * cols, window * window).astype(np.float32)
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)

    # Targets: the spectrum at each patch's centre, pooled; one minimum and
    # maximum over every point and group; then the band's peak (or mean).
    cy = np.repeat(np.arange(rows), cols) + window // 2
    cx = np.tile(np.arange(cols), rows) + window // 2
    spec = spectra[cy, cx, :groups * pool].astype(np.float64)
    pooled = spec.reshape(-1, groups, pool).mean(axis=2)
    group_energy = energy[:groups * pool].astype(np.float64).reshape(groups, pool).mean(axis=1)
    plo, phi = pooled.min(), pooled.max()
    pooled = (pooled - plo) / (phi - plo) if phi > plo else np.zeros_like(pooled)
    kind, elo, ehi = scalarizer
    band = (group_energy >= elo) & (group_energy <= ehi)
    if not band.any():
        raise UsageError("task '%s': the band %g..%g eV holds no pooled channel "
                         "(they span %.3g..%.3g eV)"
                         % (path, elo, ehi, group_energy[0], group_energy[-1]))
    sel = pooled[:, band]
    y = sel.max(axis=1) if kind == "band-peak" else sel.mean(axis=1)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float64)


# --------------------------------------------------------------------------
# Model: MLP feature extractor + exact GP in float64
# --------------------------------------------------------------------------

class Dkl:
    """The extractor (nn.Sequential of Linear/ReLU) and the GP's raw
    hyperparameters, shaped as cmf's (one output): mean [1],
    raw_outputscale [1], raw_lengthscale [1, 2], raw_noise [1]."""

    def __init__(self, torch, features, architecture):
        self.torch = torch
        nn = torch.nn
        sizes = (features,) + ARCHITECTURES[architecture] + (EMBEDDING,)
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                layers.append(nn.ReLU())
        self.extractor = nn.Sequential(*layers)
        f64 = torch.float64
        self.gp = {
            "mean": torch.zeros(1, dtype=f64),
            "raw_outputscale": torch.zeros(1, dtype=f64),
            "raw_lengthscale": torch.zeros(1, EMBEDDING, dtype=f64),
            "raw_noise": torch.full((1,), math.log(math.expm1(INITIAL_NOISE - 1e-4)),
                                    dtype=f64),
        }
        for t in self.gp.values():
            t.requires_grad_(True)

    def named_parameters(self):
        out = [("extractor." + name, p) for name, p in self.extractor.named_parameters()]
        out += [("gp." + name, p) for name, p in self.gp.items()]
        return out

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def state(self):
        """A detached copy of every parameter, by name."""
        return {name: p.detach().clone() for name, p in self.named_parameters()}

    def load(self, state):
        with self.torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(state[name])
                p.grad = None

    def loss(self, x, y, noise_floor=1e-4):
        """Negative marginal log likelihood / n of targets Y [n] at features X [n, f]."""
        torch = self.torch
        F = torch.nn.functional
        z = torch.tanh(self.extractor(x)).to(torch.float64)          # [n, 2]
        lengthscale = F.softplus(self.gp["raw_lengthscale"][0])       # [2]
        outputscale = F.softplus(self.gp["raw_outputscale"][0])
        noise = F.softplus(self.gp["raw_noise"][0]) + noise_floor
        zs = z / lengthscale
        diff = zs.unsqueeze(1) - zs.unsqueeze(0)                      # [n, n, 2]
        k = outputscale * torch.exp(-0.5 * (diff * diff).sum(-1))
        n = x.shape[0]
        k = k + noise * torch.eye(n, dtype=torch.float64)
        chol = torch.linalg.cholesky(k)
        r = (y - self.gp["mean"][0]).unsqueeze(1)                     # [n, 1]
        alpha = torch.cholesky_solve(r, chol)
        quad = (r * alpha).sum()
        logdet = 2.0 * torch.log(torch.diagonal(chol)).sum()
        return 0.5 * (quad + logdet + n * LOG_2PI) / n


# --------------------------------------------------------------------------
# Reptile
# --------------------------------------------------------------------------

def epsilon_at(iteration, iterations, first, last):
    """As cmf's EpsilonAt: linear in the fraction of iterations done before
    this one, so the last iteration still moves theta when LAST is 0."""
    if iterations <= 0:
        return first
    return first + (last - first) * iteration / iterations


# The random choices follow cmf's scheme (plugins/ml/reptile.cpp): splitmix64
# seeds per (seed, iteration, slot), tasks drawn by a partial Fisher-Yates
# shuffle, mini-batches by torch.randperm with a generator of that seed. With
# the same seed the reference then sees the same tasks and batches as cmf (and,
# torch.nn.Linear's initialisation drawing from the same stream as cmf's, the
# same initial model), so its numbers can be compared with cmf's one by one.

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(state):
    """(new state, output) of one splitmix64 step."""
    state = (state + GOLDEN) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def seed_of(seed, iteration, slot):
    """The seed of (seed, iteration, slot); slot -1 is the iteration's task draw."""
    s = (seed ^ ((GOLDEN * (iteration + 1)) & MASK64)) & MASK64
    _, z = splitmix64(s)
    s = (z ^ ((slot + 1) & MASK64)) & MASK64
    _, z = splitmix64(s)
    return z


def sample_tasks(seed, iteration, count, per_iteration):
    """PER_ITERATION task indices: without replacement while there are enough,
    then again from all of them."""
    state = seed_of(seed, iteration, -1)
    order = list(range(count))
    picked = []
    for slot in range(per_iteration):
        base = slot % count
        if base == 0 and slot > 0:
            order = list(range(count))
        state, r = splitmix64(state)
        k = base + r % (count - base)
        order[base], order[k] = order[k], order[base]
        picked.append(order[base])
    return picked


def inner_loop(torch, model, theta, x, y, steps, batch, lr, extractor_lr, seed):
    """MODEL set to THETA, then STEPS Adam steps on mini-batches of (X, Y), the
    extractor at EXTRACTOR_LR and the GP at LR. Returns the losses; phi is left
    in MODEL."""
    model.load(theta)
    opt = torch.optim.Adam(
        [{"params": list(model.extractor.parameters()), "lr": extractor_lr},
         {"params": list(model.gp.values()), "lr": lr}],
        betas=(0.9, 0.999), eps=1e-8)
    n = x.shape[0]
    minibatch = batch < n
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        if minibatch:
            pick = torch.randperm(n, generator=gen)[:batch]
            xb, yb = x.index_select(0, pick), y.index_select(0, pick)
        else:
            xb, yb = x, y
        opt.zero_grad(set_to_none=True)
        loss = model.loss(xb, yb)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def adapt_share(torch, model, args, tasks, theta, it, picked, share, workers, phis, losses):
    """The inner loops of slots SHARE, SHARE + WORKERS, ... of iteration IT:
    each from THETA, its phi written into PHIS[name][slot] and its first and
    last loss into LOSSES[slot]."""
    for slot in range(share, len(picked), workers):
        x, y = tasks[picked[slot]]
        l = inner_loop(torch, model, theta, x, y, args.inner_steps, args.batch_size,
                       args.inner_lr, args.inner_extractor_lr,
                       seed_of(args.seed, it, slot))
        with torch.no_grad():
            for name, p in model.named_parameters():
                phis[name][slot].copy_(p)
        losses[slot, 0] = l[0]
        losses[slot, 1] = l[-1]


def worker_main(torch, conn, share, workers, args, tasks, theta, phis, losses):
    """A forked worker: for each (iteration, picked) received, adapts its share
    and answers None, or the error's text."""
    torch.set_num_threads(args.threads)
    model = Dkl(torch, tasks[0][0].shape[1], args.architecture)
    while True:
        job = conn.recv()
        if job is None:
            return
        it, picked = job
        try:
            adapt_share(torch, model, args, tasks, theta, it, picked, share, workers,
                        phis, losses)
            conn.send(None)
        except Exception as exc:  # e.g. a Cholesky failure, reported by the parent
            conn.send(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))


def reptile_update(torch, theta, phis, epsilon):
    """theta <- theta + epsilon (mean(phis) - theta), in float64, per tensor,
    in place (theta may be shared with the workers)."""
    with torch.no_grad():
        for name, t in theta.items():
            mean = phis[name].to(torch.float64).mean(0)
            t64 = t.to(torch.float64)
            t.copy_((t64 + epsilon * (mean - t64)).to(t.dtype))


def meta_train(torch, args, tasks):
    import multiprocessing
    torch.manual_seed(args.seed)
    model = Dkl(torch, tasks[0][0].shape[1], args.architecture)
    per_iteration = args.tasks_per_iteration
    workers = min(args.workers, per_iteration)
    theta = model.state()
    phis = {name: torch.empty((per_iteration,) + tuple(t.shape), dtype=t.dtype)
            for name, t in theta.items()}
    losses = torch.zeros(per_iteration, 2, dtype=torch.float64)
    conns, procs = [], []
    if workers > 1:
        # Shared memory, mapped before the fork, so that the workers read the
        # current theta and the process reads their phi_i without copies.
        for t in list(theta.values()) + list(phis.values()) + [losses]:
            t.share_memory_()
        ctx = multiprocessing.get_context("fork")
        for share in range(1, workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, daemon=True,
                               args=(torch, child, share, workers, args, tasks, theta,
                                     phis, losses))
            proc.start()
            child.close()
            conns.append(parent)
            procs.append(proc)
    total = 0.0
    try:
        for it in range(args.iterations):
            start = time.perf_counter()
            eps = epsilon_at(it, args.iterations, args.epsilon, args.epsilon_final)
            picked = sample_tasks(args.seed, it, len(tasks), per_iteration)
            for conn in conns:
                conn.send((it, picked))
            errors = []
            try:
                adapt_share(torch, model, args, tasks, theta, it, picked, 0, workers,
                            phis, losses)
            except RuntimeError as exc:
                errors.append(str(exc).strip().splitlines()[0])
            for conn in conns:
                try:
                    answer = conn.recv()
                except EOFError:
                    answer = "a worker process ended"
                if answer is not None:
                    errors.append(answer)
            if errors:
                raise RuntimeError(errors[0])
            reptile_update(torch, theta, phis, eps)
            seconds = time.perf_counter() - start
            total += seconds
            emit({"iteration": it + 1, "meta_loss": float(losses[:, 0].mean()),
                  "adapted_loss": float(losses[:, 1].mean()), "epsilon": eps,
                  "seconds": seconds})
    finally:
        for conn in conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
    return {name: t.clone() for name, t in theta.items()}, total


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        scalarizer = check_args(args)
        for path in args.tasks:
            if not os.path.isfile(path):
                raise UsageError("task '%s' does not exist" % path)
        if args.out is not None:
            parent = os.path.dirname(os.path.abspath(args.out))
            if os.path.exists(parent) and not os.path.isdir(parent):
                raise UsageError("cannot write --out '%s': '%s' is not a directory"
                                 % (args.out, parent))
        # OpenBLAS reads its thread count once, when torch loads it.
        if args.blas_threads > 0:
            os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
        try:
            import torch
        except ImportError as exc:
            raise UsageError("cannot import torch (%s); run with /usr/bin/python3" % exc)
        torch.set_num_threads(args.threads)

        t0 = time.perf_counter()
        tasks = []
        for path in args.tasks:
            x, y = prepare_task(path, args.window, args.pool, scalarizer)
            tasks.append((torch.from_numpy(x), torch.from_numpy(y)))
        prepare_seconds = time.perf_counter() - t0

        try:
            theta, total = meta_train(torch, args, tasks)
        except RuntimeError as exc:  # e.g. a Cholesky failure
            raise UsageError("meta-training failed: %s" % str(exc).strip().splitlines()[0])

        if args.out is not None:
            parent = os.path.dirname(os.path.abspath(args.out))
            try:
                os.makedirs(parent, exist_ok=True)
                torch.save(theta, args.out)
            except (OSError, RuntimeError) as exc:
                raise UsageError("cannot write --out '%s': %s" % (args.out, exc))
        emit({"impl": "pytorch", "total_seconds": total,
              "prepare_seconds": prepare_seconds, "iterations": args.iterations,
              "tasks": len(tasks), "threads": torch.get_num_threads(),
              "workers": min(args.workers, args.tasks_per_iteration),
              "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "")})
    except UsageError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into head
        sys.stdout = open(os.devnull, "w")
        sys.exit(1)
