#include "audit/writer.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "audit/chain_checker.h"
#include "audit/trail_source.h"
#include "common/files.h"
#include "common/strings.h"

namespace aegis::audit {
namespace {

using common::StrCat;

constexpr size_t kWriteChunk = 4 << 20;  // write(2) at least this often within a batch
// Room kept at the end of a segment for an interval and a roll checkpoint (about 400 bytes each).
constexpr size_t kCheckpointReserve = 1024;
constexpr size_t kMinSegmentBytes = 4096;
constexpr size_t kMaxSmallFile = 64 << 10;
constexpr std::string_view kTmpInfix = ".tmp-";

using common::ErrnoError;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    std::abort();  // a chain id or key from a failed CSPRNG is not something to carry on with
  }
  return HexEncode(raw);
}

common::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return common::OkStatus();
}

common::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("cannot sync directory", dir);
  return common::OkStatus();
}

// Writes dir/name (0600) through a synced temporary file and rename(2): a reader sees the old
// or the new content, never a part. With `sync_dir` the rename itself is made durable.
common::Status WriteFileAtomically(const std::string& dir, std::string_view name,
                                   std::string_view contents, bool sync_dir) {
  std::string path = StrCat(dir, "/", name);
  std::string tmp = StrCat(dir, "/.", name, kTmpInfix, RandomHex(6));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  common::Status status = WriteAll(fd, contents, tmp);
  if (status.ok() && ::fdatasync(fd) != 0) status = ErrnoError("cannot sync", tmp);
  if (::close(fd) != 0 && status.ok()) status = ErrnoError("cannot close", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoError("cannot rename to", path);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return sync_dir ? FsyncDir(dir) : common::OkStatus();
}

// Reads a small regular file. With `private_only`, one that group or others may access is
// refused with the chmod that fixes it.
common::StatusOr<std::string> ReadLocalFile(const std::string& path, bool private_only) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return common::NotFoundError(StrCat(path, " does not exist"));
    return ErrnoError("cannot open", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return ErrnoError("cannot stat", path);
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kMaxSmallFile) {
    ::close(fd);
    return common::FailedPreconditionError(
        StrCat(path, " is not a regular file of at most ", kMaxSmallFile, " bytes"));
  }
  if (private_only && (st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return common::FailedPreconditionError(
        StrCat("audit key file ", path, " is accessible to group or others (mode ", mode,
               "); it must be readable by its owner only: chmod 600 ", path));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}


}  // namespace

Writer::Writer(WriterOptions options, LogFn log)
    : options_(std::move(options)),
      log_(std::move(log)),
      wake_threshold_(std::max<size_t>(1, std::min<size_t>(options_.queue_capacity / 2, 4096))) {}

Writer::~Writer() { Close(); }

void Writer::Log(std::string_view level, const std::string& message) const {
  if (log_) log_(level, message);
}

common::StatusOr<std::unique_ptr<Writer>> Writer::Open(WriterOptions options, LogFn log) {
  while (options.dir.size() > 1 && options.dir.back() == '/') options.dir.pop_back();
  if (options.dir.empty()) return common::InvalidArgumentError("audit directory is empty");
  if (options.segment_max_bytes < kMinSegmentBytes) {
    return common::InvalidArgumentError(
        StrCat("segment_max_bytes must be at least ", kMinSegmentBytes));
  }
  if (options.queue_capacity == 0 || options.checkpoint_every == 0) {
    return common::InvalidArgumentError("queue_capacity and checkpoint_every must be positive");
  }
  if (options.fsync_interval.count() < 0) {
    return common::InvalidArgumentError("fsync_interval must not be negative");
  }
  std::unique_ptr<Writer> w(new Writer(std::move(options), std::move(log)));
  if (auto s = w->Recover(); !s.ok()) return s;
  w->thread_ = std::thread([p = w.get()] { p->Run(); });
  return w;
}

common::Status Writer::Recover() {
  const std::string& dir = options_.dir;
  if (auto s = common::MakePrivateDir(dir, "audit directory"); !s.ok()) return s;

  std::string lock_path = StrCat(dir, "/", kLockFileName);
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return ErrnoError("cannot open", lock_path);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return common::FailedPreconditionError(StrCat(
          "audit directory ", dir, " is in use by another writer (", lock_path, " is locked)"));
    }
    return ErrnoError("cannot lock", lock_path);
  }

  auto source = DirectorySource(dir);
  auto files = source->ListFiles();
  if (!files.ok()) return files.status();
  std::vector<uint64_t> indexes;
  for (const std::string& name : *files) {
    if (auto index = ParseSegmentFileName(name)) {
      indexes.push_back(*index);
    } else if (name.size() > 1 && name[0] == '.' && name.find(kTmpInfix) != std::string::npos) {
      ::unlink(StrCat(dir, "/", name).c_str());  // a temporary file a crash left behind
    }
  }
  std::sort(indexes.begin(), indexes.end());

  // Who this trail is: chain.json and the key, created with the first segment.
  std::string chain_path = StrCat(dir, "/", kChainFileName);
  std::string key_path = StrCat(dir, "/", kKeyFileName);
  auto chain_text = ReadLocalFile(chain_path, /*private_only=*/false);
  if (!chain_text.ok() && chain_text.status().code() == common::StatusCode::kNotFound) {
    if (!indexes.empty()) {
      return common::FailedPreconditionError(
          StrCat("audit directory ", dir, " holds segment files but no ", kChainFileName,
                 ": restore it (the trail cannot be verified or continued without it)"));
    }
    auto key = SigningKey::Generate();
    if (!key.ok()) return key.status();
    auto pem = key->PrivatePem();
    if (!pem.ok()) return pem.status();
    if (auto s = WriteFileAtomically(dir, kKeyFileName, *pem, true); !s.ok()) return s;
    chain_.chain_id = RandomHex(32);
    chain_.public_key_hex = key->public_key_hex();
    chain_.key_id = KeyIdOf(chain_.public_key_hex);
    chain_.created_unix_nanos = NowNanos();
    if (auto s = WriteFileAtomically(dir, kChainFileName, EncodeChainInfo(chain_), true); !s.ok()) {
      return s;
    }
    key_ = std::make_unique<SigningKey>(std::move(*key));
    Log("info", StrCat("audit: created a new trail in ", dir, " (chain ", chain_.chain_id,
                       ", checkpoint key ", chain_.key_id, ")"));
  } else if (!chain_text.ok()) {
    return chain_text.status();
  } else {
    auto chain = ParseChainInfo(*chain_text);
    if (!chain.ok()) {
      return common::FailedPreconditionError(StrCat(chain_path, ": ", chain.status().message()));
    }
    chain_ = std::move(*chain);
    auto pem = ReadLocalFile(key_path, /*private_only=*/true);
    if (!pem.ok()) return pem.status();
    auto key = SigningKey::FromPem(*pem);
    if (!key.ok()) {
      return common::FailedPreconditionError(StrCat(key_path, ": ", key.status().message()));
    }
    if (key->public_key_hex() != chain_.public_key_hex) {
      return common::FailedPreconditionError(
          StrCat(key_path, " is not the key of ", chain_path, " (its public key differs)"));
    }
    key_ = std::make_unique<SigningKey>(std::move(*key));
  }
  auto verifying = VerifyingKey::FromHex(chain_.public_key_hex);
  if (!verifying.ok()) return verifying.status();

  std::optional<Anchor> head;
  auto head_text = source->ReadSmallFile(kHeadFileName, kMaxSmallFile);
  if (head_text.ok()) {
    auto anchor = ParseAnchor(*head_text, chain_, *verifying, std::string(kHeadFileName));
    if (!anchor.ok()) {
      return common::FailedPreconditionError(
          StrCat("the audit trail in ", dir, " is damaged: ", anchor.status().message()));
    }
    head = std::move(*anchor);
    head_exists_ = true;
  } else if (head_text.status().code() != common::StatusCode::kNotFound) {
    return head_text.status();
  }

  // Find where the chain ends: check the last segment against its own header (the segments
  // before it were closed by a synced roll checkpoint), cut a torn tail, drop a segment whose
  // header a crash left unfinished.
  ChainChecker checker(chain_, *verifying);
  if (head) checker.AddAnchor(*head);
  bool found = false;
  while (!indexes.empty()) {
    uint64_t index = indexes.back();
    std::string name = SegmentFileName(index);
    std::string path = StrCat(dir, "/", name);
    auto reader = source->Open(name);
    if (!reader.ok()) return reader.status();
    if (!checker.CheckSegment(index, name, **reader, /*last=*/true, /*resume=*/true)) {
      return common::FailedPreconditionError(StrCat(
          "the audit trail in ", dir, " is damaged: ", checker.error(),
          ". The writer does not append to a damaged trail: run `aegis audit verify ", dir, "`"));
    }
    if (!checker.segment_has_header()) {
      Log("warn", StrCat("audit: removing ", path, ": it holds only ", checker.segment_torn_bytes(),
                         " bytes of an unfinished header (a crash while it was created)"));
      if (::unlink(path.c_str()) != 0) return ErrnoError("cannot remove", path);
      if (auto s = FsyncDir(dir); !s.ok()) return s;
      indexes.pop_back();
      continue;
    }
    if (uint64_t torn = checker.segment_torn_bytes(); torn > 0) {
      uint64_t keep = checker.segment_good_bytes();
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return ErrnoError("cannot open", path);
      bool ok = ::ftruncate(fd, static_cast<off_t>(keep)) == 0 && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return ErrnoError("cannot cut the torn tail of", path);
      Log("warn", StrCat("audit: cut ", torn, " bytes at offset ", keep, " of ", path,
                         ": an unfinished line after record ", checker.last_seq(),
                         " (a crash mid-write); that record was never acknowledged as durable"));
    }
    found = true;
    break;
  }
  uint64_t end_seq = found ? checker.last_seq() : 0;
  if (head && head->seq > end_seq) {
    return common::FailedPreconditionError(
        StrCat("the audit trail in ", dir, " ends at record ", end_seq,
               " but its last checkpoint (head.json) covers record ", head->seq,
               ": records were removed. The writer does not append to a damaged trail: run "
               "`aegis audit verify ",
               dir, "`"));
  }
  if (!head && end_seq > 0) {
    return common::FailedPreconditionError(
        StrCat("the audit trail in ", dir,
               " has records but no head.json: the end of the trail "
               "cannot be checked (deleted?). Restore it; the writer "
               "does not append to a trail it cannot vouch for"));
  }

  if (!found) {
    last_seq_ = 0;
    last_hash_ = chain_.chain_id;
    if (auto s = CreateSegment(1); !s.ok()) return s;
  } else {
    last_seq_ = checker.last_seq();
    last_hash_ = checker.last_hash();
    bool after_close = checker.last() == ChainChecker::Last::kCheckpoint &&
                       checker.last_reason() == CheckpointReason::kClose;
    bool after_roll = checker.last() == ChainChecker::Last::kCheckpoint &&
                      checker.last_reason() == CheckpointReason::kRoll;
    if (!after_close && checker.last() != ChainChecker::Last::kTrailStart) {
      Log("warn", StrCat("audit: the previous writer stopped after record ", last_seq_,
                         " without a closing checkpoint (a crash?); continuing the chain, this "
                         "start's checkpoint seals every record up to it"));
    }
    if (after_roll) {
      segment_index_ = indexes.back();
      if (auto s = CreateSegment(segment_index_ + 1); !s.ok()) return s;
    } else {
      segment_index_ = indexes.back();
      std::string path = StrCat(dir, "/", SegmentFileName(segment_index_));
      fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
      if (fd_ < 0) return ErrnoError("cannot open", path);
      segment_bytes_ = checker.segment_good_bytes();
      segment_records_ = checker.segment_records();
    }
  }
  segments_ = segment_index_;
  next_seq_ = durable_seq_ = last_seq_;
  if (auto s = AppendCheckpoint(CheckpointReason::kOpen); !s.ok()) return s;
  if (auto s = WriteBuffer(); !s.ok()) return s;
  if (auto s = Sync(); !s.ok()) return s;
  return WriteHead();
}

