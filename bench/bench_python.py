#!/usr/bin/env python3
"""Benchmark of issue 21: logging from Python through the module cmf, beside its peers, one run.

  PYTHONPATH=build/cmf_cli/python /usr/bin/python3 bench/bench_python.py [--quick] [--json]

Figures, for store.synchronous full (the default) and normal (set by `cmf config`, CMF_BINARY):
1. one step metric per call (run.log_metric, µs), and batched (run.log_metrics, points/s);
2. the peer: Python's sqlite3 writing the same rows as durably (WAL, the same synchronous, a
   commit per metric, a transaction per batch by executemany), on a bare table and on cmf's
   metric table (read from a new store); the sides take turns: the disk's jitter hits all alike;
3. cmflib's spawns as its code has them (HewlettPackard/cmf cmflib/cmf.py, dvc_wrapper.py),
   each timed as `git add FILE` in a real git repo (DVC is not installed here);
4. where one log_metric's time goes; the issue's targets, marked met or NOT met.
--quick: small sizes (CI). --json: the figures as JSON on stdout (the text goes to stderr).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import cmf

# The cmf binary of the build tree the module comes from (<build>/cmf_cli/cmf), else the one
# on PATH; CMF_BINARY overrides.
_BESIDE = Path(cmf.__file__).resolve().parents[2] / "cmf"
CMF_BINARY = os.path.abspath(os.environ["CMF_BINARY"]) if os.environ.get("CMF_BINARY") else (
    str(_BESIDE) if _BESIDE.is_file() else "cmf")
INSERT = "INSERT OR REPLACE INTO metric(execution_id, series_id, step, value) VALUES(?,?,?,?)"
BARE = ("CREATE TABLE metric(execution_id INTEGER NOT NULL, series_id INTEGER NOT NULL, step "
        "INTEGER NOT NULL, value REAL, PRIMARY KEY(execution_id, series_id, step)) WITHOUT ROWID")
# cmf's metric table for the second peer is read from a new store at run time (its DDL), its
# parents (REFERENCES T(id)) made here with the ids the peer writes.
PARENT_IDS = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
              "SELECT i FROM n")
TARGET_US, TARGET_PPS = 50.0, 1_000_000.0  # "well under 50 µs"; "a million points a second"
SERIES = itertools.count(1)  # a new series for every timed loop: appends, never replaces
Loop = Callable[[int], Any]  # one timed repetition, given a new series id


@dataclass(frozen=True)
class Sizes:
    """How much each figure measures; the median over REPS rounds is reported."""
    calls: int  # log_metric calls per round
    reps: int
    batches: tuple[int, ...]  # points per log_metrics batch
    artifacts: int  # log_output calls, and spawns of each kind


QUICK = Sizes(calls=100, reps=5, batches=(1_000, 10_000), artifacts=5)
DEFAULT = Sizes(calls=500, reps=15, batches=(1_000, 100_000), artifacts=15)


def seconds(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of FN, the garbage collector off."""
    gc.disable()
    try:
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) / 1e9
    finally:
        gc.enable()


def interleaved(loops: dict[str, Loop], reps: int) -> dict[str, float]:
    """Median seconds of each loop over REPS rounds (and a warm-up), taking turns in each."""
    times: dict[str, list[float]] = {name: [] for name in loops}
    for rep in range(reps + 1):
        for name, loop in loops.items():
            took = seconds(lambda: loop(next(SERIES)))
            if rep:
                times[name].append(took)
    return {name: statistics.median(t) for name, t in times.items()}


def open_cmf(folder: Path, synchronous: str) -> cmf.Repo:
    """A new repository in FOLDER, store.synchronous set through the CLI as a user would."""
    folder.mkdir()
    cmf.init(folder)  # dropped at once: the store is closed before the CLI writes the config
    if synchronous != "full":
        subprocess.run([CMF_BINARY, "config", "store.synchronous", synchronous],
                       cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return cmf.Repo(folder)


def metric_ddl(repo: cmf.Repo) -> str:
    """The SQL that made cmf's metric table and its indexes in REPO's store."""
    uri = f"file:{Path(repo.cmf_dir) / 'metadata.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'metric' "
                          "AND sql IS NOT NULL ORDER BY type DESC").fetchall()
    return ";\n".join(sql for (sql,) in rows) + ";"


