// The evaluator: a recursive walk over the checked, flat syntax tree. Recursion depth is bounded
// by the parser's height limit. Values borrow; only built strings and lists use the scratch.
#include <re2/re2.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "expr/program.h"
#include "expr/time_util.h"
#include "expr/value_ops.h"

namespace aegis::expr {

namespace {

using internal::Ast;
using internal::BinOp;
using internal::Builtin;
using internal::Macro;
using internal::Node;
using internal::NodeKind;
using internal::Order;
using VK = Value::Kind;

constexpr std::string_view kNoOverload = "no matching overload";
constexpr std::string_view kBudgetExceeded =
    "evaluation exceeded its work budget (nested macros or building over large inputs)";
constexpr std::string_view kOverflow = "integer overflow";
constexpr std::string_view kDivByZero = "division by zero";
constexpr std::string_view kModByZero = "modulus by zero";
constexpr std::string_view kRange = "value out of range";
constexpr size_t kMaxDynamicPatternBytes = 1024;

bool IsBool(const Value& v) { return v.kind() == VK::kBool; }
bool IsTrue(const Value& v) { return v.kind() == VK::kBool && v.bool_value(); }
bool IsFalse(const Value& v) { return v.kind() == VK::kBool && !v.bool_value(); }

// CEL's commutative && and ||: `absorbing` (false for &&, true for ||) wins over errors.
Value Logical(const Value& l, const Value& r, bool absorbing) {
  if (IsBool(l) && l.bool_value() == absorbing) return l;
  if (IsBool(r) && r.bool_value() == absorbing) return r;
  if (IsBool(l) && IsBool(r)) return l;
  if (l.is_error()) return l;
  if (r.is_error()) return r;
  return Value::Error(kNoOverload);
}

class Evaluator {
 public:
  Evaluator(const Program::Impl& program, const Activation& activation,
            EvalScratch::Impl& scratch)
      : ast_(program.ast),
        program_(program),
        activation_(activation),
        scratch_(scratch) {}

  Value Eval(int32_t id) {
    const Node& n = ast_.nodes[id];
    switch (n.kind) {
      case NodeKind::kLiteral:
        return n.value;
      case NodeKind::kSlot:
        if (static_cast<size_t>(n.slot) >= activation_.slots.size()) {
          return Value::Error("no value bound for a declared variable");
        }
        return activation_.slots[n.slot];
      case NodeKind::kIterVar:
        return scratch_.iter_vars[n.slot];
      case NodeKind::kPath: {
        if (static_cast<size_t>(n.slot) >= activation_.slots.size()) {
          return Value::Error("no value bound for a declared variable");
        }
        Value v = activation_.slots[n.slot];
        for (int32_t k = 0; k < n.args_count; ++k) {
          v = Select(v, ast_.path_names[n.args_begin + k]);
          if (v.is_error()) return v;
        }
        return v;
      }
      case NodeKind::kSelect: {
        Value base = Eval(n.a);
        if (base.is_error()) return base;
        return Select(base, n.name);
      }
      case NodeKind::kIndex: {
        Value base = Eval(n.a);
        if (base.is_error()) return base;
        Value key = Eval(n.b);
        if (key.is_error()) return key;
        return Index(base, key);
      }
      case NodeKind::kHas: {
        const Node& sel = ast_.nodes[n.a];
        Value base = Eval(sel.a);
        if (base.is_error()) return base;
        if (base.kind() != VK::kMap) return Value::Error("has() applied to a value that is not a map");
        Value unused;
        return Value::Bool(internal::MapFindString(base, sel.name, &unused));
      }
      case NodeKind::kNot: {
        Value v = Eval(n.a);
        if (v.is_error()) return v;
        if (!IsBool(v)) return Value::Error(kNoOverload);
        return Value::Bool(!v.bool_value());
      }
      case NodeKind::kNeg:
        return Negate(Eval(n.a));
      case NodeKind::kAnd: {
        Value l = Eval(n.a);
        if (IsFalse(l)) return l;
        return Logical(l, Eval(n.b), false);
      }
      case NodeKind::kOr: {
        Value l = Eval(n.a);
        if (IsTrue(l)) return l;
        return Logical(l, Eval(n.b), true);
      }
      case NodeKind::kTernary: {
        Value c = Eval(n.a);
        if (c.is_error()) return c;
        if (!IsBool(c)) return Value::Error(kNoOverload);
        return Eval(c.bool_value() ? n.b : n.c);
      }
      case NodeKind::kBinary: {
        Value l = Eval(n.a);
        if (l.is_error()) return l;
        // Most comparisons have a literal on the right; take it without another Eval call.
        const Node& right = ast_.nodes[n.b];
        Value r = right.kind == NodeKind::kLiteral ? right.value : Eval(n.b);
        if (r.is_error()) return r;
        return Binary(n.op, l, r);
      }
      case NodeKind::kInConstList: {
        Value l = Eval(n.a);
        if (l.is_error()) return l;
        if (n.set != nullptr && l.kind() == VK::kString) {
          return Value::Bool(n.set->contains(l.string_value()));
        }
        return In(l, ast_.nodes[n.b].value);
      }
      case NodeKind::kMatchesConst: {
        Value s = Eval(ast_.Arg(n, 0));
        if (s.is_error()) return s;
        if (s.kind() != VK::kString) return Value::Error(kNoOverload);
        return Value::Bool(RE2::PartialMatch(s.string_value(), *n.regex));
      }
      case NodeKind::kList: {
        std::vector<Value>& items = scratch_.NewList();
        for (int32_t i = 0; i < n.args_count; ++i) {
          Value v = Eval(ast_.Arg(n, i));
          if (v.is_error()) return v;
          items.push_back(v);
        }
        return internal::MakeList(items.data(), items.size());
      }
      case NodeKind::kMap:
        return BuildMap(n);
      case NodeKind::kCall:
        return Call(n);
      case NodeKind::kComprehension:
        return Comprehension(n);
      default:
        return Value::Error("internal error: unresolved expression");
    }
  }

