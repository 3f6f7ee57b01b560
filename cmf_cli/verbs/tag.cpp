#include <fmt/format.h>

#include "../json_output.h"
#include "../selection.h"
#include "../verb.h"
#include "cmf/byte_strings.h"

namespace cmf::cli {
namespace {

class TagVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("target", target_,
                   "An execution (id or unique prefix), an artifact (path, "
                   "hash or prefix) or @NAME=VALUE")
        ->required();
    app.add_option("tags", tags_,
                   "NAME or NAME=VALUE to set (NAME alone: an empty value); "
                   "with -d, the NAMEs to remove; none: list the tags");
    app.add_flag("-d,--delete", delete_, "Remove the tags NAMEd");
    app.add_flag("--json", json_, "List the tags as a JSON object");
  }

  int Run(Context& ctx) override {
    if (delete_ && tags_.empty())
      return UsageError("-d needs the NAMEs to remove");
    Result<LineageTarget> target = ResolveTarget(ctx, target_);
    if (!target.ok()) return Fail(target.status());
    const RecordType type = target->type == LineageNode::Type::kExecution
                                ? RecordType::kExecution
                                : RecordType::kArtifact;
    Store& store = ctx.repo->store();
    for (const std::string& t : tags_) {
      auto eq = t.find('=');
      const std::string name = t.substr(0, eq);
      if (name.empty()) return UsageError("'" + t + "' names no tag");
      if (delete_ && eq != std::string::npos) {
        return UsageError("-d takes tag names, not '" + t + "'");
      }
      std::optional<std::string> value;
      if (!delete_) value = eq == std::string::npos ? "" : t.substr(eq + 1);
      Status st = store.SetTag(type, target->id, name, value);
      if (!st.ok()) return Fail(st);
    }
    if (!tags_.empty() && !json_) return kExitOk;
    Result<std::map<std::string, std::string>> tags =
        store.GetTags(type, target->id);
    if (!tags.ok()) return Fail(tags.status());
    if (json_) {
      fmt::print("{}\n", TagsJson(*tags));
      return kExitOk;
    }
    for (const auto& [name, value] : *tags) {
      fmt::print("{}{}{}\n", EscapeForDisplay(name), value.empty() ? "" : "=",
                 EscapeForDisplay(value));
    }
    return kExitOk;
  }

 private:
  std::string target_;
  std::vector<std::string> tags_;
  bool delete_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeTagVerb() { return std::make_unique<TagVerb>(); }

}  // namespace cmf::cli
