// The native half of the Python module `cmf` (cmf/__init__.py is the other):
// a repository and the logging API of core (cmf/run.h), and the reads as the
// JSON text that `--json` prints (json_output.h), so that a dict from Python
// has exactly the keys a script parsing the CLI sees.
//
// Every call converts its Python arguments first, then releases the GIL and
// takes the repository's mutex for the store call: Python threads may log to
// one run (their calls are serialised, as a Repo is used by one thread at a
// time), and a thread waiting on a slow write does not hold up the others.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cmf/lineage.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/run.h"
#include "cmf/status.h"
#include "cmf/store.h"
#include "cmf_config.h"
#include "json_output.h"
#include "selection.h"

namespace py = pybind11;
namespace fs = std::filesystem;

namespace cmf::python {
namespace {

// The exception classes, made once at import (Error is their base).
struct Errors {
  PyObject* base = nullptr;
  PyObject* not_found = nullptr;
  PyObject* already_exists = nullptr;
  PyObject* invalid_argument = nullptr;
  PyObject* io = nullptr;
  PyObject* corruption = nullptr;
  PyObject* conflict = nullptr;
};
Errors errors;

PyObject* ErrorType(Code code) {
  switch (code) {
    case Code::kNotFound:
      return errors.not_found;
    case Code::kAlreadyExists:
      return errors.already_exists;
    case Code::kInvalidArgument:
      return errors.invalid_argument;
    case Code::kIOError:
      return errors.io;
    case Code::kCorruption:
      return errors.corruption;
    case Code::kConflict:
      return errors.conflict;
    default:
      return errors.base;
  }
}

[[noreturn]] void Raise(const Status& status) {
  PyErr_SetString(ErrorType(status.code()), status.message().c_str());
  throw py::error_already_set();
}

void Check(const Status& status) {
  if (!status.ok()) Raise(status);
}

template <typename T>
T Take(Result<T>&& result) {
  if (!result.ok()) Raise(result.status());
  return std::move(*result);
}

// A parameter's or property's value: bool, int, float or str (NumPy's scalars
// included, through their number protocols).
Value ToValue(const std::string& name, py::handle obj) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  if (PyUnicode_Check(obj.ptr())) return obj.cast<std::string>();
  if (PyFloat_Check(obj.ptr())) return PyFloat_AsDouble(obj.ptr());
  std::string type = py::str(py::type::handle_of(obj).attr("__name__"));
  if (type == "bool_" || type == "bool") return PyObject_IsTrue(obj.ptr()) == 1;
  if (PyLong_Check(obj.ptr()) || PyIndex_Check(obj.ptr())) {
    int overflow = 0;
    py::object index =
        py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    if (!index) throw py::error_already_set();
    long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0) {
      throw py::value_error("'" + name +
                            "': an integer outside 64 bits cannot be recorded");
    }
    return static_cast<std::int64_t>(v);
  }
  if (PyObject_HasAttrString(obj.ptr(), "__float__")) {
    double v = PyFloat_AsDouble(obj.ptr());
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    return v;
  }
  throw py::type_error("'" + name + "' is a " + type +
                       ": a parameter or property is a bool, int, float or "
                       "str");
}

std::map<std::string, Value> ToValues(const py::object& dict) {
  std::map<std::string, Value> out;
  if (dict.is_none()) return out;
  for (auto item : py::cast<py::dict>(dict)) {
    std::string name = py::str(item.first);
    out.emplace(name, ToValue(name, item.second));
  }
  return out;
}

std::optional<ArtifactKind> ToKind(const std::optional<std::string>& kind) {
  if (!kind) return std::nullopt;
  std::optional<ArtifactKind> parsed = ParseArtifactKind(*kind);
  if (!parsed) {
    throw py::value_error("unknown artifact kind '" + *kind +
                          "' (dataset, dataslice, model, metrics, file or "
                          "directory)");
  }
  return parsed;
}

py::dict RefDict(const ArtifactRef& ref) {
  py::dict d;
  // As os.fsdecode gives it: a name that is not UTF-8 keeps its bytes as
  // surrogate escapes (os.fsencode(d["path"]) gives them back).
  d["path"] = py::reinterpret_steal<py::str>(PyUnicode_DecodeFSDefaultAndSize(
      ref.path.data(), static_cast<Py_ssize_t>(ref.path.size())));
  d["hash"] = ref.hash;
  d["size"] = ref.size;
  d["kind"] = std::string(ToString(ref.kind));
  return d;
}