 private:
  template <typename... Parts>
  Value ErrorOf(const Parts&... parts) {
    std::string& s = scratch_.NewString();
    (s.append(parts), ...);
    return Value::Error(s);
  }

  std::string_view KeyText(const Value& key) {
    std::string& s = scratch_.NewString();
    switch (key.kind()) {
      case VK::kString:
        s.append(key.string_value());
        break;
      case VK::kInt:
        s += std::to_string(key.int_value());
        break;
      case VK::kUint:
        s += std::to_string(key.uint_value());
        break;
      case VK::kDouble:
        internal::AppendDouble(s, key.double_value());
        break;
      case VK::kBool:
        s += key.bool_value() ? "true" : "false";
        break;
      default:
        s.append(internal::TypeName(key));
    }
    return s;
  }

  Value Select(const Value& base, std::string_view field) {
    if (base.kind() != VK::kMap) {
      return ErrorOf("no such field '", field, "' on a value of type ", internal::TypeName(base));
    }
    Value out;
    if (internal::MapFindString(base, field, &out)) return out;
    return ErrorOf("no such key: ", field);
  }

  Value Index(const Value& base, const Value& key) {
    if (base.kind() == VK::kList) {
      int64_t i;
      if (key.kind() == VK::kInt) {
        i = key.int_value();
      } else if (key.kind() == VK::kUint) {
        i = key.uint_value() > static_cast<uint64_t>(INT64_MAX) ? -1
                                                                 : static_cast<int64_t>(key.uint_value());
      } else if (key.kind() == VK::kDouble && std::trunc(key.double_value()) == key.double_value() &&
                 std::abs(key.double_value()) < 9e18) {
        i = static_cast<int64_t>(key.double_value());
      } else {
        return Value::Error(kNoOverload);
      }
      if (i < 0 || static_cast<uint64_t>(i) >= internal::ListSize(base)) {
        return ErrorOf("index out of range: ", KeyText(key));
      }
      return internal::ListAt(base, static_cast<size_t>(i));
    }
    if (base.kind() == VK::kMap) {
      Value out;
      if (internal::MapFind(base, key, &out)) return out;
      return ErrorOf("no such key: ", KeyText(key));
    }
    return Value::Error(kNoOverload);
  }

  Value Negate(const Value& v) {
    switch (v.kind()) {
      case VK::kError:
        return v;
      case VK::kInt:
        if (v.int_value() == INT64_MIN) return Value::Error(kOverflow);
        return Value::Int(-v.int_value());
      case VK::kDouble:
        return Value::Double(-v.double_value());
      case VK::kDuration:
        if (v.int_value() == INT64_MIN) return Value::Error(kOverflow);
        return Value::Duration(-v.int_value());
      default:
        return Value::Error(kNoOverload);
    }
  }

