#!/usr/bin/python3
"""Compares cmf-gen-eels experiments with the real STEM-EELS arrays of AE-DKL.

The real arrays (../shared/data/ae-dkl/, see its README) are spectra of a
plasmonic nanoparticle sample, average-pooled by 32 channels to 46 groups and
min-max normalised over the whole spectrum image, and 16x16 image patches. This
script prepares generated files the same way (pool by 32, one minimum and
maximum over the whole file) and prints, side by side, the properties that can
be compared without the real energy axis (the arrays do not carry it): channel
count, dynamic range, where the strongest peak lies, its width, the low and
high ends of the spectra relative to the peak, the noise between neighbouring
groups, and the contrast of the image patches.

  /usr/bin/python3 samples/compare_real.py [--real DIR] FILE.h5 ...

Needs NumPy and h5py (Debian: python3-numpy, python3-h5py). Numbers of
generated files are over every pixel; of the real data over the 7 measured
spectra and patches.
"""

import argparse
import os
import sys

import h5py
import numpy as np

POOL = 32
WINDOW = 16


def pool(spectra):
    """Average-pools the last axis by POOL, dropping the remainder."""
    groups = spectra.shape[-1] // POOL
    cut = spectra[..., : groups * POOL]
    return cut.reshape(cut.shape[:-1] + (groups, POOL)).mean(axis=-1)


def peak_width(s):
    """Full width at half maximum of the strongest peak, in groups, measured
    above the spectrum's own minimum; linear between groups."""
    base = s.min()
    k = int(np.argmax(s))
    half = base + (s[k] - base) / 2
    lo = k
    while lo > 0 and s[lo - 1] > half:
        lo -= 1
    hi = k
    while hi < len(s) - 1 and s[hi + 1] > half:
        hi += 1
    left = lo - 1 + (half - s[lo - 1]) / (s[lo] - s[lo - 1]) if lo > 0 else lo
    right = hi + (s[hi] - half) / (s[hi] - s[hi + 1]) if hi < len(s) - 1 else hi
    return right - left


def describe(spectra):
    """Per-spectrum properties of pooled, normalised spectra (N x G)."""
    peak = spectra.max(axis=1)
    # Noise: the median absolute second difference between neighbouring
    # groups (robust to the few groups a peak bends), as the standard
    # deviation of one group's noise.
    d2 = spectra[:, 2:] - 2 * spectra[:, 1:-1] + spectra[:, :-2]
    noise = 1.4826 * np.median(np.abs(d2), axis=1) / np.sqrt(6)
    return {
        "groups": spectra.shape[1],
        "peak group": np.argmax(spectra, axis=1).astype(float),
        "peak FWHM (groups)": np.array([peak_width(s) for s in spectra]),
        "peak value": peak,
        "lowest value": spectra.min(axis=1),
        "first / peak": spectra[:, 0] / peak,
        "last / peak": spectra[:, -1] / peak,
        "peak / lowest": peak / np.maximum(spectra.min(axis=1), 1e-9),
        "noise (per group)": noise,
    }


def describe_patches(patches):
    """Contrast of 16x16 image patches (N x 256), each file min-max scaled."""
    return {
        "patch mean": patches.mean(axis=1),
        "patch spread": patches.std(axis=1),
        "bright share (>0.5)": (patches > 0.5).mean(axis=1),
    }


def load_real(folder):
    spectra = np.load(os.path.join(folder, "active_spectra_5.npy")).T
    patches = np.load(os.path.join(folder, "active_patch_5.npy"))
    mean = np.load(os.path.join(folder, "measured10_spectrum.npy")).ravel()
    return describe(spectra), describe_patches(patches), describe_mean(mean)


def describe_mean(mean):
    """The spatially averaged spectrum, scaled to its own maximum."""
    mean = mean / mean.max()
    return {
        "mean: peak group": float(np.argmax(mean)),
        "mean: peak FWHM": peak_width(mean),
        "mean: first / peak": mean[0],
        "mean: last / peak": mean[-1],
    }


def near_particles(image, reach=3):
    """Pixels of particles (image above the middle of its range) and those
    within REACH pixels of one: where the active-learning runs that measured
    the real spectra went."""
    scaled = (image - image.min()) / (image.max() - image.min())
    mask = scaled > 0.3
    grown = mask.copy()
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            grown |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return grown.ravel()


def load_generated(path):
    with h5py.File(path, "r") as f:
        image = f["image"][...].astype(np.float64)
        spectra = f["spectra"][...].astype(np.float64)
        family = f.attrs.get("family", b"?")
    if isinstance(family, bytes):
        family = family.decode()
    pooled = pool(spectra).reshape(-1, spectra.shape[-1] // POOL)
    lo, hi = pooled.min(), pooled.max()
    pooled = (pooled - lo) / (hi - lo)
    near = pooled[near_particles(image)]
    image = (image - image.min()) / (image.max() - image.min())
    h, w = image.shape
    patches = [
        image[y : y + WINDOW, x : x + WINDOW].ravel()
        for y in range(0, h - WINDOW + 1, 4)
        for x in range(0, w - WINDOW + 1, 4)
    ]
    return (
        family,
        describe(near if len(near) else pooled),
        describe_patches(np.array(patches)),
        describe_mean(near.mean(axis=0) if len(near) else pooled.mean(axis=0)),
    )


def cell(values):
    v = np.asarray(values, dtype=float)
    if v.ndim == 0:
        return f"{v:.3g}"
    if v.size == 1:
        return f"{v.item():.3g}"
    q = np.percentile(v, [10, 50, 90])
    return f"{q[1]:.3g} [{q[0]:.3g}, {q[2]:.3g}]"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--real", default=os.path.join(here, "..", "..", "shared", "data", "ae-dkl")
    )
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    columns = [("real", *load_real(args.real))]
    # Files of one family make one column: their spectra and patches pooled,
    # their mean spectra's figures as the median over the files.
    families = {}
    for path in args.files:
        family, spectra, patches, mean = load_generated(path)
        families.setdefault(family, []).append((spectra, patches, mean))
    for family, parts in families.items():
        merged = []
        for k in range(3):
            merged.append(
                {
                    key: np.concatenate([np.atleast_1d(p[k][key]) for p in parts])
                    if k < 2
                    else np.median([p[k][key] for p in parts])
                    for key in parts[0][k]
                }
            )
        merged[0]["groups"] = parts[0][0]["groups"]
        columns.append((f"{family} ({len(parts)})", *merged))
    rows = [r for part in columns[0][1:] for r in part]
    print(
        "median [10th, 90th percentile] over the 7 measured spectra and\n"
        "patches (real) or over the pixels on and within 3 px of a particle\n"
        "and all patches of a family's files (generated); pooled by 32,\n"
        "min-max over each whole file; mean: spatially averaged spectrum"
    )
    width = max(len(r) for r in rows) + 2
    print("".ljust(width) + "".join(c[0][:25].ljust(27) for c in columns))
    for row in rows:
        line = row.ljust(width)
        for c in columns:
            line += cell({**c[1], **c[2], **c[3]}[row]).ljust(27)
        print(line.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
