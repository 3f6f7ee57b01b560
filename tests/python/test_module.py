"""Tests of the Python module cmf (cmf_cli/python/cmf), run by `meson test python` with the
build tree's package on PYTHONPATH and the build's cmf binary in CMF_BINARY."""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import unittest

import cmf

CMF = os.environ.get("CMF_BINARY", "cmf")


def cli(workspace: str, *args: str) -> str:
    """Runs the cmf binary in WORKSPACE; its stdout."""
    done = subprocess.run([CMF, *args], cwd=workspace, capture_output=True, text=True,
                          check=True)
    return done.stdout


def write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Workspace(unittest.TestCase):
    """Each test gets a fresh repository in a temporary folder, and runs in it."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = self._tmp.name
        self._cwd = os.getcwd()
        os.chdir(self.dir)
        self.repo = cmf.init(self.dir)

    def tearDown(self) -> None:
        os.chdir(self._cwd)
        self._tmp.cleanup()


class LoggingTest(Workspace):
    def test_a_run_is_recorded_as_the_cli_reads_it(self) -> None:
        write("patches.h5", "patches")
        with self.repo.run(stage="train", pipeline="ALDKL",
                           params={"lr": 0.01, "epochs": 3, "cuda": False, "opt": "adam"}) as run:
            ref = run.log_input("patches.h5")
            for epoch in range(3):
                run.log_metric("loss", epoch, 1.0 / (epoch + 1))
            write("model.pt", "weights")
            out = run.log_output("model.pt", kind="model")
            run.set_property("best", 0.5)
        self.assertEqual(ref["path"], "patches.h5")
        self.assertEqual(ref["kind"], "dataset")  # guessed from .h5
        self.assertEqual(len(ref["hash"]), 64)
        self.assertEqual(out["kind"], "model")
        self.assertTrue(run.finished)

        listed = self.repo.log(stage="train").to_list()
        # The same dicts as the CLI's --json: the contract scripts already parse.
        self.assertEqual(listed, json.loads(cli(self.dir, "log", "--json")))
        (record,) = listed
        self.assertEqual(record["id"], run.id)
        self.assertEqual(record["status"], "ok")
        self.assertEqual(record["pipeline"], "ALDKL")
        self.assertEqual(record["params"]["lr"], 0.01)
        self.assertEqual(record["params"]["epochs"], 3)
        self.assertIs(record["params"]["cuda"], False)
        self.assertEqual([a["path"] for a in record["inputs"]], ["patches.h5"])
        self.assertEqual(self.repo.metrics(run.id[:13])["loss"],
                         [[0, 1.0], [1, 0.5], [2, 1.0 / 3]])
        self.assertEqual(self.repo.show(run.id)["properties"]["best"], 0.5)

        graph = self.repo.lineage("model.pt", up=True)
        self.assertEqual(graph, json.loads(cli(self.dir, "lineage", "model.pt", "--json")))
        ids = {n["id"] for n in graph["nodes"]}
        self.assertIn(run.id, ids)
        self.assertIn(ref["hash"], ids)
        down = self.repo.lineage("patches.h5", up=False, down=True)
        self.assertIn(out["hash"], {n["id"] for n in down["nodes"]})

    def test_log_selects_as_the_cli_does(self) -> None:
        for lr in (0.1, 0.01):
            with self.repo.run(stage="train", params={"lr": lr}) as run:
                run.log_metrics("loss", [0, 1], [1.0, lr])
        low = self.repo.log(where="params.lr < 0.05").to_list()
        self.assertEqual([r["params"]["lr"] for r in low], [0.01])
        self.assertEqual(low, json.loads(cli(self.dir, "log", "--json", "--where",
                                             "params.lr < 0.05")))
        both = self.repo.log(where=["metrics.loss:min < 0.5", "stage = 'train'"]).to_list()
        self.assertEqual(len(both), 2)
        self.assertEqual(len(self.repo.log(limit=1).to_list()), 1)
        self.assertEqual(len(self.repo.log(stage="other")), 0)
        with self.assertRaises(cmf.InvalidArgumentError):
            self.repo.log(where="params.lr <").to_list()

    def test_batches_from_lists_and_numpy(self) -> None:
        import numpy as np
        with self.repo.run(stage="train") as run:
            run.log_metrics("mll", np.arange(1000, dtype=np.int64), np.linspace(0, 1, 1000))
            run.log_metrics("int32", np.arange(3, dtype=np.int32),
                            np.array([1, 2, 3], dtype=np.float32))
            run.log_metrics("list", [0, 5, 10], [0.5, 1.5, 2.5])
            run.log_metrics("gen", range(2), (x * 2.0 for x in range(2)))
            with self.assertRaises(ValueError):
                run.log_metrics("bad", [1, 2], [1.0])
            with self.assertRaises(ValueError):
                run.log_metrics("bad", np.arange(2), np.zeros(3))
        series = self.repo.metrics(run.id)
        self.assertEqual(len(series["mll"]), 1000)
        self.assertEqual(series["mll"][-1], [999, 1.0])
        self.assertEqual(series["int32"], [[0, 1.0], [1, 2.0], [2, 3.0]])
        self.assertEqual(series["list"], [[0, 0.5], [5, 1.5], [10, 2.5]])
        self.assertEqual(series["gen"], [[0, 0.0], [1, 2.0]])
        self.assertNotIn("bad", series)

    def test_params_take_numpy_scalars_and_refuse_other_types(self) -> None:
        import numpy as np
        with self.repo.run(stage="s", params={"n": np.int64(7), "x": np.float32(0.5),
                                              "b": np.bool_(True)}) as run:
            pass
        params = self.repo.show(run.id)["params"]
        self.assertEqual(params, {"n": 7, "x": 0.5, "b": True})
        with self.assertRaises(TypeError):
            self.repo.run(stage="s", params={"bad": [1, 2]})
        with self.assertRaises(ValueError):
            self.repo.run(stage="s", params={"huge": 2**70})

    def test_a_file_name_that_is_not_utf8(self) -> None:
        name = b"caf\xe9.h5"
        with open(name, "wb") as f:
            f.write(b"bytes")
        with self.repo.run(stage="s") as run:
            ref = run.log_input(name)
        self.assertEqual(ref["size"], 5)
        self.assertEqual(os.fsencode(ref["path"]), name)
        self.assertEqual(len(self.repo.show(run.id)["inputs"]), 1)


class FailureTest(Workspace):
    def test_an_exception_fails_the_run_with_its_message(self) -> None:
        with self.assertRaises(RuntimeError):
            with self.repo.run(stage="train") as run:
                run.log_metric("loss", 0, 1.0)
                raise RuntimeError("diverged at epoch 3")
        record = self.repo.show(run.id)
        self.assertEqual(record["status"], "failed")
        self.assertEqual(record["message"], "RuntimeError: diverged at epoch 3")
        self.assertEqual(self.repo.metrics(run.id)["loss"], [[0, 1.0]])  # kept

    def test_ctrl_c_records_the_run_as_interrupted(self) -> None:
        with self.assertRaises(KeyboardInterrupt):
            with self.repo.run(stage="train") as run:
                raise KeyboardInterrupt()
        self.assertEqual(self.repo.show(run.id)["status"], "interrupted")

    def test_errors_carry_cmfs_message(self) -> None:
        with self.repo.run(stage="s") as run:
            with self.assertRaises(cmf.NotFoundError) as missing:
                run.log_input("no-such-file.h5")
            self.assertIn("no-such-file.h5", str(missing.exception))
            self.assertIsInstance(missing.exception, LookupError)
            with self.assertRaises(cmf.InvalidArgumentError):
                run.log_input(os.path.join(".cmf", "config"))
            with self.assertRaises(ValueError):
                run.log_output(write("x.bin", "x"), kind="spreadsheet")
        with self.assertRaises(cmf.Error):
            run.log_metric("late", 0, 1.0)  # finished
        with self.assertRaises(cmf.InvalidArgumentError):
            self.repo.show("not-hex")
        with self.assertRaises(cmf.NotFoundError):
            self.repo.show("ffffffff")
        with self.assertRaises(cmf.NotFoundError):
            self.repo.lineage("never-logged.h5")
        with self.assertRaises(cmf.InvalidArgumentError):
            self.repo.run(stage="")
        with self.assertRaises(cmf.AlreadyExistsError):
            cmf.init(self.dir)
        with tempfile.TemporaryDirectory() as empty:
            with self.assertRaises(cmf.NotFoundError):
                cmf.Repo(empty)

    def test_a_run_discarded_unfinished_is_interrupted(self) -> None:
        run = self.repo.run(stage="dropped")
        run.log_metric("loss", 0, 1.0)
        run_id = run.id
        del run
        gc.collect()
        shown = self.repo.show(run_id)
        self.assertEqual(shown["status"], "interrupted")
        self.assertIn("discarded before finish()", shown["message"])
        self.assertEqual(self.repo.metrics(run_id)["loss"], [[0, 1.0]])

    def test_a_forked_child_must_open_its_own_repo(self) -> None:
        run = self.repo.run(stage="parent")
        pid = os.fork()
        if pid == 0:  # the child: the parent's Repo is refused, a new one works
            code = 1
            try:
                try:
                    run.log_metric("loss", 0, 1.0)
                except cmf.InvalidArgumentError as e:
                    if "fork()" in str(e):
                        code = 2
                if code == 2:
                    with cmf.Repo(self.dir).run(stage="child") as own:
                        own.log_metric("loss", 0, 2.0)
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        run.log_metric("loss", 1, 3.0)  # the parent's connection is intact
        run.finish()
        self.assertEqual(self.repo.metrics(run.id)["loss"], [[1, 3.0]])
        (child,) = self.repo.log(stage="child").to_list()
        self.assertEqual(child["status"], "ok")
        self.assertEqual(cli(self.dir, "fsck", "--json").count('"ok": true'), 1)

    def test_read_only_refuses_writes(self) -> None:
        reader = cmf.Repo(self.dir, read_only=True)
        self.assertEqual(reader.log().to_list(), [])
        with self.assertRaises(cmf.Error):
            reader.run(stage="s")

    def test_a_killed_process_keeps_what_it_logged(self) -> None:
        child = (
            "import os, signal, cmf\n"
            "run = cmf.Repo().run(stage='killed')\n"
            "run.log_metric('loss', 0, 0.25)\n"
            "print(run.id, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
        done = subprocess.run([sys.executable, "-c", child], cwd=self.dir, capture_output=True,
                              text=True)
        self.assertEqual(done.returncode, -signal.SIGKILL)
        run_id = done.stdout.strip()
        self.assertEqual(self.repo.metrics(run_id)["loss"], [[0, 0.25]])
        # Its process is gone: the CLI shows it as interrupted, not running.
        (shown,) = json.loads(cli(self.dir, "log", "--json"))
        self.assertEqual(shown["status"], "interrupted")


def _log_from_process(workspace: str, n: int) -> None:
    repo = cmf.Repo(workspace)
    with repo.run(stage="parallel") as run:
        for step in range(n):
            run.log_metric("loss", step, float(step))


class ConcurrencyTest(Workspace):
    def test_threads_log_to_one_run(self) -> None:
        with self.repo.run(stage="threads") as run:
            def work(t: int) -> None:
                for step in range(100):
                    run.log_metric(f"t{t}", step, float(step))
            threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        series = self.repo.metrics(run.id)
        self.assertEqual(sorted(series), ["t0", "t1", "t2", "t3"])
        self.assertTrue(all(len(points) == 100 for points in series.values()))

    def test_processes_log_to_one_repository(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_log_from_process, args=(self.dir, 50)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            self.assertEqual(p.exitcode, 0)
        runs = self.repo.log(stage="parallel").to_list()
        self.assertEqual(len(runs), 3)
        for r in runs:
            self.assertEqual(r["status"], "ok")
            self.assertEqual(len(self.repo.metrics(r["id"])["loss"]), 50)


class InstallTest(unittest.TestCase):
    """`meson install` puts the package where Debian's interpreter looks, and it imports there."""

    def test_installed_package_imports_and_logs(self) -> None:
        build = os.environ.get("CMF_BUILD_ROOT")
        if not build:
            self.skipTest("CMF_BUILD_ROOT not set (meson test sets it)")
        with tempfile.TemporaryDirectory() as dest:
            subprocess.run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild",
                            "--quiet"], check=True, capture_output=True)
            found = [root for root, dirs, _ in os.walk(dest) if "cmf" in dirs
                     and os.path.isfile(os.path.join(root, "cmf", "__init__.py"))]
            self.assertEqual(len(found), 1, found)
            site = found[0]
            self.assertFalse(os.path.exists(os.path.join(site, "cmf", "_build.py")))
            installed = "/" + os.path.relpath(site, dest)
            paths = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.path))"],
                                   capture_output=True, text=True, check=True).stdout.split()
            prefix = subprocess.run(["meson", "introspect", build, "--buildoptions"],
                                    capture_output=True, text=True, check=True).stdout
            prefix = next(o["value"] for o in json.loads(prefix) if o["name"] == "prefix")
            if prefix in ("/usr", "/usr/local"):
                self.assertIn(installed, paths)
            git = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs
                   if f == "cmf-git.so"]
            env = dict(os.environ, PYTHONPATH=site, CMF_GIT_MODULE=git[0])
            for name in ("CMF_HDF5_MODULE", "CMF_SSH_MODULE"):
                env.pop(name, None)
            with tempfile.TemporaryDirectory() as ws:
                script = ("import cmf\n"
                          "r = cmf.init('.')\n"
                          "with r.run(stage='s', pipeline='p') as run: run.log_metric('m', 0, 1.0)\n"
                          "print(cmf.__file__, r.log().to_list()[0]['status'])\n")
                out = subprocess.run([sys.executable, "-c", script], cwd=ws, env=env,
                                     capture_output=True, text=True)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertTrue(out.stdout.startswith(site), out.stdout)
                self.assertTrue(out.stdout.strip().endswith(" ok"), out.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