  Value In(const Value& needle, const Value& haystack) {
    if (haystack.kind() == VK::kList) {
      size_t n = internal::ListSize(haystack);
      for (size_t i = 0; i < n; ++i) {
        if (internal::Equals(needle, internal::ListAt(haystack, i))) return Value::Bool(true);
      }
      return Value::Bool(false);
    }
    if (haystack.kind() == VK::kMap) {
      Value unused;
      return Value::Bool(internal::MapFind(haystack, needle, &unused));
    }
    return Value::Error(kNoOverload);
  }

  Value Concat(const Value& l, const Value& r) {
    if (!scratch_.Charge(l.string_value().size() + r.string_value().size())) {
      return Value::Error(kBudgetExceeded);
    }
    std::string& s = scratch_.NewString();
    s.reserve(l.string_value().size() + r.string_value().size());
    s.append(l.string_value());
    s.append(r.string_value());
    return Value::String(s);
  }

  Value Binary(BinOp op, const Value& l, const Value& r) {
    // The common case, two ints compared, without the general dispatch.
    if (l.kind() == VK::kInt && r.kind() == VK::kInt) {
      int64_t a = l.int_value(), b = r.int_value();
      switch (op) {
        case BinOp::kEq:
          return Value::Bool(a == b);
        case BinOp::kNe:
          return Value::Bool(a != b);
        case BinOp::kLt:
          return Value::Bool(a < b);
        case BinOp::kLe:
          return Value::Bool(a <= b);
        case BinOp::kGt:
          return Value::Bool(a > b);
        case BinOp::kGe:
          return Value::Bool(a >= b);
        default:
          break;
      }
    }
    switch (op) {
      case BinOp::kEq:
        return Value::Bool(internal::Equals(l, r));
      case BinOp::kNe:
        return Value::Bool(!internal::Equals(l, r));
      case BinOp::kLt:
      case BinOp::kLe:
      case BinOp::kGt:
      case BinOp::kGe: {
        Order o = internal::Compare(l, r);
        if (o == Order::kIncomparable) return Value::Error(kNoOverload);
        if (o == Order::kUnordered) return Value::Bool(false);
        switch (op) {
          case BinOp::kLt:
            return Value::Bool(o == Order::kLess);
          case BinOp::kLe:
            return Value::Bool(o != Order::kGreater);
          case BinOp::kGt:
            return Value::Bool(o == Order::kGreater);
          default:
            return Value::Bool(o != Order::kLess);
        }
      }
      case BinOp::kIn:
        return In(l, r);
      default:
        return Arithmetic(op, l, r);
    }
  }