common::Status Writer::CreateSegment(uint64_t index) {
  std::string path = StrCat(options_.dir, "/", SegmentFileName(index));
  int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("cannot create segment", path);
  std::string header =
      EncodeSegmentHeader(SegmentHeader{chain_.chain_id, index, last_seq_ + 1, last_hash_});
  common::Status s = WriteAll(fd, header, path);
  if (s.ok() && ::fdatasync(fd) != 0) s = ErrnoError("cannot sync", path);
  if (s.ok()) s = FsyncDir(options_.dir);
  if (!s.ok()) {
    ::close(fd);
    return s;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  segment_index_ = index;
  segment_bytes_ = header.size();
  segment_records_ = 0;
  std::lock_guard lock(mu_);
  segments_ = index;
  return common::OkStatus();
}

common::Status Writer::AppendCheckpoint(CheckpointReason reason) {
  Checkpoint cp;
  cp.chain_id = chain_.chain_id;
  cp.seq = last_seq_;
  cp.hash = last_hash_;
  cp.time_unix_nanos = NowNanos();
  cp.reason = reason;
  cp.key_id = chain_.key_id;
  auto sig = key_->SignHex(CheckpointMessage(cp));
  if (!sig.ok()) return sig.status();
  cp.sig_hex = std::move(*sig);
  last_checkpoint_line_ = EncodeCheckpoint(cp);
  buf_ += last_checkpoint_line_;
  since_checkpoint_ = 0;
  head_dirty_ = true;
  return common::OkStatus();
}

common::Status Writer::WriteBuffer() {
  if (buf_.empty()) return common::OkStatus();
  auto s = WriteAll(fd_, buf_, SegmentFileName(segment_index_));
  if (!s.ok()) return s;
  segment_bytes_ += buf_.size();
  buf_.clear();
  return common::OkStatus();
}

common::Status Writer::Sync() {
  if (::fdatasync(fd_) != 0) {
    return ErrnoError("cannot sync", StrCat(options_.dir, "/", SegmentFileName(segment_index_)));
  }
  return common::OkStatus();
}

// Only after the checkpoint line is durable: head.json never covers more than the segments do.
common::Status Writer::WriteHead() {
  if (!head_dirty_) return common::OkStatus();
  auto s = WriteFileAtomically(options_.dir, kHeadFileName, last_checkpoint_line_, !head_exists_);
  if (!s.ok()) return s;
  head_exists_ = true;
  head_dirty_ = false;
  return common::OkStatus();
}

common::Status Writer::Roll() {
  if (auto s = AppendCheckpoint(CheckpointReason::kRoll); !s.ok()) return s;
  if (auto s = WriteBuffer(); !s.ok()) return s;
  if (auto s = Sync(); !s.ok()) return s;
  if (auto s = CreateSegment(segment_index_ + 1); !s.ok()) return s;
  return WriteHead();
}

common::Status Writer::WriteBatch(std::vector<Pending>& batch, bool* checkpointed) {
  for (Pending& p : batch) {
    line_.clear();
    std::string hash;
    if (p.dropped > 0) {
      hash = AppendEventLine("records_dropped", p.dropped, NowNanos(), p.seq, last_hash_, line_);
    } else {
      std::string params = NormalizeParams(p.record.params_redacted_json);
      hash = AppendRecordLine(p.record, params, p.seq, last_hash_, line_);
      if (line_.size() > kMaxLineBytes) {
        line_.clear();
        hash = AppendRecordLine(
            p.record, R"({"_aegis_params_omitted":"the record would exceed the line limit"})",
            p.seq, last_hash_, line_);
      }
    }
    assert(p.seq == last_seq_ + 1);
    if (segment_records_ > 0 && segment_bytes_ + buf_.size() + line_.size() + kCheckpointReserve >
                                    options_.segment_max_bytes) {
      if (auto s = Roll(); !s.ok()) return s;
    }
    buf_ += line_;
    if (options_.on_durable) undurable_lines_ += line_;
    last_seq_ = p.seq;
    last_hash_ = std::move(hash);
    ++segment_records_;
    if (++since_checkpoint_ >= options_.checkpoint_every) {
      if (auto s = AppendCheckpoint(CheckpointReason::kInterval); !s.ok()) return s;
      *checkpointed = true;
    }
    if (buf_.size() >= kWriteChunk) {
      if (auto s = WriteBuffer(); !s.ok()) return s;
    }
  }
  return WriteBuffer();
}

void Writer::Fail(const common::Status& status) {
  uint64_t lost;
  {
    std::lock_guard lock(mu_);
    if (!failure_.ok()) return;
    failure_ = status;
    lost = appended_ - durable_;
    dropped_ += lost;
    queue_.clear();
    durable_cv_.notify_all();
    space_cv_.notify_all();
  }
  Log("error", StrCat("audit: the writer failed and writes nothing more: ", status.message(), " (",
                      lost, " accepted records are not durable)"));
}

void Writer::Run() {
  using Clock = std::chrono::steady_clock;
  std::vector<Pending> batch;
  auto last_sync = Clock::now();
  bool unsynced = false;          // lines written since the last fdatasync
  uint64_t unsynced_records = 0;  // callers' records among them
  uint64_t drops_to_log = 0;
  for (;;) {
    bool closing = false;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (closing_) break;
        bool queued = !queue_.empty() || (unnoted_drops_ > 0 && failure_.ok());
        if (queued && queue_.size() >= wake_threshold_) break;
        if ((queued || unsynced) && sync_waiters_ > 0) break;
        if (!queued && !unsynced) {
          writer_idle_ = true;
          work_cv_.wait(lock);
          writer_idle_ = false;
          continue;
        }
        auto deadline = last_sync + options_.fsync_interval;
        if (Clock::now() >= deadline) break;
        work_cv_.wait_until(lock, deadline);
      }
      if (options_.before_batch_for_test) {
        lock.unlock();
        options_.before_batch_for_test();
        lock.lock();
      }
      if (unnoted_drops_ > 0 && failure_.ok()) {
        Pending event;
        event.seq = ++next_seq_;
        event.dropped = unnoted_drops_;
        drops_to_log += unnoted_drops_;
        unnoted_drops_ = 0;
        queue_.push_back(std::move(event));
      }
      batch.swap(queue_);
      closing = closing_;
      space_cv_.notify_all();
    }
    if (drops_to_log > 0 && Clock::now() - last_drop_log_ >= std::chrono::seconds(1)) {
      Log("warn", StrCat("audit: the queue was full and ", drops_to_log,
                         " records were dropped (overflow policy drop_and_count); the trail "
                         "notes it"));
      last_drop_log_ = Clock::now();
      drops_to_log = 0;
    }
    bool failed;
    {
      std::lock_guard lock(mu_);
      failed = !failure_.ok();
    }
    bool checkpointed = false;
    if (!failed && !batch.empty()) {
      uint64_t records = 0;
      for (const Pending& p : batch) records += p.dropped == 0 ? 1 : 0;
      if (auto s = WriteBatch(batch, &checkpointed); !s.ok()) {
        Fail(s);
        failed = true;
      } else {
        unsynced = true;
        unsynced_records += records;
      }
    }
    batch.clear();
    if (failed) unsynced = false;
    bool sync_now = false;
    {
      std::lock_guard lock(mu_);
      sync_now = unsynced && (sync_waiters_ > 0 || closing_ || checkpointed ||
                              Clock::now() >= last_sync + options_.fsync_interval);
    }
    if (sync_now) {
      last_sync = Clock::now();
      if (auto s = Sync(); !s.ok()) {
        Fail(s);
      } else {
        // Before waking Flush and AppendSync: what they waited for has also reached the sinks.
        if (!undurable_lines_.empty()) {
          options_.on_durable(undurable_lines_);
          undurable_lines_.clear();
        }
        {
          std::lock_guard lock(mu_);
          durable_seq_ = last_seq_;
          durable_ += unsynced_records;
          durable_cv_.notify_all();
        }
        if (auto h = WriteHead(); !h.ok()) Fail(h);
      }
      unsynced = false;
      unsynced_records = 0;
    }
    if (closing) {
      {
        std::lock_guard lock(mu_);
        if (!queue_.empty() || (unnoted_drops_ > 0 && failure_.ok())) continue;
        failed = !failure_.ok();
      }
      if (!failed) {
        common::Status s = AppendCheckpoint(CheckpointReason::kClose);
        if (s.ok()) s = WriteBuffer();
        if (s.ok()) s = Sync();
        if (s.ok()) s = WriteHead();
        if (!s.ok()) Fail(s);
      }
      if (drops_to_log > 0) {
        Log("warn", StrCat("audit: the queue was full and ", drops_to_log,
                           " records were dropped (overflow policy drop_and_count)"));
      }
      std::lock_guard lock(mu_);
      durable_cv_.notify_all();
      return;
    }
  }
}

