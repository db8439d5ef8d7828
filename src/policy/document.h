// Document: a bundle file read into a tree that remembers where every node came from, so the
// validator can point at the exact line and column of a mistake.
//
// YAML and JSON files both go through libyaml (JSON is YAML), whose parser does not recurse.
// Scalars keep their text and whether they were quoted; ToJson() types plain scalars by the
// YAML 1.2 core schema (so `yes` stays a string and `007` is an int).
#ifndef AEGIS_POLICY_DOCUMENT_H_
#define AEGIS_POLICY_DOCUMENT_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "policy/diagnostic.h"

namespace aegis::policy {

struct DocMember;

struct DocNode {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  Location location;
  std::string scalar;   // kScalar: the text as written
  bool quoted = false;  // kScalar: was quoted, so always a string
  std::vector<DocNode> items;                        // kSequence
  std::vector<DocMember> members;  // kMap, in file order

  bool is_map() const { return kind == Kind::kMap; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_scalar() const { return kind == Kind::kScalar; }
  // A human name for the kind, for messages: "a map", "a list", "a scalar", "null".
  std::string_view KindName() const;
};

struct DocMember {
  DocNode key;
  DocNode value;
};

struct DocumentLimits {
  size_t max_file_bytes = 4 << 20;
  int max_depth = 64;
  size_t max_nodes = 1'000'000;  // counts alias expansions, so `&a [*a, *a, ...]` bombs stop
};

// Parses `text` (named `file` in diagnostics). Returns false and reports into `diags` when the
// file is not well-formed, too large, too deep, or holds duplicate map keys.
bool ParseDocument(std::string_view file, std::string_view text, const DocumentLimits& limits,
                   DocNode& out, Diagnostics& diags);

// Converts to JSON with core-schema typing of plain scalars. Map keys become strings.
// Reports (and returns false) for what JSON cannot hold: non-scalar keys, non-finite numbers.
bool ToJson(const DocNode& node, common::Json& out, Diagnostics& diags);

}  // namespace aegis::policy

#endif  // AEGIS_POLICY_DOCUMENT_H_