  [[gnu::noinline]] Value Arithmetic(BinOp op, const Value& l, const Value& r) {
    VK lk = l.kind(), rk = r.kind();
    if (lk == VK::kInt && rk == VK::kInt) {
      int64_t a = l.int_value(), b = r.int_value(), out;
      switch (op) {
        case BinOp::kAdd:
          if (__builtin_add_overflow(a, b, &out)) return Value::Error(kOverflow);
          return Value::Int(out);
        case BinOp::kSub:
          if (__builtin_sub_overflow(a, b, &out)) return Value::Error(kOverflow);
          return Value::Int(out);
        case BinOp::kMul:
          if (__builtin_mul_overflow(a, b, &out)) return Value::Error(kOverflow);
          return Value::Int(out);
        case BinOp::kDiv:
          if (b == 0) return Value::Error(kDivByZero);
          if (a == INT64_MIN && b == -1) return Value::Error(kOverflow);
          return Value::Int(a / b);
        case BinOp::kMod:
          if (b == 0) return Value::Error(kModByZero);
          if (a == INT64_MIN && b == -1) return Value::Error(kOverflow);
          return Value::Int(a % b);
        default:
          break;
      }
    } else if (lk == VK::kUint && rk == VK::kUint) {
      uint64_t a = l.uint_value(), b = r.uint_value(), out;
      switch (op) {
        case BinOp::kAdd:
          if (__builtin_add_overflow(a, b, &out)) return Value::Error(kOverflow);
          return Value::Uint(out);
        case BinOp::kSub:
          if (__builtin_sub_overflow(a, b, &out)) return Value::Error(kOverflow);
          return Value::Uint(out);
        case BinOp::kMul:
          if (__builtin_mul_overflow(a, b, &out)) return Value::Error(kOverflow);
          return Value::Uint(out);
        case BinOp::kDiv:
          if (b == 0) return Value::Error(kDivByZero);
          return Value::Uint(a / b);
        case BinOp::kMod:
          if (b == 0) return Value::Error(kModByZero);
          return Value::Uint(a % b);
        default:
          break;
      }
    } else if (lk == VK::kDouble && rk == VK::kDouble) {
      double a = l.double_value(), b = r.double_value();
      switch (op) {
        case BinOp::kAdd:
          return Value::Double(a + b);
        case BinOp::kSub:
          return Value::Double(a - b);
        case BinOp::kMul:
          return Value::Double(a * b);
        case BinOp::kDiv:
          return Value::Double(a / b);
        default:
          break;
      }
    } else if (op == BinOp::kAdd && lk == rk && (lk == VK::kString || lk == VK::kBytes)) {
      Value v = Concat(l, r);
      return lk == VK::kBytes ? internal::MakeBytes(v.string_value()) : v;
    } else if (op == BinOp::kAdd && lk == VK::kList && rk == VK::kList) {
      size_t nl = internal::ListSize(l), nr = internal::ListSize(r);
      if (!scratch_.Charge(nl + nr)) return Value::Error(kBudgetExceeded);
      std::vector<Value>& items = scratch_.NewList();
      items.reserve(nl + nr);
      for (size_t i = 0; i < nl; ++i) items.push_back(internal::ListAt(l, i));
      for (size_t i = 0; i < nr; ++i) items.push_back(internal::ListAt(r, i));
      return internal::MakeList(items.data(), items.size());
    } else if (lk == VK::kTimestamp || lk == VK::kDuration || rk == VK::kTimestamp) {
      return TimeArithmetic(op, l, r);
    }
    return Value::Error(kNoOverload);
  }

  Value TimeArithmetic(BinOp op, const Value& l, const Value& r) {
    VK lk = l.kind(), rk = r.kind();
    int64_t out;
    if (op == BinOp::kAdd) {
      bool ts_dur = lk == VK::kTimestamp && rk == VK::kDuration;
      bool dur_ts = lk == VK::kDuration && rk == VK::kTimestamp;
      bool dur_dur = lk == VK::kDuration && rk == VK::kDuration;
      if (!ts_dur && !dur_ts && !dur_dur) return Value::Error(kNoOverload);
      if (__builtin_add_overflow(l.int_value(), r.int_value(), &out)) {
        return Value::Error(kOverflow);
      }
      return dur_dur ? Value::Duration(out) : Value::Timestamp(out);
    }
    if (op == BinOp::kSub) {
      bool ts_ts = lk == VK::kTimestamp && rk == VK::kTimestamp;
      bool ts_dur = lk == VK::kTimestamp && rk == VK::kDuration;
      bool dur_dur = lk == VK::kDuration && rk == VK::kDuration;
      if (!ts_ts && !ts_dur && !dur_dur) return Value::Error(kNoOverload);
      if (__builtin_sub_overflow(l.int_value(), r.int_value(), &out)) {
        return Value::Error(kOverflow);
      }
      return ts_dur ? Value::Timestamp(out) : Value::Duration(out);
    }
    return Value::Error(kNoOverload);
  }

  Value BuildMap(const Node& n) {
    std::vector<Value>& kv = scratch_.NewList();
    for (int32_t i = 0; i < n.args_count; i += 2) {
      Value k = Eval(ast_.Arg(n, i));
      if (k.is_error()) return k;
      Value v = Eval(ast_.Arg(n, i + 1));
      if (v.is_error()) return v;
      VK kk = k.kind();
      if (kk != VK::kString && kk != VK::kInt && kk != VK::kUint && kk != VK::kBool) {
        return Value::Error("unsupported map key type");
      }
      for (size_t j = 0; j < kv.size(); j += 2) {
        if (internal::Equals(kv[j], k)) return ErrorOf("repeated key in map literal: ", KeyText(k));
      }
      kv.push_back(k);
      kv.push_back(v);
    }
    return internal::MakeMap(kv.data(), kv.size() / 2);
  }

