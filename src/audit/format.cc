#include "audit/format.h"

#include <array>
#include <charconv>
#include <cstdio>

#include "common/digest.h"
#include "common/strings.h"

namespace aegis::audit {
namespace {

using common::Json;
using common::StrCat;

constexpr std::string_view kHashSuffixStart = ",\"hash\":\"";
constexpr size_t kHashHexLen = 64;
constexpr size_t kSigHexLen = 128;
constexpr std::string_view kTruncatedMark = "[truncated]";

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// Length of the UTF-8 sequence a lead byte announces (1 for anything that cannot lead one).
size_t LeadLength(unsigned char c) {
  if (c < 0xC0) return 1;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}

// `s` as valid UTF-8 of at most kMaxFieldBytes: invalid bytes become U+FFFD, and a longer text is
// cut at a character boundary and marked. The common case (short and valid) is one check.
std::string_view SafeText(std::string_view s, std::string& scratch) {
  if (s.size() <= kMaxFieldBytes && common::IsValidUtf8(s)) return s;
  scratch.clear();
  size_t limit = kMaxFieldBytes - kTruncatedMark.size();
  for (size_t i = 0; i < s.size();) {
    size_t n = LeadLength(static_cast<unsigned char>(s[i]));
    std::string_view piece;
    if (i + n <= s.size() && common::IsValidUtf8(s.substr(i, n))) {
      piece = s.substr(i, n);
      i += n;
    } else {
      piece = "\xEF\xBF\xBD";  // U+FFFD
      i += 1;
    }
    if (scratch.size() + piece.size() > limit) {
      scratch.append(kTruncatedMark);
      break;
    }
    scratch.append(piece);
  }
  return scratch;
}

void AppendField(std::string& out, std::string_view key, std::string_view value,
                 std::string& scratch) {
  out.push_back(',');
  out.push_back('"');
  out.append(key);
  out.append("\":");
  common::AppendJsonString(out, SafeText(value, scratch));
}

// Finishes a record line whose body starts at out[start]: appends the hash member and '\n'.
std::string FinishRecordLine(std::string& out, size_t start) {
  std::string hash;
  hash.reserve(kHashHexLen);
  common::AppendSha256Hex(std::string_view(out).substr(start), hash);
  out.append(kHashSuffixStart);
  out.append(hash);
  out.append("\"}\n");
  return hash;
}

void AppendRecordStart(std::string& out, uint64_t seq, std::string_view prev, int64_t time) {
  out.append("{\"seq\":");
  AppendUint(out, seq);
  out.append(",\"prev\":\"");
  out.append(prev);
  out.append("\",\"time\":");
  AppendInt(out, time);
}

common::Status Bad(std::string_view what) {
  return common::InvalidArgumentError(std::string(what));
}

// Checks that `obj` has exactly the members in `names` (any order).
template <size_t N>
common::Status ExactMembers(const Json& obj, const std::array<std::string_view, N>& names,
                            std::string_view what) {
  for (std::string_view n : names) {
    if (obj.Find(n) == nullptr) return Bad(StrCat(what, " has no \"", n, "\""));
  }
  if (obj.as_object().size() != N) {
    for (const Json::Member& m : obj.as_object()) {
      bool known = false;
      for (std::string_view n : names) known = known || m.key == n;
      if (!known) {
        std::string key;
        common::AppendJsonString(key, m.key.size() > 64 ? m.key.substr(0, 64) : m.key);
        return Bad(StrCat(what, " has an unknown member ", key));
      }
    }
  }
  return common::OkStatus();
}

common::StatusOr<std::string> HexMember(const Json& obj, std::string_view name, size_t len) {
  const Json* v = obj.Find(name);
  if (!v->is_string() || !IsLowerHex(v->as_string(), len)) {
    return Bad(StrCat("\"", name, "\" must be ", len, " lowercase hex digits"));
  }
  return v->as_string();
}

common::StatusOr<uint64_t> UintMember(const Json& obj, std::string_view name, uint64_t min) {
  const Json* v = obj.Find(name);
  if (!v->is_int() || v->as_int() < static_cast<int64_t>(min)) {
    return Bad(StrCat("\"", name, "\" must be an integer >= ", min));
  }
  return static_cast<uint64_t>(v->as_int());
}

common::StatusOr<int64_t> IntMember(const Json& obj, std::string_view name) {
  const Json* v = obj.Find(name);
  if (!v->is_int()) return Bad(StrCat("\"", name, "\" must be an integer"));
  return v->as_int();
}

common::StatusOr<Entry> ParseHeader(const Json& h) {
  if (!h.is_object()) return Bad("\"segment\" must be an object");
  constexpr std::array<std::string_view, 5> kNames = {"chain", "first_seq", "index", "prev",
                                                      "version"};
  if (auto s = ExactMembers(h, kNames, "segment header"); !s.ok()) return s;
  const Json* version = h.Find("version");
  if (!version->is_int() || version->as_int() != kFormatVersion) {
    return Bad(
        StrCat("segment header: unsupported version (this reader knows ", kFormatVersion, ")"));
  }
  Entry e;
  e.kind = Entry::Kind::kSegmentHeader;
  auto chain = HexMember(h, "chain", kHashHexLen);
  if (!chain.ok()) return chain.status();
  auto prev = HexMember(h, "prev", kHashHexLen);
  if (!prev.ok()) return prev.status();
  auto index = UintMember(h, "index", 1);
  if (!index.ok()) return index.status();
  auto first = UintMember(h, "first_seq", 1);
  if (!first.ok()) return first.status();
  e.header = SegmentHeader{*chain, *index, *first, *prev};
  return e;
}

common::StatusOr<Entry> ParseCheckpointObject(const Json& c) {
  if (!c.is_object()) return Bad("\"checkpoint\" must be an object");
  constexpr std::array<std::string_view, 7> kNames = {"chain", "hash", "key_id", "reason",
                                                      "seq",   "sig",  "time"};
  if (auto s = ExactMembers(c, kNames, "checkpoint"); !s.ok()) return s;
  Entry e;
  e.kind = Entry::Kind::kCheckpoint;
  Checkpoint& cp = e.checkpoint;
  auto chain = HexMember(c, "chain", kHashHexLen);
  if (!chain.ok()) return chain.status();
  cp.chain_id = *chain;
  auto hash = HexMember(c, "hash", kHashHexLen);
  if (!hash.ok()) return hash.status();
  cp.hash = *hash;
  auto key_id = HexMember(c, "key_id", 16);
  if (!key_id.ok()) return key_id.status();
  cp.key_id = *key_id;
  auto sig = HexMember(c, "sig", kSigHexLen);
  if (!sig.ok()) return sig.status();
  cp.sig_hex = *sig;
  auto seq = UintMember(c, "seq", 0);
  if (!seq.ok()) return seq.status();
  cp.seq = *seq;
  auto time = IntMember(c, "time");
  if (!time.ok()) return time.status();
  cp.time_unix_nanos = *time;
  const Json* reason = c.Find("reason");
  if (!reason->is_string()) return Bad("\"reason\" must be a string");
  const std::string& r = reason->as_string();
  if (r == "open") {
    cp.reason = CheckpointReason::kOpen;
  } else if (r == "interval") {
    cp.reason = CheckpointReason::kInterval;
  } else if (r == "roll") {
    cp.reason = CheckpointReason::kRoll;
  } else if (r == "close") {
    cp.reason = CheckpointReason::kClose;
  } else {
    return Bad("\"reason\" must be open, interval, roll or close");
  }
  return e;
}

common::StatusOr<Entry> ParseRecord(std::string_view line, Json json) {
  static constexpr std::array<std::string_view, 20> kDecision = {
      "seq",         "prev",     "time",           "decision_id", "tenant",
      "agent",       "tool",     "action",         "decision",    "effective",
      "reasons",     "rule",     "policy_version", "front_door",  "cost_micros",
      "approval_id", "trace_id", "params_sha256",  "params",      "hash"};
  static constexpr std::array<std::string_view, 6> kEvent = {"seq",   "prev",  "time",
                                                             "event", "count", "hash"};
  Entry e;
  e.kind = Entry::Kind::kRecord;
  e.is_event = json.Find("event") != nullptr;
  if (e.is_event) {
    if (auto s = ExactMembers(json, kEvent, "event record"); !s.ok()) return s;
    if (!json.Find("event")->is_string()) return Bad("\"event\" must be a string");
    if (auto c = UintMember(json, "count", 0); !c.ok()) return c.status();
  } else {
    if (auto s = ExactMembers(json, kDecision, "record"); !s.ok()) return s;
    for (std::string_view name : kDecision) {
      if (name == "seq" || name == "time" || name == "cost_micros" || name == "reasons" ||
          name == "params") {
        continue;
      }
      if (!json.Find(name)->is_string()) return Bad(StrCat("\"", name, "\" must be a string"));
    }
    const Json* reasons = json.Find("reasons");
    if (!reasons->is_array()) return Bad("\"reasons\" must be an array of strings");
    for (const Json& r : reasons->as_array()) {
      if (!r.is_string()) return Bad("\"reasons\" must be an array of strings");
    }
    if (!json.Find("cost_micros")->is_int()) return Bad("\"cost_micros\" must be an integer");
    if (!json.Find("params")->is_object()) return Bad("\"params\" must be an object");
  }
  auto seq = UintMember(json, "seq", 1);
  if (!seq.ok()) return seq.status();
  e.seq = *seq;
  auto prev = HexMember(json, "prev", kHashHexLen);
  if (!prev.ok()) return prev.status();
  e.prev = *prev;
  auto hash = HexMember(json, "hash", kHashHexLen);
  if (!hash.ok()) return hash.status();
  e.hash = *hash;
  auto time = IntMember(json, "time");
  if (!time.ok()) return time.status();
  e.time_unix_nanos = *time;
  // The hash covers the bytes before `,"hash":"`, which must be the line's last member.
  constexpr size_t kSuffixLen = kHashSuffixStart.size() + kHashHexLen + 2;
  if (line.size() < kSuffixLen ||
      line.substr(line.size() - kSuffixLen, kHashSuffixStart.size()) != kHashSuffixStart ||
      line.substr(line.size() - 2 - kHashHexLen, kHashHexLen) != e.hash) {
    return Bad("\"hash\" must be the record's last member, written as ,\"hash\":\"<hex>\"}");
  }
  std::string computed;
  computed.reserve(kHashHexLen);
  common::AppendSha256Hex(line.substr(0, line.size() - kSuffixLen), computed);
  e.hash_matches = computed == e.hash;
  e.record = std::move(json);
  return e;
}

}  // namespace

std::string SegmentFileName(uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06llu.log", static_cast<unsigned long long>(index));
  return buf;
}

std::optional<uint64_t> ParseSegmentFileName(std::string_view name) {
  constexpr std::string_view kExt = ".log";
  if (name.size() < 6 + kExt.size() || name.substr(name.size() - kExt.size()) != kExt) {
    return std::nullopt;
  }
  std::string_view digits = name.substr(0, name.size() - kExt.size());
  if (digits.size() > 18) return std::nullopt;
  uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  // One spelling per index: "000001.log", never "0000001.log".
  if (v == 0 || SegmentFileName(v) != name) return std::nullopt;
  return v;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto b = static_cast<unsigned char>(ch);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

bool IsLowerHex(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string KeyIdOf(std::string_view public_key_hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string raw;
  for (size_t i = 0; i + 1 < public_key_hex.size(); i += 2) {
    raw.push_back(
        static_cast<char>(nibble(public_key_hex[i]) * 16 + nibble(public_key_hex[i + 1])));
  }
  return common::Sha256Hex(raw).substr(0, 16);
}

std::string EncodeChainInfo(const ChainInfo& chain) {
  std::string out = "{\"chain\":\"";
  out += chain.chain_id;
  out += "\",\"created\":";
  AppendInt(out, chain.created_unix_nanos);
  out += ",\"key_id\":\"";
  out += chain.key_id;
  out += "\",\"public_key\":\"";
  out += chain.public_key_hex;
  out += "\",\"version\":";
  AppendInt(out, kFormatVersion);
  out += "}\n";
  return out;
}

common::StatusOr<ChainInfo> ParseChainInfo(std::string_view text) {
  auto json = common::ParseJson(text, {.max_bytes = 4096, .max_depth = 4});
  if (!json.ok()) return json.status();
  if (!json->is_object()) return Bad("not a JSON object");
  constexpr std::array<std::string_view, 5> kNames = {"chain", "created", "key_id", "public_key",
                                                      "version"};
  if (auto s = ExactMembers(*json, kNames, "chain.json"); !s.ok()) return s;
  const Json* version = json->Find("version");
  if (!version->is_int() || version->as_int() != kFormatVersion) {
    return Bad(StrCat("unsupported version (this reader knows ", kFormatVersion, ")"));
  }
  ChainInfo c;
  auto chain = HexMember(*json, "chain", kHashHexLen);
  if (!chain.ok()) return chain.status();
  c.chain_id = *chain;
  auto pub = HexMember(*json, "public_key", 64);
  if (!pub.ok()) return pub.status();
  c.public_key_hex = *pub;
  auto key_id = HexMember(*json, "key_id", 16);
  if (!key_id.ok()) return key_id.status();
  c.key_id = *key_id;
  if (c.key_id != KeyIdOf(c.public_key_hex)) {
    return Bad("\"key_id\" is not the SHA-256 prefix of \"public_key\"");
  }
  auto created = IntMember(*json, "created");
  if (!created.ok()) return created.status();
  c.created_unix_nanos = *created;
  return c;
}

std::string EncodeSegmentHeader(const SegmentHeader& h) {
  std::string out = "{\"segment\":{\"chain\":\"";
  out += h.chain_id;
  out += "\",\"first_seq\":";
  AppendUint(out, h.first_seq);
  out += ",\"index\":";
  AppendUint(out, h.index);
  out += ",\"prev\":\"";
  out += h.prev;
  out += "\",\"version\":";
  AppendInt(out, kFormatVersion);
  out += "}}\n";
  return out;
}

std::string_view CheckpointReasonName(CheckpointReason reason) {
  switch (reason) {
    case CheckpointReason::kOpen:
      return "open";
    case CheckpointReason::kInterval:
      return "interval";
    case CheckpointReason::kRoll:
      return "roll";
    case CheckpointReason::kClose:
      return "close";
  }
  return "interval";
}

std::string CheckpointMessage(const Checkpoint& cp) {
  std::string out = "{\"chain\":\"";
  out += cp.chain_id;
  out += "\",\"hash\":\"";
  out += cp.hash;
  out += "\",\"key_id\":\"";
  out += cp.key_id;
  out += "\",\"reason\":\"";
  out += CheckpointReasonName(cp.reason);
  out += "\",\"seq\":";
  AppendUint(out, cp.seq);
  out += ",\"time\":";
  AppendInt(out, cp.time_unix_nanos);
  out += "}";
  return out;
}

std::string EncodeCheckpoint(const Checkpoint& cp) {
  std::string msg = CheckpointMessage(cp);
  msg.pop_back();  // the closing brace: the signature follows
  std::string out = "{\"checkpoint\":";
  out += msg;
  out += ",\"sig\":\"";
  out += cp.sig_hex;
  out += "\"}}\n";
  return out;
}

std::string NormalizeParams(std::string_view params) {
  auto marker = [](std::string_view why) {
    std::string out = "{\"_aegis_params_omitted\":";
    common::AppendJsonString(out, why);
    out += "}";
    return out;
  };
  if (params.empty()) return "{}";
  if (params.size() > kMaxParamsBytes) {
    return marker(StrCat("larger than ", kMaxParamsBytes, " bytes (", params.size(), ")"));
  }
  // The line adds one level of nesting; verifiers parse lines with a depth limit of 66.
  auto json = common::ParseJson(params, {.max_bytes = kMaxParamsBytes, .max_depth = 64});
  if (!json.ok()) return marker(StrCat("not valid JSON: ", json.status().message()));
  if (!json->is_object()) return marker("not a JSON object");
  return json->Canonical();
}

std::string AppendRecordLine(const Record& r, std::string_view params_json, uint64_t seq,
                             std::string_view prev, std::string& out) {
  size_t start = out.size();
  std::string scratch;
  AppendRecordStart(out, seq, prev, r.time_unix_nanos);
  AppendField(out, "decision_id", r.decision_id, scratch);
  AppendField(out, "tenant", r.tenant, scratch);
  AppendField(out, "agent", r.agent, scratch);
  AppendField(out, "tool", r.tool, scratch);
  AppendField(out, "action", r.action, scratch);
  AppendField(out, "decision", r.decision, scratch);
  AppendField(out, "effective", r.effective, scratch);
  out.append(",\"reasons\":[");
  for (size_t i = 0; i < r.reasons.size() && i < kMaxReasons; ++i) {
    if (i) out.push_back(',');
    common::AppendJsonString(out, SafeText(r.reasons[i], scratch));
  }
  out.push_back(']');
  AppendField(out, "rule", r.rule, scratch);
  AppendField(out, "policy_version", r.policy_version, scratch);
  AppendField(out, "front_door", r.front_door, scratch);
  out.append(",\"cost_micros\":");
  AppendInt(out, r.cost_micros);
  AppendField(out, "approval_id", r.approval_id, scratch);
  AppendField(out, "trace_id", r.trace_id, scratch);
  AppendField(out, "params_sha256", r.params_sha256, scratch);
  out.append(",\"params\":");
  out.append(params_json);
  return FinishRecordLine(out, start);
}

std::string AppendEventLine(std::string_view event, uint64_t count, int64_t time_unix_nanos,
                            uint64_t seq, std::string_view prev, std::string& out) {
  size_t start = out.size();
  std::string scratch;
  AppendRecordStart(out, seq, prev, time_unix_nanos);
  AppendField(out, "event", event, scratch);
  out.append(",\"count\":");
  AppendUint(out, count);
  return FinishRecordLine(out, start);
}

common::StatusOr<Entry> ParseEntry(std::string_view line) {
  auto json = common::ParseJson(line, {.max_bytes = kMaxLineBytes, .max_depth = 66});
  if (!json.ok()) return json.status();
  if (!json->is_object()) return Bad("not a JSON object");
  const auto& members = json->as_object();
  if (members.size() == 1 && members[0].key == "segment") return ParseHeader(members[0].value);
  if (members.size() == 1 && members[0].key == "checkpoint") {
    return ParseCheckpointObject(members[0].value);
  }
  if (json->Find("seq") == nullptr) {
    return Bad("neither a record (no \"seq\"), a checkpoint nor a segment header");
  }
  return ParseRecord(line, std::move(*json));
}

}  // namespace aegis::audit
