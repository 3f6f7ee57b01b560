"""Tests of cmf.compat.cmflib, cmflib's logging API over a cmf repository.

The main test reads the pipeline that cmflib recorded in a real MLMD store (the shared data's
cmflib-mlmd/), replays the same cmflib calls through cmf.compat.cmflib.Cmf, imports the store
with `cmf import cmflib` into another repository, and checks that both repositories hold the
same pipeline up to naming: stages, executions per stage, parameters, commands, artifacts per
kind, and the graph of events between them.

Environment: CMF_BINARY (the cmf binary; default <source root>/build/cmf_cli/cmf),
CMF_SOURCE_ROOT (default: two folders above this file), CMF_SHARED_DATA (default:
<source root>/../shared/data). Without the shared data the tests that need it are skipped,
and fail under CI=true. Plain unittest: python3 tests/python/test_compat_cmflib.py.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import tempfile
import unittest
from dataclasses import dataclass, field
from typing import Any, Optional

import cmf
from cmf.compat.cmflib import Cmf

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("CMF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
SHARED_DATA = os.environ.get("CMF_SHARED_DATA") or os.path.join(SOURCE_ROOT, "..", "shared",
                                                                 "data")
MLMD_FOLDER = os.path.join(SHARED_DATA, "cmflib-mlmd")
CMF_BINARY = os.environ.get("CMF_BINARY") or os.path.join(SOURCE_ROOT, "build", "cmf_cli",
                                                          "cmf")

# MLMD event types that cmf import reads as inputs (INPUT, DECLARED_INPUT, INTERNAL_INPUT);
# every other type is an output.
INPUT_EVENTS = {3, 2, 5}


def mlmd_store(test: unittest.TestCase, name: str) -> str:
    """The path of the shared MLMD store NAME; skips TEST without the shared data (fails it
    under CI=true, where the data must be there)."""
    path = os.path.join(MLMD_FOLDER, name)
    if not os.path.isfile(path):
        reason = f"no shared data: {path} is missing (set CMF_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            test.fail(reason)
        test.skipTest(reason)
    return path


def cli(workspace: str, *args: str) -> str:
    """Runs the cmf binary in WORKSPACE; its stdout."""
    done = subprocess.run([CMF_BINARY, *args], cwd=workspace, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"cmf {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


# --- the pipeline recorded in an MLMD store ---


@dataclass
class MlmdEvent:
    """One event of an execution: the artifact it used or produced."""

    artifact: int  # MLMD row id
    direction: str  # input or output
    type: str  # the artifact's MLMD type: Dataset, Model, Metrics, Step_Metrics, Dataslice
    name: str  # cmflib's artifact name, "PATH:URI…"
    uri: str
    properties: dict[str, Any] = field(default_factory=dict)  # the artifact's custom ones

    @property
    def path(self) -> str:
        """The path cmflib logged, the name before ":URI"."""
        at = self.name.find(":" + self.uri) if self.uri else -1
        return self.name[:at] if at >= 0 else self.name


@dataclass
class MlmdExecution:
    id: int
    pipeline: str
    stage: str
    execution_type: str
    params: dict[str, Any]
    command: Optional[str]
    events: list[MlmdEvent]


def typed(row: sqlite3.Row) -> Any:
    """A property row's value: int, float, bool or str, as cmf import types it."""
    if row["int_value"] is not None:
        return row["int_value"]
    if row["double_value"] is not None:
        return row["double_value"]
    if row["bool_value"] is not None:
        return bool(row["bool_value"])
    return row["string_value"] or ""


