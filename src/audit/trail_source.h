// Where a verifier reads a trail from: a directory on disk, or (tests, fuzzing) bytes in memory.
// The small seam that lets the verifier and its fuzzer run without a file system, and a line
// reader that streams a segment in bounded memory however long its lines are.
#ifndef AEGIS_AUDIT_TRAIL_SOURCE_H_
#define AEGIS_AUDIT_TRAIL_SOURCE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace aegis::audit {

// A sequential reader of one file's bytes.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  // Reads up to `n` bytes into `buf`; returns how many (0 at the end), or an error.
  virtual common::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// The files of one trail directory. Names are plain file names ("chain.json", "000001.log").
class TrailSource {
 public:
  virtual ~TrailSource() = default;
  // A whole small file; NotFound if it does not exist, FailedPrecondition if it is larger than
  // `max_bytes` or not a regular file.
  virtual common::StatusOr<std::string> ReadSmallFile(std::string_view name, size_t max_bytes) = 0;
  // The names of the files in the directory, in no particular order.
  virtual common::StatusOr<std::vector<std::string>> ListFiles() = 0;
  // A reader over one file.
  virtual common::StatusOr<std::unique_ptr<ByteReader>> Open(std::string_view name) = 0;
  // Where the trail is, for messages ("/var/lib/aegis/audit").
  virtual std::string Describe() const = 0;
};

std::unique_ptr<TrailSource> DirectorySource(std::string dir);
std::unique_ptr<TrailSource> MemorySource(std::map<std::string, std::string> files);

// One line of a file as LineReader returns it.
struct Line {
  std::string_view text;  // the bytes without '\n'; empty when `overlong`
  uint64_t offset = 0;    // where the line starts in the file
  uint64_t length = 0;    // its length, '\n' excluded
  bool complete = false;  // it ends with '\n' (else it is the file's last, unfinished, line)
  bool overlong = false;  // longer than the reader's limit: skipped, not kept
  bool all_nul = false;   // non-empty and every byte is NUL (what a crash can leave at the end)
};

// Splits a ByteReader into lines, keeping at most one line (up to `max_line` bytes) in memory.
class LineReader {
 public:
  LineReader(ByteReader& in, size_t max_line) : in_(in), max_line_(max_line) {}
  // Returns true with the next line in `*line` (valid until the next call), false at the end.
  common::StatusOr<bool> Next(Line* line);
  // The number of bytes read so far.
  uint64_t position() const { return offset_; }

 private:
  common::Status Fill();
  ByteReader& in_;
  const size_t max_line_;
  std::string buf_;
  size_t pos_ = 0;       // start of the unread bytes in buf_
  uint64_t offset_ = 0;  // file offset of buf_[pos_]
  bool eof_ = false;
};

}  // namespace aegis::audit

#endif  // AEGIS_AUDIT_TRAIL_SOURCE_H_
