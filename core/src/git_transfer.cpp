// The git log's transfers (git_log.h): fetch and push, object by object
// between two logs on this machine, else through libgit2's transports with
// cmf's ssh host keys and credentials.
#include <fcntl.h>
#include <git2.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <unordered_set>

#include "cmf/data/fault.h"
#include "cmf/data/ssh.h"
#include "cmf/data/transport.h"
#include "git_log.h"
#include "git_util.h"

extern char** environ;

namespace cmf {
namespace {

using namespace git;

// The objects of SRC to copy into DST, in order (children before parents).
class CopyPlan {
 public:
  CopyPlan(git_repository* src, git_odb* dst_odb)
      : src_(src), dst_odb_(dst_odb) {}

  // True when ID needs no copy: queued already, or DST has it (asked once).
  bool Known(const git_oid& id) {
    std::string k = Key(id);
    if (seen_.count(k)) return true;
    if (git_odb_exists_ext(dst_odb_, &id, GIT_ODB_LOOKUP_NO_REFRESH)) {
      seen_.insert(std::move(k));
      return true;
    }
    return false;
  }

  // Adds ID to the order, unless it was seen (queued or known) before.
  void Queue(const git_oid& id) {
    if (seen_.insert(Key(id)).second) order_.push_back(id);
  }

  // Queues what DST lacks of the tree ID: its blobs and subtrees, then itself.
  Status VisitTree(const git_oid& id) {
    if (Known(id)) return Status::Ok();
    Tree tree;
    int r = git_tree_lookup(tree.out(), src_, &id);
    if (r < 0) return git::Error(r, "cannot read the metadata log");
    for (std::size_t i = 0, n = git_tree_entrycount(tree.get()); i < n; ++i) {
      const git_tree_entry* e = git_tree_entry_byindex(tree.get(), i);
      const git_oid* eid = git_tree_entry_id(e);
      if (git_tree_entry_type(e) == GIT_OBJECT_TREE) {
        CMF_RETURN_IF_ERROR(VisitTree(*eid));
      } else if (git_tree_entry_type(e) == GIT_OBJECT_BLOB && !Known(*eid)) {
        Queue(*eid);
      }
    }
    Queue(id);
    return Status::Ok();
  }

  const std::vector<git_oid>& order() const { return order_; }

 private:
  // ID's raw bytes, the key of seen_.
  static std::string Key(const git_oid& id) {
    return std::string(reinterpret_cast<const char*>(id.id), GIT_OID_RAWSZ);
  }

