#include "expr/checker.h"

#include <re2/re2.h>

#include <algorithm>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "expr/value_ops.h"

namespace aegis::expr::internal {

namespace {

using K = TypeSpec::Kind;

// One accepted signature of an operator or function. kDyn in a parameter accepts anything.
struct Signature {
  std::vector<K> params;
  K result;
};

struct Function {
  std::string_view name;
  bool member;
  Builtin builtin;
  std::vector<Signature> signatures;
};

const std::vector<Function>& Functions() {
  static const auto* kFunctions = [] {
    auto* f = new std::vector<Function>;
    auto add = [&](std::string_view name, bool member, Builtin b, std::vector<Signature> sigs) {
      f->push_back({name, member, b, std::move(sigs)});
    };
    std::vector<Signature> size = {{{K::kString}, K::kInt},
                                   {{K::kBytes}, K::kInt},
                                   {{K::kList}, K::kInt},
                                   {{K::kMap}, K::kInt}};
    add("size", false, Builtin::kSize, size);
    add("size", true, Builtin::kSize, size);
    add("startsWith", true, Builtin::kStartsWith, {{{K::kString, K::kString}, K::kBool}});
    add("endsWith", true, Builtin::kEndsWith, {{{K::kString, K::kString}, K::kBool}});
    add("contains", true, Builtin::kContains, {{{K::kString, K::kString}, K::kBool}});
    add("matches", true, Builtin::kMatches, {{{K::kString, K::kString}, K::kBool}});
    add("matches", false, Builtin::kMatches, {{{K::kString, K::kString}, K::kBool}});
    add("int", false, Builtin::kInt,
        {{{K::kInt}, K::kInt},
         {{K::kUint}, K::kInt},
         {{K::kDouble}, K::kInt},
         {{K::kString}, K::kInt},
         {{K::kTimestamp}, K::kInt}});
    add("uint", false, Builtin::kUint,
        {{{K::kInt}, K::kUint},
         {{K::kUint}, K::kUint},
         {{K::kDouble}, K::kUint},
         {{K::kString}, K::kUint}});
    add("double", false, Builtin::kDouble,
        {{{K::kInt}, K::kDouble},
         {{K::kUint}, K::kDouble},
         {{K::kDouble}, K::kDouble},
         {{K::kString}, K::kDouble}});
    add("string", false, Builtin::kString,
        {{{K::kInt}, K::kString},
         {{K::kUint}, K::kString},
         {{K::kDouble}, K::kString},
         {{K::kString}, K::kString},
         {{K::kBool}, K::kString},
         {{K::kBytes}, K::kString},
         {{K::kTimestamp}, K::kString},
         {{K::kDuration}, K::kString}});
    add("bool", false, Builtin::kBool, {{{K::kBool}, K::kBool}, {{K::kString}, K::kBool}});
    add("bytes", false, Builtin::kBytes, {{{K::kBytes}, K::kBytes}, {{K::kString}, K::kBytes}});
    add("type", false, Builtin::kType, {{{K::kDyn}, K::kType}});
    add("dyn", false, Builtin::kDyn, {{{K::kDyn}, K::kDyn}});
    add("timestamp", false, Builtin::kTimestamp,
        {{{K::kString}, K::kTimestamp}, {{K::kTimestamp}, K::kTimestamp}, {{K::kInt}, K::kTimestamp}});
    add("duration", false, Builtin::kDuration,
        {{{K::kString}, K::kDuration}, {{K::kDuration}, K::kDuration}});
    std::vector<Signature> date = {{{K::kTimestamp}, K::kInt},
                                   {{K::kTimestamp, K::kString}, K::kInt}};
    std::vector<Signature> time = date;
    time.push_back({{K::kDuration}, K::kInt});
    add("getFullYear", true, Builtin::kGetFullYear, date);
    add("getMonth", true, Builtin::kGetMonth, date);
    add("getDate", true, Builtin::kGetDate, date);
    add("getDayOfMonth", true, Builtin::kGetDayOfMonth, date);
    add("getDayOfWeek", true, Builtin::kGetDayOfWeek, date);
    add("getDayOfYear", true, Builtin::kGetDayOfYear, date);
    add("getHours", true, Builtin::kGetHours, time);
    add("getMinutes", true, Builtin::kGetMinutes, time);
    add("getSeconds", true, Builtin::kGetSeconds, time);
    add("getMilliseconds", true, Builtin::kGetMilliseconds, time);
    return f;
  }();
  return *kFunctions;
}

bool KindMatches(K param, const TypeSpec& arg) {
  return param == K::kDyn || arg.is_dynamic() || arg.kind() == param;
}

// Resolves against `sigs`; returns false if none matches. The result is the common result of
// every matching signature, or dyn when they disagree.
bool Resolve(const std::vector<Signature>& sigs, const std::vector<TypeSpec>& args,
             TypeSpec* result) {
  bool found = false;
  K common = K::kDyn;
  for (const Signature& s : sigs) {
    if (s.params.size() != args.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < args.size() && ok; ++i) ok = KindMatches(s.params[i], args[i]);
    if (!ok) continue;
    if (!found) {
      common = s.result;
      found = true;
    } else if (common != s.result) {
      common = K::kDyn;
    }
  }
  if (found) *result = TypeSpec(common);
  return found;
}

std::string ArgList(const std::vector<TypeSpec>& args) {
  std::string s = "(";
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0) s += ", ";
    s += args[i].ToString();
  }
  return s + ")";
}

