#include "cli/redact.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "common/json.h"
#include "redact/redact.h"

namespace aegis::cli {

namespace {

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int Redact(const std::vector<std::string>& args) {
  static constexpr const char* kUsageText =
      "usage: aegis redact [--detectors all|ssn,dob,email,phone,card,iban,ip,secret,jwt]\n"
      "                    [--style mask|partial|hash] [--json [--fields params.a,params.b[*].c]]\n"
      "                    [FILE...]   (none or -: standard input; hash style: AEGIS_REDACTION_KEY)\n";
  std::vector<std::string> detectors = {"all"}, fields, files;
  std::string style_name = "mask";
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool has_value = i + 1 < args.size();
    if (a == "--detectors" && has_value) {
      detectors = SplitComma(args[++i]);
    } else if (a == "--style" && has_value) {
      style_name = args[++i];
    } else if (a == "--fields" && has_value) {
      fields = SplitComma(args[++i]);
    } else if (a == "--json") {
      json = true;
    } else if (a.rfind("--", 0) == 0) {
      std::cerr << "aegis: redact: unknown argument " << a << "\n" << kUsageText;
      return 2;
    } else {
      files.push_back(a);
    }
  }
  auto style = redact::ParseStyle(style_name);
  if (!style) {
    std::cerr << "aegis: redact: --style is mask, partial or hash\n";
    return 2;
  }
  if (!fields.empty() && !json) {
    std::cerr << "aegis: redact: --fields needs --json\n";
    return 2;
  }
  for (const auto& f : fields) {
    if (common::Status st = redact::ValidateFieldPath(f); !st.ok()) {
      std::cerr << "aegis: redact: field " << f << ": " << st.message() << "\n";
      return 2;
    }
  }
  const char* key = std::getenv("AEGIS_REDACTION_KEY");
  auto redactor = redact::Redactor::Create(detectors, *style, key ? key : "");
  if (!redactor.ok()) {
    std::cerr << "aegis: redact: " << redactor.status().message() << "\n";
    return 2;
  }
  if (files.empty()) files.push_back("-");
  int status = 0;
  size_t total = 0;
  for (const auto& file : files) {
    std::string text;
    if (file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        std::cerr << "aegis: redact: cannot read " << file << "\n";
        status = 1;
        continue;
      }
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (json) {
      auto value = common::ParseJson(text, {.max_bytes = 64 << 20, .max_depth = 128});
      if (!value.ok()) {
        std::cerr << "aegis: redact: " << file << ": " << value.status().message() << "\n";
        status = 1;
        continue;
      }
      total += redactor->RedactJson(*value, fields).replaced;
      std::cout << value->Canonical() << "\n";
    } else {
      total += redactor->RedactText(text);
      std::cout << text;
    }
  }
  std::cerr << "aegis: redact: " << total << " value" << (total == 1 ? "" : "s") << " redacted\n";
  return status;
}

}  // namespace aegis::cli