def read_mlmd(path: str) -> list[MlmdExecution]:
    """The executions of the MLMD store PATH in their order, with stage, type, custom
    properties, command and events (in the order cmflib logged them)."""
    uri = pathlib.Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
    db = sqlite3.connect(uri, uri=True)
    db.row_factory = sqlite3.Row
    try:
        pipelines = {r["id"]: r["name"] for r in db.execute(
            "SELECT c.id, c.name FROM Context c JOIN Type t ON t.id = c.type_id "
            "WHERE t.name = 'Parent_Context'")}
        stages: dict[int, tuple[str, str]] = {}
        for r in db.execute(
                "SELECT c.id, c.name, (SELECT parent_context_id FROM ParentContext p "
                "WHERE p.context_id = c.id LIMIT 1) AS parent FROM Context c "
                "JOIN Type t ON t.id = c.type_id WHERE t.name <> 'Parent_Context'"):
            pipeline = pipelines.get(r["parent"], "")
            name = r["name"]
            if pipeline and name.startswith(pipeline + "/"):
                stages[r["id"]] = (pipeline, name[len(pipeline) + 1:])
            else:
                stages[r["id"]] = (pipeline or name.partition("/")[0],
                                   name.partition("/")[2] or name)
        artifact_props: dict[int, dict[str, Any]] = collections.defaultdict(dict)
        for r in db.execute("SELECT * FROM ArtifactProperty WHERE is_custom_property = 1"):
            artifact_props[r["artifact_id"]][r["name"]] = typed(r)
        executions = []
        for r in db.execute(
                "SELECT e.id, t.name AS type, (SELECT a.context_id FROM Association a "
                "WHERE a.execution_id = e.id ORDER BY a.context_id LIMIT 1) AS context "
                "FROM Execution e JOIN Type t ON t.id = e.type_id ORDER BY e.id"):
            pipeline, stage = stages[r["context"]]
            params, command = {}, None
            for p in db.execute("SELECT * FROM ExecutionProperty WHERE execution_id = ?",
                                (r["id"],)):
                if p["is_custom_property"]:
                    params[p["name"]] = typed(p)
                elif p["name"] == "Execution":
                    command = p["string_value"]
            events = [MlmdEvent(e["artifact_id"],
                                "input" if e["type"] in INPUT_EVENTS else "output",
                                e["type_name"], e["name"], e["uri"] or "",
                                artifact_props.get(e["artifact_id"], {}))
                      for e in db.execute(
                          "SELECT ev.artifact_id, ev.type, t.name AS type_name, a.name, a.uri "
                          "FROM Event ev JOIN Artifact a ON a.id = ev.artifact_id "
                          "JOIN Type t ON t.id = a.type_id WHERE ev.execution_id = ? "
                          "ORDER BY ev.id", (r["id"],))]
            executions.append(MlmdExecution(r["id"], pipeline, stage, r["type"], params,
                                            command, events))
        return executions
    finally:
        db.close()


# --- the replay through cmf.compat.cmflib ---


def materialize(workspace: str, store: str, event: MlmdEvent) -> str:
    """Writes the stand-in of EVENT's artifact at its path in WORKSPACE (a folder for cmflib's
    ".dir" artifacts), with bytes of its own: the same artifact gives the same bytes, so cmf
    hashes it to the same artifact, as MLMD has one artifact. Written before each event, as
    the pipeline wrote the file before logging it. Its absolute path."""
    relative = event.path
    parts = pathlib.PurePosixPath(relative).parts
    if not relative or os.path.isabs(relative) or ".." in parts:
        relative = f"artifacts/{event.artifact}"
    path = os.path.join(workspace, relative)
    content = f"stand-in for MLMD artifact {event.artifact} of {store}\n"
    if os.path.isdir(path) and not event.uri.endswith(".dir"):
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if event.uri.endswith(".dir"):
        if os.path.isfile(path):
            os.remove(path)
        os.makedirs(path, exist_ok=True)
        path_in = os.path.join(path, "content")
        with open(path_in, "w", encoding="utf-8") as f:
            f.write(content)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
    return path


def replay(test: unittest.TestCase, workspace: str, store: str,
           executions: list[MlmdExecution]) -> None:
    """Makes, in WORKSPACE, the cmflib calls that recorded EXECUTIONS."""
    writers: dict[str, Cmf] = {}
    for x in executions:
        if x.pipeline not in writers:
            writers[x.pipeline] = Cmf(filepath=os.path.join(workspace, "mlmd"),
                                      pipeline_name=x.pipeline)
        writer = writers[x.pipeline]
        writer.create_context(pipeline_stage=x.stage)
        writer.create_execution(execution_type=x.execution_type, custom_properties=x.params,
                                cmd=x.command)
        for e in x.events:
            if e.type == "Dataset":
                writer.log_dataset(materialize(workspace, store, e), e.direction)
            elif e.type == "Model":
                writer.log_model(materialize(workspace, store, e), e.direction)
            elif e.type == "Metrics" and e.direction == "output":
                writer.log_execution_metrics(e.name.split(":")[0], e.properties)
            elif e.type == "Step_Metrics" and e.direction == "output":
                name = e.name.split(":")[0]
                for step in range(3):
                    writer.log_metric(name, {name: 1.0 / (step + 1)})
                writer.commit_metrics(name)
            elif e.type == "Dataslice" and e.direction == "output":
                member = materialize(workspace, store, e)
                data_slice = writer.create_dataslice(e.path)
                data_slice.add_data(member)
                data_slice.commit()
            else:
                test.fail(f"the replay cannot log an MLMD {e.type} as {e.direction}")
    for writer in writers.values():
        writer.finalize()