  [[gnu::noinline]] Value Comprehension(const Node& n) {
    Value target = Eval(n.a);
    if (target.is_error()) return target;
    bool is_map = target.kind() == VK::kMap;
    if (!is_map && target.kind() != VK::kList) return Value::Error(kNoOverload);
    size_t size = is_map ? internal::MapSize(target) : internal::ListSize(target);
    if (!scratch_.Charge(size)) return Value::Error(kBudgetExceeded);
    Value& var = scratch_.iter_vars[n.slot];
    auto element = [&](size_t i) {
      return is_map ? internal::MapKeyAt(target, i) : internal::ListAt(target, i);
    };
    switch (n.macro) {
      case Macro::kExists:
      case Macro::kAll: {
        bool absorbing = n.macro == Macro::kExists;  // true ends exists(), false ends all()
        Value accu = Value::Bool(!absorbing);
        for (size_t i = 0; i < size; ++i) {
          var = element(i);
          accu = Logical(accu, Eval(n.b), absorbing);
          if (IsBool(accu) && accu.bool_value() == absorbing) return accu;
        }
        return accu;
      }
      case Macro::kExistsOne: {
        int64_t count = 0;
        for (size_t i = 0; i < size; ++i) {
          var = element(i);
          Value p = Eval(n.b);
          if (p.is_error()) return p;
          if (!IsBool(p)) return Value::Error(kNoOverload);
          if (p.bool_value()) ++count;
        }
        return Value::Bool(count == 1);
      }
      case Macro::kMap:
      case Macro::kFilter: {
        std::vector<Value>& items = scratch_.NewList();
        for (size_t i = 0; i < size; ++i) {
          Value e = element(i);
          var = e;
          Value p = Eval(n.b);
          if (p.is_error()) return p;
          if (n.macro == Macro::kMap) {
            items.push_back(p);
          } else {
            if (!IsBool(p)) return Value::Error(kNoOverload);
            if (p.bool_value()) items.push_back(e);
          }
        }
        return internal::MakeList(items.data(), items.size());
      }
      default:
        return Value::Error("internal error: unknown macro");
    }
  }

  [[gnu::noinline]] Value Call(const Node& n) {
    Value args[4];
    int argc = n.args_count;
    if (argc > 4) return Value::Error("internal error: too many arguments");
    for (int i = 0; i < argc; ++i) {
      args[i] = Eval(ast_.Arg(n, i));
      if (args[i].is_error()) return args[i];
    }
    const Value& x = args[0];
    switch (n.fn) {
      case Builtin::kSize:
        switch (x.kind()) {
          case VK::kString:
            return Value::Int(internal::CodePointCount(x.string_value()));
          case VK::kBytes:
            return Value::Int(static_cast<int64_t>(x.string_value().size()));
          case VK::kList:
            return Value::Int(static_cast<int64_t>(internal::ListSize(x)));
          case VK::kMap:
            return Value::Int(static_cast<int64_t>(internal::MapSize(x)));
          default:
            return Value::Error(kNoOverload);
        }
      case Builtin::kStartsWith:
      case Builtin::kEndsWith:
      case Builtin::kContains: {
        if (x.kind() != VK::kString || args[1].kind() != VK::kString) {
          return Value::Error(kNoOverload);
        }
        std::string_view s = x.string_value(), p = args[1].string_value();
        if (n.fn == Builtin::kStartsWith) return Value::Bool(s.starts_with(p));
        if (n.fn == Builtin::kEndsWith) return Value::Bool(s.ends_with(p));
        return Value::Bool(s.find(p) != std::string_view::npos);
      }
      case Builtin::kMatches:
        return MatchDynamic(x, args[1]);
      case Builtin::kInt:
        return ToInt(x);
      case Builtin::kUint:
        return ToUint(x);
      case Builtin::kDouble:
        return ToDouble(x);
      case Builtin::kString:
        return ToString(x);
      case Builtin::kBool:
        return ToBool(x);
      case Builtin::kBytes:
        if (x.kind() == VK::kBytes) return x;
        if (x.kind() == VK::kString) return internal::MakeBytes(x.string_value());
        return Value::Error(kNoOverload);
      case Builtin::kType:
        return internal::MakeType(internal::TypeName(x));
      case Builtin::kDyn:
        return x;
      case Builtin::kTimestamp: {
        if (x.kind() == VK::kTimestamp) return x;
        if (x.kind() == VK::kInt) {
          int64_t nanos;
          if (__builtin_mul_overflow(x.int_value(), int64_t{1000000000}, &nanos)) {
            return Value::Error("timestamp out of range");
          }
          return Value::Timestamp(nanos);
        }
        if (x.kind() != VK::kString) return Value::Error(kNoOverload);
        int64_t nanos;
        if (!internal::ParseTimestamp(x.string_value(), &nanos)) {
          return ErrorOf("invalid timestamp: '", x.string_value(), "'");
        }
        return Value::Timestamp(nanos);
      }
      case Builtin::kDuration: {
        if (x.kind() == VK::kDuration) return x;
        if (x.kind() != VK::kString) return Value::Error(kNoOverload);
        int64_t nanos;
        if (!internal::ParseDuration(x.string_value(), &nanos)) {
          return ErrorOf("invalid duration: '", x.string_value(), "'");
        }
        return Value::Duration(nanos);
      }
      default:
        return TimeField(n.fn, args, argc);
    }
  }

