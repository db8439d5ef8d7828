// Internal helpers over Value for the evaluator: list and map access across the JSON-backed and
// built representations, CEL equality and ordering, type names, and text conversions.
// Not part of the public API.
#ifndef AEGIS_EXPR_VALUE_OPS_H_
#define AEGIS_EXPR_VALUE_OPS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "expr/value.h"

namespace aegis::expr::internal {

// Representation tags stored in Value::aux_ for lists and maps.
inline constexpr uint8_t kJsonBacked = 0;
inline constexpr uint8_t kBuilt = 1;

// A list over `n` values at `items`, or a map over `n` key/value pairs laid out as
// key0, value0, key1, value1, ... at `kv`. Both borrow.
Value MakeList(const Value* items, size_t n);
Value MakeMap(const Value* kv, size_t n_pairs);
Value MakeBytes(std::string_view b);
// A type value; `name` must outlive it (use static text).
Value MakeType(std::string_view name);

size_t ListSize(const Value& list);
Value ListAt(const Value& list, size_t i);
size_t MapSize(const Value& map);
Value MapKeyAt(const Value& map, size_t i);
Value MapValueAt(const Value& map, size_t i);
// Looks `key` up with CEL key equality (1, 1u and 1.0 are the same key). Returns false if absent.
bool MapFind(const Value& map, const Value& key, Value* out);
bool MapFindString(const Value& map, std::string_view key, Value* out);

// CEL equality on two non-error values: numbers compare by value across int, uint and double;
// values of different types are unequal; lists and maps compare element-wise.
bool Equals(const Value& a, const Value& b);

enum class Order { kLess, kEqual, kGreater, kUnordered, kIncomparable };
// CEL ordering: numbers across types, strings and bytes bytewise, bools, timestamps, durations.
// kUnordered for NaN, kIncomparable for types without an ordering between them.
Order Compare(const Value& a, const Value& b);

// CEL type name of a value ("int", "list", "map", "google.protobuf.Timestamp", ...).
std::string_view TypeName(const Value& v);

// Number of Unicode code points in valid UTF-8.
int64_t CodePointCount(std::string_view s);

// Shortest text that reads back as `d`, as CEL's string(double) writes it.
void AppendDouble(std::string& out, double d);

}  // namespace aegis::expr::internal

#endif  // AEGIS_EXPR_VALUE_OPS_H_
