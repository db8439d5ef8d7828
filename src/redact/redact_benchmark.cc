// Redaction throughput (DESIGN.md section 8: >= 200 MB/s per core on ordinary text, a 4 KB JSON
// payload in <= 20 us, and the rate on PII-dense text).
//
// Inputs are generated deterministically: English prose without PII, PII-dense records, a 4 KB
// EHR export as JSON, and inputs built to be as slow as possible. References measured in the
// same run: RE2 running the same combined pattern with no validation, and an RE2::Set pass
// (which patterns occur, no positions) over the same prose. Each benchmark runs 5 times by
// default; the table printed at the end holds medians (CPU time, one thread).
//
//   build/release/src/redact/redact_benchmark [--benchmark_repetitions=N] [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/json.h"
#include "redact/detectors.h"
#include "redact/redact.h"

namespace aegis::redact {
namespace {

// ---- Inputs ------------------------------------------------------------------------------------

constexpr const char* kWords[] = {
    "the",       "patient",     "was",       "seen",       "in",        "clinic",    "and",
    "reported",  "feeling",     "better",    "after",      "a",         "week",      "of",
    "treatment", "with",        "new",       "medication", "doctor",    "noted",     "that",
    "blood",     "pressure",    "remained",  "stable",     "during",    "visit",     "follow",
    "up",        "is",          "planned",   "for",        "next",      "month",     "family",
    "history",   "includes",    "diabetes",  "no",         "known",     "allergies", "were",
    "recorded",  "she",         "he",        "they",       "discussed", "diet",      "exercise",
    "sleep",     "mild",        "pain",      "left",       "knee",      "since",     "spring",
    "imaging",   "showed",      "changes",   "consistent", "early",     "arthritis", "plan",
    "continue",  "current",     "dose",      "review",     "results",   "by",        "phone",
    "team",      "agreed",      "to",        "refer",      "physio",    "therapy",   "twice",
    "weekly",    "appointment", "scheduled", "morning",    "report",    "sent",      "to",
    "primary",   "care",        "office",    "it",         "has",       "been",      "quiet",
    "ward",      "staff",       "shift",     "handover",   "notes",     "updated",   "on",
    "system",    "order",       "labs",      "repeat",     "panel",     "if",        "symptoms",
    "return",    "or",          "worsen",    "over",       "weekend",   "call",      "nurse",
};
constexpr const char* kNumbers[] = {"2019", "3", "12", "2.5", "10:30", "45%", "7", "1998", "250"};

// English prose, no PII: sentences of 8-20 words, some numbers, commas, paragraphs.
std::string OrdinaryText(size_t bytes) {
  std::mt19937 rng(42);
  std::string out;
  out.reserve(bytes + 256);
  while (out.size() < bytes) {
    int words = 8 + static_cast<int>(rng() % 13);
    for (int i = 0; i < words; ++i) {
      std::string w = (rng() % 25 == 0) ? kNumbers[rng() % std::size(kNumbers)]
                                        : kWords[rng() % std::size(kWords)];
      if (i == 0) w[0] = static_cast<char>(std::toupper(w[0]));
      out += w;
      if (i + 1 < words) out += (rng() % 9 == 0) ? ", " : " ";
    }
    out += (rng() % 6 == 0) ? ".\n\n" : ". ";
  }
  return out;
}

std::string Digits(std::mt19937& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('0' + rng() % 10);
  return s;
}

std::string LuhnComplete(std::string prefix) {
  for (char d = '0'; d <= '9'; ++d) {
    if (internal::LuhnValid(prefix + d)) return prefix + d;
  }
  return prefix;
}

std::string GermanIban(std::mt19937& rng) {
  std::string bban = Digits(rng, 18);
  for (int cd = 2; cd < 100; ++cd) {
    std::string iban = "DE";
    iban.push_back(static_cast<char>('0' + cd / 10));
    iban.push_back(static_cast<char>('0' + cd % 10));
    iban += bban;
    if (internal::IbanChecksumValid(iban)) return iban;
  }
  return "";
}

// Records dense with PII: about one finding per 14 bytes.
std::string PiiDenseText(size_t bytes) {
  std::mt19937 rng(7);
  std::string out;
  out.reserve(bytes + 512);
  auto num = [&](unsigned base, unsigned range) { return std::to_string(base + rng() % range); };
  for (int i = 0; out.size() < bytes; ++i) {
    std::string card = "4";
    card += Digits(rng, 14);
    card = LuhnComplete(card);
    out += "Record ";
    out += std::to_string(i);
    out += ": SSN ";
    out += num(100, 500);
    out += '-';
    out += num(10, 89);
    out += '-';
    out += num(1000, 8999);
    out += ", DOB: ";
    out += num(1, 12);
    out += '/';
    out += num(1, 28);
    out += "/19";
    out += num(40, 60);
    out += ", phone (415) 555-";
    out += num(1000, 8999);
    out += ", mail user";
    out += std::to_string(i);
    out += "@example.com, card ";
    for (int g = 0; g < 4; ++g) {
      out += card.substr(4 * g, 4);
      out += g < 3 ? " " : ", IBAN ";
    }
    out += GermanIban(rng);
    out += ", from 10.";
    out += num(0, 256);
    out += '.';
    out += num(0, 256);
    out += ".7\n";
  }
  return out;
}

// A 4 KB EHR export: demographics with PII, encounters with free-text notes, labs, medications.
std::string EhrJson() {
  std::string encounters;
  const char* notes[] = {
      "Patient reports improved glucose control. Follow up in 3 months.",
      "Contact daughter at 415-555-0199 if symptoms worsen; discussed diet and exercise.",
      "Mild knee pain since spring, imaging showed early arthritis. Continue current dose.",
      "Telehealth visit, patient email maria.gonzalez@example.com confirmed for results.",
  };
  for (int i = 0; i < 5; ++i) {
    encounters +=
        std::string(i ? "," : "") + R"({"id":"enc-100)" + std::to_string(i) +
        R"(","date":"2024-0)" + std::to_string(i + 1) +
        R"(-11T10:22:33Z","type":"outpatient","status":"finished",)" +
        R"("provider":{"npi":"1234567893","name":"Dr. Alan Smith","dept":"Internal Medicine"},)" +
        R"("diagnoses":[{"code":"E11.9","system":"ICD-10","text":"Type 2 diabetes mellitus without complications"},)" +
        R"({"code":"M17.12","system":"ICD-10","text":"Unilateral primary osteoarthritis, left knee"}],)" +
        R"("vitals":{"bp":"128/82","pulse":72,"temp_c":36.8,"weight_kg":71.5},)" + R"("notes":")" +
        notes[i % 4] + R"("})";
  }
  std::string labs;
  for (int i = 0; i < 7; ++i) {
    labs += std::string(i ? "," : "") + R"({"code":"4548-4","name":"Hemoglobin A1c","value":6.)" +
            std::to_string(i) + R"(,"unit":"%","date":"2024-02-1)" + std::to_string(i) +
            R"(","status":"final","reference":"4.0-5.6"})";
  }
  return R"({"export_id":"exp-2024-03-01-0001","requested_by":"ehr-agent","format":"fhir-lite",)"
         R"("patient":{"id":"pt-000123","mrn":"MRN00482913","name":{"given":"Maria","family":"Gonzalez"},)"
         R"("ssn":"123-45-6789","dob":"1980-01-02","gender":"female","phone":"+1 415 555 2671",)"
         R"("email":"maria.gonzalez@example.com","address":{"line":"1200 Market Street, Apt 4B",)"
         R"("city":"San Francisco","state":"CA","postal_code":"94102"},"insurance":{"payer":"Acme Health",)"
         R"("member_id":"AH-99812-01","group":"GRP-4471"}},"encounters":[)" +
         encounters + R"(],"labs":[)" + labs +
         R"(],"medications":[{"name":"metformin","dose":"500 mg","frequency":"twice daily"},)"
         R"({"name":"ibuprofen","dose":"200 mg","frequency":"as needed"}]})";
}