  git_repository* src_;
  git_odb* dst_odb_;
  std::vector<git_oid> order_;
  std::unordered_set<std::string> seen_;  // raw ids queued or known in DST
};

// Walks SRC's commits from TIP not reachable from HIDE, queueing into PLAN.
Status WalkNewCommits(git_repository* src, git_odb* src_odb, const git_oid& tip,
                      const std::vector<git_oid>& hide, CopyPlan* plan) {
  Walk walk;
  int rc = git_revwalk_new(walk.out(), src);
  if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  rc = git_revwalk_push(walk.get(), &tip);
  if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  for (const git_oid& h : hide) {
    if (git_odb_exists(src_odb, &h)) {
      rc = git_revwalk_hide(walk.get(), &h);
      if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
    }
  }
  git_oid id;
  while ((rc = git_revwalk_next(&id, walk.get())) == 0) {
    if (plan->Known(id)) continue;
    Commit commit;
    rc = git_commit_lookup(commit.out(), src, &id);
    if (rc < 0) return git::Error(rc, "cannot read the metadata log");
    CMF_RETURN_IF_ERROR(plan->VisitTree(*git_commit_tree_id(commit.get())));
    plan->Queue(id);
  }
  if (rc != GIT_ITEROVER) return git::Error(rc, "cannot walk the metadata log");
  return Status::Ok();
}

// Writes each object of ORDER into DST_ODB as a loose object.
Status CopyLoose(git_odb* src_odb, git_odb* dst_odb,
                 const std::vector<git_oid>& order, GitTransferStats* stats) {
  for (const git_oid& oid : order) {
    git_odb_object* obj = nullptr;
    int r = git_odb_read(&obj, src_odb, &oid);
    if (r < 0) return git::Error(r, "cannot read the metadata log");
    git_oid written;
    r = git_odb_write(&written, dst_odb, git_odb_object_data(obj),
                      git_odb_object_size(obj), git_odb_object_type(obj));
    if (stats) {
      stats->objects += 1;
      stats->bytes += git_odb_object_size(obj);
    }
    git_odb_object_free(obj);
    if (r < 0) return git::Error(r, "cannot write the metadata log");
  }
  return Status::Ok();
}

// Writes the objects of ORDER into DST_ODB as one pack built from SRC.
Status CopyAsPack(git_repository* src, git_odb* dst_odb,
                  const std::vector<git_oid>& order, GitTransferStats* stats) {
  Own<git_packbuilder, git_packbuilder_free> pb;
  int rc = git_packbuilder_new(pb.out(), src);
  if (rc < 0) return git::Error(rc, "cannot pack the metadata log");
  git_packbuilder_set_threads(pb.get(), 0);
  for (const git_oid& oid : order) {
    rc = git_packbuilder_insert(pb.get(), &oid, nullptr);
    if (rc < 0) return git::Error(rc, "cannot pack the metadata log");
  }
  git_odb_writepack* writepack = nullptr;
  rc = git_odb_write_pack(&writepack, dst_odb, nullptr, nullptr);
  if (rc < 0) return git::Error(rc, "cannot write the metadata log");
  struct Pack {
    git_odb_writepack* w;
    git_indexer_progress progress{};
    std::uint64_t bytes = 0;
  } pack{writepack};
  rc = git_packbuilder_foreach(
      pb.get(),
      [](void* buf, size_t size, void* payload) {
        auto* p = static_cast<Pack*>(payload);
        p->bytes += size;
        return p->w->append(p->w, buf, size, &p->progress);
      },
      &pack);
  if (rc == 0) rc = writepack->commit(writepack, &pack.progress);
  writepack->free(writepack);
  if (rc < 0) return git::Error(rc, "cannot write the metadata log");
  if (stats) {
    stats->objects += order.size();
    stats->bytes += pack.bytes;
  }
  return Status::Ok();
}

// Copies into DST every object of SRC reachable from commit TIP that DST
// lacks, reading only what is new: commits not reachable from HIDE (ids that
// SRC may not have are skipped), and of their trees only the subtrees DST does
// not hold. Children are written before their parents, so an object present in
// DST always has all it points to (an interrupted copy leaves DST whole).
Status CopyNewObjects(git_repository* src, git_repository* dst,
                      const git_oid& tip, const std::vector<git_oid>& hide,
                      GitTransferStats* stats) {
  git_odb* src_odb = nullptr;
  git_odb* dst_odb = nullptr;
  int rc = git_repository_odb(&src_odb, src);
  if (rc == 0) rc = git_repository_odb(&dst_odb, dst);
  struct Free {
    git_odb* a;
    git_odb* b;
    ~Free() {
      if (a) git_odb_free(a);
      if (b) git_odb_free(b);
    }
  } free_odbs{src_odb, dst_odb};
  if (rc < 0) return git::Error(rc, "cannot open the metadata logs");

  // First decide what to copy (children before parents), then copy it. The
  // destination is asked without a refresh: an object it lacks would make
  // libgit2 rescan its pack folder on every miss.
  CopyPlan plan(src, dst_odb);
  CMF_RETURN_IF_ERROR(WalkNewCommits(src, src_odb, tip, hide, &plan));

  if (plan.order().size() < 64) {
    // A few objects (a push of new work): loose, each one whole on disk.
    return CopyLoose(src_odb, dst_odb, plan.order(), stats);
  }
  // Many (a new site taking in a long history): one pack, which appears
  // whole when its index is renamed into place, flushed once.
  return CopyAsPack(src, dst_odb, plan.order(), stats);
}

// A bare log on this machine, for the path and file:// transport.
using RepoPtr = std::unique_ptr<git_repository, void (*)(git_repository*)>;

Result<RepoPtr> OpenLocal(const std::string& url) {
  std::string path = data::FileUrlPath(url);
  git_repository* repo = nullptr;
  int rc = git_repository_open_bare(&repo, path.c_str());
  if (rc == GIT_ENOTFOUND) {
    return Status::NotFound("the metadata log '" + path + "' does not exist");
  }
  if (rc < 0)
    return git::Error(rc, "cannot open the metadata log '" + path + "'");
  return RepoPtr(repo, git_repository_free);
}

// Callbacks shared by fetch and push: ssh host keys and keys, progress.
struct Transfer {
  std::string url;
  data::SshUrl ssh;
  bool is_ssh = false;
  int attempts = 0;
  std::string error;                  // the reason we gave libgit2 for stopping
  std::vector<std::string> rejected;  // push: refs the remote refused
  GitTransferStats* stats = nullptr;

