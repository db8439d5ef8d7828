#include "telemetry/trace_context.h"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace aegis::telemetry {
namespace {

// -1 for anything but 0-9 a-f: the spec allows lower-case hex only.
int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes exactly 2*N lower-case hex digits into `out`. Returns false on any other character.
template <size_t N>
bool DecodeHex(std::string_view hex, std::array<uint8_t, N>& out) {
  if (hex.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = LowerHexValue(hex[2 * i]);
    int lo = LowerHexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& id) {
  for (uint8_t b : id) {
    if (b != 0) return false;
  }
  return true;
}

template <size_t N>
std::string Hex(const std::array<uint8_t, N>& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * N, '0');
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kDigits[id[i] >> 4];
    out[2 * i + 1] = kDigits[id[i] & 0xf];
  }
  return out;
}

// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, seeded from the kernel's CSPRNG.
// Ids need to be unique and unpredictable enough that traces do not collide, not secret.
class IdGenerator {
 public:
  IdGenerator() {
    size_t got = 0;
    auto* bytes = reinterpret_cast<uint8_t*>(s_);
    while (got < sizeof(s_)) {
      ssize_t n = getrandom(bytes + got, sizeof(s_) - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
      } else if (n < 0 && errno != EINTR) {
        break;
      }
    }
    if (got < sizeof(s_)) {
      // No getrandom (very old kernel, seccomp): fall back to time and thread identity, mixed by
      // SplitMix64. Ids stay distinct in practice, which is all tracing needs.
      uint64_t x = static_cast<uint64_t>(
                       std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
                   std::hash<std::thread::id>()(std::this_thread::get_id());
      for (uint64_t& s : s_) s = SplitMix64(x);
    }
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // the one state xoshiro cannot leave
  }

  uint64_t Next() {
    uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t s_[4];
};

IdGenerator& ThreadGenerator() {
  thread_local IdGenerator generator;
  return generator;
}

void StoreBigEndian(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

}  // namespace

TraceContext ParseTraceparent(std::string_view header) {
  while (!header.empty() && IsOws(header.front())) header.remove_prefix(1);
  while (!header.empty() && IsOws(header.back())) header.remove_suffix(1);

  // version(2) '-' trace-id(32) '-' parent-id(16) '-' flags(2) = 55 characters.
  constexpr size_t kV0Size = 55;
  TraceContext c;
  if (header.size() < 3 || header[2] != '-') return c;
  std::array<uint8_t, 1> version{};
  if (!DecodeHex(header.substr(0, 2), version) || version[0] == 0xff) return c;
  if (version[0] == 0 ? header.size() != kV0Size : header.size() < kV0Size) return c;
  // A later version may append "-<more>"; its first four fields keep the version 00 layout.
  if (header.size() > kV0Size && header[kV0Size] != '-') return c;
  if (header[35] != '-' || header[52] != '-') return c;

  TraceContext parsed;
  std::array<uint8_t, 1> flags{};
  if (!DecodeHex(header.substr(3, 32), parsed.trace_id) ||
      !DecodeHex(header.substr(36, 16), parsed.span_id) ||
      !DecodeHex(header.substr(53, 2), flags)) {
    return c;
  }
  if (AllZero(parsed.trace_id) || AllZero(parsed.span_id)) return c;
  parsed.sampled = (flags[0] & 0x01) != 0;
  parsed.valid = true;
  return parsed;
}

std::string FormatTraceparent(const TraceContext& c) {
  std::string out;
  out.reserve(55);
  out += "00-";
  out += Hex(c.trace_id);
  out += '-';
  out += Hex(c.span_id);
  out += c.sampled ? "-01" : "-00";
  return out;
}

std::string HexId(const TraceId& id) { return Hex(id); }
std::string HexId(const SpanId& id) { return Hex(id); }

TraceId NewTraceId() {
  IdGenerator& g = ThreadGenerator();
  TraceId id;
  uint64_t hi = 0, lo = 0;
  while ((hi | lo) == 0) {
    hi = g.Next();
    lo = g.Next();
  }
  StoreBigEndian(hi, id.data());
  StoreBigEndian(lo, id.data() + 8);
  return id;
}

SpanId NewSpanId() {
  IdGenerator& g = ThreadGenerator();
  uint64_t v = 0;
  while (v == 0) v = g.Next();
  SpanId id;
  StoreBigEndian(v, id.data());
  return id;
}

}  // namespace aegis::telemetry
