#include "expr/value_ops.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "common/json.h"

namespace aegis::expr::internal {

using common::Json;
using Kind = Value::Kind;

namespace {

const Json& AsJson(const Value& v) { return *static_cast<const Json*>(v.u_.p); }
const Value* Items(const Value& v) { return reinterpret_cast<const Value*>(v.u_.s.data); }

// Compares an int64 with a double by exact numeric value.
Order CompareIntDouble(int64_t i, double d) {
  if (std::isnan(d)) return Order::kUnordered;
  if (d >= 9223372036854775808.0) return Order::kLess;
  if (d < -9223372036854775808.0) return Order::kGreater;
  double t = std::trunc(d);
  int64_t ti = static_cast<int64_t>(t);
  if (i < ti) return Order::kLess;
  if (i > ti) return Order::kGreater;
  if (d > t) return Order::kLess;
  if (d < t) return Order::kGreater;
  return Order::kEqual;
}

Order CompareUintDouble(uint64_t u, double d) {
  if (std::isnan(d)) return Order::kUnordered;
  if (d >= 18446744073709551616.0) return Order::kLess;
  if (d < 0) return Order::kGreater;
  double t = std::trunc(d);
  uint64_t tu = static_cast<uint64_t>(t);
  if (u < tu) return Order::kLess;
  if (u > tu) return Order::kGreater;
  if (d > t) return Order::kLess;
  return Order::kEqual;
}

Order Flip(Order o) {
  if (o == Order::kLess) return Order::kGreater;
  if (o == Order::kGreater) return Order::kLess;
  return o;
}

template <typename T>
Order Cmp(T a, T b) {
  if (a < b) return Order::kLess;
  if (b < a) return Order::kGreater;
  return Order::kEqual;
}

bool IsNumber(Kind k) { return k == Kind::kInt || k == Kind::kUint || k == Kind::kDouble; }

Order CompareNumbers(const Value& a, const Value& b) {
  switch (a.kind()) {
    case Kind::kInt:
      if (b.kind() == Kind::kInt) return Cmp(a.int_value(), b.int_value());
      if (b.kind() == Kind::kUint) {
        if (a.int_value() < 0) return Order::kLess;
        return Cmp(static_cast<uint64_t>(a.int_value()), b.uint_value());
      }
      return CompareIntDouble(a.int_value(), b.double_value());
    case Kind::kUint:
      if (b.kind() == Kind::kUint) return Cmp(a.uint_value(), b.uint_value());
      if (b.kind() == Kind::kInt) return Flip(CompareNumbers(b, a));
      return CompareUintDouble(a.uint_value(), b.double_value());
    default:
      if (b.kind() == Kind::kDouble) {
        double x = a.double_value(), y = b.double_value();
        if (std::isnan(x) || std::isnan(y)) return Order::kUnordered;
        return Cmp(x, y);
      }
      return Flip(CompareNumbers(b, a));
  }
}

}  // namespace

Value MakeList(const Value* items, size_t n) {
  Value v;
  v.kind_ = Kind::kList;
  v.aux_ = kBuilt;
  v.u_.s.data = reinterpret_cast<const char*>(items);
  v.u_.s.size = n;
  return v;
}

Value MakeMap(const Value* kv, size_t n_pairs) {
  Value v = MakeList(kv, n_pairs);
  v.kind_ = Kind::kMap;
  return v;
}

Value MakeBytes(std::string_view b) {
  Value v = Value::String(b);
  v.kind_ = Kind::kBytes;
  return v;
}

Value MakeType(std::string_view name) {
  Value v = Value::String(name);
  v.kind_ = Kind::kType;
  return v;
}

size_t ListSize(const Value& list) {
  if (list.aux_ == kJsonBacked) return AsJson(list).as_array().size();
  return list.u_.s.size;
}

Value ListAt(const Value& list, size_t i) {
  if (list.aux_ == kJsonBacked) return Value::FromJson(AsJson(list).as_array()[i]);
  return Items(list)[i];
}

size_t MapSize(const Value& map) {
  if (map.aux_ == kJsonBacked) return AsJson(map).as_object().size();
  return map.u_.s.size;
}

Value MapKeyAt(const Value& map, size_t i) {
  if (map.aux_ == kJsonBacked) return Value::String(AsJson(map).as_object()[i].key);
  return Items(map)[2 * i];
}

Value MapValueAt(const Value& map, size_t i) {
  if (map.aux_ == kJsonBacked) return Value::FromJson(AsJson(map).as_object()[i].value);
  return Items(map)[2 * i + 1];
}

bool MapFindString(const Value& map, std::string_view key, Value* out) {
  if (map.aux_ == kJsonBacked) {
    const Json* j = AsJson(map).Find(key);
    if (j == nullptr) return false;
    *out = Value::FromJson(*j);
    return true;
  }
  const Value* kv = Items(map);
  for (size_t i = 0; i < map.u_.s.size; ++i) {
    if (kv[2 * i].kind() == Kind::kString && kv[2 * i].string_value() == key) {
      *out = kv[2 * i + 1];
      return true;
    }
  }
  return false;
}

bool MapFind(const Value& map, const Value& key, Value* out) {
  if (key.kind() == Kind::kString) return MapFindString(map, key.string_value(), out);
  if (map.aux_ == kJsonBacked) return false;  // JSON objects only have string keys
  const Value* kv = Items(map);
  for (size_t i = 0; i < map.u_.s.size; ++i) {
    if (Equals(kv[2 * i], key)) {
      *out = kv[2 * i + 1];
      return true;
    }
  }
  return false;
}

bool Equals(const Value& a, const Value& b) {
  if (IsNumber(a.kind()) && IsNumber(b.kind())) return CompareNumbers(a, b) == Order::kEqual;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kNull:
      return true;
    case Kind::kBool:
      return a.bool_value() == b.bool_value();
    case Kind::kString:
    case Kind::kBytes:
    case Kind::kType:
    case Kind::kError:
      return a.string_value() == b.string_value();
    case Kind::kTimestamp:
    case Kind::kDuration:
      return a.int_value() == b.int_value();
    case Kind::kList: {
      size_t n = ListSize(a);
      if (n != ListSize(b)) return false;
      for (size_t i = 0; i < n; ++i) {
        if (!Equals(ListAt(a, i), ListAt(b, i))) return false;
      }
      return true;
    }
    case Kind::kMap: {
      size_t n = MapSize(a);
      if (n != MapSize(b)) return false;
      for (size_t i = 0; i < n; ++i) {
        Value other;
        if (!MapFind(b, MapKeyAt(a, i), &other)) return false;
        if (!Equals(MapValueAt(a, i), other)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

Order Compare(const Value& a, const Value& b) {
  if (IsNumber(a.kind()) && IsNumber(b.kind())) return CompareNumbers(a, b);
  if (a.kind() != b.kind()) return Order::kIncomparable;
  switch (a.kind()) {
    case Kind::kBool:
      return Cmp(a.bool_value(), b.bool_value());
    case Kind::kString:
    case Kind::kBytes: {
      int c = a.string_value().compare(b.string_value());
      return c < 0 ? Order::kLess : (c > 0 ? Order::kGreater : Order::kEqual);
    }
    case Kind::kTimestamp:
    case Kind::kDuration:
      return Cmp(a.int_value(), b.int_value());
    default:
      return Order::kIncomparable;
  }
}

std::string_view TypeName(const Value& v) {
  switch (v.kind()) {
    case Kind::kNull:
      return "null_type";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
    case Kind::kTimestamp:
      return "google.protobuf.Timestamp";
    case Kind::kDuration:
      return "google.protobuf.Duration";
    case Kind::kType:
      return "type";
    case Kind::kError:
      return "error";
  }
  return "dyn";
}

int64_t CodePointCount(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

void AppendDouble(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "NaN";
    return;
  }
  if (std::isinf(d)) {
    out += d > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  out.append(buf, res.ptr);
}

}  // namespace aegis::expr::internal