// What a path argument may be: str, bytes or os.PathLike (a file name that is
// not UTF-8 arrives as bytes, or as a str with surrogate escapes).
fs::path ToPath(py::handle obj) {
  py::object fspath = py::module_::import("os").attr("fsencode")(obj);
  return fs::path(std::string(py::reinterpret_borrow<py::bytes>(fspath)));
}

// A repository and the lock that serialises its use.
// A repository and the lock that serialises its use, in the process that
// opened it. A child made by fork() inherits the SQLite connection, which it
// must not use (two processes on one connection corrupt the store): it gets
// an error, and its copy is never closed either.
struct RepoBox {
  std::mutex mu;
  Repo repo;
  const pid_t pid = ::getpid();
  explicit RepoBox(Repo r) : repo(std::move(r)) {}
  RepoBox(const RepoBox&) = delete;
  RepoBox& operator=(const RepoBox&) = delete;
  ~RepoBox() {
    if (Forked()) new Repo(std::move(repo));  // left open, on purpose
  }
  bool Forked() const { return ::getpid() != pid; }
  // Raises (with the GIL held) in a forked child.
  void CheckProcess() const {
    if (!Forked()) return;
    Raise(Status::InvalidArgument(
        "this cmf.Repo was opened in process " + std::to_string(pid) +
        ", the parent of this one: a process made by fork() opens its own "
        "(cmf.Repo())"));
  }
};

class PyRepo {
 public:
  PyRepo(std::shared_ptr<RepoBox> box, bool read_only)
      : box_(std::move(box)), read_only_(read_only) {}

  static PyRepo Open(const py::object& path, const py::object& cmf_dir,
                     bool read_only) {
    DiscoverOptions options;
    if (!path.is_none()) options.start = ToPath(path);
    if (!cmf_dir.is_none()) options.cmf_dir = ToPath(cmf_dir);
    Result<Repo> repo = [&] {
      py::gil_scoped_release release;
      return Repo::Open(options,
                        read_only ? OpenMode::kRead : OpenMode::kReadWrite);
    }();
    return PyRepo(std::make_shared<RepoBox>(Take(std::move(repo))), read_only);
  }

  static PyRepo Init(const py::object& path) {
    fs::path where = ToPath(path);
    Result<Repo> repo = [&] {
      py::gil_scoped_release release;
      return Repo::Init(where);
    }();
    return PyRepo(std::make_shared<RepoBox>(Take(std::move(repo))), false);
  }

  bool read_only() const { return read_only_; }
  std::string Workspace() const { return box_->repo.workspace().string(); }
  std::string CmfDir() const { return box_->repo.cmf_dir().string(); }
  std::string Site() const { return box_->repo.site(); }

  // Runs FN on the store with the GIL released and the repository locked.
  template <typename Fn>
  auto Locked(Fn&& fn) const {
    box_->CheckProcess();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(box_->mu);
    return fn(box_->repo);
  }

  // As `cmf log --json`: WHERE holds expressions of cmf/where.h, all of which
  // must hold.
  std::string Executions(const std::optional<std::string>& pipeline,
                         const std::optional<std::string>& stage,
                         const std::optional<std::int64_t>& limit,
                         const std::vector<std::string>& where) const {
    cli::Selection selection;
    selection.filter.pipeline = pipeline;
    selection.filter.stage = stage;
    selection.limit = limit;
    for (const std::string& w : where)
      Check(selection.AddWhere(w, /*legacy=*/false));
    return Take(Locked([&](Repo& r) -> Result<std::string> {
      ExecutionsJsonWriter writer;
      std::string out = writer.Begin();
      CMF_RETURN_IF_ERROR(
          cli::ScanSelection(r.store(), std::move(selection),
                             [&](std::vector<ExecutionRecord>& page) {
                               out += writer.Add(page);
                               return Status::Ok();
                             }));
      return out + writer.End();
    }));
  }

  std::string Execution(const std::string& prefix) const {
    return Take(Locked([&](Repo& r) -> Result<std::string> {
      CMF_ASSIGN_OR_RETURN(std::string id, r.store().ResolveExecution(prefix));
      CMF_ASSIGN_OR_RETURN(ExecutionRecord record, r.store().GetExecution(id));
      return ExecutionJson(record, 0);
    }));
  }

  std::string Metrics(const std::string& prefix,
                      const std::optional<std::string>& series) const {
    return Take(Locked([&](Repo& r) -> Result<std::string> {
      CMF_ASSIGN_OR_RETURN(std::string id, r.store().ResolveExecution(prefix));
      CMF_ASSIGN_OR_RETURN(MetricSeries metrics,
                           r.store().GetMetrics(id, series));
      return MetricsJson(metrics, 0);
    }));
  }

