#!/usr/bin/env python3
"""Compares aimd-al's ADF renderer with the real MoS2 frame in ../shared/data/mos2-adf/.

  cmf_bench_aimd --render /tmp/rendered.f32          # a perfect 6x6 monolayer, 512 x 512 px
  python3 bench/adf_check.py /tmp/rendered.f32 [../shared/data/mos2-adf/O_3_drift-reference-01.npy]

For each image it measures, with numpy only:
- the lattice period: the strongest ring of the power spectrum (MoS2's {100} planes,
  a * sqrt(3) / 2 = 2.737 Å for a = 3.16 Å), interpolated between frequency bins, in pixels; and
  the hexagonal pattern's other rings ({110} at sqrt(3), {200} at 2 times its frequency) that
  confirm which ring it is. The rendered image's scale is known (0.12 Å per pixel), so its
  period checks the renderer's geometry; the real frame's period gives its scale;
- the contrast of the two kinds of atomic columns: local maxima (within about 0.9 Å) of the
  lightly smoothed image, split in two groups by their heights (two-means on the log), and the
  ratio of the groups' median heights above the background (Mo columns over S2 columns), with
  the bright group's share (one half for a perfect lattice).
"""
import sys

import numpy as np

RENDERED_PIXEL = 0.12  # Å: what cmf's image features use
D100 = 3.16 * np.sqrt(3) / 2  # Å: MoS2's {100} spacing


def period(img):
    """The {100} period in pixels, and the {110} and {200} rings' strength over the median."""
    a = img - img.mean()
    w = np.hanning(a.shape[0])[:, None] * np.hanning(a.shape[1])[None, :]
    p = np.abs(np.fft.fftshift(np.fft.fft2(a * w))) ** 2
    n = a.shape[0]
    y, x = np.indices(p.shape) - n // 2
    k = np.hypot(x, y) / n  # cycles per pixel
    bins = np.arange(0, 0.5, 1.0 / n)
    idx = np.digitize(k.ravel(), bins)
    prof = np.bincount(idx, weights=p.ravel(), minlength=len(bins) + 1)
    cnt = np.bincount(idx, minlength=len(bins) + 1)
    prof = prof / np.maximum(cnt, 1)
    centres = np.concatenate([[0], bins + 0.5 / n])
    sel = np.where((centres > 1 / 40.0) & (centres < 1 / 4.0))[0]
    j = sel[np.argmax(prof[sel])]
    # Parabolic interpolation of the peak over its two neighbours.
    y0, y1, y2 = np.log(prof[j - 1: j + 2] + 1e-30)
    shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) if (y0 - 2 * y1 + y2) != 0 else 0
    kpeak = centres[j] + shift * (centres[1] - centres[0])
    def ring(factor):  # the profile's peak near FACTOR x kpeak, over the median around it
        m = np.where(np.abs(centres - factor * kpeak) < 2.0 / n)[0]
        around = np.where(np.abs(centres - factor * kpeak) < 12.0 / n)[0]
        return prof[m].max() / np.median(prof[around])
    return 1.0 / kpeak, ring(np.sqrt(3)), ring(2.0)


def smooth(img, sigma=1.5):
    r = int(3 * sigma)
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))
    g /= g.sum()
    out = np.apply_along_axis(lambda v: np.convolve(v, g, mode="same"), 0, img)
    return np.apply_along_axis(lambda v: np.convolve(v, g, mode="same"), 1, out)


def contrast(img, pixel):
    s = smooth(img.astype(np.float64), sigma=max(0.5, 0.15 / pixel))
    n = s.shape[0]
    half = max(1, int(round(0.9 / pixel)))  # a neighbourhood of about 0.9 Å
    core = s[half:n - half, half:n - half]
    is_max = np.ones_like(core, dtype=bool)
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            if dy or dx:
                is_max &= core >= s[half + dy:n - half + dy, half + dx:n - half + dx]
    background = np.percentile(s, 5)
    heights = core[is_max] - background
    heights = heights[heights > 0.15 * heights.max()]
    logs = np.log(heights)
    lo, hi = np.percentile(logs, 25), np.percentile(logs, 75)
    for _ in range(50):  # two-means on the log of the heights
        bright = np.abs(logs - hi) < np.abs(logs - lo)
        lo, hi = logs[~bright].mean(), logs[bright].mean()
    ratio = np.median(heights[bright]) / np.median(heights[~bright])
    return ratio, bright.mean(), len(heights)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    rendered = np.fromfile(sys.argv[1], dtype=np.float32)
    side = int(round(np.sqrt(rendered.size)))
    rendered = rendered.reshape(side, side)
    real_path = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/mos2-adf/O_3_drift-reference-01.npy"
    real = np.load(real_path)
    print("%-9s %11s %12s %9s %9s %10s %8s %8s" % ("image", "period (px)", "pixel (Å)", "{110}", "{200}",
                                                   "Mo/S2", "bright", "columns"))
    out = {}
    for name, img in (("real", real), ("rendered", rendered)):
        p, r110, r200 = period(img)
        pixel = D100 / p if name == "real" else RENDERED_PIXEL
        ratio, share, count = contrast(img, pixel)
        out[name] = (p, pixel, ratio)
        print("%-9s %11.2f %12.4f %8.0fx %8.0fx %10.2f %8.2f %8d" % (name, p, pixel, r110, r200, ratio, share, count))
    p, _, ratio = out["rendered"]
    _, real_pixel, real_ratio = out["real"]
    print("rendered {100} spacing: %.3f Å (MoS2: %.3f Å, %+.2f %%)" % (p * RENDERED_PIXEL, D100,
                                                                   100 * (p * RENDERED_PIXEL - D100) / D100))
    print("real frame: %.3f Å per pixel if its strongest ring is MoS2's {100} (a = 3.16 Å); at the "
          "0.12 Å the data README gives, its lattice would be %.2f Å" % (real_pixel, out["real"][0] * 0.12))
    print("Mo/S2 column contrast: rendered %.2f, real %.2f (rendered / real = %.2f)"
          % (ratio, real_ratio, ratio / real_ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