  Value TimeField(Builtin fn, const Value* args, int argc) {
    const Value& x = args[0];
    if (x.kind() == VK::kDuration) {
      if (argc != 1) return Value::Error(kNoOverload);
      int64_t d = x.int_value();
      switch (fn) {
        case Builtin::kGetHours:
          return Value::Int(d / 3600000000000LL);
        case Builtin::kGetMinutes:
          return Value::Int(d / 60000000000LL);
        case Builtin::kGetSeconds:
          return Value::Int(d / 1000000000LL);
        case Builtin::kGetMilliseconds:
          return Value::Int(d / 1000000LL);
        default:
          return Value::Error(kNoOverload);
      }
    }
    if (x.kind() != VK::kTimestamp) return Value::Error(kNoOverload);
    int64_t offset = 0;
    if (argc == 2) {
      if (args[1].kind() != VK::kString) return Value::Error(kNoOverload);
      if (!internal::ParseZoneOffset(args[1].string_value(), &offset)) {
        return ErrorOf("unsupported time zone '", args[1].string_value(),
                       "'; use UTC or a fixed offset such as +02:00");
      }
    }
    internal::CivilTime c = internal::ToCivil(x.int_value(), offset);
    switch (fn) {
      case Builtin::kGetFullYear:
        return Value::Int(c.year);
      case Builtin::kGetMonth:
        return Value::Int(c.month - 1);
      case Builtin::kGetDate:
        return Value::Int(c.day);
      case Builtin::kGetDayOfMonth:
        return Value::Int(c.day - 1);
      case Builtin::kGetDayOfWeek:
        return Value::Int(c.day_of_week);
      case Builtin::kGetDayOfYear:
        return Value::Int(c.day_of_year);
      case Builtin::kGetHours:
        return Value::Int(c.hour);
      case Builtin::kGetMinutes:
        return Value::Int(c.minute);
      case Builtin::kGetSeconds:
        return Value::Int(c.second);
      case Builtin::kGetMilliseconds:
        return Value::Int(c.nanos / 1000000);
      default:
        return Value::Error(kNoOverload);
    }
  }

  Value MatchDynamic(const Value& s, const Value& pattern) {
    if (s.kind() != VK::kString || pattern.kind() != VK::kString) {
      return Value::Error(kNoOverload);
    }
    if (pattern.string_value().size() > kMaxDynamicPatternBytes) {
      return Value::Error("regular expression is too long");
    }
    RE2::Options opts;
    opts.set_log_errors(false);
    RE2 re(pattern.string_value(), opts);
    if (!re.ok()) return ErrorOf("invalid regular expression: ", re.error());
    if (static_cast<size_t>(re.ProgramSize()) > program_.max_regex_program_size) {
      return Value::Error("regular expression is too complex");
    }
    return Value::Bool(RE2::PartialMatch(s.string_value(), re));
  }