  std::string LineageOf(const py::object& target, bool up, bool down,
                        const std::optional<int>& depth) const {
    // As `cmf lineage`: a path is taken relative to here, then to the
    // workspace; anything else (an id, a hash, @tag) as it is written.
    std::string text = py::isinstance<py::str>(target)
                           ? target.cast<std::string>()
                           : ToPath(target).string();
    LineageOptions options;
    options.up = up || !down;
    options.down = down;
    options.depth = depth;
    return Take(Locked([&](Repo& r) -> Result<std::string> {
      std::string relative;
      std::error_code ec;
      fs::path abs = fs::absolute(text, ec).lexically_normal();
      fs::path rel = abs.lexically_relative(r.workspace());
      if (!rel.empty() && *rel.begin() != "..") relative = rel.string();
      CMF_ASSIGN_OR_RETURN(LineageTarget resolved,
                           ResolveLineageTarget(r.store(), relative, text));
      CMF_ASSIGN_OR_RETURN(LineageGraph graph,
                           Lineage(r.store(), resolved, options));
      return LineageJson(graph, 0);
    }));
  }

  const std::shared_ptr<RepoBox>& box() const { return box_; }

 private:
  std::shared_ptr<RepoBox> box_;
  bool read_only_ = false;
};

class PyRun {
  // Runs FN with the GIL released and the repository locked; a finished run
  // takes nothing more.
  template <typename Fn>
  auto Locked(Fn&& fn) {
    if (finished_) {
      Raise(Status::InvalidArgument(
          "run " + run_.id() +
          " has finished: nothing more can be logged to it"));
    }
    box_->CheckProcess();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(box_->mu);
    return fn();
  }

 public:
  PyRun(std::shared_ptr<RepoBox> box, Run run)
      : box_(std::move(box)), run_(std::move(run)) {}
  PyRun(PyRun&&) noexcept = default;
  PyRun& operator=(PyRun&&) noexcept = delete;
  // A run that Python discards unfinished (no with-block, no finish()) can
  // log nothing more: it is recorded as interrupted, as it would be once its
  // process ended. The GIL is held: this may run while Python shuts down.
  ~PyRun() {
    if (finished_ || !box_ || box_->Forked()) return;
    std::lock_guard<std::mutex> lock(box_->mu);
    (void)run_.Finish(ExecStatus::kInterrupted, std::nullopt,
                      "the Python Run object was discarded before finish()");
  }

  static PyRun Start(const PyRepo& repo, const std::string& stage,
                     const std::string& pipeline, const py::object& params,
                     const std::vector<std::string>& command,
                     const std::string& id, bool environment) {
    if (repo.read_only()) {
      Raise(Status::InvalidArgument(
          "the repository at " + repo.Workspace() +
          " was opened read-only (cmf.Repo(read_only=True)): it records no "
          "runs"));
    }
    RunSpec spec;
    spec.stage = stage;
    spec.pipeline = pipeline;
    spec.params = ToValues(params);
    spec.command = command;
    spec.id = id;
    spec.environment = environment;
    Result<Run> run =
        repo.Locked([&](Repo& r) { return Run::Start(r, std::move(spec)); });
    return PyRun(repo.box(), Take(std::move(run)));
  }

  const std::string& id() const { return run_.id(); }
  const std::string& pipeline() const { return run_.pipeline(); }
  const std::string& stage() const { return run_.stage(); }
  bool finished() const { return finished_; }

  py::dict LogArtifact(const py::object& path,
                       const std::optional<std::string>& kind, bool output) {
    fs::path p = ToPath(path);
    std::optional<ArtifactKind> k = ToKind(kind);
    Result<ArtifactRef> ref = Locked([&]() -> Result<ArtifactRef> {
      return output ? run_.LogOutput(p, k) : run_.LogInput(p, k);
    });
    return RefDict(Take(std::move(ref)));
  }

  void LogMetric(const std::string& series, std::int64_t step, double value) {
    Check(Locked([&] { return run_.LogMetric(series, step, value); }));
  }

  void LogMetrics(const std::string& series, const py::object& steps,
                  const py::object& values) {
    std::vector<MetricPoint> points = ToPoints(steps, values);
    Check(Locked([&] { return run_.LogMetrics(series, points); }));
  }

  void SetProperty(const std::string& name, const py::object& value) {
    Value v = ToValue(name, value);
    Check(Locked([&] { return run_.SetProperty(name, v); }));
  }