uint64_t Writer::Enqueue(Record&& r, bool* dropped) {
  *dropped = false;
  std::unique_lock lock(mu_);
  for (;;) {
    if (closing_ || closed_) {
      ++refused_;
      return 0;
    }
    if (!failure_.ok()) {
      if (options_.overflow == OverflowPolicy::kDropAndCount) {
        ++dropped_;
        *dropped = true;
      } else {
        ++refused_;
      }
      return 0;
    }
    if (queue_.size() < options_.queue_capacity) break;
    switch (options_.overflow) {
      case OverflowPolicy::kFailClosed:
        ++refused_;
        return 0;
      case OverflowPolicy::kDropAndCount:
        ++dropped_;
        ++unnoted_drops_;
        *dropped = true;
        return 0;
      case OverflowPolicy::kBlock:
        space_cv_.wait(lock);
        break;
    }
  }
  uint64_t seq = ++next_seq_;
  queue_.push_back(Pending{std::move(r), seq, 0});
  ++appended_;
  // Only an idle writer needs waking for the first record: one waiting for its fsync interval
  // takes everything queued when the interval ends (one wake per interval, not per record).
  if ((queue_.size() == 1 && writer_idle_) || queue_.size() == wake_threshold_) {
    work_cv_.notify_one();
  }
  return seq;
}