std::string_view BinOpName(BinOp op) {
  switch (op) {
    case BinOp::kAdd:
      return "+";
    case BinOp::kSub:
      return "-";
    case BinOp::kMul:
      return "*";
    case BinOp::kDiv:
      return "/";
    case BinOp::kMod:
      return "%";
    case BinOp::kEq:
      return "==";
    case BinOp::kNe:
      return "!=";
    case BinOp::kLt:
      return "<";
    case BinOp::kLe:
      return "<=";
    case BinOp::kGt:
      return ">";
    case BinOp::kGe:
      return ">=";
    case BinOp::kIn:
      return "in";
  }
  return "?";
}

TypeSpec LiteralType(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      return TypeSpec(K::kNull);
    case Value::Kind::kBool:
      return TypeSpec(K::kBool);
    case Value::Kind::kInt:
      return TypeSpec(K::kInt);
    case Value::Kind::kUint:
      return TypeSpec(K::kUint);
    case Value::Kind::kDouble:
      return TypeSpec(K::kDouble);
    case Value::Kind::kString:
      return TypeSpec(K::kString);
    case Value::Kind::kBytes:
      return TypeSpec(K::kBytes);
    case Value::Kind::kTimestamp:
      return TypeSpec(K::kTimestamp);
    case Value::Kind::kDuration:
      return TypeSpec(K::kDuration);
    case Value::Kind::kType:
      return TypeSpec(K::kType);
    default:
      return TypeSpec::Dyn();
  }
}

// The common type of several expressions: their type when all agree, else dyn.
TypeSpec Join(const std::vector<TypeSpec>& types) {
  if (types.empty()) return TypeSpec::Dyn();
  for (const TypeSpec& t : types) {
    if (!(t == types[0]) || t.is(K::kError)) return TypeSpec::Dyn();
  }
  return types[0];
}

constexpr std::string_view kTypeNames[] = {"bool",  "int", "uint", "double",    "string",
                                           "bytes", "list", "map", "null_type", "type"};

class Checker {
 public:
  Checker(Ast& ast, const Environment::Impl& env, const CompileOptions& options,
          std::vector<CompileError>& errors)
      : ast_(ast), env_(env), options_(options), errors_(errors) {}

  CheckResult Run() {
    CheckResult r;
    r.type = Check(ast_.root);
    r.max_iter_depth = max_iter_depth_;
    return r;
  }

 private:
  Node& N(int32_t id) { return ast_.nodes[id]; }

  TypeSpec Error(uint32_t offset, const char* code, std::string message) {
    errors_.push_back({offset, code, std::move(message)});
    return TypeSpec(K::kError);
  }