# --- what a cmf repository holds, up to naming ---


def graph_form(executions: list[dict[str, Any]], rounds: int = 4) -> collections.Counter:
    """A canonical form of the graph of EXECUTIONS (`cmf log --json`) up to naming: nodes are
    executions (labelled by pipeline, stage and parameters) and artifacts (by kind), edges
    their events; each node's label is refined ROUNDS times with the labels of its neighbours
    (Weisfeiler-Lehman), and the form is the multiset of the final labels."""
    label: dict[str, str] = {}
    edges: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for x in executions:
        node = "x:" + x["id"]
        label[node] = json.dumps([x["pipeline"], x["stage"], x["params"]], sort_keys=True)
        for direction, back in (("inputs", "used by"), ("outputs", "made by")):
            for a in x[direction]:
                artifact = "a:" + a["hash"]
                label[artifact] = a["kind"]
                edges[node].append((direction, artifact))
                edges[artifact].append((back, node))
    for _ in range(rounds):
        label = {node: hashlib.sha256(json.dumps(
            [text, sorted((how, label[other]) for how, other in edges[node])]).encode())
            .hexdigest() for node, text in label.items()}
    return collections.Counter(label.values())


def summary(executions: list[dict[str, Any]]) -> dict[str, Any]:
    """What two repositories holding the same pipeline share, whatever the ids and hashes."""
    kinds: dict[str, set[str]] = collections.defaultdict(set)
    for x in executions:
        for a in x["inputs"] + x["outputs"]:
            kinds[a["kind"]].add(a["hash"])
    return {
        "executions per stage": collections.Counter((x["pipeline"], x["stage"])
                                                    for x in executions),
        "statuses": collections.Counter(x["status"] for x in executions),
        "artifacts per kind": {kind: len(hashes) for kind, hashes in kinds.items()},
        "events": sum(len(x["inputs"]) + len(x["outputs"]) for x in executions),
        "inputs and outputs per stage": collections.Counter(
            (x["stage"], len(x["inputs"]), len(x["outputs"])) for x in executions),
        "parameters per stage": collections.Counter(
            (x["stage"], json.dumps(x["params"], sort_keys=True)) for x in executions),
        "commands": collections.Counter(tuple(x["command"]) for x in executions),
    }