  // A property of an artifact (by its hash), as cmflib sets a dataset's or a
  // model's custom properties.
  void SetArtifactProperty(const std::string& hash, const std::string& name,
                           const py::object& value) {
    Value v = ToValue(name, value);
    Check(Locked([&] {
      return box_->repo.store().SetProperty(RecordType::kArtifact, hash, name,
                                            v);
    }));
  }

  void LogDerivedFrom(const std::string& child, const std::string& parent) {
    Check(Locked([&] { return run_.LogDerivedFrom(child, parent); }));
  }

  void Finish(const std::string& status, const std::optional<int>& exit_code,
              const std::string& message) {
    std::optional<ExecStatus> parsed = ParseExecStatus(status);
    if (!parsed || *parsed == ExecStatus::kRunning) {
      throw py::value_error(
          "a run finishes as ok, failed or interrupted, not '" + status + "'");
    }
    Check(Locked([&] { return run_.Finish(*parsed, exit_code, message); }));
    finished_ = true;
  }

  // The context manager's exit: ok, or failed with the exception's message,
  // or interrupted on KeyboardInterrupt; the exception goes on.
  bool Exit(const py::object& type, const py::object& value,
            const py::object& /*traceback*/) {
    if (finished_) return false;
    if (type.is_none()) {
      Finish("ok", std::nullopt, "");
    } else if (PyObject_IsSubclass(type.ptr(), PyExc_KeyboardInterrupt) == 1) {
      Finish("interrupted", std::nullopt, "KeyboardInterrupt");
    } else {
      std::string name = py::str(type.attr("__name__"));
      std::string text = py::str(value);
      Finish("failed", std::nullopt, text.empty() ? name : name + ": " + text);
    }
    return false;
  }

 private:
  // Steps and values from two sequences of one length: lists, tuples, or
  // buffers such as NumPy arrays (int64 and float64 read in place).
  static std::vector<MetricPoint> ToPoints(const py::object& steps,
                                           const py::object& values) {
    std::vector<MetricPoint> points;
    if (ReadBuffers(steps, values, points)) return points;
    py::sequence s = py::reinterpret_borrow<py::sequence>(
        py::module_::import("builtins").attr("list")(steps));
    py::sequence v = py::reinterpret_borrow<py::sequence>(
        py::module_::import("builtins").attr("list")(values));
    if (s.size() != v.size()) {
      throw py::value_error("log_metrics: " + std::to_string(s.size()) +
                            " steps but " + std::to_string(v.size()) +
                            " values");
    }
    points.resize(s.size());
    for (std::size_t i = 0; i < points.size(); ++i) {
      points[i].step = py::cast<std::int64_t>(py::int_(s[i]));
      points[i].value = py::cast<double>(py::float_(v[i]));
    }
    return points;
  }

  static bool ReadBuffers(const py::object& steps, const py::object& values,
                          std::vector<MetricPoint>& points) {
    if (!PyObject_CheckBuffer(steps.ptr()) ||
        !PyObject_CheckBuffer(values.ptr())) {
      return false;
    }
    py::buffer_info s = py::reinterpret_borrow<py::buffer>(steps).request();
    py::buffer_info v = py::reinterpret_borrow<py::buffer>(values).request();
    bool s_ok =
        s.ndim == 1 && s.itemsize == 8 && (s.format == "l" || s.format == "q");
    bool v_ok = v.ndim == 1 && v.itemsize == 8 && v.format == "d";
    if (!s_ok || !v_ok) return false;  // other types: element by element
    if (s.shape[0] != v.shape[0]) {
      throw py::value_error("log_metrics: " + std::to_string(s.shape[0]) +
                            " steps but " + std::to_string(v.shape[0]) +
                            " values");
    }
    points.resize(static_cast<std::size_t>(s.shape[0]));
    const char* sp = static_cast<const char*>(s.ptr);
    const char* vp = static_cast<const char*>(v.ptr);
    for (std::size_t i = 0; i < points.size(); ++i) {
      points[i].step = *reinterpret_cast<const std::int64_t*>(
          sp + static_cast<std::ptrdiff_t>(i) * s.strides[0]);
      points[i].value = *reinterpret_cast<const double*>(
          vp + static_cast<std::ptrdiff_t>(i) * v.strides[0]);
    }
    return true;
  }

  std::shared_ptr<RepoBox> box_;
  Run run_;
  bool finished_ = false;
};

