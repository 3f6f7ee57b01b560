// --where expressions (cmf/where.h): a tokenizer, a recursive-descent parser
// and an evaluator over one execution's records.
#include "cmf/where.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <variant>

#include "cmf/clock.h"
#include "cmf/store.h"

namespace cmf {

std::optional<MetricAggregate> ParseMetricAggregate(std::string_view text) {
  if (text == "last") return MetricAggregate::kLast;
  if (text == "min") return MetricAggregate::kMin;
  if (text == "max") return MetricAggregate::kMax;
  if (text == "mean") return MetricAggregate::kMean;
  if (text == "steps") return MetricAggregate::kSteps;
  return std::nullopt;
}

std::string_view ToString(MetricAggregate aggregate) {
  switch (aggregate) {
    case MetricAggregate::kLast:
      return "last";
    case MetricAggregate::kMin:
      return "min";
    case MetricAggregate::kMax:
      return "max";
    case MetricAggregate::kMean:
      return "mean";
    case MetricAggregate::kSteps:
      return "steps";
  }
  return "last";
}

double Summarise(const MetricSummary& s, MetricAggregate aggregate) {
  switch (aggregate) {
    case MetricAggregate::kLast:
      return s.last;
    case MetricAggregate::kMin:
      return s.min;
    case MetricAggregate::kMax:
      return s.max;
    case MetricAggregate::kMean:
      return s.mean;
    case MetricAggregate::kSteps:
      return static_cast<double>(s.steps);
  }
  return s.last;
}

namespace {

enum class Field {
  kParam,
  kProperty,
  kTag,
  kMetric,
  kId,
  kPipeline,
  kStage,
  kStatus,
  kSite,
  kHost,
  kUser,
  kStarted,
  kEnded
};
enum class Op { kEq, kNe, kLt, kLe, kGt, kGe };

struct Literal {
  std::string text;
  std::optional<double> number;         // TEXT is a number
  std::optional<bool> boolean;          // TEXT is true or false
  std::optional<std::int64_t> time_ms;  // for started and ended
};

// A number written in full (no trailing characters), finite.
std::optional<double> FullNumber(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  // strtod reads "nan", "inf" and hex: only decimal numbers count.
  for (char c : text) {
    if (std::isalpha(static_cast<unsigned char>(c)) && c != 'e' && c != 'E') {
      return std::nullopt;
    }
  }
  return v;
}

}  // namespace

struct WhereExpr::Node {
  enum class Kind { kAnd, kOr, kNot, kCompare } kind = Kind::kCompare;
  std::vector<std::unique_ptr<Node>> children;
  // kCompare:
  Field field = Field::kParam;
  std::string name;  // of a parameter, property, tag or metric
  std::optional<MetricAggregate> aggregate;
  Op op = Op::kEq;
  Literal literal;
};

namespace {

using Node = WhereExpr::Node;

struct Token {
  enum class Kind { kEnd, kOpen, kClose, kOp, kWord, kQuoted } kind;
  std::string text;
  std::size_t pos = 0;  // of its first character in the expression
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::unique_ptr<Node>> Parse() {
    CMF_RETURN_IF_ERROR(Tokenize());
    if (tokens_.front().kind == Token::Kind::kEnd) {
      return Error(0, "the expression is empty");
    }
    CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> root, ParseOr());
    if (Peek().kind != Token::Kind::kEnd) {
      return Error(Peek().pos, fmt::format("expected 'and', 'or' or the end, "
                                           "found '{}'",
                                           Peek().text));
    }
    return root;
  }

 private:
  Status Error(std::size_t pos, const std::string& what) const {
    // The expression with a caret under the character (bytes that are not
    // printable shown as '?', so that the caret stays in its column).
    std::string shown;
    for (char c : text_) {
      shown += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
    }
    return Status::InvalidArgument(
        fmt::format("{} at character {}\n  {}\n  {}^", what, pos + 1, shown,
                    std::string(pos, ' ')));
  }