class Workspaces(unittest.TestCase):
    """Each test gets fresh temporary folders."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def folder(self, name: str) -> str:
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        return path

    def file(self, name: str, text: str) -> str:
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path


class ReplayTest(Workspaces):
    def replayed_and_imported(self, name: str) -> tuple[list[MlmdExecution], list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
        """The pipeline of store NAME, as replayed through Cmf and as imported by cmf."""
        store = mlmd_store(self, name)
        executions = read_mlmd(store)
        self.assertTrue(executions, f"{store} holds no execution")
        replayed = self.folder("replayed")
        replay(self, replayed, name, executions)
        imported = self.folder("imported")
        cli(imported, "init")
        cli(imported, "import", "cmflib", store)
        return (executions, cmf.Repo(replayed).log().to_list(),
                json.loads(cli(imported, "log", "--json")))

    def assert_same_pipeline(self, replayed: list[dict[str, Any]],
                             imported: list[dict[str, Any]]) -> None:
        mine, theirs = summary(replayed), summary(imported)
        for what in mine:
            self.assertEqual(mine[what], theirs[what], what)
        self.assertEqual(graph_form(replayed), graph_form(imported),
                         "the graphs of executions and artifacts differ")

    def test_the_reptile_pipeline_replayed_through_cmflib_calls_reads_as_its_import(
            self) -> None:
        executions, replayed, imported = self.replayed_and_imported(
            "aldkl_reptile.mlmd.sqlite")
        self.assertEqual(len(replayed), len(executions))
        self.assert_same_pipeline(replayed, imported)
        # The Reptile updates' custom property (misspelled in the notebook) is a parameter.
        updates = [x for x in executions if "epsion" in x.params]
        self.assertTrue(updates)
        self.assertEqual(sorted(x["params"]["epsion"] for x in replayed
                                if "epsion" in x["params"]),
                         sorted(x.params["epsion"] for x in updates))
        self.assertEqual({x["properties"]["execution_type"] for x in replayed},
                         {x.execution_type for x in executions})

    def test_the_aldkl_pipeline_with_its_metrics_reads_as_its_import(self) -> None:
        executions, replayed, imported = self.replayed_and_imported("aldkl.mlmd.sqlite")
        self.assert_same_pipeline(replayed, imported)
        kinds = summary(replayed)["artifacts per kind"]
        self.assertEqual(kinds["metrics"], sum(e.type in ("Metrics", "Step_Metrics")
                                               for x in executions for e in x.events))


class CompatTest(Workspaces):
    def setUp(self) -> None:
        super().setUp()
        self.workspace = self.folder("ws")
        self.writer = Cmf(filepath=os.path.join(self.workspace, "mlmd"), pipeline_name="ALDKL",
                          custom_properties={"owner": "edge"})
        self.writer.create_context("Training", custom_properties={"site": "microscope"})

    def test_the_folder_of_filepath_holds_the_repository(self) -> None:
        self.assertEqual(self.writer.repo.workspace, self.workspace)
        self.assertTrue(os.path.isdir(os.path.join(self.workspace, ".cmf")))
        self.assertFalse(os.path.exists(os.path.join(self.workspace, "mlmd")))
        again = Cmf(filepath=os.path.join(self.workspace, "mlmd"))  # found, not made again
        self.assertEqual(again.repo.workspace, self.workspace)

    def test_an_execution_records_its_stage_parameters_and_artifacts(self) -> None:
        patches = self.file("ws/data/patches.npy", "patches")
        model = self.file("ws/model.pt", "weights")
        first = self.writer.create_execution("Train", {"lr": 0.01, "epochs": 3, "fn": len},
                                             cmd="['train.py', '--lr', '0.01']")
        data = self.writer.log_dataset(patches, "INPUT", custom_properties={"source": "stem"})
        out = self.writer.log_model(model, "Output", model_framework="PyTorch")
        self.assertEqual((data.kind, data.event, data.path), ("dataset", "input",
                                                              "data/patches.npy"))
        self.assertEqual(data.name, f"data/patches.npy:{data.uri}")
        self.assertEqual(out.kind, "model")
        second = self.writer.create_execution("Infer")  # the first ends ok
        self.writer.log_model(model, "input")
        self.writer.finalize()
        records = {x["id"]: x for x in self.writer.repo.log().to_list()}
        train, infer = records[first.id], records[second.id]
        self.assertEqual((train["pipeline"], train["stage"], train["status"]),
                         ("ALDKL", "Training", "ok"))
        self.assertEqual(train["params"], {"lr": 0.01, "epochs": 3, "fn": str(len)})
        self.assertEqual(train["command"], ["train.py", "--lr", "0.01"])
        for name, value in {"execution_type": "Train", "pipeline:owner": "edge",
                            "stage:site": "microscope"}.items():
            self.assertEqual(train["properties"][name],
                             value, name)
        # An artifact's custom properties are the artifact's, as cmflib and the import keep them.
        shown = json.loads(cli(self.workspace, "show", "--artifact", data.uri, "--json"))
        self.assertEqual(shown["properties"], {"source": "stem"})
        shown = json.loads(cli(self.workspace, "show", "--artifact", out.uri, "--json"))
        self.assertEqual(shown["properties"], {"model_framework": "PyTorch"})  # not "Default"
        self.assertEqual(infer["status"], "ok")
        self.assertEqual([a["hash"] for a in infer["inputs"]], [out.uri])

    def test_step_metrics_become_series_named_by_their_keys(self) -> None:
        execution = self.writer.create_execution("Train")
        for loss in (0.5, 0.25, 0.125):
            self.writer.log_metric("training_metrics", {"loss": loss, "accuracy": 1 - loss})
        artifact = self.writer.commit_metrics("training_metrics")
        coarse = self.writer.log_execution_metrics("test_metrics", {"mse": 0.01})
        self.writer.finalize()
        self.assertEqual(self.writer.repo.metrics(execution.id),
                         {"loss": [[1, 0.5], [2, 0.25], [3, 0.125]],
                          "accuracy": [[1, 0.5], [2, 0.75], [3, 0.875]]})
        record = self.writer.repo.show(execution.id)
        self.assertEqual(record["properties"]["test_metrics:mse"], 0.01)
        self.assertEqual(sorted(a["hash"] for a in record["outputs"]),
                         sorted([artifact.uri, coarse.uri]))
        self.assertEqual({a["kind"] for a in record["outputs"]}, {"metrics"})
        with open(os.path.join(self.workspace, coarse.path), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["values"], {"mse": 0.01})

    def test_a_data_slice_derives_from_the_folder_its_files_lie_in(self) -> None:
        folder = self.folder("ws/raw")
        self.file("ws/raw/1.xml", "one")
        member = self.file("ws/raw/2.xml", "two")
        self.writer.create_execution("Slice")
        raw = self.writer.log_dataset(folder, "input")
        data_slice = self.writer.create_dataslice("slice-a")
        data_slice.add_data(member, {"label": 1})
        made = data_slice.commit({"mean": 2.5})
        self.writer.finalize()
        self.assertEqual(made.kind, "dataslice")
        graph = self.writer.repo.lineage(made.uri, up=True)
        self.assertIn(raw.uri, {n["id"] for n in graph["nodes"]})

    def test_a_block_that_raises_leaves_its_execution_failed(self) -> None:
        with self.assertRaises(RuntimeError):
            with self.writer as writer:
                execution = writer.create_execution("Train")
                raise RuntimeError("out of memory")
        record = self.writer.repo.show(execution.id)
        self.assertEqual(record["status"], "failed")
        self.assertIn("out of memory", record["message"])

    def test_a_missing_file_raises_not_found(self) -> None:
        self.writer.create_execution("Train")
        missing = os.path.join(self.workspace, "missing.npy")
        with self.assertRaises(cmf.NotFoundError):
            self.writer.log_dataset(missing, "input")
        with self.assertRaises(cmf.NotFoundError):
            self.writer.log_model(missing, "output")
        with self.assertRaises(cmf.NotFoundError):
            self.writer.create_dataslice("s").add_data(missing)

    def test_calls_cmf_cannot_honour_raise_not_implemented_naming_them(self) -> None:
        self.writer.create_execution("Train")
        path = self.file("ws/data.npy", "data")
        cases = {
            "log_dataset_with_version": lambda: self.writer.log_dataset_with_version(
                path, "abc", "input"),
            "log_model_with_version": lambda: self.writer.log_model_with_version(path, "input"),
            "update_execution": lambda: self.writer.update_execution(1, {"a": 1}),
            "external=True": lambda: self.writer.log_dataset(path, "input", external=True),
            "graph=True": lambda: Cmf(filepath=os.path.join(self.workspace, "mlmd"),
                                      graph=True),
            "is_server=True": lambda: Cmf(filepath=os.path.join(self.workspace, "mlmd"),
                                          is_server=True),
            "create_new_execution=False": lambda: self.writer.create_execution(
                "Other", create_new_execution=False),
        }
        for name, call in cases.items():
            with self.subTest(name):
                with self.assertRaises(NotImplementedError) as raised:
                    call()
                self.assertIn(name, str(raised.exception))

    def test_a_url_that_is_not_a_local_file_is_refused(self) -> None:
        self.writer.create_execution("Train")
        with self.assertRaises(cmf.InvalidArgumentError) as raised:
            self.writer.log_dataset("s3://bucket/data.npy", "input")
        self.assertIn("not a local path", str(raised.exception))
        path = self.file("ws/local.npy", "local")
        self.assertEqual(self.writer.log_dataset(pathlib.Path(path).as_uri(), "input").path,
                         "local.npy")

    def test_logging_without_an_execution_or_with_another_event_is_refused(self) -> None:
        path = self.file("ws/data.npy", "data")
        with self.assertRaises(cmf.InvalidArgumentError):
            self.writer.log_dataset(path, "input")
        self.writer.create_execution("Train")
        with self.assertRaises(cmf.InvalidArgumentError):
            self.writer.log_dataset(path, "both")


if __name__ == "__main__":
    unittest.main()
