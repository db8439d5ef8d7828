#include "expr/parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/json.h"
#include "expr/value_ops.h"

namespace aegis::expr::internal {

namespace {

enum class Tok : uint8_t {
  kEof,
  kIdent,
  kInt,
  kUint,
  kDouble,
  kString,
  kBytes,
  kTrue,
  kFalse,
  kNull,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kDot,
  kComma,
  kColon,
  kQuestion,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kNot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
};

struct Token {
  Tok kind = Tok::kEof;
  uint32_t offset = 0;
  std::string_view text;
  std::string str;       // decoded string or bytes literal
  uint64_t magnitude = 0;  // integer literal without sign
  double dbl = 0;
};

constexpr std::string_view kReserved[] = {
    "as",  "break",   "const",  "continue", "else",      "for",    "function", "if",
    "import", "let", "loop",   "package",  "namespace", "return", "var",      "void",
    "while"};

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  // Tokenizes everything; returns false with `error` set on a lexical error.
  bool Run(std::vector<Token>& out, CompileError& error) {
    while (true) {
      SkipSpaceAndComments();
      Token t;
      t.offset = static_cast<uint32_t>(pos_);
      if (pos_ >= src_.size()) {
        out.push_back(std::move(t));
        return true;
      }
      if (!Next(t)) {
        error = {err_offset_, "expr-syntax", err_};
        return false;
      }
      t.text = src_.substr(t.offset, pos_ - t.offset);
      out.push_back(std::move(t));
    }
  }

 private:
  bool Fail(size_t offset, std::string message) {
    err_offset_ = offset;
    err_ = std::move(message);
    return false;
  }

  void SkipSpaceAndComments() {
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        ++pos_;
      } else if (c == '/' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '/') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  bool Next(Token& t) {
    char c = src_[pos_];
    auto two = [&](char second) { return pos_ + 1 < src_.size() && src_[pos_ + 1] == second; };
    auto single = [&](Tok k, size_t len) {
      t.kind = k;
      pos_ += len;
      return true;
    };
    switch (c) {
      case '(':
        return single(Tok::kLParen, 1);
      case ')':
        return single(Tok::kRParen, 1);
      case '[':
        return single(Tok::kLBracket, 1);
      case ']':
        return single(Tok::kRBracket, 1);
      case '{':
        return single(Tok::kLBrace, 1);
      case '}':
        return single(Tok::kRBrace, 1);
      case ',':
        return single(Tok::kComma, 1);
      case ':':
        return single(Tok::kColon, 1);
      case '?':
        return single(Tok::kQuestion, 1);
      case '+':
        return single(Tok::kPlus, 1);
      case '-':
        return single(Tok::kMinus, 1);
      case '*':
        return single(Tok::kStar, 1);
      case '/':
        return single(Tok::kSlash, 1);
      case '%':
        return single(Tok::kPercent, 1);
      case '!':
        return two('=') ? single(Tok::kNe, 2) : single(Tok::kNot, 1);
      case '=':
        if (two('=')) return single(Tok::kEq, 2);
        return Fail(pos_, "unexpected '='; use '==' to compare");
      case '<':
        return two('=') ? single(Tok::kLe, 2) : single(Tok::kLt, 1);
      case '>':
        return two('=') ? single(Tok::kGe, 2) : single(Tok::kGt, 1);
      case '&':
        if (two('&')) return single(Tok::kAnd, 2);
        return Fail(pos_, "unexpected '&'; use '&&'");
      case '|':
        if (two('|')) return single(Tok::kOr, 2);
        return Fail(pos_, "unexpected '|'; use '||'");
      case '.':
        if (pos_ + 1 < src_.size() && IsDigit(src_[pos_ + 1])) return Number(t);
        return single(Tok::kDot, 1);
      case '"':
      case '\'':
        return String(t, false, false);
      default:
        break;
    }
    if (IsDigit(c)) return Number(t);
    if (IsIdentStart(c)) {
      // String prefixes: r, b, rb, br (any case) directly followed by a quote.
      size_t p = pos_;
      bool raw = false, bytes = false;
      for (int i = 0; i < 2 && p < src_.size(); ++i, ++p) {
        char l = static_cast<char>(src_[p] | 0x20);
        if (l == 'r' && !raw) {
          raw = true;
        } else if (l == 'b' && !bytes) {
          bytes = true;
        } else {
          break;
        }
      }
      if ((raw || bytes) && p < src_.size() && (src_[p] == '"' || src_[p] == '\'')) {
        pos_ = p;
        return String(t, raw, bytes);
      }
      size_t start = pos_;
      while (pos_ < src_.size() && (IsIdentStart(src_[pos_]) || IsDigit(src_[pos_]))) ++pos_;
      std::string_view word = src_.substr(start, pos_ - start);
      if (word == "true") {
        t.kind = Tok::kTrue;
      } else if (word == "false") {
        t.kind = Tok::kFalse;
      } else if (word == "null") {
        t.kind = Tok::kNull;
      } else if (word == "in") {
        t.kind = Tok::kIn;
      } else {
        if (std::find(std::begin(kReserved), std::end(kReserved), word) != std::end(kReserved)) {
          return Fail(start, "'" + std::string(word) + "' is a reserved word");
        }
        t.kind = Tok::kIdent;
      }
      return true;
    }
    return Fail(pos_, "unexpected character");
  }

