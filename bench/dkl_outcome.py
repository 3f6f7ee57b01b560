#!/usr/bin/python3
"""The outcome of dkl-al's active learning under different settings: what a
faster step must not lose.

For each generated family (cmf-gen-eels --family), each seed and each setting,
runs `cmf run dkl-al` on the family's first member in a scratch workspace and
reads back, through `cmf metrics --json` and `cmf show --json`:
  - the RMSE of the predicted map at a few steps (the curve),
  - first_top1_step: the step at which the acquisition first measured a
    location of the top 1 % of the map (none: the run never did),
  - the median seconds of a step (step_seconds).
Prints, per family and setting, the mean and standard deviation over seeds,
and for each setting after the first whether its mean RMSE and first-top-1 %
step stay within the spread (one standard deviation of the seeds) of the
first's.

  dkl_outcome.py --cmf build/cmf_cli/cmf --gen build/samples/cmf-gen-eels
                 --plugin-dir build/plugins/dkl
                 [--families gold,silver,aluminium] [--seeds 6] [--steps 50]
                 [--acquisition ei]
                 [--setting "fresh:" --setting "warm 5:--warm-epochs 5" ...]

A setting is NAME:ARGS, ARGS added to the dkl-al command line.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHECKPOINTS = (10, 25, 50)


def run(cmd, cwd, env):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit("dkl_outcome: %s failed (%d): %s" %
                 (" ".join(cmd), done.returncode, done.stderr.strip()))
    return done.stdout


def one_run(args, env, work, data, seed, extra):
    run([args.cmf, "run", "-q", "dkl-al", "--data", data, "--steps", str(args.steps),
         "--acquisition", args.acquisition, "--seed", str(seed)] + extra, work, env)
    last = json.loads(run([args.cmf, "log", "-n", "1", "--json"], work, env))[0]["id"]
    shown = json.loads(run([args.cmf, "show", last, "--json"], work, env))
    series = json.loads(run([args.cmf, "metrics", last, "--json"], work, env))["series"]
    rmse = dict((int(s), v) for s, v in series["rmse"])
    seconds = [v for _, v in series["step_seconds"]]
    first = shown["properties"].get("first_top1_step", -1)
    return {
        "rmse": {c: rmse.get(c, float("nan")) for c in CHECKPOINTS},
        # A run that never found the top 1 % counts as one step past its end.
        "first_top1": first if first >= 0 else args.steps + 1,
        "found": first >= 0,
        "step_seconds": statistics.median(seconds),
    }


def spread(values):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, sd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cmf", required=True)
    p.add_argument("--gen", required=True)
    p.add_argument("--plugin-dir", required=True)
    p.add_argument("--families", default="gold,silver,aluminium")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--acquisition", default="ei")
    p.add_argument("--setting", action="append")
    args = p.parse_args()
    settings = []
    for s in args.setting or ["fresh (20 epochs):", "warm 5:--warm-epochs 5"]:
        name, _, extra = s.partition(":")
        settings.append((name, extra.split()))
    env = dict(os.environ, CMF_PLUGIN_PATH=os.path.abspath(args.plugin_dir))
    args.cmf = os.path.abspath(args.cmf)
    with tempfile.TemporaryDirectory(prefix="cmf-dkl-outcome-") as work:
        run([args.cmf, "init", "-q"], work, env)
        print("dkl-al outcome: %d steps, --acquisition %s, seeds 0-%d, first member of each "
              "family (cmf-gen-eels --family NAME --member 0)\n" %
              (args.steps, args.acquisition, args.seeds - 1))
        verdict = True
        for family in args.families.split(","):
            data = os.path.join(work, family + ".h5")
            run([os.path.abspath(args.gen), "-o", data, "--family", family], work, env)
            results = {}
            for name, extra in settings:
                results[name] = [one_run(args, env, work, data, seed, extra)
                                 for seed in range(args.seeds)]
            print("family %s" % family)
            print("  %-22s %s   %-18s %-7s %s" % (
                "setting", "   ".join("rmse@%-2d        " % c for c in CHECKPOINTS),
                "first top-1 % step", "found", "s/step"))
            base = None
            for name, _ in settings:
                rs = results[name]
                cols = []
                for c in CHECKPOINTS:
                    m, sd = spread([r["rmse"][c] for r in rs])
                    cols.append("%.4f ± %.4f" % (m, sd))
                fm, fsd = spread([r["first_top1"] for r in rs])
                found = sum(r["found"] for r in rs)
                sec = statistics.median(r["step_seconds"] for r in rs)
                print("  %-22s %s   %5.1f ± %-10.1f %d/%-5d %.4f" % (
                    name, "   ".join(cols), fm, fsd, found, len(rs), sec))
                if base is None:
                    base = rs
                    continue
                # Within the spread: each mean no worse than the first
                # setting's mean plus one of its standard deviations.
                ok = True
                for c in CHECKPOINTS:
                    bm, bsd = spread([r["rmse"][c] for r in base])
                    ok = ok and statistics.fmean(r["rmse"][c] for r in rs) <= bm + bsd
                bm, bsd = spread([r["first_top1"] for r in base])
                ok = ok and fm <= bm + bsd
                speed = statistics.median(r["step_seconds"] for r in base) / sec
                print("  %-22s %s; step %.2fx as fast" % (
                    "", "within the spread" if ok else "NOT within the spread", speed))
                verdict = verdict and ok
            print()
        print("every setting within the first's spread on every family: %s" %
              ("yes" if verdict else "NO"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