  TypeSpec Check(int32_t id) {
    switch (N(id).kind) {
      case NodeKind::kLiteral:
        return LiteralType(N(id).value);
      case NodeKind::kIdent:
        return CheckIdent(id);
      case NodeKind::kSelect: {
        TypeSpec t = Check(N(id).a);
        return SelectType(N(id).offset, t, N(id).name);
      }
      case NodeKind::kIndex:
        return CheckIndex(id);
      case NodeKind::kHas: {
        Node& sel = N(N(id).a);
        TypeSpec t = Check(sel.a);
        if (!t.is_dynamic() && !t.is(K::kMap)) {
          return Error(sel.offset, "expr-type",
                       "has() needs a map; '" + std::string(sel.name) + "' is selected from " +
                           t.ToString());
        }
        return TypeSpec(K::kBool);
      }
      case NodeKind::kNot: {
        TypeSpec t = Check(N(id).a);
        if (!KindMatches(K::kBool, t)) {
          return Error(N(id).offset, "expr-type",
                       "no matching overload for '!' applied to (" + t.ToString() + ")");
        }
        return TypeSpec(K::kBool);
      }
      case NodeKind::kNeg: {
        TypeSpec t = Check(N(id).a);
        if (t.is_dynamic()) return TypeSpec::Dyn();
        if (!t.is(K::kInt) && !t.is(K::kDouble) && !t.is(K::kDuration)) {
          return Error(N(id).offset, "expr-type",
                       "no matching overload for '-' applied to (" + t.ToString() + ")");
        }
        return t;
      }
      case NodeKind::kAnd:
      case NodeKind::kOr: {
        TypeSpec l = Check(N(id).a);
        TypeSpec r = Check(N(id).b);
        if (!KindMatches(K::kBool, l) || !KindMatches(K::kBool, r)) {
          return Error(N(id).offset, "expr-type",
                       std::string("no matching overload for '") +
                           (N(id).kind == NodeKind::kAnd ? "&&" : "||") + "' applied to " +
                           ArgList({l, r}));
        }
        return TypeSpec(K::kBool);
      }
      case NodeKind::kTernary: {
        TypeSpec c = Check(N(id).a);
        TypeSpec t = Check(N(id).b);
        TypeSpec f = Check(N(id).c);
        if (!KindMatches(K::kBool, c)) {
          return Error(ast_.nodes[N(id).a].offset, "expr-type",
                       "the condition of '?:' must be bool, not " + c.ToString());
        }
        if (!t.is(K::kNull) && !f.is(K::kNull) && !IsAssignable(t, f)) {
          return Error(N(id).offset, "expr-type",
                       "the branches of '?:' have different types: " + t.ToString() + " and " +
                           f.ToString());
        }
        return Join({t, f});
      }
      case NodeKind::kBinary:
        return CheckBinary(id);
      case NodeKind::kList:
        return CheckList(id);
      case NodeKind::kMap:
        return CheckMap(id);
      case NodeKind::kCall:
        return CheckCall(id);
      case NodeKind::kComprehension:
        return CheckComprehension(id);
      default:
        return TypeSpec::Dyn();
    }
  }

  TypeSpec CheckIdent(int32_t id) {
    Node& n = N(id);
    for (int i = static_cast<int>(scope_.size()) - 1; i >= 0; --i) {
      if (scope_[i].first == n.name) {
        n.kind = NodeKind::kIterVar;
        n.slot = i;
        return scope_[i].second;
      }
    }
    auto it = env_.slots.find(std::string(n.name));
    if (it != env_.slots.end()) {
      n.kind = NodeKind::kSlot;
      n.slot = it->second;
      return env_.variables[it->second].type;
    }
    for (std::string_view t : kTypeNames) {
      if (n.name == t) {
        n.kind = NodeKind::kLiteral;
        n.value = MakeType(t);
        return TypeSpec(K::kType);
      }
    }
    return Error(n.offset, "expr-undeclared",
                 "undeclared reference to '" + std::string(n.name) + "'");
  }

  TypeSpec SelectType(uint32_t offset, const TypeSpec& t, std::string_view field) {
    if (t.is_dynamic()) return TypeSpec::Dyn();
    if (t.is(K::kMap)) {
      TypeSpec key = t.Param(0);
      if (!key.is_dynamic() && !key.is(K::kString)) {
        return Error(offset, "expr-type",
                     "cannot select field '" + std::string(field) + "' from " + t.ToString());
      }
      return t.Param(1);
    }
    return Error(offset, "expr-type",
                 "type " + t.ToString() + " has no field '" + std::string(field) + "'");
  }