// Inputs that make the scan refuse a candidate every few bytes.
std::string Repeat(const std::string& unit, size_t bytes) {
  std::string out;
  while (out.size() < bytes) out += unit;
  return out;
}

const Redactor& AllMask() {
  static const Redactor* r = new Redactor(*Redactor::Create({"all"}, Style::kMask, ""));
  return *r;
}

// ---- Benchmarks ---------------------------------------------------------------------------------

void BM_OrdinaryText_Scan(benchmark::State& state) {
  static const std::string text = OrdinaryText(4 << 20);
  size_t findings = 0;
  for (auto _ : state) {
    auto f = AllMask().Scan(text);
    findings = f.size();
    benchmark::DoNotOptimize(f);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["findings"] = static_cast<double>(findings);
}
BENCHMARK(BM_OrdinaryText_Scan)->Unit(benchmark::kMillisecond);

// Reference: the same combined pattern in RE2, every match accepted, nothing validated.
void BM_OrdinaryText_Re2CombinedOnly(benchmark::State& state) {
  static const std::string text = OrdinaryText(4 << 20);
  std::string combined;
  for (const auto& alt : internal::Alternatives()) {
    combined += (combined.empty() ? "(?:" : "|(?:") + std::string(alt.pattern) + ")";
  }
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_never_capture(true);
  o.set_max_mem(64 << 20);
  RE2 re(combined, o);
  for (auto _ : state) {
    re2::StringPiece in(text);
    size_t n = 0;
    while (RE2::FindAndConsume(&in, re)) ++n;
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_OrdinaryText_Re2CombinedOnly)->Unit(benchmark::kMillisecond);

// Reference: RE2::Set over the text, which says which patterns occur but not where.
void BM_OrdinaryText_Re2SetOnly(benchmark::State& state) {
  static const std::string text = OrdinaryText(4 << 20);
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_never_capture(true);
  o.set_max_mem(64 << 20);
  RE2::Set set(o, RE2::UNANCHORED);
  for (const auto& alt : internal::Alternatives()) set.Add(alt.pattern, nullptr);
  set.Compile();
  std::vector<int> ids;
  for (auto _ : state) {
    benchmark::DoNotOptimize(set.Match(text, &ids));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_OrdinaryText_Re2SetOnly)->Unit(benchmark::kMillisecond);

void BM_PiiDenseText_Redact(benchmark::State& state) {
  static const std::string text = PiiDenseText(1 << 20);
  size_t findings = 0;
  for (auto _ : state) {
    std::string copy = text;
    findings = AllMask().RedactText(copy);
    benchmark::DoNotOptimize(copy);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["findings"] = static_cast<double>(findings);
  state.counters["findings/s"] = benchmark::Counter(
      static_cast<double>(findings * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PiiDenseText_Redact)->Unit(benchmark::kMillisecond);

void BM_PiiDenseText_RedactHash(benchmark::State& state) {
  static const std::string text = PiiDenseText(1 << 20);
  static const Redactor r = *Redactor::Create({"all"}, Style::kHash, std::string(32, 'k'));
  for (auto _ : state) {
    std::string copy = text;
    r.RedactText(copy);
    benchmark::DoNotOptimize(copy);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_PiiDenseText_RedactHash)->Unit(benchmark::kMillisecond);

// The 4 KB EHR export, parsed once; each iteration redacts a fresh copy. The copy alone is
// measured below so it can be subtracted.
const common::Json& EhrValue() {
  static const common::Json* v = [] {
    auto parsed = common::ParseJson(EhrJson());
    if (!parsed.ok()) std::abort();
    return new common::Json(*parsed);
  }();
  return *v;
}

const std::vector<std::string> kEhrFields = {"params.patient.ssn", "params.patient.dob",
                                             "params.patient.address",
                                             "params.encounters[*].provider.npi"};

void BM_Json4K_CopyOnly(benchmark::State& state) {
  for (auto _ : state) {
    common::Json copy = EhrValue();
    benchmark::DoNotOptimize(copy);
  }
  state.counters["bytes"] = static_cast<double>(EhrJson().size());
}
BENCHMARK(BM_Json4K_CopyOnly)->Unit(benchmark::kMicrosecond);

void BM_Json4K_AllDetectorsAndFields(benchmark::State& state) {
  size_t replaced = 0;
  for (auto _ : state) {
    common::Json copy = EhrValue();
    replaced = AllMask().RedactJson(copy, kEhrFields).replaced;
    benchmark::DoNotOptimize(copy);
  }
  state.counters["bytes"] = static_cast<double>(EhrJson().size());
  state.counters["replaced"] = static_cast<double>(replaced);
}
BENCHMARK(BM_Json4K_AllDetectorsAndFields)->Unit(benchmark::kMicrosecond);

void BM_Json4K_SsnDobDetectors(benchmark::State& state) {
  static const Redactor r = *Redactor::Create({"ssn", "dob"}, Style::kMask, "");
  size_t replaced = 0;
  for (auto _ : state) {
    common::Json copy = EhrValue();
    replaced = r.RedactJson(copy, {}).replaced;
    benchmark::DoNotOptimize(copy);
  }
  state.counters["replaced"] = static_cast<double>(replaced);
}
BENCHMARK(BM_Json4K_SsnDobDetectors)->Unit(benchmark::kMicrosecond);

// Parse and redact from bytes, as a front door would.
void BM_Json4K_ParseAndRedact(benchmark::State& state) {
  static const std::string text = EhrJson();
  for (auto _ : state) {
    auto v = common::ParseJson(text);
    AllMask().RedactJson(*v, kEhrFields);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_Json4K_ParseAndRedact)->Unit(benchmark::kMicrosecond);

void BM_Worst(benchmark::State& state, std::string unit) {
  const std::string text = Repeat(unit, 1 << 20);
  for (auto _ : state) {
    benchmark::DoNotOptimize(AllMask().Scan(text));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK_CAPTURE(BM_Worst, card_groups, std::string("4111 "))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Worst, dotted_numbers, std::string("1."))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Worst, colons, std::string("a:"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Worst, emails, std::string("a@b.cc "))->Unit(benchmark::kMillisecond);

// ---- Summary ------------------------------------------------------------------------------------

// Prints what the console reporter prints, and keeps each benchmark's medians for the table.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  struct Median {
    double time = 0;  // CPU time per iteration, in the benchmark's unit
    double bytes_per_second = 0;
    double findings_per_second = 0;
    double bytes = 0;  // the "bytes" counter: input size
  };
  std::map<std::string, Median> medians;

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (!median && !single) continue;
      std::string name = run.run_name.function_name;
      if (!run.run_name.args.empty()) name += "/" + run.run_name.args;
      Median& m = medians[name];
      m.time = run.GetAdjustedCPUTime();
      auto get = [&](const char* key) {
        auto it = run.counters.find(key);
        return it == run.counters.end() ? 0.0 : it->second.value;
      };
      m.bytes_per_second = get("bytes_per_second");
      m.findings_per_second = get("findings/s");
      m.bytes = get("bytes");
    }
  }
};

void PrintSummary(const SummaryReporter& r) {
  auto mbps = [&](const std::string& name) {
    auto it = r.medians.find(name);
    return it == r.medians.end() ? 0.0 : it->second.bytes_per_second / 1e6;
  };
  auto time = [&](const std::string& name) {
    auto it = r.medians.find(name);
    return it == r.medians.end() ? 0.0 : it->second.time;
  };
  std::printf("\nRedaction, medians (CPU time, one thread)\n");
  std::printf("%-66s %12s   %s\n", "what", "median", "target / reference");
  double scan = mbps("BM_OrdinaryText_Scan");
  double re2 = mbps("BM_OrdinaryText_Re2CombinedOnly");
  double set = mbps("BM_OrdinaryText_Re2SetOnly");
  std::printf("%-66s %8.0f MB/s   >= 200 MB/s\n", "ordinary text (4 MB prose), Scan", scan);
  if (re2 > 0) {
    std::printf("%-66s %8.0f MB/s   Scan = %.2fx this\n",
                "  reference: RE2 combined pattern, no validation", re2, scan / re2);
  }
  if (set > 0) {
    std::printf("%-66s %8.0f MB/s   Scan = %.2fx this\n", "  reference: RE2::Set, presence only",
                set, scan / set);
  }
  auto dense = r.medians.find("BM_PiiDenseText_Redact");
  if (dense != r.medians.end()) {
    std::printf("%-66s %8.0f MB/s   %.2fM findings/s\n",
                "PII-dense text (1 MB records), RedactText", dense->second.bytes_per_second / 1e6,
                dense->second.findings_per_second / 1e6);
  }
  std::printf("%-66s %8.0f MB/s\n", "PII-dense text, hash style",
              mbps("BM_PiiDenseText_RedactHash"));
  double copy = time("BM_Json4K_CopyOnly");
  double all = time("BM_Json4K_AllDetectorsAndFields");
  auto copy_run = r.medians.find("BM_Json4K_CopyOnly");
  std::string json_what = "4 KB EHR JSON";
  if (copy_run != r.medians.end() && copy_run->second.bytes > 0) {
    json_what += " (" + std::to_string(static_cast<int>(copy_run->second.bytes)) + " bytes)";
  }
  std::printf("%-66s %8.2f us    <= 20 us\n",
              (json_what + ", all detectors + 4 fields (minus copy)").c_str(), all - copy);
  std::printf("%-66s %8.2f us\n", "  the copy of the value alone", copy);
  std::printf("%-66s %8.2f us\n", "4 KB EHR JSON, ssn+dob detectors (minus copy)",
              time("BM_Json4K_SsnDobDetectors") - copy);
  std::printf("%-66s %8.2f us\n", "4 KB EHR JSON, parse + redact (all + fields)",
              time("BM_Json4K_ParseAndRedact"));
  for (const char* w : {"card_groups", "dotted_numbers", "colons", "emails"}) {
    std::printf("%-66s %8.1f MB/s\n", (std::string("worst case: ") + w).c_str(),
                mbps(std::string("BM_Worst/") + w));
  }
}

}  // namespace
}  // namespace aegis::redact

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  bool has_reps = false;
  for (int i = 1; i < argc; ++i) {
    has_reps |= std::string(argv[i]).rfind("--benchmark_repetitions", 0) == 0;
  }
  std::string reps = "--benchmark_repetitions=5";
  std::string agg = "--benchmark_report_aggregates_only=true";
  if (!has_reps) {
    args.push_back(reps.data());
    args.push_back(agg.data());
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  aegis::redact::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  aegis::redact::PrintSummary(reporter);
  benchmark::Shutdown();
  return 0;
}
