#include <fmt/format.h>

#include <optional>

#include "../verb.h"

namespace cmf::cli {
namespace {

class ConfigVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("key", key_,
                   "Option name, as section.name (e.g. core.pipeline)");
    app.add_option("value", value_,
                   "New value; without it the current value is printed");
    app.add_flag("-l,--list", list_, "List every option");
    app.add_flag("--unset", unset_, "Remove KEY");
  }

  int Run(Context& ctx) override {
    Config& config = ctx.repo->config();
    if (list_) {
      if (key_) return UsageError("--list takes no KEY");
      Result<std::vector<std::pair<std::string, std::string>>> all =
          config.List();
      if (!all.ok()) return Fail(all.status());
      for (const auto& [k, v] : *all) fmt::print("{}={}\n", k, v);
      return kExitOk;
    }
    if (!key_) return UsageError("config needs a KEY (or --list)");
    if (unset_) {
      if (value_) return UsageError("--unset takes a KEY only");
      Status st = config.Unset(*key_);
      return st.ok() ? kExitOk : Fail(st);
    }
    if (value_) {
      if (Status valid = Config::Validate(*key_, *value_); !valid.ok())
        return Fail(valid);
      Status st = config.Set(*key_, *value_);
      return st.ok() ? kExitOk : Fail(st);
    }
    Result<std::string> value = config.Get(*key_);
    if (!value.ok()) return Fail(value.status());
    fmt::print("{}\n", *value);
    return kExitOk;
  }

 private:
  std::optional<std::string> key_;
  std::optional<std::string> value_;
  bool list_ = false;
  bool unset_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeConfigVerb() {
  return std::make_unique<ConfigVerb>();
}

}  // namespace cmf::cli
