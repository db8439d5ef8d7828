#include "common/files.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/strings.h"

namespace aegis::common {

Status ErrnoError(std::string_view what, const std::string& path) {
  return InternalError(StrCat(what, " ", path, ": ", std::strerror(errno)));
}

Status MakePrivateDir(const std::string& dir, std::string_view what) {
  for (size_t slash = dir.find('/', 1); slash != std::string::npos;
       slash = dir.find('/', slash + 1)) {
    std::string parent = dir.substr(0, slash);
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError("cannot create directory", parent);
    }
  }
  if (::mkdir(dir.c_str(), 0700) == 0) {
    if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("cannot chmod", dir);
  } else if (errno != EEXIST) {
    return ErrnoError(StrCat("cannot create ", what), dir);
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError("cannot stat", dir);
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(StrCat(dir, " is not a directory"));
  if ((st.st_mode & 022) != 0) {
    return FailedPreconditionError(
        StrCat(what, " ", dir, " is writable by group or others: chmod 700 ", dir));
  }
  return OkStatus();
}

std::chrono::milliseconds JitteredBackoff(int attempts, std::chrono::milliseconds initial,
                                          std::chrono::milliseconds max, std::mt19937_64& rng) {
  using std::chrono::milliseconds;
  milliseconds base = std::max(initial, milliseconds(1));
  for (int i = 1; i < attempts && base < max; ++i) base *= 2;
  base = std::min(base, max);
  std::uniform_int_distribution<int64_t> jitter(0, base.count() / 2);
  return milliseconds(base.count() - base.count() / 2 + jitter(rng));
}

}  // namespace aegis::common