def open_peer(path: Path, synchronous: str, ddl: str = "") -> sqlite3.Connection:
    """The peer's database: WAL and SYNCHRONOUS as cmf's store; autocommit, so that a statement
    outside BEGIN commits at once. DDL: cmf's metric table, foreign keys on as cmf has them."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    db.execute(f"PRAGMA foreign_keys={'ON' if ddl else 'OFF'}")
    for parent in sorted(set(re.findall(r"REFERENCES\s+(\w+)", ddl))):
        db.execute(f"CREATE TABLE {parent}(id INTEGER PRIMARY KEY)")
        db.execute(f"INSERT INTO {parent}(id) {PARENT_IDS}")
    db.executescript(ddl or BARE)
    return db


def single_loops(run: cmf.Run, dbs: list[sqlite3.Connection], calls: int) -> dict[str, Loop]:
    """CALLS metrics into a new series from each side: run.log_metric; one-row INSERTs, each
    its own committed transaction (the statement is cached by sqlite3)."""
    def cmf_loop(series: int) -> None:
        name, log = f"single{series}", run.log_metric
        for step in range(calls):
            log(name, step, step * 0.5)

    def peer_loop(db: sqlite3.Connection) -> Loop:
        def loop(series: int) -> None:
            execute = db.execute
            for step in range(calls):
                execute(INSERT, (1, series, step, step * 0.5))
        return loop
    return {"cmf": cmf_loop, "peer": peer_loop(dbs[0]), "peer_cmf_table": peer_loop(dbs[1])}


def batch_loops(run: cmf.Run, dbs: list[sqlite3.Connection], size: int,
                as_numpy: bool) -> dict[str, Loop]:
    """One batch of SIZE points from each side: run.log_metrics; one transaction of executemany
    (NumPy arrays through tolist(), as an expert would)."""
    steps, values = np.arange(size, dtype=np.int64), np.random.default_rng(21).random(size)
    s, v = (steps, values) if as_numpy else (steps.tolist(), values.tolist())

    def peer_loop(db: sqlite3.Connection) -> Loop:
        def loop(series: int) -> None:
            rows = (s.tolist(), v.tolist()) if as_numpy else (s, v)
            db.execute("BEGIN")
            db.executemany(INSERT, zip(itertools.repeat(1), itertools.repeat(series), *rows))
            db.execute("COMMIT")
        return loop
    return {"cmf": lambda series: run.log_metrics(f"batch{series}", s, v),
            "peer": peer_loop(dbs[0]), "peer_cmf_table": peer_loop(dbs[1])}


def bench_mode(root: Path, mode: str, sizes: Sizes) -> dict[str, Any]:
    """Every figure of one store.synchronous MODE."""
    repo = open_cmf(root / f"cmf-{mode}", mode)
    dbs = [open_peer(root / f"peer-{mode}.db", mode),
           open_peer(root / f"peer-{mode}-cmf.db", mode, metric_ddl(repo))]
    out: dict[str, Any] = {"batches": []}
    with repo.run(stage="train", pipeline="bench", params={"lr": 0.01},
                  environment=False) as run:
        loops = single_loops(run, dbs, sizes.calls)
        if mode == "full":  # the disk's fsync, timed in turn with the commits that wait on it
            loops["fsync"] = fsync_loop(root / "fsync.probe", sizes.calls)
        took = interleaved(loops, sizes.reps)
        out["metric_us"] = {k: t / sizes.calls * 1e6 for k, t in took.items()}
        for size, as_numpy in itertools.product(sizes.batches, (True, False)):
            reps = max(sizes.reps, min(30, 100_000 // size))  # small batches: more rounds
            took = interleaved(batch_loops(run, dbs, size, as_numpy), reps)
            out["batches"].append({"points": size, "input": "numpy" if as_numpy else "list",
                                   "pps": {k: size / t for k, t in took.items()}})
        out["artifact_ms"] = artifact_ms(run, Path(repo.workspace), sizes.artifacts)
        # The binding's floor: run.id, into the native module and back without the store
        # (the module has no no-op function).
        ids = {"id": lambda _: [run.id for _ in range(10_000)]}
        out["binding_floor_us"] = interleaved(ids, sizes.reps)["id"] / 10_000 * 1e6
    for db in dbs:
        db.close()
    return out


def artifact_ms(run: cmf.Run, folder: Path, count: int) -> float:
    """Median ms of run.log_output(kind="model") of a new 64 KiB file: hashed, and its bytes
    copied into .cmf/objects (as `dvc add` copies a file into its cache)."""
    times = []
    for i in range(count + 1):  # the first is a warm-up
        path = folder / f"model{i}.pt"
        path.write_bytes(os.urandom(65536))
        times.append(seconds(lambda: run.log_output(path, kind="model")))
    return statistics.median(times[1:]) * 1e3


def fsync_loop(path: Path, calls: int) -> Loop:
    """CALLS appends of 64 bytes to PATH, each fsync'd: what a full commit waits on."""
    def loop(_: int) -> None:
        with open(path, "ab", buffering=0) as probe:
            for _ in range(calls):
                probe.write(b"x" * 64)
                os.fsync(probe.fileno())
    return loop