  bool Number(Token& t) {
    size_t start = pos_;
    if (src_[pos_] == '0' && pos_ + 1 < src_.size() && (src_[pos_ + 1] | 0x20) == 'x') {
      pos_ += 2;
      uint64_t v = 0;
      size_t digits_start = pos_;
      while (pos_ < src_.size() && HexValue(src_[pos_]) >= 0) {
        if (v > (UINT64_MAX >> 4)) return Fail(start, "integer literal out of range");
        v = (v << 4) | static_cast<uint64_t>(HexValue(src_[pos_]));
        ++pos_;
      }
      if (pos_ == digits_start) return Fail(start, "malformed hexadecimal literal");
      t.magnitude = v;
      t.kind = Tok::kInt;
      if (pos_ < src_.size() && (src_[pos_] | 0x20) == 'u') {
        ++pos_;
        t.kind = Tok::kUint;
      }
      return CheckNumberEnd(start);
    }
    bool is_double = false;
    while (pos_ < src_.size() && IsDigit(src_[pos_])) ++pos_;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && IsDigit(src_[pos_ + 1])) {
      is_double = true;
      ++pos_;
      while (pos_ < src_.size() && IsDigit(src_[pos_])) ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] | 0x20) == 'e') {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && IsDigit(src_[p])) {
        is_double = true;
        pos_ = p;
        while (pos_ < src_.size() && IsDigit(src_[pos_])) ++pos_;
      } else {
        return Fail(start, "malformed exponent in number");
      }
    }
    std::string_view text = src_.substr(start, pos_ - start);
    if (is_double) {
      t.kind = Tok::kDouble;
      std::string copy(text);
      t.dbl = std::strtod(copy.c_str(), nullptr);
      return CheckNumberEnd(start);
    }
    auto res = std::from_chars(text.data(), text.data() + text.size(), t.magnitude);
    if (res.ec != std::errc()) return Fail(start, "integer literal out of range");
    t.kind = Tok::kInt;
    if (pos_ < src_.size() && (src_[pos_] | 0x20) == 'u') {
      ++pos_;
      t.kind = Tok::kUint;
    }
    return CheckNumberEnd(start);
  }

  bool CheckNumberEnd(size_t start) {
    if (pos_ < src_.size() && (IsIdentStart(src_[pos_]) || IsDigit(src_[pos_]))) {
      return Fail(start, "malformed number");
    }
    return true;
  }

  bool String(Token& t, bool raw, bool bytes) {
    size_t start = t.offset;
    char q = src_[pos_];
    bool triple = pos_ + 2 < src_.size() && src_[pos_ + 1] == q && src_[pos_ + 2] == q;
    pos_ += triple ? 3 : 1;
    t.kind = bytes ? Tok::kBytes : Tok::kString;
    std::string& out = t.str;
    while (true) {
      if (pos_ >= src_.size()) return Fail(start, "unterminated string literal");
      char c = src_[pos_];
      if (c == q) {
        if (!triple) {
          ++pos_;
          return true;
        }
        if (pos_ + 2 < src_.size() && src_[pos_ + 1] == q && src_[pos_ + 2] == q) {
          pos_ += 3;
          return true;
        }
        out += c;
        ++pos_;
        continue;
      }
      if ((c == '\n' || c == '\r') && !triple) {
        return Fail(start, "newline in string literal; use a triple-quoted string");
      }
      if (c != '\\' || raw) {
        out += c;
        ++pos_;
        continue;
      }
      if (!Escape(out, bytes)) return false;
    }
  }

  bool Escape(std::string& out, bool bytes) {
    size_t start = pos_;
    if (pos_ + 1 >= src_.size()) return Fail(start, "unterminated escape sequence");
    char e = src_[pos_ + 1];
    pos_ += 2;
    switch (e) {
      case 'a':
        out += '\a';
        return true;
      case 'b':
        out += '\b';
        return true;
      case 'f':
        out += '\f';
        return true;
      case 'n':
        out += '\n';
        return true;
      case 'r':
        out += '\r';
        return true;
      case 't':
        out += '\t';
        return true;
      case 'v':
        out += '\v';
        return true;
      case '\\':
      case '\'':
      case '"':
      case '`':
      case '?':
        out += e;
        return true;
      default:
        break;
    }
    uint32_t cp = 0;
    bool raw_byte = false;
    if (e == 'x' || e == 'X' || e == 'u' || e == 'U') {
      int n = (e == 'x' || e == 'X') ? 2 : (e == 'u' ? 4 : 8);
      for (int i = 0; i < n; ++i) {
        if (pos_ >= src_.size() || HexValue(src_[pos_]) < 0) {
          return Fail(start, "malformed escape sequence");
        }
        cp = (cp << 4) | static_cast<uint32_t>(HexValue(src_[pos_]));
        ++pos_;
      }
      raw_byte = n == 2;
      if (bytes && !raw_byte) {
        // \u in a bytes literal encodes the code point as UTF-8.
      }
    } else if (e >= '0' && e <= '3') {
      cp = static_cast<uint32_t>(e - '0');
      for (int i = 0; i < 2; ++i) {
        if (pos_ >= src_.size() || src_[pos_] < '0' || src_[pos_] > '7') {
          return Fail(start, "malformed octal escape sequence");
        }
        cp = cp * 8 + static_cast<uint32_t>(src_[pos_] - '0');
        ++pos_;
      }
      raw_byte = true;
    } else {
      return Fail(start, "unknown escape sequence");
    }
    if (bytes && raw_byte) {
      out += static_cast<char>(cp);
      return true;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Fail(start, "escape sequence is not a valid code point");
    }
    AppendUtf8(out, cp);
    return true;
  }

  std::string_view src_;
  size_t pos_ = 0;
  size_t err_offset_ = 0;
  std::string err_;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const CompileOptions& options, Ast& ast)
      : tokens_(std::move(tokens)), options_(options), ast_(ast) {
    max_height_ = std::max(256, options.max_nesting * 4);
  }

  bool Run(CompileError& error) {
    int32_t root = ParseExpr();
    if (!failed_ && Peek().kind != Tok::kEof) {
      Fail(Peek().offset, "expr-syntax", "unexpected '" + std::string(Peek().text) + "'");
    }
    if (failed_) {
      error = error_;
      return false;
    }
    ast_.root = root;
    return true;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& Advance() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool Accept(Tok k) {
    if (Peek().kind != k) return false;
    Advance();
    return true;
  }
  int32_t Fail(uint32_t offset, const char* code, std::string message) {
    if (!failed_) {
      failed_ = true;
      error_ = {offset, code, std::move(message)};
    }
    return -1;
  }
  int32_t Expect(Tok k, const char* what) {
    if (Accept(k)) return 0;
    const Token& t = Peek();
    std::string found = t.kind == Tok::kEof ? "end of input" : "'" + std::string(t.text) + "'";
    return Fail(t.offset, "expr-syntax", std::string("expected ") + what + ", found " + found);
  }

  int32_t Add(Node n) {
    uint16_t h = 0;
    auto child = [&](int32_t c) {
      if (c >= 0) h = std::max(h, ast_.nodes[c].height);
    };
    child(n.a);
    child(n.b);
    child(n.c);
    for (int32_t i = 0; i < n.args_count; ++i) child(ast_.args[n.args_begin + i]);
    n.height = static_cast<uint16_t>(h + 1);
    if (n.height > max_height_) {
      return Fail(n.offset, "expr-limit",
                  "expression is nested too deeply (limit " + std::to_string(max_height_) + ")");
    }
    ast_.nodes.push_back(n);
    return static_cast<int32_t>(ast_.nodes.size() - 1);
  }

  Node Make(NodeKind kind, uint32_t offset, int32_t a = -1, int32_t b = -1, int32_t c = -1) {
    Node n;
    n.kind = kind;
    n.offset = offset;
    n.a = a;
    n.b = b;
    n.c = c;
    return n;
  }

  void SetArgs(Node& n, const std::vector<int32_t>& args) {
    n.args_begin = static_cast<int32_t>(ast_.args.size());
    n.args_count = static_cast<int32_t>(args.size());
    ast_.args.insert(ast_.args.end(), args.begin(), args.end());
  }

  // Guards recursion: every recursive descent passes through here or ParseUnary.
  bool Enter(uint32_t offset) {
    if (++depth_ > options_.max_nesting) {
      Fail(offset, "expr-limit",
           "expression is nested too deeply (limit " + std::to_string(options_.max_nesting) + ")");
      return false;
    }
    return true;
  }

  int32_t ParseExpr() {
    if (!Enter(Peek().offset)) return -1;
    int32_t r = ParseConditional();
    --depth_;
    return r;
  }

  int32_t ParseConditional() {
    int32_t cond = ParseOr();
    if (failed_ || Peek().kind != Tok::kQuestion) return cond;
    uint32_t offset = Advance().offset;
    int32_t t = ParseOr();
    if (failed_ || Expect(Tok::kColon, "':'") < 0) return -1;
    int32_t f = ParseExpr();
    if (failed_) return -1;
    return Add(Make(NodeKind::kTernary, offset, cond, t, f));
  }

  int32_t ParseOr() {
    int32_t l = ParseAnd();
    while (!failed_ && Peek().kind == Tok::kOr) {
      uint32_t offset = Advance().offset;
      int32_t r = ParseAnd();
      if (failed_) return -1;
      l = Add(Make(NodeKind::kOr, offset, l, r));
    }
    return failed_ ? -1 : l;
  }

  int32_t ParseAnd() {
    int32_t l = ParseRelation();
    while (!failed_ && Peek().kind == Tok::kAnd) {
      uint32_t offset = Advance().offset;
      int32_t r = ParseRelation();
      if (failed_) return -1;
      l = Add(Make(NodeKind::kAnd, offset, l, r));
    }
    return failed_ ? -1 : l;
  }

  static bool RelOp(Tok k, BinOp* op) {
    switch (k) {
      case Tok::kEq:
        *op = BinOp::kEq;
        return true;
      case Tok::kNe:
        *op = BinOp::kNe;
        return true;
      case Tok::kLt:
        *op = BinOp::kLt;
        return true;
      case Tok::kLe:
        *op = BinOp::kLe;
        return true;
      case Tok::kGt:
        *op = BinOp::kGt;
        return true;
      case Tok::kGe:
        *op = BinOp::kGe;
        return true;
      case Tok::kIn:
        *op = BinOp::kIn;
        return true;
      default:
        return false;
    }
  }

  int32_t Binary(BinOp op, uint32_t offset, int32_t l, int32_t r) {
    Node n = Make(NodeKind::kBinary, offset, l, r);
    n.op = op;
    return Add(n);
  }

  int32_t ParseRelation() {
    int32_t l = ParseAddition();
    BinOp op;
    while (!failed_ && RelOp(Peek().kind, &op)) {
      uint32_t offset = Advance().offset;
      int32_t r = ParseAddition();
      if (failed_) return -1;
      l = Binary(op, offset, l, r);
    }
    return failed_ ? -1 : l;
  }

  int32_t ParseAddition() {
    int32_t l = ParseMultiplication();
    while (!failed_ && (Peek().kind == Tok::kPlus || Peek().kind == Tok::kMinus)) {
      BinOp op = Peek().kind == Tok::kPlus ? BinOp::kAdd : BinOp::kSub;
      uint32_t offset = Advance().offset;
      int32_t r = ParseMultiplication();
      if (failed_) return -1;
      l = Binary(op, offset, l, r);
    }
    return failed_ ? -1 : l;
  }

  int32_t ParseMultiplication() {
    int32_t l = ParseUnary();
    while (!failed_ && (Peek().kind == Tok::kStar || Peek().kind == Tok::kSlash ||
                        Peek().kind == Tok::kPercent)) {
      Tok k = Peek().kind;
      BinOp op = k == Tok::kStar ? BinOp::kMul : (k == Tok::kSlash ? BinOp::kDiv : BinOp::kMod);
      uint32_t offset = Advance().offset;
      int32_t r = ParseUnary();
      if (failed_) return -1;
      l = Binary(op, offset, l, r);
    }
    return failed_ ? -1 : l;
  }

  int32_t ParseUnary() {
    const Token& t = Peek();
    if (t.kind == Tok::kNot || (t.kind == Tok::kMinus && !IsNumberToken(Peek(1).kind))) {
      uint32_t offset = Advance().offset;
      if (!Enter(offset)) return -1;
      int32_t operand = ParseUnary();
      --depth_;
      if (failed_) return -1;
      return Add(Make(t.kind == Tok::kNot ? NodeKind::kNot : NodeKind::kNeg, offset, operand));
    }
    return ParseMember();
  }

  static bool IsNumberToken(Tok k) {
    return k == Tok::kInt || k == Tok::kUint || k == Tok::kDouble;
  }

  int32_t ParseMember() {
    int32_t operand = ParsePrimary();
    while (!failed_) {
      if (Peek().kind == Tok::kDot) {
        uint32_t dot = Advance().offset;
        const Token& id = Peek();
        if (id.kind != Tok::kIdent) {
          return Expect(Tok::kIdent, "a field or method name after '.'");
        }
        Advance();
        if (Peek().kind == Tok::kLParen) {
          operand = ParseCall(id, operand);
        } else {
          Node n = Make(NodeKind::kSelect, dot, operand);
          n.name = id.text;
          operand = Add(n);
        }
      } else if (Peek().kind == Tok::kLBracket) {
        uint32_t offset = Advance().offset;
        int32_t index = ParseExpr();
        if (failed_ || Expect(Tok::kRBracket, "']'") < 0) return -1;
        operand = Add(Make(NodeKind::kIndex, offset, operand, index));
      } else {
        break;
      }
    }
    return failed_ ? -1 : operand;
  }

  // Parses "(args)" after a function or method name; `target` is -1 for a global call.
  int32_t ParseCall(const Token& name, int32_t target) {
    uint32_t open = Peek().offset;
    Advance();  // '('
    std::vector<int32_t> args;
    if (target >= 0) args.push_back(target);
    if (Peek().kind != Tok::kRParen) {
      while (true) {
        int32_t arg = ParseExpr();
        if (failed_) return -1;
        args.push_back(arg);
        if (!Accept(Tok::kComma)) break;
      }
    }
    if (Expect(Tok::kRParen, "')' or ','") < 0) return -1;
    std::string_view fn = name.text;
    // Macros.
    if (target < 0 && fn == "has" && args.size() == 1) {
      if (ast_.nodes[args[0]].kind != NodeKind::kSelect) {
        return Fail(ast_.nodes[args[0]].offset, "expr-syntax",
                    "has() needs a field selection such as has(params.amount)");
      }
      return Add(Make(NodeKind::kHas, name.offset, args[0]));
    }
    Macro macro = Macro::kNone;
    if (target >= 0 && args.size() == 3) {
      if (fn == "exists") macro = Macro::kExists;
      if (fn == "all") macro = Macro::kAll;
      if (fn == "exists_one") macro = Macro::kExistsOne;
      if (fn == "map") macro = Macro::kMap;
      if (fn == "filter") macro = Macro::kFilter;
    }
    if (macro != Macro::kNone) {
      const Node& var = ast_.nodes[args[1]];
      if (var.kind != NodeKind::kIdent) {
        return Fail(var.offset, "expr-syntax",
                    std::string(fn) + "() needs a variable name as its first argument");
      }
      Node n = Make(NodeKind::kComprehension, name.offset, args[0], args[2]);
      n.macro = macro;
      n.name = var.name;
      return Add(n);
    }
    Node n = Make(NodeKind::kCall, name.offset);
    n.name = fn;
    n.member_call = target >= 0;
    (void)open;
    SetArgs(n, args);
    return Add(n);
  }

  int32_t Literal(uint32_t offset, Value v) {
    Node n = Make(NodeKind::kLiteral, offset);
    n.value = v;
    return Add(n);
  }

  int32_t ParsePrimary() {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kIdent: {
        Advance();
        if (Peek().kind == Tok::kLParen) return ParseCall(t, -1);
        Node n = Make(NodeKind::kIdent, t.offset);
        n.name = t.text;
        return Add(n);
      }
      case Tok::kLParen: {
        Advance();
        int32_t e = ParseExpr();
        if (failed_ || Expect(Tok::kRParen, "')'") < 0) return -1;
        return e;
      }
      case Tok::kLBracket: {
        Advance();
        if (!Enter(t.offset)) return -1;
        std::vector<int32_t> elems;
        while (Peek().kind != Tok::kRBracket) {
          int32_t e = ParseExpr();
          if (failed_) return -1;
          elems.push_back(e);
          if (!Accept(Tok::kComma)) break;
        }
        --depth_;
        if (Expect(Tok::kRBracket, "']' or ','") < 0) return -1;
        Node n = Make(NodeKind::kList, t.offset);
        SetArgs(n, elems);
        return Add(n);
      }
      case Tok::kLBrace: {
        Advance();
        if (!Enter(t.offset)) return -1;
        std::vector<int32_t> kv;
        while (Peek().kind != Tok::kRBrace) {
          int32_t k = ParseExpr();
          if (failed_ || Expect(Tok::kColon, "':'") < 0) return -1;
          int32_t v = ParseExpr();
          if (failed_) return -1;
          kv.push_back(k);
          kv.push_back(v);
          if (!Accept(Tok::kComma)) break;
        }
        --depth_;
        if (Expect(Tok::kRBrace, "'}' or ','") < 0) return -1;
        Node n = Make(NodeKind::kMap, t.offset);
        SetArgs(n, kv);
        return Add(n);
      }
      case Tok::kMinus: {
        // A signed numeric literal, so -9223372036854775808 is representable.
        Advance();
        const Token& num = Advance();
        if (num.kind == Tok::kDouble) return Literal(t.offset, Value::Double(-num.dbl));
        if (num.kind == Tok::kUint) {
          return Fail(t.offset, "expr-syntax", "a uint literal cannot be negative");
        }
        if (num.magnitude > 9223372036854775808ULL) {
          return Fail(t.offset, "expr-syntax", "integer literal out of range");
        }
        return Literal(t.offset, Value::Int(static_cast<int64_t>(0 - num.magnitude)));
      }
      case Tok::kInt:
        Advance();
        if (t.magnitude > 9223372036854775807ULL) {
          return Fail(t.offset, "expr-syntax", "integer literal out of range");
        }
        return Literal(t.offset, Value::Int(static_cast<int64_t>(t.magnitude)));
      case Tok::kUint:
        Advance();
        return Literal(t.offset, Value::Uint(t.magnitude));
      case Tok::kDouble:
        Advance();
        return Literal(t.offset, Value::Double(t.dbl));
      case Tok::kString: {
        Advance();
        if (!common::IsValidUtf8(t.str)) {
          return Fail(t.offset, "expr-syntax", "string literal is not valid UTF-8");
        }
        return Literal(t.offset, Value::String(ast_.Intern(t.str)));
      }
      case Tok::kBytes:
        Advance();
        return Literal(t.offset, MakeBytes(ast_.Intern(t.str)));
      case Tok::kTrue:
      case Tok::kFalse:
        Advance();
        return Literal(t.offset, Value::Bool(t.kind == Tok::kTrue));
      case Tok::kNull:
        Advance();
        return Literal(t.offset, Value::Null());
      case Tok::kEof:
        return Fail(t.offset, "expr-syntax", "unexpected end of input");
      default:
        return Fail(t.offset, "expr-syntax", "unexpected '" + std::string(t.text) + "'");
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const CompileOptions& options_;
  Ast& ast_;
  int depth_ = 0;
  int max_height_;
  bool failed_ = false;
  CompileError error_;
};

}  // namespace

bool Parse(std::string_view source, const CompileOptions& options, Ast& ast,
           CompileError& error) {
  if (source.size() > options.max_source_bytes) {
    error = {0, "expr-limit",
             "condition is " + std::to_string(source.size()) + " bytes; the limit is " +
                 std::to_string(options.max_source_bytes)};
    return false;
  }
  if (!common::IsValidUtf8(source)) {
    error = {0, "expr-syntax", "condition is not valid UTF-8"};
    return false;
  }
  std::vector<Token> tokens;
  Lexer lexer(source);
  if (!lexer.Run(tokens, error)) return false;
  // Identifier and field names borrow from the source; keep a copy the AST owns.
  std::string_view owned = ast.Intern(std::string(source));
  for (Token& t : tokens) {
    t.text = owned.substr(t.offset, t.text.size());
  }
  Parser parser(std::move(tokens), options, ast);
  return parser.Run(error);
}

}  // namespace aegis::expr::internal