  Status Tokenize() {
    std::size_t i = 0;
    const std::string_view ops_chars = "=!<>";
    while (true) {
      while (i < text_.size() &&
             std::isspace(static_cast<unsigned char>(text_[i]))) {
        ++i;
      }
      if (i == text_.size()) break;
      const char c = text_[i];
      const std::size_t start = i;
      if (c == '(' || c == ')') {
        tokens_.push_back({c == '(' ? Token::Kind::kOpen : Token::Kind::kClose,
                           std::string(1, c), start});
        ++i;
      } else if (ops_chars.find(c) != std::string_view::npos) {
        while (i < text_.size() &&
               ops_chars.find(text_[i]) != std::string::npos)
          ++i;
        tokens_.push_back({Token::Kind::kOp,
                           std::string(text_.substr(start, i - start)), start});
      } else if (c == '\'' || c == '"') {
        std::string value;
        ++i;
        bool closed = false;
        while (i < text_.size()) {
          if (text_[i] == c) {
            // A doubled quote stands for one.
            if (i + 1 < text_.size() && text_[i + 1] == c) {
              value += c;
              i += 2;
              continue;
            }
            closed = true;
            ++i;
            break;
          }
          value += text_[i++];
        }
        if (!closed) return Error(start, "a quoted text is not closed");
        tokens_.push_back({Token::Kind::kQuoted, value, start});
      } else {
        while (i < text_.size() &&
               !std::isspace(static_cast<unsigned char>(text_[i])) &&
               std::string_view("()'\"=!<>").find(text_[i]) ==
                   std::string_view::npos) {
          ++i;
        }
        tokens_.push_back({Token::Kind::kWord,
                           std::string(text_.substr(start, i - start)), start});
      }
    }
    tokens_.push_back({Token::Kind::kEnd, "", text_.size()});
    return Status::Ok();
  }

  const Token& Peek() const { return tokens_[next_]; }
  const Token& Take() { return tokens_[next_++]; }

