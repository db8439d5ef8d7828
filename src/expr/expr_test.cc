#include "expr/expr.h"

// GCC 12 reports a false -Wrestrict on operator+ of std::string temporaries (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/json.h"
#include "expr/value_ops.h"

namespace aegis::expr {
namespace {

using ::testing::HasSubstr;
using VK = Value::Kind;

// Fixture with the variables the policy engine declares, bound to a sample call.
class ExprTest : public ::testing::Test {
 protected:
  ExprTest() {
    env_.Declare("agent", "string");
    env_.Declare("tenant", "string");
    env_.Declare("tool", "string");
    env_.Declare("action", "string");
    env_.Declare("params", "map(string, dyn)");
    env_.Declare("request", "map(string, dyn)");
    env_.Declare("identity", "map(string, dyn)");
    env_.Declare("cost_usd", "double");
    env_.Declare("now", "timestamp");
    env_.Declare("tags", "list(string)");
    params_ = *common::ParseJson(
        R"({"amount": 7000, "currency": "usd", "ratio": 0.25, "big": 9223372036854775807,
            "items": [1, 2, 3], "empty": [], "nested": {"a": {"b": 1}}, "nothing": null,
            "names": ["ann", "bob"], "zero": 0})");
    request_ = *common::ParseJson(
        R"({"method": "POST", "host": "api.stripe.com", "path": "/v1/payment_intents",
            "headers": {"content-type": "application/json"}, "query": {}})");
    identity_ = *common::ParseJson(R"({"sub": "svc-1", "groups": ["finance", "ops"]})");
    activation_.slots = {Value::String("finance-agent"),
                         Value::String("acme"),
                         Value::String("stripe"),
                         Value::String("create_payment"),
                         Value::FromJson(params_),
                         Value::FromJson(request_),
                         Value::FromJson(identity_),
                         Value::Double(0.002),
                         Value::Timestamp(1714564800000000000),  // 2024-05-01T12:00:00Z, Wed
                         internal::MakeList(tag_values_, 2)};
  }

  CompileResult CompileOk(const std::string& source) {
    CompileResult r = Compile(source, env_);
    EXPECT_TRUE(r.errors.empty()) << source << ": " << r.errors.front().code << " at "
                                  << r.errors.front().offset << ": " << r.errors.front().message;
    return r;
  }

  Value Eval(const std::string& source) {
    compiled_ = CompileOk(source);
    if (compiled_.program == nullptr) return Value::Error("did not compile");
    return compiled_.program->Evaluate(activation_, scratch_);
  }

  bool EvalBool(const std::string& source) {
    Value v = Eval(source);
    EXPECT_EQ(v.kind(), VK::kBool) << source << " -> " << v.string_value();
    return v.kind() == VK::kBool && v.bool_value();
  }

  int64_t EvalInt(const std::string& source) {
    Value v = Eval(source);
    EXPECT_EQ(v.kind(), VK::kInt) << source << " -> " << v.string_value();
    return v.int_value();
  }

  std::string EvalString(const std::string& source) {
    Value v = Eval(source);
    EXPECT_EQ(v.kind(), VK::kString) << source << " -> " << v.string_value();
    return std::string(v.string_value());
  }

  std::string EvalError(const std::string& source) {
    Value v = Eval(source);
    EXPECT_TRUE(v.is_error()) << source << " should be an error, kind "
                              << static_cast<int>(v.kind());
    return std::string(v.is_error() ? v.string_value() : "");
  }

  CompileError CompileFail(const std::string& source) {
    CompileResult r = Compile(source, env_);
    EXPECT_EQ(r.program, nullptr) << source;
    EXPECT_FALSE(r.errors.empty()) << source;
    return r.errors.empty() ? CompileError{} : r.errors.front();
  }

  Environment env_;
  common::Json params_, request_, identity_;
  Value tag_values_[2] = {Value::String("pci"), Value::String("prod")};
  Activation activation_;
  EvalScratch scratch_;
  CompileResult compiled_;
};

TEST_F(ExprTest, TheDesignExample) {
  EXPECT_TRUE(EvalBool("params.amount > 5000"));
  EXPECT_FALSE(EvalBool("params.amount > 7000"));
  EXPECT_EQ(compiled_.program->ResultType(), "bool");
}

