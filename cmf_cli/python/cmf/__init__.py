"""cmf from Python: log runs of a stage into a cmf repository, and read them back.

    import cmf
    repo = cmf.Repo()                      # finds .cmf/ from here upwards, as the CLI does
    with repo.run(stage="train", pipeline="ALDKL", params={"lr": 0.01}) as run:
        run.log_input("patches.h5")
        for epoch in range(100):
            run.log_metric("loss", epoch, loss)
        run.log_metrics("mll", steps, values)   # many steps at once: lists or NumPy arrays
        run.log_output("model.pt", kind="model")
    repo.log(stage="train").to_list()       # dicts with the keys of `cmf log --json`
    repo.lineage("model.pt", up=True)       # the dict of `cmf lineage --format json`

Every logging call records its facts in the store before it returns, as cmf's C++ API does. A
block that raises records the run as failed with the exception's message; Ctrl-C
(KeyboardInterrupt) as interrupted. doc/python.md documents the module.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

# In the build tree, the modules that cmf loads on first use (git, HDF5, ssh) lie in the build
# folders, not where `meson install` puts them: _build (written by the build, never installed)
# says where.
try:
    from . import _build  # type: ignore[attr-defined]
except ImportError:  # installed
    _build = None
if _build is not None:
    for _name, _path in _build.MODULES.items():
        os.environ.setdefault(_name, _path)

from ._cmf import (  # noqa: E402
    AlreadyExistsError,
    ConflictError,
    CorruptionError,
    Error,
    InvalidArgumentError,
    NotFoundError,
    Run,
    StoreIOError,
    _Repo,
    __version__,
)

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Scalar = Union[bool, int, float, str]

__all__ = [
    "Repo", "Run", "Executions", "init",
    "Error", "NotFoundError", "AlreadyExistsError", "InvalidArgumentError", "StoreIOError",
    "CorruptionError", "ConflictError", "__version__",
]


class Executions:
    """Executions that match a filter, newest first; read when iterated or listed."""

    def __init__(self, repo: "Repo", pipeline: Optional[str], stage: Optional[str],
                 limit: Optional[int], where: Sequence[str]):
        self._repo = repo
        self._pipeline = pipeline
        self._stage = stage
        self._limit = limit
        self._where = list(where)

    def to_list(self) -> list[dict[str, Any]]:
        """Each execution as the dict `cmf log --json` prints for it."""
        text = self._repo._native.executions_json(self._pipeline, self._stage, self._limit,
                                                  self._where)
        return json.loads(text)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_list())

    def __len__(self) -> int:
        return len(self.to_list())


class Repo:
    """A cmf repository: the workspace folder that holds .cmf/.

    Repo() finds .cmf/ from the current folder upwards (or from PATH; CMF_DIR as the CLI reads
    it); Repo(read_only=True) opens it for reading only, which is faster to open and refuses
    every write. NotFoundError when there is no repository.
    """

    def __init__(self, path: Optional[PathLike] = None, *, read_only: bool = False,
                 _native: Optional[_Repo] = None):
        if _native is None:
            cmf_dir = os.environ.get("CMF_DIR") or None
            _native = _Repo.open(path, cmf_dir if path is None else None, read_only)
        self._native = _native

    @property
    def workspace(self) -> str:
        return self._native.workspace

    @property
    def cmf_dir(self) -> str:
        return self._native.cmf_dir

    @property
    def site(self) -> str:
        """This site's id (empty when opened read-only)."""
        return self._native.site

    def run(self, stage: str, pipeline: Optional[str] = None,
            params: Optional[Mapping[str, Scalar]] = None, *,
            command: Sequence[str] = (), id: str = "", environment: bool = True) -> Run:
        """Starts a run of STAGE (recorded "running" at once). Use it in a with-block, or call
        finish() yourself; a run never finished shows as interrupted once its process is gone.

        PIPELINE defaults to config core.pipeline, else the workspace folder's name. PARAMS are
        bool, int, float or str. ENVIRONMENT records the packages it could use (cmf diff).
        """
        return Run._start(self._native, stage, pipeline or "", dict(params or {}),
                          [str(c) for c in command], id, environment)

    def log(self, stage: Optional[str] = None, pipeline: Optional[str] = None,
            limit: Optional[int] = None, where: Union[str, Sequence[str], None] = None
            ) -> Executions:
        """Executions, newest first, as `cmf log` selects them: WHERE is an expression of
        `cmf log --where` ("metrics.rmse < 0.02 and params.acquisition = 'ei'"), or a list of
        them that must all hold. A malformed one is InvalidArgumentError."""
        if where is None:
            where = []
        elif isinstance(where, str):
            where = [where]
        return Executions(self, pipeline, stage, limit, where)

    def show(self, id: str) -> dict[str, Any]:
        """One execution by its id or a unique prefix, as `cmf show --json` prints it."""
        return json.loads(self._native.execution_json(id))

    def metrics(self, id: str, series: Optional[str] = None) -> dict[str, list[list[float]]]:
        """An execution's step metrics: series name -> [[step, value], ...], steps ascending
        (NaN and infinities are None)."""
        return json.loads(self._native.metrics_json(id, series))["series"]

    def lineage(self, target: PathLike, up: bool = True, down: bool = False,
                depth: Optional[int] = None) -> dict[str, Any]:
        """The lineage graph of a path, execution id, artifact hash or @tag, as
        `cmf lineage --format json` prints it: {"root", "nodes", "edges"}."""
        return json.loads(self._native.lineage_json(target, up, down, depth))

    def __repr__(self) -> str:
        return f"<cmf.Repo {self.workspace}>"


def init(path: PathLike = ".") -> Repo:
    """Creates a repository in the folder PATH (cmf init). AlreadyExistsError when it has one."""
    return Repo(_native=_Repo.init(path))