  static bool IsKeyword(const Token& t, std::string_view word) {
    if (t.kind != Token::Kind::kWord || t.text.size() != word.size())
      return false;
    for (std::size_t i = 0; i < word.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(t.text[i])) != word[i])
        return false;
    }
    return true;
  }
  static bool IsAnyKeyword(const Token& t) {
    return IsKeyword(t, "and") || IsKeyword(t, "or") || IsKeyword(t, "not");
  }

  Result<std::unique_ptr<Node>> ParseOr() {
    CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> left, ParseAnd());
    if (!IsKeyword(Peek(), "or")) return left;
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kOr;
    node->children.push_back(std::move(left));
    while (IsKeyword(Peek(), "or")) {
      Take();
      CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> right, ParseAnd());
      node->children.push_back(std::move(right));
    }
    return node;
  }

  Result<std::unique_ptr<Node>> ParseAnd() {
    CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> left, ParseNot());
    if (!IsKeyword(Peek(), "and")) return left;
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kAnd;
    node->children.push_back(std::move(left));
    while (IsKeyword(Peek(), "and")) {
      Take();
      CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> right, ParseNot());
      node->children.push_back(std::move(right));
    }
    return node;
  }

  Result<std::unique_ptr<Node>> ParseNot() {
    if (!IsKeyword(Peek(), "not")) return ParsePrimary();
    Take();
    if (++depth_ > kMaxDepth) return Error(Peek().pos, "nested too deeply");
    CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> inner, ParseNot());
    --depth_;
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kNot;
    node->children.push_back(std::move(inner));
    return node;
  }

  Result<std::unique_ptr<Node>> ParsePrimary() {
    const Token& t = Peek();
    if (t.kind == Token::Kind::kOpen) {
      Take();
      if (++depth_ > kMaxDepth) return Error(t.pos, "nested too deeply");
      CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> inner, ParseOr());
      --depth_;
      if (Peek().kind != Token::Kind::kClose) {
        return Error(Peek().pos,
                     Peek().kind == Token::Kind::kEnd
                         ? std::string("expected ')' to close the '(' at "
                                       "character ") +
                               std::to_string(t.pos + 1)
                         : "expected ')', found '" + Peek().text + "'");
      }
      Take();
      return inner;
    }
    return ParseComparison();
  }

  Result<std::unique_ptr<Node>> ParseComparison() {
    const Token field = Take();
    if (field.kind != Token::Kind::kWord || IsAnyKeyword(field)) {
      return Error(field.pos,
                   field.kind == Token::Kind::kEnd
                       ? std::string("expected a comparison (such as "
                                     "params.lr < 0.01)")
                       : "expected a field (params.NAME, metrics.NAME, "
                         "tags.NAME, status, ...), found '" +
                             field.text + "'");
    }
    auto node = std::make_unique<Node>();
    CMF_RETURN_IF_ERROR(ReadField(field, node.get()));
    const Token op = Take();
    static const std::map<std::string, Op> kOps = {
        {"=", Op::kEq}, {"==", Op::kEq}, {"!=", Op::kNe}, {"<>", Op::kNe},
        {"<", Op::kLt}, {"<=", Op::kLe}, {">", Op::kGt},  {">=", Op::kGe}};
    auto found = op.kind == Token::Kind::kOp ? kOps.find(op.text) : kOps.end();
    if (found == kOps.end()) {
      return Error(op.pos, op.kind == Token::Kind::kEnd
                               ? "expected an operator (=, !=, <, <=, >, >=) "
                                 "after '" +
                                     field.text + "'"
                               : "expected an operator (=, !=, <, <=, >, >=), "
                                 "found '" +
                                     op.text + "'");
    }
    node->op = found->second;
    const Token value = Take();
    if ((value.kind != Token::Kind::kWord &&
         value.kind != Token::Kind::kQuoted) ||
        (value.kind == Token::Kind::kWord && IsAnyKeyword(value))) {
      return Error(value.pos,
                   "expected a value (a number, 'text', true or false) after "
                   "'" +
                       op.text + "'");
    }
    Literal& lit = node->literal;
    lit.text = value.text;
    lit.number = FullNumber(value.text);
    if (value.text == "true" || value.text == "false") {
      lit.boolean = value.text == "true";
    }
    if (node->field == Field::kStarted || node->field == Field::kEnded) {
      if (lit.number && value.kind == Token::Kind::kWord) {
        // Milliseconds within a year of 292 million either way.
        if (std::fabs(*lit.number) < 9.2e18) {
          lit.time_ms = static_cast<std::int64_t>(*lit.number);
        }
      } else {
        lit.time_ms = ParseDateUtc(value.text);
      }
      if (!lit.time_ms) {
        return Error(value.pos,
                     "expected a date ('2026-12-01' or "
                     "'2026-12-01T10:00:00Z') or Unix milliseconds");
      }
    }
    if (node->field == Field::kStatus &&
        !ParseExecStatus(value.text).has_value()) {
      return Error(value.pos,
                   "a status is running, ok, failed or interrupted, not '" +
                       value.text + "'");
    }
    return node;
  }

  Status ReadField(const Token& t, Node* node) {
    static const std::map<std::string, Field> kPlain = {
        {"id", Field::kId},       {"pipeline", Field::kPipeline},
        {"stage", Field::kStage}, {"status", Field::kStatus},
        {"site", Field::kSite},   {"host", Field::kHost},
        {"user", Field::kUser},   {"started", Field::kStarted},
        {"ended", Field::kEnded}};
    static const std::map<std::string, Field> kNamed = {
        {"params", Field::kParam},
        {"properties", Field::kProperty},
        {"tags", Field::kTag},
        {"metrics", Field::kMetric}};
    if (auto it = kPlain.find(t.text); it != kPlain.end()) {
      node->field = it->second;
      return Status::Ok();
    }
    auto dot = t.text.find('.');
    auto it = dot == std::string::npos ? kNamed.end()
                                       : kNamed.find(t.text.substr(0, dot));
    if (it == kNamed.end()) {
      return Error(t.pos,
                   "unknown field '" + t.text +
                       "' (params.NAME, metrics.NAME, tags.NAME, "
                       "properties.NAME, id, pipeline, stage, status, site, "
                       "host, user, started, ended)");
    }
    node->field = it->second;
    node->name = t.text.substr(dot + 1);
    if (node->field == Field::kMetric) {
      auto colon = node->name.rfind(':');
      if (colon != std::string::npos) {
        node->aggregate = ParseMetricAggregate(node->name.substr(colon + 1));
        if (!node->aggregate) {
          return Error(t.pos + dot + 1 + colon + 1,
                       "a metric summary is last, min, max, mean or steps");
        }
        node->name.resize(colon);
      }
    }
    if (node->name.empty()) {
      return Error(t.pos + dot + 1,
                   "expected a name after '" + t.text.substr(0, dot + 1) + "'");
    }
    return Status::Ok();
  }

  static constexpr int kMaxDepth = 100;
  std::string_view text_;
  std::vector<Token> tokens_;
  std::size_t next_ = 0;
  int depth_ = 0;
};

