#include "audit/trail_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/files.h"
#include "common/strings.h"

namespace aegis::audit {
namespace {

using common::StrCat;

constexpr size_t kChunk = 64 << 10;

using common::ErrnoError;

class FileReader : public ByteReader {
 public:
  FileReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileReader() override { ::close(fd_); }
  common::StatusOr<size_t> Read(char* buf, size_t n) override {
    for (;;) {
      ssize_t got = ::read(fd_, buf, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR) return ErrnoError("cannot read", path_);
    }
  }

 private:
  int fd_;
  std::string path_;
};

class Directory : public TrailSource {
 public:
  explicit Directory(std::string dir) : dir_(std::move(dir)) {}

  common::StatusOr<std::string> ReadSmallFile(std::string_view name, size_t max_bytes) override {
    std::string path = StrCat(dir_, "/", name);
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return common::NotFoundError(StrCat(path, " does not exist"));
      return ErrnoError("cannot open", path);
    }
    FileReader reader(fd, path);
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError("cannot stat", path);
    if (!S_ISREG(st.st_mode)) {
      return common::FailedPreconditionError(StrCat(path, " is not a regular file"));
    }
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
      return common::FailedPreconditionError(StrCat(path, " is larger than ", max_bytes, " bytes"));
    }
    std::string out(max_bytes + 1, '\0');
    size_t done = 0;
    while (done < out.size()) {
      auto n = reader.Read(out.data() + done, out.size() - done);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      done += *n;
    }
    if (done > max_bytes) {
      return common::FailedPreconditionError(StrCat(path, " is larger than ", max_bytes, " bytes"));
    }
    out.resize(done);
    return out;
  }

  common::StatusOr<std::vector<std::string>> ListFiles() override {
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return common::NotFoundError(StrCat(dir_, " does not exist"));
      return ErrnoError("cannot list", dir_);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(d);
    return names;
  }

  common::StatusOr<std::unique_ptr<ByteReader>> Open(std::string_view name) override {
    std::string path = StrCat(dir_, "/", name);
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoError("cannot open", path);
    return std::unique_ptr<ByteReader>(new FileReader(fd, path));
  }

  std::string Describe() const override { return dir_; }

 private:
  std::string dir_;
};

class StringReader : public ByteReader {
 public:
  explicit StringReader(std::string_view data) : data_(data) {}
  common::StatusOr<size_t> Read(char* buf, size_t n) override {
    n = std::min(n, data_.size());
    std::memcpy(buf, data_.data(), n);
    data_.remove_prefix(n);
    return n;
  }

 private:
  std::string_view data_;
};

class Memory : public TrailSource {
 public:
  explicit Memory(std::map<std::string, std::string> files) : files_(std::move(files)) {}
  common::StatusOr<std::string> ReadSmallFile(std::string_view name, size_t max_bytes) override {
    auto it = files_.find(std::string(name));
    if (it == files_.end()) return common::NotFoundError(StrCat(name, " does not exist"));
    if (it->second.size() > max_bytes) {
      return common::FailedPreconditionError(StrCat(name, " is larger than ", max_bytes, " bytes"));
    }
    return it->second;
  }
  common::StatusOr<std::vector<std::string>> ListFiles() override {
    std::vector<std::string> names;
    for (const auto& [name, data] : files_) names.push_back(name);
    return names;
  }
  common::StatusOr<std::unique_ptr<ByteReader>> Open(std::string_view name) override {
    auto it = files_.find(std::string(name));
    if (it == files_.end()) return common::NotFoundError(StrCat(name, " does not exist"));
    return std::unique_ptr<ByteReader>(new StringReader(it->second));
  }
  std::string Describe() const override { return "(memory)"; }

 private:
  std::map<std::string, std::string> files_;
};

}  // namespace

std::unique_ptr<TrailSource> DirectorySource(std::string dir) {
  return std::make_unique<Directory>(std::move(dir));
}

std::unique_ptr<TrailSource> MemorySource(std::map<std::string, std::string> files) {
  return std::make_unique<Memory>(std::move(files));
}

common::Status LineReader::Fill() {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buf_.size();
  buf_.resize(old + kChunk);
  auto n = in_.Read(buf_.data() + old, kChunk);
  if (!n.ok()) {
    buf_.resize(old);
    return n.status();
  }
  buf_.resize(old + *n);
  if (*n == 0) eof_ = true;
  return common::OkStatus();
}

common::StatusOr<bool> LineReader::Next(Line* line) {
  *line = Line{};
  line->offset = offset_;
  size_t scanned = 0;  // bytes of the current line already known to hold no '\n'
  bool nul_so_far = true;
  uint64_t skipped = 0;  // bytes of an overlong line dropped from the buffer
  for (;;) {
    std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
    size_t nl = rest.find('\n', scanned);
    size_t len = nl == std::string_view::npos ? rest.size() : nl;
    if (nl != std::string_view::npos || eof_) {
      if (len == 0 && skipped == 0 && nl == std::string_view::npos) return false;  // the end
      std::string_view text = rest.substr(0, len);
      line->length = skipped + len;
      line->complete = nl != std::string_view::npos;
      line->overlong = line->length > max_line_;
      line->all_nul =
          line->length > 0 && nul_so_far && text.find_first_not_of('\0') == std::string_view::npos;
      line->text = line->overlong ? std::string_view() : text;
      size_t consumed = len + (line->complete ? 1 : 0);
      pos_ += consumed;
      offset_ += consumed;
      return true;
    }
    // No '\n' yet: keep at most max_line_ bytes of the line, then only count.
    if (rest.size() > max_line_) {
      nul_so_far = nul_so_far && rest.find_first_not_of('\0') == std::string_view::npos;
      skipped += rest.size();
      offset_ += rest.size();
      pos_ = buf_.size();
      scanned = 0;
    } else {
      scanned = rest.size();
    }
    if (auto s = Fill(); !s.ok()) return s;
  }
}

}  // namespace aegis::audit