  static int Credentials(git_credential** out, const char* /*url*/,
                         const char* user_from_url, unsigned int allowed,
                         void* payload) {
    auto* t = static_cast<Transfer*>(payload);
    std::string user =
        user_from_url && *user_from_url ? user_from_url : data::SshUser(t->ssh);
    if (allowed & GIT_CREDENTIAL_USERNAME) {
      return git_credential_username_new(out, user.c_str());
    }
    if (allowed & GIT_CREDENTIAL_SSH_KEY) {
      // First the agent (when there is one), then each key file in turn.
      int attempt = t->attempts++;
      const char* agent = std::getenv("SSH_AUTH_SOCK");
      if (agent && *agent) {
        if (attempt == 0) {
          return git_credential_ssh_key_from_agent(out, user.c_str());
        }
        --attempt;
      }
      auto ids = data::SshIdentities();
      if (static_cast<std::size_t>(attempt) < ids.size()) {
        const auto& id = ids[attempt];
        return git_credential_ssh_key_new(out, user.c_str(),
                                          id.public_key.c_str(),
                                          id.private_key.c_str(), "");
      }
      t->error =
          "permission denied: the ssh server accepted no key for user '" +
          user + "' (tried the ssh agent and the keys in " + data::SshDir() +
          ")";
      git_error_set_str(GIT_ERROR_SSH, t->error.c_str());
      return GIT_EAUTH;
    }
    if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && t->attempts++ == 0) {
      // https: ask the user's git credential helper, as git would; cmf keeps
      // nothing.
      std::string user_name, password;
      if (CredentialFill(t->url, &user_name, &password)) {
        int rc = git_credential_userpass_plaintext_new(out, user_name.c_str(),
                                                       password.c_str());
        std::fill(password.begin(), password.end(), '\0');
        return rc;
      }
    }
    t->error =
        "the remote wants credentials that neither an ssh key nor the "
        "git credential helper gave (cmf stores no password)";
    git_error_set_str(GIT_ERROR_NET, t->error.c_str());
    return GIT_EAUTH;
  }

  // Runs `git credential fill` for URL; true with a user name and password.
  static bool CredentialFill(const std::string& url, std::string* user,
                             std::string* password) {
    auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos) return false;
    std::string protocol = url.substr(0, scheme_end);
    std::string rest = url.substr(scheme_end + 3);
    auto slash = rest.find('/');
    std::string host = rest.substr(0, slash);
    std::string path = slash == std::string::npos ? "" : rest.substr(slash + 1);
    std::string request = "protocol=" + protocol + "\n";
    if (auto at = host.rfind('@'); at != std::string::npos) {
      request += "username=" + host.substr(0, at) + "\n";
      host = host.substr(at + 1);
    }
    request += "host=" + host + "\npath=" + path + "\n\n";
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return false;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return false;
    }
    // The environment is made before fork (nothing but async-signal-safe
    // calls between fork and exec): no terminal prompt without a terminal.
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) {
      if (std::strncmp(*e, "GIT_TERMINAL_PROMPT=", 20) != 0)
        env_text.emplace_back(*e);
    }
    if (!::isatty(2)) env_text.emplace_back("GIT_TERMINAL_PROMPT=0");
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    char arg0[] = "git", arg1[] = "credential", arg2[] = "fill";
    char* argv[] = {arg0, arg1, arg2, nullptr};
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execvpe("git", argv, envp.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    if (pid > 0) {
      // A helper that is missing or quits early must not kill cmf by SIGPIPE.
      struct sigaction ignore {
      }, old{};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGPIPE, &ignore, &old);
      (void)!::write(in[1], request.data(), request.size());
      ::sigaction(SIGPIPE, &old, nullptr);
    }
    ::close(in[1]);
    std::string answer;
    char buffer[1024];
    for (ssize_t n;
         pid > 0 && (n = ::read(out[0], buffer, sizeof buffer)) > 0;) {
      answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    if (pid > 0) ::waitpid(pid, &status, 0);
    if (pid <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return false;
    std::size_t pos = 0;
    while (pos < answer.size()) {
      std::size_t end = answer.find('\n', pos);
      if (end == std::string::npos) end = answer.size();
      std::string line = answer.substr(pos, end - pos);
      pos = end + 1;
      if (line.rfind("username=", 0) == 0) *user = line.substr(9);
      if (line.rfind("password=", 0) == 0) *password = line.substr(9);
    }
    std::fill(answer.begin(), answer.end(), '\0');
    return !user->empty() && !password->empty();
  }

  static int Certificate(git_cert* cert, int valid, const char* host,
                         void* payload) {
    auto* t = static_cast<Transfer*>(payload);
    if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) {
      return valid ? 0 : GIT_PASSTHROUGH;  // TLS: libgit2's own check
    }
    auto* key = reinterpret_cast<git_cert_hostkey*>(cert);
    if (!(key->type & GIT_CERT_SSH_RAW)) {
      t->error = "libgit2 gave no raw host key to check against known_hosts";
      git_error_set_str(GIT_ERROR_SSH, t->error.c_str());
      return GIT_ECERTIFICATE;
    }
    Status st = data::CheckHostKey(host, t->ssh.port, key->hostkey,
                                   key->hostkey_len, key->raw_type);
    if (st.ok()) return 0;
    t->error = st.message();
    git_error_set_str(GIT_ERROR_SSH, t->error.c_str());
    return GIT_ECERTIFICATE;
  }

  static int PushRef(const char* ref, const char* status, void* payload) {
    auto* t = static_cast<Transfer*>(payload);
    if (status != nullptr)
      t->rejected.push_back(std::string(ref) + ": " + status);
    return 0;
  }

  static int PushProgress(unsigned int /*current*/, unsigned int total,
                          size_t bytes, void* payload) {
    auto* t = static_cast<Transfer*>(payload);
    if (t->stats) {
      t->stats->objects = total;
      t->stats->bytes = bytes;
    }
    return 0;
  }

  void Fill(git_remote_callbacks* cb) {
    cb->credentials = Credentials;
    cb->certificate_check = Certificate;
    cb->push_update_reference = PushRef;
    cb->push_transfer_progress = PushProgress;
    cb->payload = this;
  }

  Status Fail(int rc, const std::string& what) const {
    std::string url_shown = data::RedactUrl(url);
    if (!error.empty())
      return Status::IOError(what + " '" + url_shown + "': " + error);
    return git::Error(rc, what + " '" + url_shown + "'");
  }
};

