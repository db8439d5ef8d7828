// expr_difftool: evaluates conditions for the differential test against a reference CEL
// implementation (tests/differential/run.mjs).
//
// Reads one JSON object per line, {"expr": "...", "input": {...}}, declares every member of
// `input` as a dyn variable, compiles and evaluates, and writes one JSON line per case: a typed
// result such as {"int":"5"}, {"double":1.5}, {"list":[...]} or {"error":true,"message":"..."}.
// A compile error is reported as an error result, as the reference does.
#include <cmath>
#include <iostream>
#include <string>

#include "common/json.h"
#include "expr/expr.h"
#include "expr/time_util.h"
#include "expr/value_ops.h"

namespace aegis::expr {
namespace {

using VK = Value::Kind;

void AppendTyped(std::string& out, const Value& v) {
  switch (v.kind()) {
    case VK::kNull:
      out += "{\"null\":true}";
      return;
    case VK::kBool:
      out += v.bool_value() ? "{\"bool\":true}" : "{\"bool\":false}";
      return;
    case VK::kInt:
      out += "{\"int\":\"" + std::to_string(v.int_value()) + "\"}";
      return;
    case VK::kUint:
      out += "{\"uint\":\"" + std::to_string(v.uint_value()) + "\"}";
      return;
    case VK::kDouble: {
      double d = v.double_value();
      out += "{\"double\":";
      if (std::isnan(d)) {
        out += "\"NaN\"";
      } else if (std::isinf(d)) {
        out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
      } else {
        std::string s;
        internal::AppendDouble(s, d);
        out += s;
      }
      out += "}";
      return;
    }
    case VK::kString:
      out += "{\"string\":";
      common::AppendJsonString(out, v.string_value());
      out += "}";
      return;
    case VK::kBytes: {
      out += "{\"bytes\":\"";
      static const char kHex[] = "0123456789abcdef";
      for (unsigned char c : v.string_value()) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
      out += "\"}";
      return;
    }
    case VK::kList: {
      out += "{\"list\":[";
      size_t n = internal::ListSize(v);
      for (size_t i = 0; i < n; ++i) {
        if (i > 0) out += ',';
        AppendTyped(out, internal::ListAt(v, i));
      }
      out += "]}";
      return;
    }
    case VK::kMap: {
      out += "{\"map\":[";
      size_t n = internal::MapSize(v);
      for (size_t i = 0; i < n; ++i) {
        if (i > 0) out += ',';
        out += '[';
        AppendTyped(out, internal::MapKeyAt(v, i));
        out += ',';
        AppendTyped(out, internal::MapValueAt(v, i));
        out += ']';
      }
      out += "]}";
      return;
    }
    case VK::kTimestamp: {
      std::string s;
      internal::AppendTimestamp(s, v.int_value());
      out += "{\"timestamp\":\"" + s + "\"}";
      return;
    }
    case VK::kDuration:
      out += "{\"duration\":\"" + std::to_string(v.int_value()) + "\"}";
      return;
    case VK::kType:
      out += "{\"type\":";
      common::AppendJsonString(out, v.string_value());
      out += "}";
      return;
    case VK::kError:
      out += "{\"error\":true,\"message\":";
      common::AppendJsonString(out, v.string_value());
      out += "}";
      return;
  }
}

std::string RunCase(const std::string& line) {
  auto parsed = common::ParseJson(line);
  if (!parsed.ok()) return "{\"bad_input\":" + std::string("true") + "}";
  const common::Json& doc = *parsed;
  const common::Json* expr = doc.Find("expr");
  const common::Json* input = doc.Find("input");
  if (expr == nullptr || !expr->is_string()) return "{\"bad_input\":true}";
  Environment env;
  Activation activation;
  if (input != nullptr && input->is_object()) {
    for (const auto& m : input->as_object()) {
      env.Declare(m.key, "dyn");
      activation.slots.push_back(Value::FromJson(m.value));
    }
  }
  CompileResult compiled = Compile(expr->as_string(), env);
  std::string out;
  if (compiled.program == nullptr) {
    out += "{\"error\":true,\"compile\":true,\"message\":";
    const CompileError& e = compiled.errors.front();
    common::AppendJsonString(out, e.code + " at " + std::to_string(e.offset) + ": " + e.message);
    out += "}";
    return out;
  }
  EvalScratch scratch;
  AppendTyped(out, compiled.program->Evaluate(activation, scratch));
  return out;
}

}  // namespace
}  // namespace aegis::expr

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    std::cout << aegis::expr::RunCase(line) << '\n';
  }
  return 0;
}