PyObject* NewError(py::module_& m, const char* name, PyObject* base,
                   PyObject* builtin, const char* doc) {
  std::string qualified = std::string("cmf.") + name;
  py::tuple bases = builtin
                        ? py::make_tuple(py::handle(base), py::handle(builtin))
                        : py::make_tuple(py::handle(base));
  PyObject* type =
      PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (!type) throw py::error_already_set();
  m.add_object(name, py::handle(type));
  return type;
}

void DefineErrors(py::module_& m) {
  errors.base = NewError(m, "Error", PyExc_Exception, nullptr,
                         "An error that cmf reports; str() is its message.");
  errors.not_found =
      NewError(m, "NotFoundError", errors.base, PyExc_LookupError,
               "A file, execution, artifact or repository that is not there.");
  errors.already_exists = NewError(m, "AlreadyExistsError", errors.base,
                                   nullptr, "Something that exists already.");
  errors.invalid_argument =
      NewError(m, "InvalidArgumentError", errors.base, PyExc_ValueError,
               "An argument cmf refuses (an ambiguous id, an empty stage).");
  errors.io = NewError(m, "StoreIOError", errors.base, PyExc_OSError,
                       "Reading or writing failed.");
  errors.corruption = NewError(m, "CorruptionError", errors.base, nullptr,
                               "A store or object that is damaged.");
  errors.conflict = NewError(m, "ConflictError", errors.base, nullptr,
                             "A write that conflicts with another.");
}

}  // namespace
}  // namespace cmf::python

PYBIND11_MODULE(_cmf, m) {
  using namespace cmf::python;
  using cmf::python::PyRepo;
  using cmf::python::PyRun;
  m.doc() = "The native half of cmf's Python module (import cmf instead).";
  m.attr("__version__") = CMF_VERSION;
  DefineErrors(m);

  py::class_<PyRepo>(m, "_Repo")
      .def_static("open", &PyRepo::Open, py::arg("path"), py::arg("cmf_dir"),
                  py::arg("read_only"))
      .def_static("init", &PyRepo::Init, py::arg("path"))
      .def_property_readonly("workspace", &PyRepo::Workspace)
      .def_property_readonly("cmf_dir", &PyRepo::CmfDir)
      .def_property_readonly("site", &PyRepo::Site)
      .def("executions_json", &PyRepo::Executions, py::arg("pipeline"),
           py::arg("stage"), py::arg("limit"), py::arg("where"))
      .def("execution_json", &PyRepo::Execution, py::arg("id"))
      .def("metrics_json", &PyRepo::Metrics, py::arg("id"), py::arg("series"))
      .def("lineage_json", &PyRepo::LineageOf, py::arg("target"), py::arg("up"),
           py::arg("down"), py::arg("depth"));

  py::class_<PyRun>(m, "Run",
                    "One run of a stage (Repo.run). Every call records its "
                    "facts before it returns.")
      .def_static("_start", &PyRun::Start, py::arg("repo"), py::arg("stage"),
                  py::arg("pipeline"), py::arg("params"), py::arg("command"),
                  py::arg("id"), py::arg("environment"))
      .def_property_readonly("id", &PyRun::id)
      .def_property_readonly("pipeline", &PyRun::pipeline)
      .def_property_readonly("stage", &PyRun::stage)
      .def_property_readonly("finished", &PyRun::finished)
      .def(
          "log_input",
          [](PyRun& r, const py::object& path,
             const std::optional<std::string>& kind) {
            return r.LogArtifact(path, kind, /*output=*/false);
          },
          py::arg("path"), py::arg("kind") = py::none())
      .def(
          "log_output",
          [](PyRun& r, const py::object& path,
             const std::optional<std::string>& kind) {
            return r.LogArtifact(path, kind, /*output=*/true);
          },
          py::arg("path"), py::arg("kind") = py::none())
      .def("log_metric", &PyRun::LogMetric, py::arg("series"), py::arg("step"),
           py::arg("value"))
      .def("log_metrics", &PyRun::LogMetrics, py::arg("series"),
           py::arg("steps"), py::arg("values"))
      .def("set_property", &PyRun::SetProperty, py::arg("name"),
           py::arg("value"))
      .def("set_artifact_property", &PyRun::SetArtifactProperty,
           py::arg("hash"), py::arg("name"), py::arg("value"))
      .def("log_derived_from", &PyRun::LogDerivedFrom, py::arg("child"),
           py::arg("parent"))
      .def("finish", &PyRun::Finish, py::arg("status") = "ok",
           py::arg("exit_code") = py::none(), py::arg("message") = "")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", &PyRun::Exit)
      .def("__repr__", [](const PyRun& r) {
        return "<cmf.Run " + r.pipeline() + "/" + r.stage() + " " + r.id() +
               ">";
      });
}
