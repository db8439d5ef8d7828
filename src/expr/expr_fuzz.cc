// Fuzz target: compiles arbitrary bytes as a condition against a few dyn variables and evaluates
// it against a fixed input. Any crash, sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/json.h"
#include "expr/expr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aegis;
  static const common::Json* input = [] {
    auto parsed = common::ParseJson(
        R"({"params": {"amount": 7000, "currency": "usd", "ratio": 0.5, "tags": ["a", "b"],
            "nested": {"x": [1, 2, {"y": null}]}, "big": 9223372036854775807},
           "request": {"method": "POST", "host": "api.stripe.com", "path": "/v1/payments",
                       "headers": {"content-type": "application/json"}}})");
    return new common::Json(std::move(*parsed));
  }();
  static const expr::Environment* env = [] {
    auto* e = new expr::Environment;
    e->Declare("params", "map(string, dyn)");
    e->Declare("request", "dyn");
    e->Declare("agent", "string");
    e->Declare("cost_usd", "double");
    e->Declare("now", "timestamp");
    e->Declare("x", "dyn");
    return e;
  }();
  std::string_view source(reinterpret_cast<const char*>(data), size);
  expr::CompileResult result = expr::Compile(source, *env);
  if (result.program == nullptr) return 0;
  expr::Activation activation;
  activation.slots = {expr::Value::FromJson(*input->Find("params")),
                      expr::Value::FromJson(*input->Find("request")),
                      expr::Value::String("finance-agent"),
                      expr::Value::Double(0.25),
                      expr::Value::Timestamp(1714564800000000000),
                      expr::Value::FromJson(*input)};
  expr::EvalScratch scratch;
  expr::Value v = result.program->Evaluate(activation, scratch);
  (void)result.program->ResultType();
  // A second run with the same scratch must give the same kind.
  expr::Value again = result.program->Evaluate(activation, scratch);
  if (again.kind() != v.kind()) __builtin_trap();
  return 0;
}
