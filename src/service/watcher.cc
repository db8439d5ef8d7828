#include "service/watcher.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/strings.h"

namespace aegis::service {

namespace fs = std::filesystem;

BundleWatcher::BundleWatcher(std::string path, std::chrono::milliseconds debounce,
                             std::function<void()> on_change)
    : path_(std::move(path)), debounce_(debounce), on_change_(std::move(on_change)) {}

BundleWatcher::~BundleWatcher() { Stop(); }

namespace {

constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                           IN_DELETE_SELF | IN_MODIFY;

// Whether a file of this name can be part of a bundle (the loader reads these extensions):
// anything else in the directory — the data dir's audit segments, an editor's swap files —
// does not trigger a reload.
bool IsBundleFile(std::string_view name) {
  fs::path ext = fs::path(name).extension();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

}  // namespace

void BundleWatcher::AddWatches(const std::string& dir) {
  inotify_add_watch(fd_, dir.c_str(), kMask);
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || !fs::is_directory(path_, ec)) return;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec)) inotify_add_watch(fd_, it->path().c_str(), kMask);
  }
}

common::Status BundleWatcher::Start() {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0 || pipe(stop_pipe_) != 0) {
    return common::InternalError(common::StrCat("inotify: ", std::strerror(errno)));
  }
  std::error_code ec;
  directory_bundle_ = fs::is_directory(path_, ec);
  file_name_ = fs::path(path_).filename().string();
  // A single-file bundle: watch its directory (only it), since editors replace files by rename.
  fs::path dir = directory_bundle_ ? fs::path(path_) : fs::path(path_).parent_path();
  AddWatches(dir.empty() ? std::string(".") : dir.string());
  thread_ = std::thread([this] { Run(); });
  return common::OkStatus();
}

void BundleWatcher::Run() {
  alignas(inotify_event) char buf[16 * 1024];
  bool pending = false;
  while (true) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int timeout = pending ? static_cast<int>(debounce_.count()) : -1;
    int n = poll(fds, 2, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    if (n == 0) {  // quiet for `debounce` after a change
      pending = false;
      on_change_();
      continue;
    }
    bool new_dirs = false;
    ssize_t len;
    while ((len = read(fd_, buf, sizeof buf)) > 0) {
      for (char* p = buf; p < buf + len;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
        if (ev->mask & IN_ISDIR) {
          if (ev->mask & (IN_CREATE | IN_MOVED_TO)) new_dirs = true;
          // A directory moved or deleted in a bundle directory may take files with it.
          if (directory_bundle_) pending = true;
        } else if (ev->mask & IN_DELETE_SELF) {
          pending = true;
        } else if (directory_bundle_ ? IsBundleFile(name) : name == file_name_) {
          pending = true;
        }
        p += sizeof(inotify_event) + ev->len;
      }
    }
    if (new_dirs) AddWatches(fs::is_directory(path_) ? path_ : ".");
  }
}

void BundleWatcher::Stop() {
  if (stop_pipe_[1] >= 0) {
    char c = 0;
    [[maybe_unused]] ssize_t ignored = write(stop_pipe_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&fd_, &stop_pipe_[0], &stop_pipe_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

}  // namespace aegis::service