bool Holds(Op op, int order) {
  switch (op) {
    case Op::kEq:
      return order == 0;
    case Op::kNe:
      return order != 0;
    case Op::kLt:
      return order < 0;
    case Op::kLe:
      return order <= 0;
    case Op::kGt:
      return order > 0;
    case Op::kGe:
      return order >= 0;
  }
  return false;
}

bool CompareNumber(double v, Op op, const Literal& lit) {
  if (!lit.number || std::isnan(v)) return false;
  return Holds(op, v < *lit.number ? -1 : (v > *lit.number ? 1 : 0));
}

bool CompareText(const std::string& v, Op op, const Literal& lit) {
  if (lit.number) {  // a text that is a number compares as one
    if (auto n = FullNumber(v)) return CompareNumber(*n, op, lit);
  }
  const int c = v.compare(lit.text);
  return Holds(op, c < 0 ? -1 : (c > 0 ? 1 : 0));
}

bool CompareValue(const Value& v, Op op, const Literal& lit) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) {
    return CompareNumber(static_cast<double>(*i), op, lit);
  }
  if (const auto* d = std::get_if<double>(&v))
    return CompareNumber(*d, op, lit);
  if (const auto* b = std::get_if<bool>(&v)) {
    if (!lit.boolean || (op != Op::kEq && op != Op::kNe)) return false;
    return Holds(op, *b == *lit.boolean ? 0 : 1);
  }
  return CompareText(std::get<std::string>(v), op, lit);
}

