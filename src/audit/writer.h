// Writer: appends decision records to the hash-chained audit trail in a directory
// (docs/audit.md), off the decision's hot path.
//
// Callers queue records (Append never does I/O); one writer thread drains the queue, writes what
// it took with one write(2), and makes it durable with one fdatasync(2) per fsync interval (group
// commit), or at once when a caller waits (AppendSync, Flush). It signs a checkpoint every
// `checkpoint_every` records, at each segment roll, at Open and at Close.
//
// When the queue is full the overflow policy applies; nothing is dropped silently (the drop is
// counted, logged and noted in the trail itself as an event record).
//
// One Writer per directory: Open takes an flock(2) on <dir>/LOCK and refuses a second writer.
#ifndef AEGIS_AUDIT_WRITER_H_
#define AEGIS_AUDIT_WRITER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "audit/format.h"
#include "audit/key.h"
#include "audit/record.h"
#include "common/status.h"

namespace aegis::audit {

enum class OverflowPolicy {
  kFailClosed,    // Append returns false: the caller refuses the decision (default)
  kBlock,         // Append waits for room
  kDropAndCount,  // Append drops the record, counts it, and the trail notes how many
};

struct WriterOptions {
  std::string dir;                               // <data_dir>/audit; created 0700
  size_t segment_max_bytes = 64 << 20;           // roll to a new segment file beyond this
  std::chrono::milliseconds fsync_interval{10};  // group commit: one fdatasync per interval
  size_t queue_capacity = 65536;                 // records queued and not yet taken by the writer
  OverflowPolicy overflow = OverflowPolicy::kFailClosed;
  size_t checkpoint_every = 10000;  // records between signed checkpoints (also roll, Open, Close)
  // Called on the writer thread with record and event lines (each '\n'-terminated, several at
  // a time, in seq order) once they are durable, before Flush or AppendSync waiting for them
  // return: the audit sinks (audit/sinks.h). It must not block on I/O.
  std::function<void(std::string_view lines)> on_durable;
  // Test seam: when set, called on the writer thread each time it wakes with work, before it
  // takes the queue (a test blocks in it to stall the writer).
  std::function<void()> before_batch_for_test;
};

class Writer {
 public:
  // level: "info", "warn" or "error". Called from Open's thread and from the writer thread.
  using LogFn = std::function<void(std::string_view level, const std::string& message)>;

  // Opens (creating if needed) the trail in `options.dir` and recovers it: checks the last
  // segment against its header and signatures, cuts a torn last line (a crash mid-write) and
  // logs what it cut, then continues the chain with a signed open checkpoint. Refuses (non-OK
  // status, nothing modified) a directory writable by others, a key file readable by others, a
  // trail whose last segment is damaged in any other way, one shorter than its head.json
  // checkpoint, and a directory another writer holds. Starts the writer thread.
  static common::StatusOr<std::unique_ptr<Writer>> Open(WriterOptions options, LogFn log);

  ~Writer();  // Close()
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues `r` without I/O. Returns false when the record will not be written and the caller
  // must refuse the decision: the queue is full under kFailClosed, or the writer is closed or
  // has failed (an I/O error) under kFailClosed or kBlock. kBlock waits for room;
  // kDropAndCount drops (counted) and returns true. Any thread.
  bool Append(Record r);

  // Queues `r` and waits until it is durable (fsynced). When the queue is full it waits under
  // kBlock and returns ResourceExhausted otherwise (a dropped record is counted as dropped).
  // Returns the writer's error if it failed, FailedPrecondition once closed. Any thread.
  common::Status AppendSync(Record r);

  // Waits until every record queued before the call is durable. Any thread.
  common::Status Flush();

  // Writes what is queued, a closing checkpoint, syncs and releases the directory. Appends after
  // Close are refused. Idempotent; called by the destructor.
  void Close();

  // Prometheus text exposition:
  //   aegis_audit_records_total{result="appended|durable|dropped|refused"}  see Stats
  //   aegis_audit_queue_depth          records queued, not yet taken by the writer thread
  //   aegis_audit_segments             segment files in the trail
  //   aegis_audit_writer_up            1 while the writer takes records, 0 once failed or closed
  void AppendMetrics(std::string& out) const;

  struct Stats {
    uint64_t appended = 0;  // accepted into the queue
    uint64_t durable = 0;   // of those, written and fsynced
    uint64_t dropped = 0;   // dropped by kDropAndCount (or lost when the writer failed)
    uint64_t refused = 0;   // Append returned false / AppendSync could not queue
    size_t queue_depth = 0;
    uint64_t segments = 0;          // segment files in the trail (the current one's index)
    uint64_t last_durable_seq = 0;  // seq of the last durable record (records get seqs in order)
  };
  Stats stats() const;

 private:
  struct Pending {
    Record record;
    uint64_t seq = 0;
    uint64_t dropped = 0;  // > 0: an event record noting this many drops
  };

  Writer(WriterOptions options, LogFn log);
  common::Status Recover();
  // Enqueues under mu_; returns the record's seq, or 0 when it was not queued (`*dropped` tells
  // a drop from a refusal).
  uint64_t Enqueue(Record&& r, bool* dropped);
  void Run();
  common::Status WriteBatch(std::vector<Pending>& batch, bool* checkpointed);
  common::Status AppendCheckpoint(CheckpointReason reason);
  common::Status WriteBuffer();
  common::Status Sync();
  common::Status Roll();
  common::Status CreateSegment(uint64_t index);
  common::Status WriteHead();
  void Fail(const common::Status& status);
  void Log(std::string_view level, const std::string& message) const;

  const WriterOptions options_;
  const LogFn log_;
  const size_t wake_threshold_;

  // Set by Open, then owned by the writer thread.
  ChainInfo chain_;
  std::unique_ptr<SigningKey> key_;
  int lock_fd_ = -1;
  int fd_ = -1;  // the current segment, O_APPEND
  uint64_t segment_index_ = 0;
  uint64_t segment_bytes_ = 0;    // written to the current segment
  uint64_t segment_records_ = 0;  // records in the current segment (written or in buf_)
  uint64_t last_seq_ = 0;         // the last record formatted
  std::string last_hash_;
  uint64_t since_checkpoint_ = 0;
  std::string last_checkpoint_line_;  // for head.json
  bool head_dirty_ = false;           // a checkpoint is written but head.json not yet updated
  bool head_exists_ = false;
  std::string buf_;   // lines formatted and not yet written
  std::string line_;  // scratch for one line
  std::string undurable_lines_;  // record and event lines written, for on_durable after the sync

  mutable std::mutex mu_;
  std::condition_variable work_cv_;     // the writer thread waits for work
  std::condition_variable space_cv_;    // kBlock appenders wait for room
  std::condition_variable durable_cv_;  // AppendSync and Flush wait for durability
  std::vector<Pending> queue_;
  uint64_t next_seq_ = 0;     // the last seq handed out
  uint64_t durable_seq_ = 0;  // every record up to it is durable
  size_t sync_waiters_ = 0;
  bool writer_idle_ = false;  // the writer thread waits for work with nothing to sync
  bool closing_ = false;
  bool closed_ = false;
  common::Status failure_;  // non-OK once the writer failed; it then writes nothing more
  uint64_t appended_ = 0, durable_ = 0, dropped_ = 0, refused_ = 0;
  uint64_t unnoted_drops_ = 0;  // drops not yet noted in the trail
  uint64_t segments_ = 0;
  std::chrono::steady_clock::time_point last_drop_log_{};

  std::mutex close_mu_;  // serialises Close
  std::thread thread_;
};

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_WRITER_H_
