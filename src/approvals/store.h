// ApprovalStore: where approvals live between the call that asks for one, the humans who vote
// and the agent that polls (DESIGN.md sections 2 and 6). Two implementations with the same
// behaviour: SqliteApprovalStore (a file in the data dir, the default for one machine) and
// PostgresApprovalStore (shared by every gateway replica). docs/approvals-store.md describes
// their schema and how each stays consistent when several processes use it at once.
//
// Times are Unix seconds passed in by the caller (`now`), so tests and replicas agree on what
// has expired: a pending approval expires when `now >= expires_at`, and is then stored as
// expired with decided_at = expires_at by whichever operation notices first.
//
// Text is stored and returned byte for byte. Every string must be valid UTF-8 without NUL bytes
// (PostgreSQL's text cannot hold either), otherwise the operation returns kInvalidArgument; a
// vote's comment longer than kMaxCommentBytes is cut at a character boundary.
//
// Errors: kNotFound, kFailedPrecondition, kPermissionDenied and kInvalidArgument as documented
// per method; kUnavailable when the database cannot be reached or stays locked (the operation
// may be retried); kInternal for anything else.
#ifndef AEGIS_APPROVALS_STORE_H_
#define AEGIS_APPROVALS_STORE_H_

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "approvals/approval.h"
#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"

namespace aegis::approvals {

// Which approvals List returns.
struct ListFilter {
  std::optional<State> state;  // none: any
  std::string tenant, agent;   // empty: any
  size_t limit = 100;          // newest first (by created_at, then creation order); 0: none
};

// The longest comment a vote keeps, in bytes.
inline constexpr size_t kMaxCommentBytes = 4096;

// Thread-safe: every method may be called from any thread, and several processes may share
// one database (two gateway replicas, or `aegis serve` and the CLI).
class ApprovalStore {
 public:
  virtual ~ApprovalStore() = default;

  // Stores `a` (its id and fields; state pending, no votes, decided_at 0; an empty id gets
  // NewApprovalId(), created_at 0 becomes `now`) unless a pending approval with the same tenant
  // and call_digest exists that has not expired at `now`: then returns that one and sets
  // *joined = true (`joined` may be null). Otherwise returns the stored approval and sets
  // *joined = false. kInvalidArgument for a quorum below 1 or bad text; kAlreadyExists when the
  // id is taken by another call.
  virtual common::StatusOr<Approval> CreateOrJoin(const Approval& a, int64_t now, bool* joined) = 0;

  // The approval with its votes in the order they were cast. kNotFound for an unknown id.
  // A pending approval past its expires_at is resolved as expired (stored) first.
  virtual common::StatusOr<Approval> Get(std::string_view id, int64_t now) = 0;

  // The approvals matching `filter`, newest first, with their votes; pending approvals past
  // their expiry are resolved as expired (stored) first.
  virtual common::StatusOr<std::vector<Approval>> List(const ListFilter& filter, int64_t now) = 0;

  // Records a vote atomically (concurrent votes from several processes are never lost nor
  // counted twice) and returns the approval as it is afterwards:
  //  - kNotFound for an unknown id;
  //  - kFailedPrecondition when it is not pending any more; the message says approved, denied
  //    or expired (expiry is checked at `now`, and stored);
  //  - kPermissionDenied when vote.approver equals the approval's agent (an agent never votes
  //    on its own call); kInvalidArgument for an empty approver or bad text;
  //  - a second vote by the same approver changes nothing and returns the approval unchanged
  //    (quorum counts distinct approvers);
  //  - a deny vote resolves it denied; approve votes from `quorum` distinct approvers resolve it
  //    approved; decided_at = `now` on resolution.
  // The vote is stored with at = vote.at, or `now` when vote.at is 0.
  virtual common::StatusOr<Approval> Vote(std::string_view id, const approvals::Vote& vote,
                                          int64_t now) = 0;
};

// A new random approval id: "apr_" + 32 lower-case hex characters (128 bits from the kernel's
// CSPRNG). Aborts if the kernel cannot supply randomness: an id must never be guessable.
inline std::string NewApprovalId() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
      bool ok = fd >= 0 && read(fd, bytes, sizeof bytes) == static_cast<ssize_t>(sizeof bytes);
      if (fd >= 0) close(fd);
      if (!ok) std::abort();
      got = sizeof bytes;
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "apr_";
  for (unsigned char b : bytes) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

// Checks and normalisation both stores share; not for use outside src/approvals.
namespace store_internal {

inline common::Status CheckText(std::string_view field, std::string_view s) {
  if (s.find('\0') != std::string_view::npos) {
    return common::InvalidArgumentError(common::StrCat(field, " contains a NUL byte"));
  }
  if (!common::IsValidUtf8(s)) {
    return common::InvalidArgumentError(common::StrCat(field, " is not valid UTF-8"));
  }
  return common::OkStatus();
}

inline common::Status CheckApproval(const Approval& a) {
  if (a.quorum < 1) return common::InvalidArgumentError("quorum must be at least 1");
  for (auto [field, value] : {std::pair<std::string_view, const std::string*>{"id", &a.id},
                              {"tenant", &a.tenant},
                              {"agent", &a.agent},
                              {"tool", &a.tool},
                              {"action", &a.action},
                              {"call_digest", &a.call_digest},
                              {"rule_id", &a.rule_id},
                              {"message", &a.message},
                              {"summary_json", &a.summary_json}}) {
    if (common::Status s = CheckText(field, *value); !s.ok()) return s;
  }
  return common::OkStatus();
}

// The approval CreateOrJoin stores for `a`.
inline Approval NewPending(const Approval& a, int64_t now) {
  Approval out = a;
  if (out.id.empty()) out.id = NewApprovalId();
  if (out.created_at == 0) out.created_at = now;
  out.state = State::kPending;
  out.decided_at = 0;
  out.votes.clear();
  return out;
}

// `v` as stored: approver and comment checked, comment capped, time defaulted.
inline common::StatusOr<Vote> NormalizeVote(const Vote& v, int64_t now) {
  if (v.approver.empty()) return common::InvalidArgumentError("a vote needs an approver");
  if (common::Status s = CheckText("approver", v.approver); !s.ok()) return s;
  if (common::Status s = CheckText("comment", v.comment); !s.ok()) return s;
  Vote out = v;
  if (out.at == 0) out.at = now;
  if (out.comment.size() > kMaxCommentBytes) {
    size_t cut = kMaxCommentBytes;
    // Back up to the first byte of a UTF-8 sequence (continuation bytes are 10xxxxxx).
    while (cut > 0 && (static_cast<unsigned char>(out.comment[cut]) & 0xC0) == 0x80) --cut;
    out.comment.resize(cut);
  }
  return out;
}

inline bool IsExpired(const Approval& a, int64_t now) {
  return a.state == State::kPending && now >= a.expires_at;
}

// Why a vote on `a`, which is not pending, is refused.
inline common::Status NotPending(const Approval& a) {
  return common::FailedPreconditionError(
      common::StrCat("approval ", a.id, " is already ", StateName(a.state)));
}

}  // namespace store_internal
}  // namespace aegis::approvals

#endif  // AEGIS_APPROVALS_STORE_H_