  TypeSpec CheckIndex(int32_t id) {
    TypeSpec t = Check(N(id).a);
    TypeSpec i = Check(N(id).b);
    uint32_t offset = N(id).offset;
    if (t.is_dynamic()) return TypeSpec::Dyn();
    if (t.is(K::kList)) {
      if (!i.is_dynamic() && !i.is(K::kInt) && !i.is(K::kUint)) {
        return Error(offset, "expr-type", "a list index must be an int, not " + i.ToString());
      }
      return t.Param(0);
    }
    if (t.is(K::kMap)) {
      TypeSpec key = t.Param(0);
      bool ok = i.is_dynamic() || key.is_dynamic() || key == i ||
                (key.is_numeric() && i.is_numeric());
      if (!ok) {
        return Error(offset, "expr-type",
                     "a key of " + t.ToString() + " cannot be " + i.ToString());
      }
      return t.Param(1);
    }
    return Error(offset, "expr-type", "type " + t.ToString() + " cannot be indexed");
  }

  TypeSpec CheckBinary(int32_t id) {
    TypeSpec l = Check(N(id).a);
    TypeSpec r = Check(N(id).b);
    Node& n = N(id);
    if (l.is(K::kError) || r.is(K::kError)) return TypeSpec(K::kError);
    auto mismatch = [&] {
      return Error(n.offset, "expr-type",
                   "no matching overload for '" + std::string(BinOpName(n.op)) + "' applied to " +
                       ArgList({l, r}));
    };
    static const std::vector<Signature> kNumeric = {{{K::kInt, K::kInt}, K::kInt},
                                                    {{K::kUint, K::kUint}, K::kUint},
                                                    {{K::kDouble, K::kDouble}, K::kDouble}};
    TypeSpec result;
    switch (n.op) {
      case BinOp::kAdd: {
        if (l.is(K::kList) && r.is(K::kList)) return Join({l, r}).is_dynamic()
                                                        ? TypeSpec::List(TypeSpec::Dyn())
                                                        : l;
        std::vector<Signature> sigs = kNumeric;
        sigs.push_back({{K::kString, K::kString}, K::kString});
        sigs.push_back({{K::kBytes, K::kBytes}, K::kBytes});
        sigs.push_back({{K::kList, K::kList}, K::kList});
        sigs.push_back({{K::kTimestamp, K::kDuration}, K::kTimestamp});
        sigs.push_back({{K::kDuration, K::kTimestamp}, K::kTimestamp});
        sigs.push_back({{K::kDuration, K::kDuration}, K::kDuration});
        if (!Resolve(sigs, {l, r}, &result)) return mismatch();
        if (result.is(K::kList)) return TypeSpec::List(TypeSpec::Dyn());  // one side is dyn
        return result;
      }
      case BinOp::kSub: {
        std::vector<Signature> sigs = kNumeric;
        sigs.push_back({{K::kTimestamp, K::kTimestamp}, K::kDuration});
        sigs.push_back({{K::kTimestamp, K::kDuration}, K::kTimestamp});
        sigs.push_back({{K::kDuration, K::kDuration}, K::kDuration});
        if (!Resolve(sigs, {l, r}, &result)) return mismatch();
        return result;
      }
      case BinOp::kMul:
      case BinOp::kDiv:
        if (!Resolve(kNumeric, {l, r}, &result)) return mismatch();
        return result;
      case BinOp::kMod:
        if (!Resolve({kNumeric[0], kNumeric[1]}, {l, r}, &result)) return mismatch();
        return result;
      case BinOp::kEq:
      case BinOp::kNe: {
        // As in CEL's checker, == needs the same static type on both sides (or dyn); values
        // of different types compare unequal only when they meet at run time through dyn.
        bool ok = l.is(K::kNull) || r.is(K::kNull) || IsAssignable(l, r);
        if (!ok) return mismatch();
        return TypeSpec(K::kBool);
      }
      case BinOp::kLt:
      case BinOp::kLe:
      case BinOp::kGt:
      case BinOp::kGe: {
        auto orderable = [](const TypeSpec& t) {
          return t.is_dynamic() || t.is_numeric() || t.is(K::kString) || t.is(K::kBytes) ||
                 t.is(K::kBool) || t.is(K::kTimestamp) || t.is(K::kDuration);
        };
        bool ok = orderable(l) && orderable(r) &&
                  (l.is_dynamic() || r.is_dynamic() || l.kind() == r.kind() ||
                   (l.is_numeric() && r.is_numeric()));
        if (!ok) return mismatch();
        return TypeSpec(K::kBool);
      }
      case BinOp::kIn: {
        if (r.is_dynamic()) return TypeSpec(K::kBool);
        TypeSpec elem;
        if (r.is(K::kList)) {
          elem = r.Param(0);
        } else if (r.is(K::kMap)) {
          elem = r.Param(0);
        } else {
          return mismatch();
        }
        bool ok = l.is(K::kNull) || elem.is(K::kNull) || IsAssignable(elem, l);
        if (!ok) return mismatch();
        OptimizeIn(id);
        return TypeSpec(K::kBool);
      }
    }
    return TypeSpec::Dyn();
  }