Result<std::unique_ptr<Transfer>> MakeTransfer(const std::string& url) {
  auto t = std::make_unique<Transfer>();
  t->url = url;
  std::string scheme = data::UrlScheme(url);
  if (scheme == "ssh") {
    CMF_ASSIGN_OR_RETURN(t->ssh, data::ParseSshUrl(url));
    t->is_ssh = true;
  } else if (scheme != "file" && scheme != "https" && scheme != "http" &&
             scheme != "git") {
    return Status::InvalidArgument("unknown URL scheme '" + scheme + "' in '" +
                                   data::RedactUrl(url) +
                                   "' (the metadata can go to: paths, file, "
                                   "ssh, https, git)");
  }
  return t;
}

// libgit2 reads a file:// URL and a path alike, but an scp-like ssh address
// it wants as ssh://.
std::string GitUrl(const Transfer& t) {
  if (t.is_ssh && t.url.rfind("ssh://", 0) != 0) {
    std::string user = t.ssh.user.empty() ? "" : t.ssh.user + "@";
    std::string path = t.ssh.path;
    if (!path.empty() && path[0] != '/') path = "/~/" + path;
    return "ssh://" + user + t.ssh.host + path;
  }
  return t.url;
}

}  // namespace

Result<std::string> GitLog::Fetch(const std::string& url,
                                  const std::string& into,
                                  GitTransferStats* stats) {
  if (data::UrlScheme(url) == "file") {
    // A log on this machine: copy what is new, object by object, so the cost
    // follows the change and not the size of the history.
    CMF_ASSIGN_OR_RETURN(RepoPtr own, OpenLocal(url));
    git_repository* remote = own.get();
    git_oid tip;
    int rc = git_reference_name_to_id(&tip, remote, kLogBranch);
    if (rc == GIT_ENOTFOUND) return std::string();
    if (rc < 0) return git::Error(rc, "cannot read the remote's log");
    std::vector<git_oid> hide;
    for (const std::string& ref : {std::string(kLogBranch), into}) {
      git_oid have;
      if (git_reference_name_to_id(&have, repo_, ref.c_str()) == 0)
        hide.push_back(have);
    }
    CMF_RETURN_IF_ERROR(CopyNewObjects(remote, repo_, tip, hide, stats));
    Ref ref;
    rc = git_reference_create(ref.out(), repo_, into.c_str(), &tip, 1,
                              "cmf fetch");
    if (rc < 0) return git::Error(rc, "cannot record the remote's log");
    return Hex(tip);
  }
  CMF_ASSIGN_OR_RETURN(auto transfer, MakeTransfer(url));
  transfer->stats = stats;
  Remote remote;
  int rc = git_remote_create_anonymous(remote.out(), repo_,
                                       GitUrl(*transfer).c_str());
  if (rc < 0) return transfer->Fail(rc, "cannot reach the metadata of");
  git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
  transfer->Fill(&options.callbacks);
  options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  options.update_fetchhead = 0;
  std::string spec = std::string("+") + kLogBranch + ":" + into;
  char* specs[] = {spec.data()};
  git_strarray refspecs{specs, 1};
  rc = git_remote_fetch(remote.get(), &refspecs, &options, "cmf fetch");
  if (rc < 0) return transfer->Fail(rc, "cannot fetch the metadata of");
  if (stats) {
    const git_indexer_progress* p = git_remote_stats(remote.get());
    stats->objects += p->received_objects;
    stats->bytes += p->received_bytes;
  }
  const git_remote_head** heads = nullptr;
  std::size_t count = 0;
  rc = git_remote_ls(&heads, &count, remote.get());
  if (rc < 0) return transfer->Fail(rc, "cannot list the metadata of");
  for (std::size_t i = 0; i < count; ++i) {
    if (std::strcmp(heads[i]->name, kLogBranch) == 0) return Hex(heads[i]->oid);
  }
  return std::string();
}