bool Writer::Append(Record r) {
  bool dropped = false;
  return Enqueue(std::move(r), &dropped) != 0 || dropped;
}

common::Status Writer::AppendSync(Record r) {
  bool dropped = false;
  uint64_t seq = Enqueue(std::move(r), &dropped);
  std::unique_lock lock(mu_);
  if (seq == 0) {
    if (!failure_.ok()) return failure_;
    if (closing_ || closed_) return common::FailedPreconditionError("the audit writer is closed");
    return common::ResourceExhaustedError(
        StrCat("the audit queue is full (", options_.queue_capacity, " records)",
               dropped ? "; the record was dropped and counted" : ""));
  }
  ++sync_waiters_;
  work_cv_.notify_one();
  durable_cv_.wait(lock, [&] { return durable_seq_ >= seq || !failure_.ok() || closed_; });
  --sync_waiters_;
  if (durable_seq_ >= seq) return common::OkStatus();
  if (!failure_.ok()) return failure_;
  return common::FailedPreconditionError("the audit writer closed before the record was durable");
}

common::Status Writer::Flush() {
  std::unique_lock lock(mu_);
  if (!failure_.ok()) return failure_;
  uint64_t target = next_seq_;
  if (durable_seq_ >= target) return common::OkStatus();
  ++sync_waiters_;
  work_cv_.notify_one();
  durable_cv_.wait(lock, [&] { return durable_seq_ >= target || !failure_.ok() || closed_; });
  --sync_waiters_;
  if (durable_seq_ >= target) return common::OkStatus();
  if (!failure_.ok()) return failure_;
  return common::FailedPreconditionError("the audit writer closed before the records were durable");
}