  Value ToInt(const Value& x) {
    switch (x.kind()) {
      case VK::kInt:
        return x;
      case VK::kUint:
        if (x.uint_value() > static_cast<uint64_t>(INT64_MAX)) return Value::Error(kRange);
        return Value::Int(static_cast<int64_t>(x.uint_value()));
      case VK::kDouble: {
        double d = x.double_value();
        if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
          return Value::Error(kRange);
        }
        return Value::Int(static_cast<int64_t>(d));
      }
      case VK::kString: {
        std::string_view s = x.string_value();
        int64_t v;
        auto res = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size()) {
          return ErrorOf("cannot convert '", s, "' to int");
        }
        return Value::Int(v);
      }
      case VK::kTimestamp: {
        int64_t t = x.int_value();
        int64_t secs = t / 1000000000;
        if (t % 1000000000 < 0) --secs;
        return Value::Int(secs);
      }
      default:
        return Value::Error(kNoOverload);
    }
  }

  Value ToUint(const Value& x) {
    switch (x.kind()) {
      case VK::kUint:
        return x;
      case VK::kInt:
        if (x.int_value() < 0) return Value::Error(kRange);
        return Value::Uint(static_cast<uint64_t>(x.int_value()));
      case VK::kDouble: {
        double d = x.double_value();
        if (!(d > -1.0 && d < 18446744073709551616.0)) return Value::Error(kRange);
        return Value::Uint(static_cast<uint64_t>(d));
      }
      case VK::kString: {
        std::string_view s = x.string_value();
        uint64_t v;
        auto res = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size()) {
          return ErrorOf("cannot convert '", s, "' to uint");
        }
        return Value::Uint(v);
      }
      default:
        return Value::Error(kNoOverload);
    }
  }

  Value ToDouble(const Value& x) {
    switch (x.kind()) {
      case VK::kDouble:
        return x;
      case VK::kInt:
        return Value::Double(static_cast<double>(x.int_value()));
      case VK::kUint:
        return Value::Double(static_cast<double>(x.uint_value()));
      case VK::kString: {
        std::string_view s = x.string_value();
        double v;
        auto res = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size()) {
          return ErrorOf("cannot convert '", s, "' to double");
        }
        return Value::Double(v);
      }
      default:
        return Value::Error(kNoOverload);
    }
  }

  Value ToString(const Value& x) {
    switch (x.kind()) {
      case VK::kString:
        return x;
      case VK::kBytes:
        if (!common::IsValidUtf8(x.string_value())) {
          return Value::Error("bytes are not valid UTF-8");
        }
        return Value::String(x.string_value());
      case VK::kBool:
        return Value::String(x.bool_value() ? "true" : "false");
      default:
        break;
    }
    std::string& s = scratch_.NewString();
    switch (x.kind()) {
      case VK::kInt:
        s += std::to_string(x.int_value());
        break;
      case VK::kUint:
        s += std::to_string(x.uint_value());
        break;
      case VK::kDouble:
        internal::AppendDouble(s, x.double_value());
        break;
      case VK::kTimestamp:
        internal::AppendTimestamp(s, x.int_value());
        break;
      case VK::kDuration:
        internal::AppendDuration(s, x.int_value());
        break;
      default:
        return Value::Error(kNoOverload);
    }
    return Value::String(s);
  }

  Value ToBool(const Value& x) {
    if (x.kind() == VK::kBool) return x;
    if (x.kind() != VK::kString) return Value::Error(kNoOverload);
    std::string_view s = x.string_value();
    if (s == "true" || s == "True" || s == "TRUE" || s == "t" || s == "1") return Value::Bool(true);
    if (s == "false" || s == "False" || s == "FALSE" || s == "f" || s == "0") {
      return Value::Bool(false);
    }
    return ErrorOf("cannot convert '", s, "' to bool");
  }

  const Ast& ast_;
  const Program::Impl& program_;
  const Activation& activation_;
  EvalScratch::Impl& scratch_;
};

}  // namespace

Value Program::Evaluate(const Activation& activation, EvalScratch& scratch) const {
  if (impl_->fast) {
    auto r = impl_->fast->Run(activation);
    if (r != internal::FastPredicate::Result::kFallback) {
      return Value::Bool(r == internal::FastPredicate::Result::kTrue);
    }
  }
  EvalScratch::Impl& s = scratch.impl();
  s.Reset();
  if (s.iter_vars.size() < static_cast<size_t>(impl_->max_iter_depth)) {
    s.iter_vars.resize(impl_->max_iter_depth);
  }
  Evaluator evaluator(*impl_, activation, s);
  return evaluator.Eval(impl_->ast.root);
}

}  // namespace aegis::expr
