"""cmflib's logging API over a cmf repository, so that notebooks written for cmflib log into cmf.

    from cmf.compat.cmflib import Cmf        # instead of: from cmflib.cmf import Cmf
    metawriter = Cmf(filepath="mlmd", pipeline_name="ALDKL")
    metawriter.create_context(pipeline_stage="Training")
    metawriter.create_execution(execution_type="Train", custom_properties={"lr": 0.01})
    metawriter.log_dataset("data/patches.npy", "input")
    for epoch in range(epochs):
        metawriter.log_metric("training_metrics", {"mll": mll})
    metawriter.commit_metrics("training_metrics")
    metawriter.log_model("model.pt", "output", model_framework="PyTorch")
    metawriter.finalize()

Each cmflib execution is one cmf run: its stage is the context's pipeline_stage, its pipeline the
Cmf's pipeline_name, its parameters the execution's custom_properties. Records go where
`cmf import cmflib` puts the same facts read from an MLMD store (kinds dataset, model, metrics,
dataslice; stage without the "PIPELINE/" prefix), so a notebook logged live and a store imported
later read alike. A run ends "ok" when the next execution is created, at finalize(), or at the
end of a with-block (failed or interrupted when the block raises).

cmf versions an artifact by hashing its bytes: every logged path must exist, and a URL that is
not a local file is refused. What cmf cannot honour (Neo4j graphs, a cmflib server, versions
given instead of files, updates of MLMD records) raises NotImplementedError naming the call.
doc/python.md, "cmflib compatibility", has the mapping in full.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import numbers
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NoReturn, Optional, Union

import cmf

__all__ = ["Cmf", "DataSlice", "Context", "Execution", "Artifact"]

PathLike = Union[str, "os.PathLike[str]"]
Scalar = Union[bool, int, float, str]

# The folder, in the workspace, that holds the files cmf makes for records that cmflib keeps
# without a file of the user's (execution metrics, step metrics, data slices): one folder per
# execution, so that nothing of the user's is overwritten.
RECORDS_FOLDER = "cmflib-records"


@dataclass(frozen=True)
class Context:
    """A stage (cmflib's pipeline_stage context): NAME is "PIPELINE/STAGE" as cmflib names it."""

    name: str
    pipeline: str
    stage: str
    properties: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Execution:
    """One cmflib execution: a cmf run. ID is the run's id (a UUID, not MLMD's row number)."""

    id: str
    execution_type: str
    pipeline: str
    stage: str


@dataclass(frozen=True)
class Artifact:
    """An artifact logged by an execution. URI is its cmf hash (SHA-256); NAME is "PATH:URI",
    the shape of cmflib's artifact names."""

    name: str
    uri: str
    path: str
    kind: str
    event: str


def _scalar(value: Any) -> Scalar:
    """A custom property's value as cmf records it: bool, int, float and str as they are, NumPy
    numbers as Python numbers, None as "" (cmflib stores an empty value, which cmf import reads
    as ""), anything else as its str() (what cmflib stores for it)."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, str)):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def _scalars(properties: Optional[Mapping[Any, Any]]) -> dict[str, Scalar]:
    return {str(k): _scalar(v) for k, v in (properties or {}).items()}


def _invalid(message: str) -> NoReturn:
    raise cmf.InvalidArgumentError(message)


def _direction(call: str, event: str) -> str:
    """cmflib's event, "input" or "output" in any case, as cmf's direction."""
    direction = str(event).lower()
    if direction not in ("input", "output"):
        _invalid(f"{call}: event is 'input' or 'output', not {event!r}")
    return direction


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _local_path(call: str, url: PathLike) -> str:
    """URL as a local path: a path as it is, file://… as its path; any other URL is refused,
    since cmf versions what it can hash (cmflib hands the path to `dvc add`, which also needs a
    local file)."""
    text = os.fspath(url)
    if not _URL.match(text):
        return text
    parts = urllib.parse.urlparse(text)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return urllib.parse.unquote(parts.path)
    _invalid(f"{call}: '{text}' is not a local path: cmf logs files it can hash "
             "(fetch it, then log the local copy)")


def _command(cmd: Optional[str]) -> list[str]:
    """cmflib's cmd (a string; by default str(sys.argv)) as argv, read as `cmf import cmflib`
    reads the Execution property: a Python list of strings as that list, other text as one
    word."""
    if cmd is None:
        return [str(a) for a in sys.argv]
    text = str(cmd)
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return [text] if text else []
    if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
        return parsed
    return [text] if text else []


def _file_name(name: str) -> str:
    """NAME made safe as one file name: no folders, no leading dot."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return safe or "unnamed"


def _sha256(path: str) -> Optional[str]:
    """The SHA-256 of a file's bytes (cmf's hash of a file); None for a directory."""
    if os.path.isdir(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _not_offered(call: str, why: str) -> Callable[..., NoReturn]:
    """A method of cmflib's that cmf cannot honour: it raises NotImplementedError naming CALL."""

    def method(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(f"{call} is not offered by cmf.compat.cmflib: {why}")

    method.__name__ = call.rsplit(".", 1)[-1]
    method.__doc__ = f"Not offered: raises NotImplementedError ({why})."
    return method


class DataSlice:
    """A named subset of data files (Cmf.create_dataslice). add_data() lists a file; commit()
    writes the list, with each file's SHA-256 and properties, as a JSON file and logs it as an
    output of kind dataslice of the current execution."""

    def __init__(self, name: str, writer: "Cmf"):
        self.name = name
        self.writer = writer
        self.props: dict[str, dict[str, Scalar]] = {}

    def add_data(self, path: PathLike, custom_properties: Optional[Mapping[str, Any]] = None
                 ) -> None:
        """Adds the file or folder PATH (which must exist: NotFoundError) with its properties."""
        local = _local_path("DataSlice.add_data", path)
        if not os.path.exists(local):
            raise cmf.NotFoundError(f"DataSlice.add_data: no such file or directory '{local}'")
        self.props[local] = _scalars(custom_properties)

    def commit(self, custom_properties: Optional[Mapping[str, Any]] = None) -> Artifact:
        """Logs the slice as an output of kind dataslice of the current execution, its
        CUSTOM_PROPERTIES as properties of the slice's artifact. The slice derives from each
        member that cmf knows as an artifact and from each artifact this Cmf logged whose folder
        holds a member (cmflib's precondition: the parent folder is versioned)."""
        run = self.writer._current("DataSlice.commit")
        members = []
        for path in sorted(self.props):
            if not os.path.exists(path):
                raise cmf.NotFoundError(f"DataSlice.commit: no such file or directory '{path}'")
            members.append({"path": path, "sha256": _sha256(path),
                            "properties": self.props[path]})
        record = self.writer._write_record(run, "dataslice", self.name,
                                           {"dataslice": self.name, "members": members})
        slice_ = self.writer._log(run, "DataSlice.commit", record, "output", "dataslice")
        for parent in self.writer._parents_of([m["path"] for m in members],
                                              [m["sha256"] for m in members]):
            if parent == slice_.uri:
                continue
            try:
                run.log_derived_from(slice_.uri, parent)
            except cmf.NotFoundError:
                pass  # a member whose bytes cmf has never recorded: listed in the slice only
        self.writer._set_artifact_properties(run, slice_, _scalars(custom_properties))
        return slice_

    commit_existing = _not_offered(
        "DataSlice.commit_existing",
        "cmf records a slice from its files, not from a hash known elsewhere (use commit)")


class Cmf:
    """cmflib's Cmf, logging into a cmf repository.

    FILEPATH is cmflib's MLMD file: here its folder is where the cmf repository is found (from
    that folder upwards, as the cmf CLI finds .cmf/) or, when there is none, created. No MLMD
    file is written; bring an existing one in with `cmf import cmflib FILE`. FILENAME is the
    older cmflib's name of FILEPATH. PIPELINE_NAME is the cmf pipeline (empty: config
    core.pipeline, else the workspace folder's name); CUSTOM_PROPERTIES become properties
    "pipeline:KEY" of each execution. GRAPH=True (Neo4j) and IS_SERVER=True raise
    NotImplementedError.
    """

    def __init__(self, filepath: str = "mlmd", pipeline_name: str = "",
                 custom_properties: Optional[Mapping[str, Any]] = None, graph: bool = False,
                 is_server: bool = False, *, filename: Optional[str] = None):
        if graph:
            raise NotImplementedError(
                "Cmf(graph=True) is not offered by cmf.compat.cmflib: cmf keeps lineage in its "
                "own store (cmf lineage, cmf ui), not in Neo4j")
        if is_server:
            raise NotImplementedError(
                "Cmf(is_server=True) is not offered by cmf.compat.cmflib: cmf shares metadata "
                "with cmf commit, push and pull, not through a cmflib server")
        path = os.fspath(filename if filename is not None else filepath)
        folder = os.path.dirname(os.path.abspath(path))
        try:
            self.repo = cmf.Repo(folder)
        except cmf.NotFoundError:
            if not os.path.isdir(folder):
                raise
            self.repo = cmf.init(folder)
        self.filepath = path
        self.pipeline_name = pipeline_name
        self._pipeline_props = _scalars(custom_properties)
        self.parent_context = Context(pipeline_name, pipeline_name, "", self._pipeline_props)
        self.child_context: Optional[Context] = None
        self.execution: Optional[Execution] = None
        self._run: Optional[cmf.Run] = None
        self._rows: dict[str, dict[int, Mapping[str, Any]]] = {}  # log_metric, per execution
        self._series: dict[str, str] = {}  # step-metric series -> its metrics_name
        self._logged: dict[str, str] = {}  # absolute path -> hash, of what this Cmf logged

    # --- contexts and executions ---

    def create_context(self, pipeline_stage: str,
                       custom_properties: Optional[Mapping[str, Any]] = None) -> Context:
        """Makes PIPELINE_STAGE the stage of the executions created next; CUSTOM_PROPERTIES
        become properties "stage:KEY" of each of them. The current execution goes on."""
        if not pipeline_stage:
            _invalid("create_context: the pipeline_stage is empty")
        name = f"{self.pipeline_name}/{pipeline_stage}" if self.pipeline_name else pipeline_stage
        self.child_context = Context(name, self.pipeline_name, pipeline_stage,
                                     _scalars(custom_properties))
        return self.child_context

    def create_execution(self, execution_type: str,
                         custom_properties: Optional[Mapping[str, Any]] = None,
                         cmd: Optional[str] = None, create_new_execution: bool = True
                         ) -> Execution:
        """Finishes the current execution "ok" and starts a cmf run of the context's stage.
        CUSTOM_PROPERTIES are its parameters; CMD (default str(sys.argv)) its command;
        EXECUTION_TYPE its property "execution_type". CREATE_NEW_EXECUTION=False reuses the
        current execution when it has this type and stage; cmf cannot reopen a finished one
        (NotImplementedError)."""
        if self.child_context is None:
            _invalid("create_execution: no stage: call create_context first")
        stage = self.child_context.stage
        if not create_new_execution:
            current = self.execution
            if current is not None and (current.execution_type, current.stage) == (
                    execution_type, stage):
                return current
            raise NotImplementedError(
                "create_execution(create_new_execution=False) is not offered by "
                "cmf.compat.cmflib for an execution other than the current one: a finished cmf "
                "run cannot be reopened")
        self._finish()
        run = self.repo.run(stage=stage, pipeline=self.pipeline_name or None,
                            params=_scalars(custom_properties), command=_command(cmd))
        try:
            run.set_property("execution_type", str(execution_type))
            for prefix, props in (("pipeline", self._pipeline_props),
                                  ("stage", self.child_context.properties)):
                for key, value in props.items():
                    run.set_property(f"{prefix}:{key}", value)
        except BaseException as e:
            run.__exit__(type(e), e, e.__traceback__)
            raise
        self._run = run
        self.execution = Execution(run.id, str(execution_type), run.pipeline, run.stage)
        return self.execution

    def finalize(self) -> None:
        """Finishes the current execution "ok" (cmflib's git commit has no counterpart: cmf
        records every fact as it is logged; `cmf commit` seals them)."""
        self._finish()

    def __enter__(self) -> "Cmf":
        return self

    def __exit__(self, type: Any, value: Any, traceback: Any) -> bool:
        """finalize(), or, when the block raised, the current execution ends failed (interrupted
        on KeyboardInterrupt) with the exception's message."""
        if type is None:
            self._finish()
            return False
        run = self._forget()
        if run is not None and not run.finished:
            run.__exit__(type, value, traceback)
        return False

    # --- artifacts ---

    def log_dataset(self, url: PathLike, event: str,
                    custom_properties: Optional[Mapping[str, Any]] = None,
                    external: bool = False) -> Artifact:
        """Logs the file or folder URL (hashed; NotFoundError when missing) as an input or output
        of kind dataset; CUSTOM_PROPERTIES become properties of the artifact, as cmflib and
        cmf import cmflib record them. EXTERNAL=True raises NotImplementedError."""
        if external:
            raise NotImplementedError(
                "log_dataset(external=True) is not offered by cmf.compat.cmflib: cmf versions "
                "a dataset by hashing its bytes, which must be a local file or folder")
        run = self._current("log_dataset")
        path = _local_path("log_dataset", url)
        artifact = self._log(run, "log_dataset", path, _direction("log_dataset", event),
                             "dataset")
        self._set_artifact_properties(run, artifact, _scalars(custom_properties))
        return artifact

    def log_model(self, path: PathLike, event: str, model_framework: str = "Default",
                  model_type: str = "Default", model_name: str = "Default",
                  custom_properties: Optional[Mapping[str, Any]] = None) -> Artifact:
        """Logs the file or folder PATH as an input or output of kind model; model_framework,
        model_type and model_name (those not "Default") and CUSTOM_PROPERTIES become properties
        of the artifact."""
        run = self._current("log_model")
        local = _local_path("log_model", path)
        artifact = self._log(run, "log_model", local, _direction("log_model", event), "model")
        described = {k: v for k, v in (("model_framework", model_framework),
                                        ("model_type", model_type),
                                        ("model_name", model_name)) if v != "Default"}
        self._set_artifact_properties(run, artifact,
                                      {**_scalars(described), **_scalars(custom_properties)})
        return artifact

    # --- metrics ---

    def log_execution_metrics(self, metrics_name: str,
                              custom_properties: Optional[Mapping[str, Any]] = None
                              ) -> Artifact:
        """Records coarse metrics of the execution: each value as a property
        "METRICS_NAME:KEY" of the execution (cmf log and cmf query --where), and all of
        them as a JSON file logged as an output of kind metrics (cmflib's Metrics artifact)."""
        run = self._current("log_execution_metrics")
        values = _scalars(custom_properties)
        record = self._write_record(run, "metrics", metrics_name,
                                    {"metrics": metrics_name, "execution": run.id,
                                     "values": {k: _jsonable(v) for k, v in values.items()}})
        artifact = self._log(run, "log_execution_metrics", record, "output", "metrics")
        self._set_properties(run, metrics_name, values)
        return artifact

    def log_metric(self, metrics_name: str,
                   custom_properties: Optional[Mapping[str, Any]] = None) -> None:
        """Keeps one row of step metrics (cmflib numbers the rows 1, 2, …) until
        commit_metrics(METRICS_NAME)."""
        self._current("log_metric")
        rows = self._rows.setdefault(metrics_name, {})
        rows[max(rows, default=0) + 1] = dict(custom_properties or {})

    def commit_metrics(self, metrics_name: str) -> Artifact:
        """Writes the rows kept by log_metric as step-metric series of the execution, one per
        key, named by the key, the row number as the step; and all the rows as a JSON file
        logged as an output of kind metrics (cmflib's Step_Metrics parquet file). Values are
        numbers; a key that another metrics_name of this execution already wrote is refused."""
        run = self._current("commit_metrics")
        rows = self._rows.get(metrics_name)
        if not rows:
            _invalid(f"commit_metrics: no rows of '{metrics_name}' were logged by this "
                     "execution (log_metric first)")
        series: dict[str, tuple[list[int], list[float]]] = {}
        for step, row in sorted(rows.items()):
            for key, value in row.items():
                if not _is_number(value):
                    _invalid(f"commit_metrics: '{key}' of row {step} of '{metrics_name}' is a "
                             f"{type(value).__name__}: step metrics are numbers")
                steps, values = series.setdefault(str(key), ([], []))
                steps.append(step)
                values.append(float(value))
        for name in series:
            owner = self._series.get(name, metrics_name)
            if owner != metrics_name:
                _invalid(f"commit_metrics: the series '{name}' of '{metrics_name}' was already "
                         f"written by '{owner}' in this execution")
        table = {str(step): {str(k): _jsonable(float(v)) for k, v in row.items()}
                 for step, row in sorted(rows.items())}
        record = self._write_record(run, "step_metrics", metrics_name,
                                    {"step_metrics": metrics_name, "execution": run.id,
                                     "rows": table})
        for name, (steps, values) in series.items():
            run.log_metrics(name, steps, values)
            self._series[name] = metrics_name
        return self._log(run, "commit_metrics", record, "output", "metrics")

    # --- data slices and links ---

    def create_dataslice(self, name: str) -> DataSlice:
        """A new, empty data slice NAME (see DataSlice)."""
        return DataSlice(name, self)

    def link_artifacts(self, artifact_source: Artifact, artifact_target: Artifact) -> None:
        """Records that ARTIFACT_TARGET derives from ARTIFACT_SOURCE (cmflib draws this link
        in Neo4j only; cmf keeps it as a derived_from edge of its lineage)."""
        run = self._current("link_artifacts")
        run.log_derived_from(artifact_target.uri, artifact_source.uri)

    # --- cmflib calls that cmf cannot honour ---

    merge_created_context = _not_offered(
        "Cmf.merge_created_context", "it merges MLMD records pulled from a cmflib server "
        "(cmf pull merges cmf's own)")
    merge_created_execution = _not_offered(
        "Cmf.merge_created_execution", "it merges MLMD records pulled from a cmflib server "
        "(cmf pull merges cmf's own)")
    update_execution = _not_offered(
        "Cmf.update_execution", "a cmf execution cannot be reopened once finished; its "
        "parameters are fixed when it starts")
    log_dvc_lock = _not_offered(
        "Cmf.log_dvc_lock", "cmf does not use DVC; it versions what is logged itself")
    log_dataset_with_version = _not_offered(
        "Cmf.log_dataset_with_version", "cmf takes an artifact's version from its bytes (log "
        "the file with log_dataset)")
    log_model_with_version = _not_offered(
        "Cmf.log_model_with_version", "cmf takes an artifact's version from its bytes (log the "
        "file with log_model)")
    log_execution_metrics_from_client = _not_offered(
        "Cmf.log_execution_metrics_from_client", "it copies metrics of a cmflib client's MLMD "
        "records (use log_execution_metrics)")
    commit_existing_metrics = _not_offered(
        "Cmf.commit_existing_metrics", "cmf records step metrics from rows logged here (use "
        "log_metric and commit_metrics)")
    log_validation_output = _not_offered(
        "Cmf.log_validation_output", "it records an artifact without bytes, which cmf cannot "
        "version")
    update_dataset_url = _not_offered(
        "Cmf.update_dataset_url", "cmf records where an artifact's bytes are by itself (cmf "
        "whereis)")
    update_model_url = _not_offered(
        "Cmf.update_model_url", "cmf records where an artifact's bytes are by itself (cmf "
        "whereis)")
    update_existing_artifact = _not_offered(
        "Cmf.update_existing_artifact", "it rewrites an MLMD artifact record; cmf records are "
        "immutable facts")
    update_model_output = _not_offered(
        "Cmf.update_model_output", "it rewrites an MLMD artifact record; cmf records are "
        "immutable facts")
    update_dataslice = _not_offered(
        "Cmf.update_dataslice", "it rewrites a slice's parquet file in place; commit a new "
        "slice instead")
    read_dataslice = _not_offered(
        "Cmf.read_dataslice", "cmf writes a slice as JSON, not as the parquet file that "
        "cmflib reads into a DataFrame")
    get_artifact = _not_offered(
        "Cmf.get_artifact", "cmf has no MLMD row ids (read artifacts with cmf.Repo: log, "
        "lineage)")

    # --- helpers ---

    def _current(self, call: str) -> "cmf.Run":
        """The current execution's run; InvalidArgumentError when there is none."""
        if self._run is None:
            _invalid(f"{call}: no execution: call create_execution first")
        return self._run

    def _forget(self) -> Optional["cmf.Run"]:
        """Forgets the current execution and what it kept (rows of step metrics); its run."""
        run, self._run, self.execution = self._run, None, None
        self._rows = {}
        self._series = {}
        return run

    def _finish(self) -> None:
        """Ends the current execution "ok", and forgets it."""
        run = self._forget()
        if run is not None and not run.finished:
            run.finish("ok")

    def _log(self, run: "cmf.Run", call: str, path: str, direction: str, kind: str
             ) -> Artifact:
        """Hashes PATH and records it as an input or output of KIND."""
        ref = run.log_input(path, kind=kind) if direction == "input" else \
            run.log_output(path, kind=kind)
        self._logged[os.path.abspath(path)] = ref["hash"]
        return Artifact(f"{ref['path']}:{ref['hash']}", ref["hash"], ref["path"], ref["kind"],
                        direction)

    @staticmethod
    def _set_properties(run: "cmf.Run", name: str, values: Mapping[str, Scalar]) -> None:
        """Sets VALUES as properties "NAME:KEY" of the execution."""
        for key, value in values.items():
            run.set_property(f"{name}:{key}", value)

    @staticmethod
    def _set_artifact_properties(run: "cmf.Run", artifact: Artifact,
                                 values: Mapping[str, Scalar]) -> None:
        """Sets VALUES as properties of ARTIFACT (by its hash), where cmflib puts them."""
        for key, value in values.items():
            run.set_artifact_property(artifact.uri, key, value)

    def _write_record(self, run: "cmf.Run", what: str, name: str, payload: Any) -> str:
        """Writes PAYLOAD as JSON to cmflib-records/RUN/NAME.WHAT.json in the workspace (through
        a temporary file and a rename); its path."""
        folder = os.path.join(self.repo.workspace, RECORDS_FOLDER, run.id)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{_file_name(name)}.{what}.json")
        text = json.dumps(payload, sort_keys=True, indent=1, allow_nan=False) + "\n"
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
        return path

    def _parents_of(self, paths: list[str], hashes: list[Optional[str]]) -> list[str]:
        """The hashes a slice of PATHS (with HASHES) derives from: each member's own, and those
        of what this Cmf logged at a member's path or at a folder above it."""
        parents: list[str] = [h for h in hashes if h]
        for path in paths:
            here = os.path.abspath(path)
            while True:
                if here in self._logged:
                    parents.append(self._logged[here])
                up = os.path.dirname(here)
                if up == here:
                    break
                here = up
        return sorted(set(parents))


def _is_number(value: Any) -> bool:
    """Whether VALUE can be a step metric: a real number (bool and NumPy's included)."""
    return isinstance(value, numbers.Real) or type(value).__name__ == "bool_"


def _jsonable(value: Scalar) -> Scalar:
    """VALUE for a JSON record: a float that is not finite as its text (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


Cmf.DataSlice = DataSlice  # type: ignore[attr-defined]  # cmflib's spelling: Cmf.DataSlice
