#!/usr/bin/python3
"""Plain PyTorch reference of one deep-kernel-learning (DKL) active-learning step.

Used by the benchmark to compare speed (and sanity-check accuracy) against the
C++/LibTorch implementation.  Everything (data preparation, MLP feature
extractor, exact GP, training, prediction, acquisition) is written directly in
torch/numpy; no GP library is used.

Input: an experiment HDF5 file with
    /image    float32 [H, W]
    /spectra  float32 [H, W, E]
    /energy   float32 [E]

Output: one JSON object per line on stdout.  Diagnostics (--verbose) go to
stderr so that stdout stays machine-readable.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

PROG = "dkl_reference"


class UsageError(Exception):
    """An input/argument problem reported as `dkl_reference: error: ...`."""


def fail(msg):
    sys.stderr.write("%s: error: %s\n" % (PROG, msg))
    sys.exit(1)


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------

def parse_points(text):
    try:
        pts = [int(p) for p in text.split(",") if p.strip() != ""]
    except ValueError:
        raise UsageError("bad --points value %r (expected e.g. 10,50,200)" % text)
    if not pts or any(p < 1 for p in pts):
        raise UsageError("bad --points value %r (need positive integers)" % text)
    return pts


def parse_scalarizer(text):
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("band-peak", "band-mean"):
        raise UsageError(
            "bad scalarizer %r (expected band-peak:LO:HI or band-mean:LO:HI)" % text)
    try:
        lo = float(parts[1])
        hi = float(parts[2])
    except ValueError:
        raise UsageError("bad scalarizer %r (LO and HI must be numbers)" % text)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise UsageError("bad scalarizer %r (need finite LO <= HI)" % text)
    return parts[0], lo, hi


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        fail("%s (see --help)" % message)


def build_parser():
    p = _Parser(
        prog=PROG,
        description="PyTorch reference timing of a DKL active-learning step.")
    p.add_argument("--data", required=True, help="experiment HDF5 file")
    p.add_argument("--points", default="10,50,200",
                   help="comma-separated training-set sizes (default 10,50,200)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed steps per size; the median is reported (default 3)")
    p.add_argument("--window", type=int, default=16, help="patch window (default 16)")
    p.add_argument("--pool", type=int, default=32,
                   help="spectral channels averaged per group (default 32)")
    p.add_argument("--scalarizer", default="band-peak:0.85:0.95",
                   help="band-peak:LO:HI or band-mean:LO:HI (default band-peak:0.85:0.95)")
    p.add_argument("--acquisition", default="mu", choices=("mu", "ei", "ucb", "random"),
                   help="acquisition function (default mu)")
    p.add_argument("--architecture", default="small", choices=tuple(ARCHITECTURES),
                   help="feature extractor, as dkl-al's (default small: F-64-64-2; "
                        "large: F-1000-500-50-2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N) (default: PyTorch's default); "
                        "OpenBLAS's threads come from OPENBLAS_NUM_THREADS")
    p.add_argument("--loop", type=int, default=None, metavar="STEPS",
                   help="run a full active-learning loop of STEPS steps instead")
    p.add_argument("--verbose", action="store_true",
                   help="print the training loss of every epoch to stderr")
    return p


# --------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------

def load_experiment(path):
    import h5py
    if not os.path.exists(path):
        raise UsageError("data file not found: %s" % path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UsageError("cannot open %s as HDF5: %s" % (path, exc))
    with f:
        out = {}
        for name in ("image", "spectra", "energy"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise UsageError("%s: missing dataset /%s" % (path, name))
            out[name] = np.asarray(f[name][()], dtype=np.float32)
    image, spectra, energy = out["image"], out["spectra"], out["energy"]
    if image.ndim != 2:
        raise UsageError("/image must be 2-D [H, W], got shape %s" % (image.shape,))
    if spectra.ndim != 3 or spectra.shape[:2] != image.shape:
        raise UsageError("/spectra must be [H, W, E] matching /image %s, got %s"
                         % (image.shape, spectra.shape))
    if energy.ndim != 1 or energy.shape[0] != spectra.shape[2]:
        raise UsageError("/energy must be [E] with E=%d, got shape %s"
                         % (spectra.shape[2], energy.shape))
    return image, spectra, energy


def minmax01(a):
    """Global min-max normalisation to [0, 1] (a constant array maps to 0)."""
    lo = a.min()
    hi = a.max()
    rng = hi - lo
    if rng <= 0:
        return np.zeros_like(a)
    return (a - lo) / rng


def prepare(image, spectra, energy, window, pool, scalarizer):
    """Returns features [N, w*w] float32, y_true [N] float64, centres [N, 2] (y, x), info."""
    H, W = image.shape
    E = spectra.shape[2]
    w = window
    if w < 1 or w > H or w > W:
        raise UsageError("window %d does not fit an image of %dx%d" % (w, H, W))
    if pool < 1:
        raise UsageError("pool must be >= 1, got %d" % pool)
    G = E // pool
    if G < 1:
        raise UsageError("pool %d exceeds the %d spectral channels" % (pool, E))

    nr = H - w + 1
    nc = W - w + 1
    # Patches, row-major over the top-left corner (r0, c0): i = r0*nc + c0.
    patches = np.lib.stride_tricks.sliding_window_view(image, (w, w))  # [nr, nc, w, w]
    feats = np.ascontiguousarray(patches.reshape(nr * nc, w * w), dtype=np.float32)
    feats = minmax01(feats).astype(np.float32)

    r0 = np.repeat(np.arange(nr), nc)
    c0 = np.tile(np.arange(nc), nr)
    cy = r0 + w // 2
    cx = c0 + w // 2
    centres = np.stack([cy, cx], axis=1)

    # Targets: spectrum at the patch centre, average-pooled over k channels.
    spec = spectra[cy, cx, :G * pool].astype(np.float64)          # [N, G*k]
    pooled = spec.reshape(-1, G, pool).mean(axis=2)                 # [N, G]
    genergy = energy[:G * pool].astype(np.float64).reshape(G, pool).mean(axis=1)
    pooled = minmax01(pooled)

    kind, lo, hi = scalarizer
    band = (genergy >= lo) & (genergy <= hi)
    if not band.any():
        raise UsageError(
            "scalarizer %s:%g:%g: no spectral group has its energy in [%g, %g] "
            "(group energies %.4g .. %.4g eV)"
            % (kind, lo, hi, lo, hi, genergy.min(), genergy.max()))
    sel = pooled[:, band]
    y_true = sel.max(axis=1) if kind == "band-peak" else sel.mean(axis=1)
    info = {"candidates": int(feats.shape[0]), "features": int(feats.shape[1]),
            "groups": int(G), "band_groups": int(band.sum())}
    return feats, np.ascontiguousarray(y_true, dtype=np.float64), centres, info


# --------------------------------------------------------------------------
# Model: MLP feature extractor + exact GP (float64), written by hand
# --------------------------------------------------------------------------

ARCHITECTURES = {"small": (64, 64), "large": (1000, 500, 50)}  # as dkl-al's


def make_model(torch, in_features, architecture):
    nn = torch.nn
    layers = []
    width = in_features
    for hidden in ARCHITECTURES[architecture]:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    net = nn.Sequential(*layers, nn.Linear(width, 2))
    gp = {
        "mean": torch.zeros((), dtype=torch.float64, requires_grad=True),
        "raw_outputscale": torch.zeros((), dtype=torch.float64, requires_grad=True),
        "raw_lengthscale": torch.zeros(2, dtype=torch.float64, requires_grad=True),
        "raw_noise": torch.zeros((), dtype=torch.float64, requires_grad=True),
    }
    return net, gp


def gp_hypers(torch, gp):
    F = torch.nn.functional
    s = F.softplus(gp["raw_outputscale"])
    ls = F.softplus(gp["raw_lengthscale"])
    noise = F.softplus(gp["raw_noise"]) + 1e-4
    return gp["mean"], s, ls, noise


def rbf(torch, a, b, s, ls):
    """k(a, b) = s * exp(-0.5 * sum_d ((a_d - b_d) / l_d)^2); a [n,2], b [m,2] -> [n,m]."""
    d = (a / ls).unsqueeze(1) - (b / ls).unsqueeze(0)
    return s * torch.exp(-0.5 * (d * d).sum(-1))


def scale_embedding(torch, e, lo=None, hi=None):
    """The embedding squashed into (-1, 1) by tanh, as float64 (cmf's DKL does the same)."""
    return torch.tanh(e).to(torch.float64)


def train(torch, feats_t, y_t, idx, epochs, architecture, verbose=False):
    """Fresh model trained for `epochs` full-batch Adam steps on candidates `idx`."""
    net, gp = make_model(torch, feats_t.shape[1], architecture)
    x = feats_t[idx]
    y = y_t[idx]
    with torch.no_grad():
        # As cmf: the constant mean starts at the targets' mean, the noise at 0.01.
        gp["mean"].fill_(float(y.mean()))
        gp["raw_noise"].fill_(math.log(math.expm1(0.01 - 1e-4)))
    # As cmf: Adam at 1e-3 for the extractor, 1e-2 for the GP's hyperparameters.
    opt = torch.optim.Adam([{"params": list(net.parameters()), "lr": 0.001},
                            {"params": list(gp.values()), "lr": 0.01}])
    n = x.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    log2pi = math.log(2.0 * math.pi)
    lo = hi = None
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        e = net(x)
        z = scale_embedding(torch, e)
        c, s, ls, noise = gp_hypers(torch, gp)
        K = rbf(torch, z, z, s, ls) + noise * eye
        L = torch.linalg.cholesky(K)
        r = (y - c).unsqueeze(1)
        alpha = torch.cholesky_solve(r, L)
        quad = (r * alpha).sum()
        logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
        loss = 0.5 / n * (quad + logdet + n * log2pi)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if verbose:
            sys.stderr.write("epoch %d loss %.6f\n" % (len(losses), losses[-1]))
    return net, gp, lo, hi, losses


def predict(torch, net, gp, lo, hi, feats_t, y_t, idx, batch=4096):
    """Posterior mean and latent variance over all candidates (float64 numpy)."""
    with torch.no_grad():
        c, s, ls, noise = gp_hypers(torch, gp)
        ztr = scale_embedding(torch, net(feats_t[idx]), lo, hi)
        n = ztr.shape[0]
        K = rbf(torch, ztr, ztr, s, ls) + noise * torch.eye(n, dtype=torch.float64)
        L = torch.linalg.cholesky(K)
        alpha = torch.cholesky_solve((y_t[idx] - c).unsqueeze(1), L)
        N = feats_t.shape[0]
        mean = torch.empty(N, dtype=torch.float64)
        var = torch.empty(N, dtype=torch.float64)
        for start in range(0, N, batch):
            stop = min(start + batch, N)
            zs = scale_embedding(torch, net(feats_t[start:stop]), lo, hi)
            Kxs = rbf(torch, ztr, zs, s, ls)                     # [n, m]
            mean[start:stop] = c + (Kxs.t() @ alpha).squeeze(1)
            v = torch.linalg.solve_triangular(L, Kxs, upper=False)
            var[start:stop] = s - (v * v).sum(0)
    return mean.numpy(), var.numpy()


_erf = np.vectorize(math.erf, otypes=[np.float64])


def acquire(kind, mean, var, measured_mask, y_observed, rng):
    """Index of the next candidate among the unmeasured ones."""
    cand = np.flatnonzero(~measured_mask)
    if cand.size == 0:
        raise UsageError("no unmeasured candidates left")
    if kind == "random":
        return int(rng.choice(cand))
    mu = mean[cand]
    v = np.maximum(var[cand], 1e-12)
    if kind == "mu":
        score = var[cand]
    elif kind == "ucb":
        score = mu + 2.0 * np.sqrt(v)
    else:  # ei
        xi = 0.01
        best = float(np.max(y_observed))
        sd = np.sqrt(v)
        imp = mu - best - xi
        z = imp / sd
        cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        score = imp * cdf + sd * pdf
    return int(cand[int(np.argmax(score))])


def rmse(mean, y_true):
    return float(np.sqrt(np.mean((mean - y_true) ** 2)))


def al_step(torch, feats_t, y_t, y_true, idx, args, rng, verbose=False):
    """One complete step: re-init + train + predict all + acquisition + rmse.

    Returns the next candidate, the RMSE, the losses and the seconds spent
    training and predicting."""
    t0 = time.perf_counter()
    net, gp, lo, hi, losses = train(torch, feats_t, y_t, idx, args.epochs, args.architecture,
                                    verbose)
    t1 = time.perf_counter()
    mean, var = predict(torch, net, gp, lo, hi, feats_t, y_t, idx)
    t2 = time.perf_counter()
    measured = np.zeros(y_true.shape[0], dtype=bool)
    measured[idx.numpy()] = True
    nxt = acquire(args.acquisition, mean, var, measured, y_true[idx.numpy()], rng)
    return nxt, rmse(mean, y_true), losses, (t1 - t0, t2 - t1)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def openblas_threads():
    """OpenBLAS's thread count in this process (it reads OPENBLAS_NUM_THREADS
    when torch loads it), or None when the BLAS loaded is not OpenBLAS."""
    import ctypes
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            lib = ctypes.CDLL(name, mode=os.RTLD_NOLOAD)
            return int(lib.openblas_get_num_threads())
        except (OSError, AttributeError):
            continue
    return None


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        points = parse_points(args.points)
        scal = parse_scalarizer(args.scalarizer)
        if args.epochs < 1:
            raise UsageError("--epochs must be >= 1")
        if args.repeat < 1:
            raise UsageError("--repeat must be >= 1")
        if args.threads is not None and args.threads < 1:
            raise UsageError("--threads must be >= 1")
        if args.loop is not None and args.loop < 0:
            raise UsageError("--loop must be >= 0")

        import torch
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        rng = np.random.default_rng(args.seed)

        t0 = time.perf_counter()
        image, spectra, energy = load_experiment(args.data)
        feats, y_true, centres, info = prepare(image, spectra, energy,
                                               args.window, args.pool, scal)
        feats_t = torch.from_numpy(feats)
        y_t = torch.from_numpy(y_true)
        prep = time.perf_counter() - t0
        N = info["candidates"]
        threads = torch.get_num_threads()
        emit({"impl": "pytorch", "prepare_seconds": prep, "candidates": N,
              "features": info["features"], "groups": info["groups"],
              "band_groups": info["band_groups"], "threads": threads,
              "blas_threads": openblas_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")})

        if args.loop is None:
            for n in points:
                if n > N - 1:
                    raise UsageError("--points %d needs more than the %d candidates" % (n, N))
                idx = torch.from_numpy(rng.choice(N, size=n, replace=False).astype(np.int64))
                times, train_times, predict_times = [], [], []
                last_rmse = None
                for rep in range(args.repeat):
                    verbose = args.verbose and rep == 0
                    if verbose:
                        sys.stderr.write("points %d repeat %d\n" % (n, rep))
                    t = time.perf_counter()
                    _, last_rmse, _, (tt, tp) = al_step(torch, feats_t, y_t, y_true, idx,
                                                        args, rng, verbose)
                    times.append(time.perf_counter() - t)
                    train_times.append(tt)
                    predict_times.append(tp)
                emit({"impl": "pytorch", "points": n,
                      "seconds_per_step": statistics.median(times),
                      "train_seconds": statistics.median(train_times),
                      "predict_seconds": statistics.median(predict_times),
                      "rmse": last_rmse, "epochs": args.epochs, "threads": threads,
                      "acquisition": args.acquisition})
        else:
            if args.loop + 2 > N:
                raise UsageError("--loop %d needs more than the %d candidates" % (args.loop, N))
            measured = [int(i) for i in rng.choice(N, size=2, replace=False)]
            for k in range(1, args.loop + 1):
                idx = torch.tensor(measured, dtype=torch.int64)
                t = time.perf_counter()
                nxt, err, _, _ = al_step(torch, feats_t, y_t, y_true, idx, args, rng,
                                         args.verbose)
                dt = time.perf_counter() - t
                cy, cx = (int(v) for v in centres[nxt])
                emit({"impl": "pytorch", "step": k, "points": len(measured),
                      "index": nxt, "x": cx, "y": cy, "value": float(y_true[nxt]),
                      "rmse": err, "seconds": dt})
                measured.append(nxt)  # reveal y_true at the acquired candidate
    except UsageError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