def cmflib_metric_loop(calls: int) -> Loop:
    """CALLS calls of cmflib's Cmf.log_metric as its code does it (not its code): the point kept
    in memory in a dict of dicts, its key one more than the largest so far (a max over every
    key: the cost grows with the steps). Nothing is durable before commit_metrics."""
    def loop(_: int) -> None:
        metrics: dict[str, dict[int, dict[str, float]]] = {}
        for step in range(calls):
            props = {"loss": step * 0.5}
            if "train" in metrics:
                metrics["train"][max(metrics["train"].keys()) + 1] = props
            else:
                metrics["train"] = {1: props}
    return loop


def bench_cmflib(root: Path, sizes: Sizes) -> dict[str, Any]:
    """cmflib's in-memory log_metric, and one spawn as cmflib spawns (Popen, stdout piped)."""
    git = root / "git"
    git.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=git, check=True)
    for i in range(sizes.artifacts + 1):
        (git / f"m{i}.pt.dvc").write_text(f"outs:\n- md5: {i:032x}\n  path: m{i}.pt\n")
    names = iter(range(sizes.artifacts + 1))
    spawns = {"git_add": lambda _: subprocess.run(["git", "add", f"m{next(names)}.pt.dvc"],
                                                  cwd=git, stdout=subprocess.PIPE, check=True),
              "python_start": lambda _: subprocess.run([sys.executable, "-c", "pass"],
                                                       stdout=subprocess.PIPE, check=True)}
    took = interleaved(spawns, sizes.artifacts)
    loop = {"log_metric": cmflib_metric_loop(sizes.calls)}
    return {"log_metric_us": interleaved(loop, sizes.reps)["log_metric"] / sizes.calls * 1e6,
            "git_add_ms": took["git_add"] * 1e3, "python_start_ms": took["python_start"] * 1e3,
            "spawns": {"log_model": ["dvc add", "git add"],
                       "commit_metrics": ["dvc add", "git add"],
                       "log_dataset": ["git remote -v", "dvc add", "git add"]}}


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets per mode (one metric "well under" TARGET_US: at most half)."""
    out = {}
    for mode in ("full", "normal"):
        us = r[mode]["metric_us"]["cmf"]
        pps = [b for b in r[mode]["batches"] if b["input"] == "numpy"][-1]["pps"]["cmf"]
        metric = ("met" if us <= TARGET_US / 2 else
                  "NOT met (under, not well under)" if us < TARGET_US else "NOT met")
        out[mode] = {"metric_us": us, "metric": metric, "batch_pps": pps,
                     "batch": "met" if pps >= TARGET_PPS else "NOT met"}
    return out


def report_metrics(r: dict[str, Any], say: Callable[[str], None]) -> None:
    """One metric per call, and batches."""
    full, normal = r["full"], r["normal"]
    say(f"\nOne step metric per call: µs, median of {r['sizes']['reps']} rounds of "
        f"{r['sizes']['calls']:,} calls, each committed before it returns")
    say(f"  {'':52}{'full':>10}{'normal':>10}")
    for label, key in (("cmf run.log_metric", "cmf"), ("sqlite3 peer, bare table", "peer"),
                       ("sqlite3 peer on cmf's metric table", "peer_cmf_table")):
        say(f"  {label:52}{full['metric_us'][key]:>10.1f}{normal['metric_us'][key]:>10.1f}")
    say(f"  {'cmf / bare peer':52}" + "".join(
        f"{m['metric_us']['cmf'] / m['metric_us']['peer']:>9.2f}x" for m in (full, normal)))
    say(f"  {'cmflib log_metric (kept in memory, NOT durable)':52}"
        f"{r['cmflib']['log_metric_us']:>10.2f}")
    say("\nBatched: points per second, one transaction per batch (peers: executemany)")
    say(f"  {'mode':7}{'points':>8} {'input':6}{'cmf':>12}{'bare peer':>12}{'cmf/peer':>9}"
        f"{'peer on cmf table':>20}")
    for mode in ("full", "normal"):
        for b in r[mode]["batches"]:
            p = b["pps"]
            say(f"  {mode:7}{b['points']:>8,} {b['input']:6}{p['cmf']:>12,.0f}{p['peer']:>12,.0f}"
                f"{p['cmf'] / p['peer']:>8.2f}x{p['peer_cmf_table']:>20,.0f}")


def report_phases(r: dict[str, Any], say: Callable[[str], None]) -> None:
    """Where one log_metric goes, and one point of the largest NumPy batch."""
    def single(side: str, before: str = "") -> Callable[[dict[str, Any]], float]:
        return lambda m: m["metric_us"][side] - (m["metric_us"][before] if before else 0.0)

    def batch(side: str, before: str = "") -> Callable[[dict[str, Any]], float]:
        def ns(m: dict[str, Any]) -> float:
            pps = [b for b in m["batches"] if b["input"] == "numpy"][-1]["pps"]
            return 1e9 / pps[side] - (1e9 / pps[before] if before else 0.0)
        return ns
    rows = [("one log_metric, µs: the binding (run.id, a native call)",
             lambda m: m["binding_floor_us"]),
            ("  sqlite3 INSERT + COMMIT, bare table (peer)", single("peer")),
            ("  + cmf's metric table (its indexes, foreign keys on)",
             single("peer_cmf_table", "peer")),
            ("  + the rest of cmf (series, metric_summary, lock)",
             single("cmf", "peer_cmf_table")),
            ("one point of a NumPy batch, ns: bare peer (tolist + executemany)", batch("peer")),
            ("  + cmf's metric table", batch("peer_cmf_table", "peer")),
            ("  + the rest of cmf", batch("cmf", "peer_cmf_table"))]
    say(f"\nWhere the time goes{'':47}{'full':>9}{'normal':>9}")
    for label, value in rows:
        say(f"  {label:64}{value(r['full']):>9.2f}{value(r['normal']):>9.2f}")
    say(f"  (one append + fsync, timed in turn: {r['full']['metric_us']['fsync']:.1f} µs: a full "
        "commit waits on one, and its\n   jitter can outweigh the differences above; a negative "
        "one: cmf does less than the peer before it)")


def report_artifacts(r: dict[str, Any], say: Callable[[str], None]) -> None:
    """cmf's log_output against cmflib's spawns."""
    lib, mine = r["cmflib"], r["full"]["artifact_ms"]
    git, py = lib["git_add_ms"], lib["python_start_ms"]
    say("\nArtifacts, ms. DVC is not installed here: each spawn of cmflib is timed as `git add "
        "FILE` in a\nreal git repo; `dvc add` is a Python program: a bare python3 start is a "
        "floor for it")
    say(f"  cmf run.log_output, new 64 KiB model: {mine:.2f} full, "
        f"{r['normal']['artifact_ms']:.2f} normal")
    say(f"  one spawn: `git add FILE` {git:.2f}, `python3 -c pass` {py:.2f}")
    say(f"  {'cmflib call: its spawns (x: over cmf log_output, full)':56}{'all as git add':>20}"
        f"{'dvc add as python3':>20}")
    for call, argv in lib["spawns"].items():
        low, floor = len(argv) * git, py + (len(argv) - 1) * git
        say(f"  {call + ': ' + ', '.join(argv):56}{f'>= {low:.1f} ({low / mine:.0f}x)':>20}"
            f"{f'>= {floor:.1f} ({floor / mine:.0f}x)':>20}")
    say("  (lower bounds: not counted are dvc.api.get_url, twice in-process per artifact, and "
        "the parquet\n   file commit_metrics writes)")


def report(r: dict[str, Any], say: Callable[[str], None]) -> None:
    """The figures as text, the targets last."""
    say(f"cmf {cmf.__version__} ({r['build']}), SQLite {sqlite3.sqlite_version}, Python "
        f"{sys.version.split()[0]}, NumPy {np.__version__}, {os.cpu_count()} CPUs")
    report_metrics(r, say)
    report_phases(r, say)
    report_artifacts(r, say)
    say(f"\nTargets: one metric well under {TARGET_US:.0f} µs (met: at most half); batched "
        f"{TARGET_PPS:,.0f} points/s (largest NumPy batch)")
    for mode, t in r["targets"].items():
        say(f"  {mode:7} one metric {t['metric_us']:6.1f} µs: {t['metric']:32}"
            f"batched {t['batch_pps']:>9,.0f} points/s: {t['batch']}")


def build_type() -> str:
    """The build that holds the module, and its meson buildtype."""
    for parent in Path(cmf.__file__).resolve().parents:
        if (options := parent / "meson-info" / "intro-buildoptions.json").is_file():
            kind = [o["value"] for o in json.loads(options.read_text()) if o["name"] == "buildtype"]
            return f"build {parent}, {kind[0] if kind else '?'}"
    return "installed"


def main() -> int:
    """Measures every figure, then prints them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    with tempfile.TemporaryDirectory(prefix="cmf-bench-python-") as tmp:
        root = Path(tmp)
        r: dict[str, Any] = {"sizes": asdict(sizes), "build": build_type()}
        for mode in ("full", "normal"):
            r[mode] = bench_mode(root, mode, sizes)
        r["cmflib"] = bench_cmflib(root, sizes)
    r["targets"] = targets(r)
    out = sys.stderr if args.json else sys.stdout
    report(r, lambda text: print(text, file=out))
    if args.json:
        print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