bool Evaluate(const Node& n, const ExecutionRecord& r,
              const MetricSummaries* metrics,
              const std::map<std::string, MetricAggregate>& aggregates) {
  switch (n.kind) {
    case Node::Kind::kAnd:
      for (const auto& c : n.children) {
        if (!Evaluate(*c, r, metrics, aggregates)) return false;
      }
      return true;
    case Node::Kind::kOr:
      for (const auto& c : n.children) {
        if (Evaluate(*c, r, metrics, aggregates)) return true;
      }
      return false;
    case Node::Kind::kNot:
      return !Evaluate(*n.children.front(), r, metrics, aggregates);
    case Node::Kind::kCompare:
      break;
  }
  const Literal& lit = n.literal;
  switch (n.field) {
    case Field::kParam:
    case Field::kProperty: {
      const auto& values = n.field == Field::kParam ? r.params : r.properties;
      auto it = values.find(n.name);
      return it != values.end() && CompareValue(it->second, n.op, lit);
    }
    case Field::kTag: {
      auto it = r.tags.find(n.name);
      return it != r.tags.end() && CompareText(it->second, n.op, lit);
    }
    case Field::kMetric: {
      if (!metrics) return false;
      auto it = metrics->find(n.name);
      if (it == metrics->end()) return false;
      MetricAggregate how = MetricAggregate::kLast;
      if (n.aggregate) {
        how = *n.aggregate;
      } else if (auto a = aggregates.find(n.name); a != aggregates.end()) {
        how = a->second;
      }
      return CompareNumber(Summarise(it->second, how), n.op, lit);
    }
    case Field::kId:
      return CompareText(r.id, n.op, lit);
    case Field::kPipeline:
      return CompareText(r.pipeline, n.op, lit);
    case Field::kStage:
      return CompareText(r.stage, n.op, lit);
    case Field::kStatus:
      return CompareText(std::string(ToString(r.status)), n.op, lit);
    case Field::kSite:
      return CompareText(r.site, n.op, lit);
    case Field::kHost:
      return CompareText(r.host, n.op, lit);
    case Field::kUser:
      return CompareText(r.user, n.op, lit);
    case Field::kStarted:
    case Field::kEnded: {
      std::optional<std::int64_t> t =
          n.field == Field::kStarted ? std::optional(r.started_ms) : r.ended_ms;
      if (!t || !lit.time_ms) return false;
      return Holds(n.op, *t < *lit.time_ms ? -1 : (*t > *lit.time_ms ? 1 : 0));
    }
  }
  return false;
}

bool NamesMetric(const Node& n) {
  if (n.kind == Node::Kind::kCompare) return n.field == Field::kMetric;
  for (const auto& c : n.children) {
    if (NamesMetric(*c)) return true;
  }
  return false;
}

}  // namespace

WhereExpr::WhereExpr(std::unique_ptr<Node> root) : root_(std::move(root)) {}
WhereExpr::WhereExpr(WhereExpr&&) noexcept = default;
WhereExpr& WhereExpr::operator=(WhereExpr&&) noexcept = default;
WhereExpr::~WhereExpr() = default;

Result<WhereExpr> WhereExpr::Parse(std::string_view text) {
  Parser parser(text);
  CMF_ASSIGN_OR_RETURN(std::unique_ptr<Node> root, parser.Parse());
  return WhereExpr(std::move(root));
}

bool WhereExpr::Matches(
    const ExecutionRecord& record, const MetricSummaries* metrics,
    const std::map<std::string, MetricAggregate>& aggregates) const {
  return Evaluate(*root_, record, metrics, aggregates);
}

bool WhereExpr::NeedsMetrics() const { return NamesMetric(*root_); }

void WhereExpr::Narrow(ExecutionFilter* filter) const {
  // The comparisons the whole expression requires: the root, or each term of
  // a root 'and'.
  std::vector<const Node*> required;
  if (root_->kind == Node::Kind::kAnd) {
    for (const auto& c : root_->children) required.push_back(c.get());
  } else {
    required.push_back(root_.get());
  }
  for (const Node* n : required) {
    if (n->kind != Node::Kind::kCompare) continue;
    const Literal& lit = n->literal;
    if (n->op == Op::kEq && n->field == Field::kStage && !filter->stage) {
      filter->stage = lit.text;
    } else if (n->op == Op::kEq && n->field == Field::kPipeline &&
               !filter->pipeline) {
      filter->pipeline = lit.text;
    } else if (n->field == Field::kStarted && lit.time_ms) {
      const std::int64_t t = *lit.time_ms;
      std::optional<std::int64_t> since, until;
      if (n->op == Op::kGe || n->op == Op::kEq) since = t;
      if (n->op == Op::kGt && t < INT64_MAX) since = t + 1;
      if (n->op == Op::kLt) until = t;
      if ((n->op == Op::kLe || n->op == Op::kEq) && t < INT64_MAX)
        until = t + 1;
      if (since && (!filter->since_ms || *since > *filter->since_ms))
        filter->since_ms = since;
      if (until && (!filter->until_ms || *until < *filter->until_ms))
        filter->until_ms = until;
    }
  }
}

}  // namespace cmf