  // `x in [constants]`: keep the list as a constant and, for strings, a hash set.
  void OptimizeIn(int32_t id) {
    Node& list = N(N(id).b);
    if (list.kind != NodeKind::kLiteral || list.value.kind() != Value::Kind::kList) return;
    Node& n = N(id);
    n.kind = NodeKind::kInConstList;
    size_t size = ListSize(list.value);
    if (size < 4) return;
    auto set = std::make_unique<std::unordered_set<std::string_view>>();
    for (size_t i = 0; i < size; ++i) {
      Value e = ListAt(list.value, i);
      if (e.kind() != Value::Kind::kString) return;
      set->insert(e.string_value());
    }
    n.set = set.get();
    ast_.sets.push_back(std::move(set));
  }

  TypeSpec CheckList(int32_t id) {
    std::vector<TypeSpec> types;
    bool constant = true;
    int32_t count = N(id).args_count;
    for (int32_t i = 0; i < count; ++i) {
      int32_t e = ast_.Arg(N(id), i);
      types.push_back(Check(e));
      if (N(e).kind != NodeKind::kLiteral) constant = false;
    }
    if (constant) {
      std::vector<Value>& values = ast_.value_lists.emplace_back();
      for (int32_t i = 0; i < count; ++i) values.push_back(N(ast_.Arg(N(id), i)).value);
      Node& n = N(id);
      n.kind = NodeKind::kLiteral;
      n.value = MakeList(values.data(), values.size());
    }
    return TypeSpec::List(Join(types));
  }

  TypeSpec CheckMap(int32_t id) {
    std::vector<TypeSpec> keys, values;
    bool constant = true;
    int32_t count = N(id).args_count;
    for (int32_t i = 0; i < count; i += 2) {
      int32_t k = ast_.Arg(N(id), i);
      int32_t v = ast_.Arg(N(id), i + 1);
      TypeSpec kt = Check(k);
      if (!kt.is_dynamic() && !kt.is(K::kString) && !kt.is(K::kInt) && !kt.is(K::kUint) &&
          !kt.is(K::kBool)) {
        Error(N(k).offset, "expr-type", "a map key must be string, int, uint or bool, not " +
                                            kt.ToString());
      }
      keys.push_back(kt);
      values.push_back(Check(v));
      if (N(k).kind != NodeKind::kLiteral || N(v).kind != NodeKind::kLiteral) constant = false;
    }
    if (constant) {
      std::vector<Value> kv;
      for (int32_t i = 0; i < count; i += 2) {
        const Node& k = N(ast_.Arg(N(id), i));
        for (size_t j = 0; j < kv.size(); j += 2) {
          if (Equals(kv[j], k.value)) {
            Error(k.offset, "expr-type", "duplicate key in map literal");
            return TypeSpec(K::kError);
          }
        }
        kv.push_back(k.value);
        kv.push_back(N(ast_.Arg(N(id), i + 1)).value);
      }
      std::vector<Value>& stored = ast_.value_lists.emplace_back(std::move(kv));
      Node& n = N(id);
      n.kind = NodeKind::kLiteral;
      n.value = MakeMap(stored.data(), stored.size() / 2);
    }
    return TypeSpec::Map(Join(keys), Join(values));
  }