TEST_F(ExprTest, Literals) {
  EXPECT_EQ(EvalInt("0x1F"), 31);
  EXPECT_EQ(EvalInt("-9223372036854775808"), INT64_MIN);
  EXPECT_EQ(Eval("18446744073709551615u").uint_value(), UINT64_MAX);
  EXPECT_EQ(Eval("1.5e3").double_value(), 1500.0);
  EXPECT_EQ(Eval(".5").double_value(), 0.5);
  EXPECT_EQ(EvalString(R"('a\tb\x41\u00e9\U0001F600\101')"), "a\tbAé\xF0\x9F\x98\x80" "A");
  EXPECT_EQ(EvalString(R"(r'\d+')"), "\\d+");
  EXPECT_EQ(EvalString("'''it's\nmultiline'''"), "it's\nmultiline");
  EXPECT_EQ(EvalString(R"("""say "hi" """)"), "say \"hi\" ");
  EXPECT_EQ(Eval(R"(b'\xff\x00')").kind(), VK::kBytes);
  EXPECT_EQ(Eval(R"(b'\xff\x00')").string_value(), std::string("\xff\x00", 2));
  EXPECT_EQ(Eval("null").kind(), VK::kNull);
  EXPECT_TRUE(EvalBool("true // a comment"));
  EXPECT_EQ(CompileFail("9223372036854775808").code, "expr-syntax");
  EXPECT_EQ(CompileFail("18446744073709551616u").code, "expr-syntax");
  EXPECT_EQ(CompileFail("'\\q'").code, "expr-syntax");
  EXPECT_EQ(CompileFail("'\\ud800'").code, "expr-syntax");
}

TEST_F(ExprTest, ListsAndMaps) {
  EXPECT_EQ(EvalInt("[1, 2, 3][1]"), 2);
  EXPECT_EQ(EvalInt("{'a': 1, 'b': 2}['b']"), 2);
  EXPECT_EQ(EvalInt("{'a': {'b': 5}}.a.b"), 5);
  EXPECT_EQ(EvalInt("{1: 10, 2u: 20, true: 30}[2]"), 20);  // numeric keys compare by value
  EXPECT_EQ(EvalInt("params.items[2]"), 3);
  EXPECT_EQ(EvalInt("params.items[2u]"), 3);
  EXPECT_THAT(EvalError("params.items[3]"), HasSubstr("index out of range"));
  EXPECT_THAT(EvalError("params.items[-1]"), HasSubstr("index out of range"));
  EXPECT_EQ(EvalError("params.missing"), "no such key: missing");
  EXPECT_EQ(EvalError("params['missing']"), "no such key: missing");
  EXPECT_EQ(EvalError("params.nested.a.c"), "no such key: c");
  EXPECT_EQ(EvalError("{'a': 1}[params.zero]"), "no such key: 0");
  EXPECT_EQ(EvalInt("size([params.amount, 1] + [2])"), 3);
}

TEST_F(ExprTest, DuplicateMapKeys) {
  EXPECT_EQ(CompileFail("{'a': 1, 'a': 2}").code, "expr-type");
  EXPECT_THAT(EvalError("{params.currency: 1, 'usd': 2}"), HasSubstr("repeated key"));
}

TEST_F(ExprTest, IntegerArithmetic) {
  EXPECT_EQ(EvalInt("7 / 2"), 3);
  EXPECT_EQ(EvalInt("-7 / 2"), -3);
  EXPECT_EQ(EvalInt("-7 % 3"), -1);
  EXPECT_EQ(EvalInt("2 + 3 * 4 - 1"), 13);
  EXPECT_EQ(EvalError("9223372036854775807 + 1"), "integer overflow");
  EXPECT_EQ(EvalError("params.big + 1"), "integer overflow");
  EXPECT_EQ(EvalError("-9223372036854775808 - 1"), "integer overflow");
  EXPECT_EQ(EvalError("params.big * 2"), "integer overflow");
  EXPECT_EQ(EvalError("-9223372036854775808 / -1"), "integer overflow");
  EXPECT_EQ(EvalError("-9223372036854775808 % -1"), "integer overflow");
  EXPECT_EQ(EvalError("-(-9223372036854775808)"), "integer overflow");
  EXPECT_EQ(EvalError("1 / 0"), "division by zero");
  EXPECT_EQ(EvalError("1 % params.zero"), "modulus by zero");
  EXPECT_EQ(EvalError("0u - 1u"), "integer overflow");
  EXPECT_EQ(EvalError("18446744073709551615u + 1u"), "integer overflow");
  EXPECT_EQ(Eval("7u / 2u").uint_value(), 3u);
  EXPECT_EQ(EvalError("1u / 0u"), "division by zero");
}

TEST_F(ExprTest, DoubleArithmetic) {
  EXPECT_EQ(Eval("0.1 + 0.2").double_value(), 0.1 + 0.2);
  EXPECT_EQ(Eval("1.0 / 0.0").double_value(), INFINITY);
  EXPECT_TRUE(std::isnan(Eval("0.0 / 0.0").double_value()));
  EXPECT_EQ(Eval("params.ratio * 4.0").double_value(), 1.0);
  // No implicit int/double mixing, as in CEL.
  EXPECT_EQ(CompileFail("1 + 1.0").code, "expr-type");
  EXPECT_EQ(EvalError("params.amount + 1.0"), "no matching overload");
}

TEST_F(ExprTest, StringAndListConcatenation) {
  EXPECT_EQ(EvalString("agent + '/' + tool"), "finance-agent/stripe");
  EXPECT_TRUE(EvalBool("[1] + [2, 3] == [1, 2, 3]"));
  EXPECT_TRUE(EvalBool("tags + ['x'] == ['pci', 'prod', 'x']"));
}

TEST_F(ExprTest, HeterogeneousComparisons) {
  EXPECT_TRUE(EvalBool("1 < 1.5"));
  EXPECT_TRUE(EvalBool("2u > 1"));
  EXPECT_TRUE(EvalBool("-1 < 0u"));
  EXPECT_TRUE(EvalBool("9223372036854775807 < 9223372036854775808.0"));
  EXPECT_TRUE(EvalBool("params.amount == 7000.0"));
  EXPECT_TRUE(EvalBool("params.amount == 7000u"));
  EXPECT_TRUE(EvalBool("params.ratio < 1"));
  EXPECT_TRUE(EvalBool("[1, 2] == [1.0, 2u]"));
  // Across non-numeric types, equality is false, not an error; ordering is an error.
  EXPECT_FALSE(EvalBool("params.amount == 'x'"));
  EXPECT_TRUE(EvalBool("params.currency != 1"));
  EXPECT_FALSE(EvalBool("params.nothing == 0"));
  EXPECT_TRUE(EvalBool("params.nothing == null"));
  EXPECT_EQ(EvalError("params.currency < 1"), "no matching overload");
  EXPECT_FALSE(EvalBool("0.0 / 0.0 == 0.0 / 0.0"));
  EXPECT_FALSE(EvalBool("0.0 / 0.0 < 1.0"));
  EXPECT_TRUE(EvalBool("'abc' < 'abd' && b'a' < b'b' && false < true"));
}

TEST_F(ExprTest, InOperator) {
  EXPECT_TRUE(EvalBool("params.currency in ['usd', 'eur', 'gbp', 'chf', 'jpy']"));
  EXPECT_FALSE(EvalBool("agent in ['a', 'b', 'c', 'd', 'e', 'f']"));
  EXPECT_TRUE(EvalBool("3 in params.items"));
  EXPECT_TRUE(EvalBool("3.0 in params.items"));
  EXPECT_TRUE(EvalBool("'currency' in params"));
  EXPECT_FALSE(EvalBool("'nope' in params"));
  EXPECT_TRUE(EvalBool("'finance' in identity.groups"));
  EXPECT_TRUE(EvalBool("params.amount in [1, 7000]"));
  EXPECT_TRUE(EvalBool("tool in [agent, 'stripe']"));
  EXPECT_EQ(EvalError("1 in params.currency"), "no matching overload");
}

TEST_F(ExprTest, LogicalErrorAbsorption) {
  EXPECT_FALSE(EvalBool("false && 1 / 0 == 1"));
  EXPECT_FALSE(EvalBool("1 / 0 == 1 && false"));
  EXPECT_TRUE(EvalBool("true || params.missing"));
  EXPECT_TRUE(EvalBool("params.missing || true"));
  EXPECT_EQ(EvalError("true && params.missing"), "no such key: missing");
  EXPECT_EQ(EvalError("params.missing && true"), "no such key: missing");
  EXPECT_EQ(EvalError("false || 1 / 0 == 1"), "division by zero");
  EXPECT_EQ(EvalError("1 / 0 == 1 || false"), "division by zero");
  // Both sides errors: the left one is reported.
  EXPECT_EQ(EvalError("params.a || params.b"), "no such key: a");
  // A non-bool operand is an error that the absorbing value still wins over.
  EXPECT_EQ(EvalError("params.amount && true"), "no matching overload");
  EXPECT_FALSE(EvalBool("params.amount && false"));
  EXPECT_TRUE(EvalBool("true || params.amount"));
  EXPECT_EQ(CompileFail("1 && true").code, "expr-type");
}

TEST_F(ExprTest, NotNegateTernary) {
  EXPECT_TRUE(EvalBool("!false"));
  EXPECT_TRUE(EvalBool("!!true"));
  EXPECT_EQ(EvalInt("-params.amount"), -7000);
  EXPECT_EQ(EvalInt("--5"), 5);
  EXPECT_EQ(EvalInt("params.amount > 5000 ? 1 : 2"), 1);
  EXPECT_EQ(EvalInt("false ? 1 / 0 : 2"), 2);  // only the taken branch is evaluated
  EXPECT_EQ(EvalError("params.missing ? 1 : 2"), "no such key: missing");
  EXPECT_EQ(EvalError("params.amount ? 1 : 2"), "no matching overload");
  EXPECT_EQ(EvalError("!params.amount"), "no matching overload");
  EXPECT_EQ(CompileFail("true ? 1 : 'a'").code, "expr-type");
}

TEST_F(ExprTest, SizeAndStringFunctions) {
  EXPECT_EQ(EvalInt("size('héllo')"), 5);  // code points, not bytes
  EXPECT_EQ(EvalInt("'héllo'.size()"), 5);
  EXPECT_EQ(EvalInt("size(b'h\\xc3\\xa9')"), 3);
  EXPECT_EQ(EvalInt("size(params)"), 10);
  EXPECT_EQ(EvalInt("params.items.size()"), 3);
  EXPECT_EQ(EvalInt("size(tags)"), 2);
  EXPECT_TRUE(EvalBool("request.host.endsWith('.stripe.com')"));
  EXPECT_TRUE(EvalBool("request.path.startsWith('/v1/')"));
  EXPECT_TRUE(EvalBool("agent.contains('-')"));
  EXPECT_FALSE(EvalBool("agent.contains('x')"));
  EXPECT_TRUE(EvalBool("''.startsWith('')"));
  EXPECT_EQ(EvalError("params.amount.startsWith('7')"), "no matching overload");
}

TEST_F(ExprTest, Matches) {
  EXPECT_TRUE(EvalBool("request.path.matches('^/v1/payment')"));
  EXPECT_TRUE(EvalBool("request.path.matches('intent')"));  // unanchored, like CEL
  EXPECT_TRUE(EvalBool("matches(agent, '^finance-[a-z]+$')"));
  EXPECT_FALSE(EvalBool("agent.matches('^ops')"));
  // A pattern from the input is compiled per call.
  EXPECT_TRUE(EvalBool("'abc'.matches(params.currency.size() == 3 ? 'b' : 'z')"));
  EXPECT_THAT(EvalError("'abc'.matches(params.currency + '(')"),
              HasSubstr("invalid regular expression"));
  CompileError e = CompileFail("agent.matches('(unclosed')");
  EXPECT_EQ(e.code, "expr-regex");
  EXPECT_EQ(e.offset, 14u);
  // Patterns that backtrack exponentially elsewhere are linear in RE2.
  std::string hostile = "'" + std::string(5000, 'a') + "!'.matches('(a+)+$')";
  EXPECT_FALSE(EvalBool(hostile));
  CompileOptions small;
  small.max_regex_program_size = 50;
  CompileResult r = Compile("agent.matches('[a-z]{1,100}')", env_, small);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].code, "expr-regex");
}

TEST_F(ExprTest, Has) {
  EXPECT_TRUE(EvalBool("has(params.amount)"));
  EXPECT_FALSE(EvalBool("has(params.missing)"));
  EXPECT_TRUE(EvalBool("has(params.nested.a.b)"));
  EXPECT_TRUE(EvalBool("has(params.nothing)"));  // present with a null value
  EXPECT_EQ(EvalError("has(params.missing.x)"), "no such key: missing");
  EXPECT_THAT(EvalError("has(params.currency.x)"), HasSubstr("not a map"));
  EXPECT_EQ(CompileFail("has(params)").code, "expr-syntax");
  EXPECT_EQ(CompileFail("has(agent.x)").code, "expr-type");
}

TEST_F(ExprTest, Comprehensions) {
  EXPECT_TRUE(EvalBool("params.items.exists(x, x > 2)"));
  EXPECT_FALSE(EvalBool("params.items.exists(x, x > 3)"));
  EXPECT_TRUE(EvalBool("params.items.all(x, x > 0)"));
  EXPECT_TRUE(EvalBool("params.empty.all(x, x > 100)"));
  EXPECT_FALSE(EvalBool("params.empty.exists(x, true)"));
  EXPECT_TRUE(EvalBool("params.items.exists_one(x, x == 2)"));
  EXPECT_FALSE(EvalBool("params.items.exists_one(x, x > 1)"));
  EXPECT_TRUE(EvalBool("params.exists(k, k == 'currency')"));  // maps iterate keys
  EXPECT_TRUE(EvalBool("tags.all(t, t.size() > 2)"));
  EXPECT_TRUE(EvalBool("[[1, 2], [3]].exists(l, l.exists(x, x == 3))"));
  EXPECT_TRUE(EvalBool("params.items.map(x, x * 2) == [2, 4, 6]"));
  EXPECT_TRUE(EvalBool("params.items.filter(x, x % 2 == 1) == [1, 3]"));
  // Errors are absorbed when another element decides the result, in either order.
  EXPECT_TRUE(EvalBool("[0, 1].exists(x, 1 / x == 1)"));
  EXPECT_TRUE(EvalBool("[1, 0].exists(x, 1 / x == 1)"));
  EXPECT_FALSE(EvalBool("[0, 2].all(x, 1 / x == 1)"));
  EXPECT_FALSE(EvalBool("[2, 0].all(x, 1 / x == 1)"));
  EXPECT_EQ(EvalError("[0, 2].exists(x, 1 / x == 1)"), "division by zero");
  EXPECT_EQ(EvalError("[1, 0].all(x, 1 / x == 1)"), "division by zero");
  EXPECT_EQ(EvalError("[0, 1].exists_one(x, 1 / x == 1)"), "division by zero");
  EXPECT_EQ(CompileFail("agent.exists(x, true)").code, "expr-type");
  EXPECT_EQ(CompileFail("[1].exists(1, true)").code, "expr-syntax");
  EXPECT_EQ(CompileFail("[1].all(x, x)").code, "expr-type");
}

TEST_F(ExprTest, Conversions) {
  EXPECT_EQ(EvalInt("int(2.9)"), 2);
  EXPECT_EQ(EvalInt("int(-2.9)"), -2);
  EXPECT_EQ(EvalInt("int('-42')"), -42);
  EXPECT_EQ(EvalInt("int(42u)"), 42);
  EXPECT_EQ(EvalError("int(1e20)"), "value out of range");
  EXPECT_EQ(EvalError("int(0.0 / 0.0)"), "value out of range");
  EXPECT_EQ(EvalError("int(18446744073709551615u)"), "value out of range");
  EXPECT_THAT(EvalError("int('12x')"), HasSubstr("cannot convert"));
  EXPECT_EQ(Eval("uint(42)").uint_value(), 42u);
  EXPECT_EQ(EvalError("uint(-1)"), "value out of range");
  EXPECT_EQ(Eval("double(7)").double_value(), 7.0);
  EXPECT_EQ(Eval("double('2.5')").double_value(), 2.5);
  EXPECT_EQ(EvalString("string(42)"), "42");
  EXPECT_EQ(EvalString("string(1.5)"), "1.5");
  EXPECT_EQ(EvalString("string(true)"), "true");
  EXPECT_EQ(EvalString("string(b'abc')"), "abc");
  EXPECT_EQ(EvalString("string(params.amount) + 'x'"), "7000x");
  EXPECT_TRUE(EvalBool("bool('true') && !bool('false')"));
  EXPECT_THAT(EvalError("bool('yes')"), HasSubstr("cannot convert"));
  EXPECT_TRUE(EvalBool("type(1) == int && type('a') == string && type(params) == map"));
  EXPECT_TRUE(EvalBool("type(params.amount) != type(params.ratio)"));
  EXPECT_EQ(CompileFail("int(true)").code, "expr-type");
}

TEST_F(ExprTest, TimestampsAndDurations) {
  EXPECT_TRUE(EvalBool("now == timestamp('2024-05-01T12:00:00Z')"));
  EXPECT_TRUE(EvalBool("now == timestamp('2024-05-01T14:00:00+02:00')"));
  EXPECT_TRUE(EvalBool("now < timestamp('2024-05-01T12:00:00.000000001Z')"));
  EXPECT_TRUE(EvalBool("now + duration('1h30m') == timestamp('2024-05-01T13:30:00Z')"));
  EXPECT_TRUE(EvalBool("now - timestamp('2024-05-01T00:00:00Z') == duration('12h')"));
  EXPECT_TRUE(EvalBool("duration('1.5s') == duration('1500ms')"));
  EXPECT_TRUE(EvalBool("duration('-2m') < duration('0')"));
  EXPECT_EQ(EvalInt("now.getFullYear()"), 2024);
  EXPECT_EQ(EvalInt("now.getMonth()"), 4);  // 0-based, as in CEL
  EXPECT_EQ(EvalInt("now.getDate()"), 1);
  EXPECT_EQ(EvalInt("now.getDayOfMonth()"), 0);
  EXPECT_EQ(EvalInt("now.getDayOfWeek()"), 3);  // Wednesday
  EXPECT_EQ(EvalInt("now.getDayOfYear()"), 121);
  EXPECT_EQ(EvalInt("now.getHours()"), 12);
  EXPECT_EQ(EvalInt("now.getHours('+05:30')"), 17);
  EXPECT_EQ(EvalInt("now.getMinutes('-00:30')"), 30);
  EXPECT_EQ(EvalInt("duration('90m').getHours()"), 1);
  EXPECT_EQ(EvalInt("duration('90m').getMinutes()"), 90);
  EXPECT_EQ(EvalInt("int(now)"), 1714564800);
  EXPECT_EQ(EvalString("string(now + duration('0.25s'))"), "2024-05-01T12:00:00.25Z");
  EXPECT_EQ(EvalString("string(duration('1h1.5s'))"), "3601.5s");
  EXPECT_THAT(EvalError("timestamp('2024-02-30T00:00:00Z')"), HasSubstr("invalid timestamp"));
  EXPECT_THAT(EvalError("duration('1x')"), HasSubstr("invalid duration"));
  EXPECT_THAT(EvalError("now.getHours('Europe/Paris')"), HasSubstr("time zone"));
  EXPECT_EQ(EvalError("timestamp('2262-04-11T23:47:15Z') + duration('5s')"), "integer overflow");
  EXPECT_EQ(CompileFail("now + 1").code, "expr-type");
  EXPECT_EQ(CompileFail("now > 5").code, "expr-type");
}

TEST_F(ExprTest, CheckerErrorsWithOffsets) {
  CompileError e = CompileFail("agent > 5");
  EXPECT_EQ(e.code, "expr-type");
  EXPECT_EQ(e.offset, 6u);
  e = CompileFail("size(1)");
  EXPECT_EQ(e.code, "expr-type");
  EXPECT_EQ(e.offset, 0u);
  e = CompileFail("params.amount > 1 && frobnicate(agent)");
  EXPECT_EQ(e.code, "expr-function");
  EXPECT_EQ(e.offset, 21u);
  e = CompileFail("agent.startsWith()");
  EXPECT_EQ(e.code, "expr-function");
  e = CompileFail("startsWith(agent, 'a')");
  EXPECT_EQ(e.code, "expr-function");
  e = CompileFail("1 + 'a'");
  EXPECT_EQ(e.code, "expr-type");
  EXPECT_EQ(e.offset, 2u);
  e = CompileFail("agnet == 'x'");
  EXPECT_EQ(e.code, "expr-undeclared");
  EXPECT_EQ(e.offset, 0u);
  e = CompileFail("agent.name");
  EXPECT_EQ(e.code, "expr-type");
  EXPECT_EQ(e.offset, 5u);
  e = CompileFail("cost_usd == 1");  // double vs int: CEL's checker wants the same type
  EXPECT_EQ(e.code, "expr-type");
  e = CompileFail("tags[0] == 1");
  EXPECT_EQ(e.code, "expr-type");
}

TEST_F(ExprTest, ReportsEveryCheckerError) {
  CompileResult r = Compile("foo == 1 && agent > 5 && bar(1)", env_);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].code, "expr-undeclared");
  EXPECT_EQ(r.errors[0].offset, 0u);
  EXPECT_EQ(r.errors[1].code, "expr-type");
  EXPECT_EQ(r.errors[1].offset, 18u);
  EXPECT_EQ(r.errors[2].code, "expr-function");
  EXPECT_EQ(r.errors[2].offset, 25u);
}

TEST_F(ExprTest, SyntaxErrors) {
  CompileError e = CompileFail("params.amount >");
  EXPECT_EQ(e.code, "expr-syntax");
  EXPECT_EQ(e.offset, 15u);
  e = CompileFail("agent = 'x'");
  EXPECT_EQ(e.code, "expr-syntax");
  EXPECT_EQ(e.offset, 6u);
  e = CompileFail("'unterminated");
  EXPECT_EQ(e.code, "expr-syntax");
  e = CompileFail("(1 + 2");
  EXPECT_EQ(e.code, "expr-syntax");
  e = CompileFail("1 2");
  EXPECT_EQ(e.offset, 2u);
  e = CompileFail("if == 1");
  EXPECT_THAT(e.message, HasSubstr("reserved"));
  e = CompileFail("a.");
  EXPECT_EQ(e.code, "expr-syntax");
  e = CompileFail("");
  EXPECT_EQ(e.code, "expr-syntax");
  e = CompileFail("\xff");
  EXPECT_EQ(e.code, "expr-syntax");
}

TEST_F(ExprTest, Limits) {
  CompileError e = CompileFail(std::string(10000, '(') + "1" + std::string(10000, ')'));
  EXPECT_EQ(e.code, "expr-limit");
  e = CompileFail(std::string(100000, '!') + "true");
  EXPECT_EQ(e.code, "expr-limit");
  e = CompileFail(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_EQ(e.code, "expr-limit");
  // Long left-associative chains do not recurse in the parser but are still bounded.
  CompileOptions big;
  big.max_source_bytes = 1 << 20;
  std::string chain = "1";
  for (int i = 0; i < 20000; ++i) chain += " + 1";
  CompileResult r = Compile(chain, env_, big);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].code, "expr-limit");
  std::string select = "params";
  for (int i = 0; i < 20000; ++i) select += ".a";
  r = Compile(select, env_, big);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].code, "expr-limit");
  // Source size.
  e = CompileFail("'" + std::string(20000, 'x') + "' == agent");
  EXPECT_EQ(e.code, "expr-limit");
  // Within limits: nesting up to max_nesting works.
  EXPECT_EQ(EvalInt(std::string(60, '(') + "1" + std::string(60, ')')), 1);
  // Huge literals are fine when they fit.
  EXPECT_EQ(EvalInt("size('" + std::string(15000, 'y') + "')"), 15000);
}

TEST_F(ExprTest, ResultTypes) {
  EXPECT_EQ(CompileOk("params.amount").program->ResultType(), "dyn");
  EXPECT_EQ(CompileOk("agent").program->ResultType(), "string");
  EXPECT_EQ(CompileOk("[1, 2]").program->ResultType(), "list(int)");
  EXPECT_EQ(CompileOk("{'a': 1.5}").program->ResultType(), "map(string, double)");
  EXPECT_EQ(CompileOk("[1, 'a']").program->ResultType(), "list(dyn)");
  EXPECT_EQ(CompileOk("params.amount + 1").program->ResultType(), "int");
  EXPECT_EQ(CompileOk("now - now").program->ResultType(), "duration");
}

TEST_F(ExprTest, WorkBudgetStopsQuadraticEvaluation) {
  // 3,000 elements: one pass is fine, a nested pass (9M steps) is refused quickly.
  std::string big = "{\"xs\": [";
  for (int i = 0; i < 3000; ++i) big += (i ? "," : "") + std::to_string(i);
  big += "]}";
  params_ = *common::ParseJson(big);
  activation_.slots[4] = Value::FromJson(params_);
  EXPECT_TRUE(EvalBool("params.xs.all(x, x >= 0)"));
  EXPECT_THAT(EvalError("params.xs.all(x, params.xs.all(y, x + y >= 0))"),
              ::testing::HasSubstr("work budget"));
  EXPECT_THAT(EvalError("params.xs.map(x, string(x) + string(x)).exists(s, "
                        "params.xs.exists(y, s == \"x\" + string(y)))"),
              ::testing::HasSubstr("work budget"));
  // The budget is per evaluation: the next one starts afresh.
  EXPECT_TRUE(EvalBool("params.xs.exists(x, x == 2999)"));
}

TEST(FastPathTest, AgreesWithTheGeneralEvaluator) {
  Environment env;
  int slot = env.Declare("params", "map(string, dyn)");
  const char* exprs[] = {
      "params.amount > 5000",
      "params.amount == 7000.0",
      "params.ratio <= 0.5",
      "params.currency == 'USD'",
      "params.currency != 'USD'",
      "params.currency < 'M'",
      "params.flag == true",
      "params.currency in ['USD', 'EUR', 'GBP', 'CHF']",
      "params.currency in ['USD', 'EUR']",
      "params.currency in ['USD', 5, 'EUR']",
      "params.currency in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', "
      "'o', 'p', 'q', 'r', 'USD']",
      "params.note.startsWith('wire')",
      "params.note.endsWith('corp')",
      "params.note.contains('acme')",
      "params.note.matches('ac+me')",
      "params.a.b.c > 1",
      "!(params.amount > 5000)",
      "params.amount > 5000 && params.currency == 'USD'",
      "params.missing > 1 && params.amount > 1",
      "params.amount < 1 && params.missing > 1",
      "params.missing > 1 || params.amount > 1",
      "params.amount > 1 || params.missing > 1",
      "!(params.missing == 'x') || params.currency == 'USD'",
  };
  const char* inputs[] = {
      R"({"amount": 7000, "ratio": 0.25, "currency": "USD", "flag": true,
          "note": "wire to acme corp", "a": {"b": {"c": 2}}})",
      R"({"amount": 7000.0, "ratio": 1, "currency": "EUR", "flag": false, "note": "x",
          "a": {"b": {"c": 1.5}}})",
      R"({"amount": "7000", "ratio": "low", "currency": 5, "flag": "true", "note": 1,
          "a": {"b": []}})",
      R"({"amount": 5000, "ratio": 0.5, "currency": "M", "flag": true, "note": "acme",
          "a": {"b": {"c": 1}}})",
      R"({"amount": null, "currency": null, "a": 1})",
      R"({})",
  };
  EvalScratch scratch;
  for (const char* source : exprs) {
    CompileOptions general;
    general.fast_path = false;
    CompileResult fast = Compile(source, env);
    CompileResult slow = Compile(source, env, general);
    ASSERT_TRUE(fast.program && slow.program) << source;
    for (const char* input : inputs) {
      common::Json params = *common::ParseJson(input);
      Activation act;
      act.slots.resize(env.size());
      act.slots[slot] = Value::FromJson(params);
      Value a = fast.program->Evaluate(act, scratch);
      bool a_bool = a.kind() == VK::kBool && a.bool_value();
      VK a_kind = a.kind();
      std::string a_error(a.is_error() ? a.string_value() : "");
      Value b = slow.program->Evaluate(act, scratch);
      EXPECT_EQ(a_kind, b.kind()) << source << " on " << input;
      if (b.kind() == VK::kBool) {
        EXPECT_EQ(a_bool, b.bool_value()) << source << " on " << input;
      }
      if (b.is_error()) {
        EXPECT_EQ(a_error, b.string_value()) << source << " on " << input;
      }
    }
  }
}

TEST_F(ExprTest, ScratchIsReusedAcrossEvaluations) {
  CompileResult r = CompileOk("agent + '-' + string(params.amount)");
  EvalScratch scratch;
  for (int i = 0; i < 3; ++i) {
    Value v = r.program->Evaluate(activation_, scratch);
    EXPECT_EQ(v.string_value(), "finance-agent-7000");
  }
}

TEST_F(ExprTest, UnboundSlotIsAnErrorNotACrash) {
  CompileResult r = CompileOk("cost_usd > 1.0");
  Activation empty;
  EvalScratch scratch;
  EXPECT_TRUE(r.program->Evaluate(empty, scratch).is_error());
}

TEST(EnvironmentTest, SlotsAndTypes) {
  Environment env;
  EXPECT_EQ(env.Declare("a", "int"), 0);
  EXPECT_EQ(env.Declare("b", "map(string, list(dyn))"), 1);
  EXPECT_EQ(env.SlotOf("b"), 1);
  EXPECT_EQ(env.SlotOf("c"), -1);
  EXPECT_EQ(env.size(), 2);
  CompileResult r = Compile("b.x[0]", env);
  ASSERT_TRUE(r.errors.empty());
  EXPECT_EQ(r.program->ResultType(), "dyn");
  r = Compile("a.size()", env);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].code, "expr-type");
}

}  // namespace
}  // namespace aegis::expr