Status GitLog::Push(const std::string& url, GitTransferStats* stats) {
  if (data::UrlScheme(url) == "file") {
    CMF_ASSIGN_OR_RETURN(RepoPtr own, OpenLocal(url));
    git_repository* remote = own.get();
    git_oid ours;
    int rc = git_reference_name_to_id(&ours, repo_, kLogBranch);
    if (rc < 0) return git::Error(rc, "cannot read the metadata log");
    git_oid theirs;
    rc = git_reference_name_to_id(&theirs, remote, kLogBranch);
    bool empty = rc == GIT_ENOTFOUND;
    if (rc < 0 && !empty) return git::Error(rc, "cannot read the remote's log");
    if (!empty) {
      if (git_oid_equal(&ours, &theirs)) return Status::Ok();
      // Only forward: the remote's history stays a part of ours.
      if (git_graph_descendant_of(repo_, &ours, &theirs) != 1) {
        return Status::Conflict("the remote's log moved on");
      }
    }
    std::vector<git_oid> hide;
    if (!empty) hide.push_back(theirs);
    CMF_RETURN_IF_ERROR(CopyNewObjects(repo_, remote, ours, hide, stats));
    data::CrashPoint("push:log-objects");
    Ref ref;
    rc = empty ? git_reference_create(ref.out(), remote, kLogBranch, &ours, 0,
                                      "cmf push")
               : git_reference_create_matching(ref.out(), remote, kLogBranch,
                                               &ours, 1, &theirs, "cmf push");
    if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS || rc == GIT_ELOCKED) {
      return Status::Conflict("the remote's log moved on");
    }
    if (rc < 0) return git::Error(rc, "cannot update the remote's log");
    return Status::Ok();
  }
  CMF_ASSIGN_OR_RETURN(auto transfer, MakeTransfer(url));
  transfer->stats = stats;
  Remote remote;
  int rc = git_remote_create_anonymous(remote.out(), repo_,
                                       GitUrl(*transfer).c_str());
  if (rc < 0) return transfer->Fail(rc, "cannot reach the metadata of");
  git_push_options options = GIT_PUSH_OPTIONS_INIT;
  transfer->Fill(&options.callbacks);
  std::string spec = std::string(kLogBranch) + ":" + kLogBranch;
  char* specs[] = {spec.data()};
  git_strarray refspecs{specs, 1};
  rc = git_remote_push(remote.get(), &refspecs, &options);
  if (rc == GIT_ENONFASTFORWARD || rc == GIT_ELOCKED || rc == GIT_EMODIFIED) {
    return Status::Conflict("the remote's log moved on");
  }
  if (rc < 0) return transfer->Fail(rc, "cannot push the metadata to");
  if (!transfer->rejected.empty()) {
    // Only "you are behind" is worth a fetch, merge and retry; a hook, a
    // protected branch or a permission says why, once.
    const std::string& why = transfer->rejected.front();
    bool behind = why.find("non-fast-forward") != std::string::npos ||
                  why.find("fetch first") != std::string::npos ||
                  why.find("failed to lock") != std::string::npos ||
                  why.find("stale info") != std::string::npos;
    if (behind)
      return Status::Conflict("the remote's log moved on (" + why + ")");
    return Status::IOError("the remote '" + data::RedactUrl(url) +
                           "' refused the update: " + why);
  }
  return Status::Ok();
}

}  // namespace cmf
