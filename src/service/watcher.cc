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

void BundleWatcher::AddWatches(const std::string& dir) {
  constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                             IN_DELETE | IN_DELETE_SELF | IN_MODIFY;
  inotify_add_watch(fd_, dir.c_str(), kMask);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
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
  // A single-file bundle: watch its directory, since editors replace files by rename.
  std::error_code ec;
  fs::path dir = fs::is_directory(path_, ec) ? fs::path(path_) : fs::path(path_).parent_path();
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
        if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) new_dirs = true;
        p += sizeof(inotify_event) + ev->len;
      }
      pending = true;
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