  TypeSpec CheckCall(int32_t id) {
    std::vector<TypeSpec> args;
    for (int32_t i = 0; i < N(id).args_count; ++i) args.push_back(Check(ast_.Arg(N(id), i)));
    Node& n = N(id);
    bool name_known = false, style_known = false;
    for (const Function& f : Functions()) {
      if (f.name != n.name) continue;
      name_known = true;
      if (f.member != n.member_call) continue;
      style_known = true;
      bool arity = std::any_of(f.signatures.begin(), f.signatures.end(),
                               [&](const Signature& s) { return s.params.size() == args.size(); });
      if (!arity) continue;
      n.fn = f.builtin;
      for (const TypeSpec& a : args) {
        if (a.is(K::kError)) return TypeSpec::Dyn();
      }
      TypeSpec result;
      if (!Resolve(f.signatures, args, &result)) {
        std::vector<TypeSpec> shown = args;
        return Error(n.offset, "expr-type",
                     "no matching overload for '" + std::string(n.name) + "' applied to " +
                         ArgList(shown));
      }
      if (f.builtin == Builtin::kMatches) CompilePattern(id);
      return result;
    }
    std::string name(n.name);
    if (!name_known) return Error(n.offset, "expr-function", "unknown function '" + name + "'");
    if (!style_known) {
      return Error(n.offset, "expr-function",
                   n.member_call ? "'" + name + "' is not a method; call it as " + name + "(x)"
                                 : "'" + name + "' is a method; call it as x." + name + "(...)");
    }
    size_t shown = n.member_call ? args.size() - 1 : args.size();
    return Error(n.offset, "expr-function",
                 "wrong number of arguments to '" + name + "': " + std::to_string(shown));
  }

  void CompilePattern(int32_t id) {
    const Node& pattern = N(ast_.Arg(N(id), 1));
    if (pattern.kind != NodeKind::kLiteral || pattern.value.kind() != Value::Kind::kString) {
      return;
    }
    RE2::Options opts;
    opts.set_log_errors(false);
    auto re = std::make_unique<RE2>(pattern.value.string_value(), opts);
    if (!re->ok()) {
      Error(pattern.offset, "expr-regex", "invalid regular expression: " + re->error());
      return;
    }
    if (static_cast<size_t>(re->ProgramSize()) > options_.max_regex_program_size) {
      Error(pattern.offset, "expr-regex",
            "regular expression is too complex (program size " +
                std::to_string(re->ProgramSize()) + ", limit " +
                std::to_string(options_.max_regex_program_size) + ")");
      return;
    }
    Node& n = N(id);
    n.kind = NodeKind::kMatchesConst;
    n.regex = re.get();
    ast_.regexes.push_back(std::move(re));
  }

  TypeSpec CheckComprehension(int32_t id) {
    TypeSpec target = Check(N(id).a);
    TypeSpec var;
    if (target.is_dynamic()) {
      var = TypeSpec::Dyn();
    } else if (target.is(K::kList) || target.is(K::kMap)) {
      var = target.Param(0);
    } else {
      Error(N(id).offset, "expr-type",
            "cannot iterate over " + target.ToString() + "; need a list or a map");
      var = TypeSpec(K::kError);
    }
    N(id).slot = static_cast<int32_t>(scope_.size());
    scope_.emplace_back(N(id).name, var);
    max_iter_depth_ = std::max(max_iter_depth_, static_cast<int>(scope_.size()));
    TypeSpec pred = Check(N(id).b);
    scope_.pop_back();
    Macro macro = N(id).macro;
    if (macro == Macro::kMap) return TypeSpec::List(pred.is(K::kError) ? TypeSpec::Dyn() : pred);
    if (!KindMatches(K::kBool, pred)) {
      return Error(N(N(id).b).offset, "expr-type",
                   "the predicate must be bool, not " + pred.ToString());
    }
    if (macro == Macro::kFilter) {
      return TypeSpec::List(var.is(K::kError) ? TypeSpec::Dyn() : var);
    }
    return TypeSpec(K::kBool);
  }

  Ast& ast_;
  const Environment::Impl& env_;
  const CompileOptions& options_;
  std::vector<CompileError>& errors_;
  std::vector<std::pair<std::string_view, TypeSpec>> scope_;
  int max_iter_depth_ = 0;
};

}  // namespace

CheckResult Check(Ast& ast, const Environment::Impl& env, const CompileOptions& options,
                  std::vector<CompileError>& errors) {
  Checker checker(ast, env, options, errors);
  return checker.Run();
}

}  // namespace aegis::expr::internal