void Writer::Close() {
  std::lock_guard close_lock(close_mu_);
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closing_ = true;
    work_cv_.notify_all();
    space_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  lock_fd_ = -1;
  std::lock_guard lock(mu_);
  closed_ = true;
  durable_cv_.notify_all();
}

void Writer::AppendMetrics(std::string& out) const {
  Stats s = stats();
  bool up;
  {
    std::lock_guard lock(mu_);
    up = failure_.ok() && !closing_ && !closed_;
  }
  out += "# HELP aegis_audit_records_total Decision records by what became of them.\n"
         "# TYPE aegis_audit_records_total counter\n";
  out += StrCat("aegis_audit_records_total{result=\"appended\"} ", s.appended, "\n");
  out += StrCat("aegis_audit_records_total{result=\"durable\"} ", s.durable, "\n");
  out += StrCat("aegis_audit_records_total{result=\"dropped\"} ", s.dropped, "\n");
  out += StrCat("aegis_audit_records_total{result=\"refused\"} ", s.refused, "\n");
  out += "# HELP aegis_audit_queue_depth Records queued for the audit writer.\n"
         "# TYPE aegis_audit_queue_depth gauge\n";
  out += StrCat("aegis_audit_queue_depth ", s.queue_depth, "\n");
  out += "# HELP aegis_audit_segments Segment files in the audit trail.\n"
         "# TYPE aegis_audit_segments gauge\n";
  out += StrCat("aegis_audit_segments ", s.segments, "\n");
  out += "# HELP aegis_audit_writer_up 1 while the audit writer takes records.\n"
         "# TYPE aegis_audit_writer_up gauge\n";
  out += StrCat("aegis_audit_writer_up ", up ? 1 : 0, "\n");
}

Writer::Stats Writer::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.appended = appended_;
  s.durable = durable_;
  s.dropped = dropped_;
  s.refused = refused_;
  s.queue_depth = queue_.size();
  s.segments = segments_;
  s.last_durable_seq = durable_seq_;
  return s;
}

}  // namespace aegis::audit
