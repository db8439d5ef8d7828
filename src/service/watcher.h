// BundleWatcher: reloads the policy when the bundle's files change (inotify on the bundle
// directory and its subdirectories), debounced so an editor's burst of writes is one reload.
#ifndef AEGIS_SERVICE_WATCHER_H_
#define AEGIS_SERVICE_WATCHER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "common/status.h"

namespace aegis::service {

class BundleWatcher {
 public:
  // Calls `on_change` (on the watcher's thread) once the bundle has been quiet for `debounce`
  // after a change.
  BundleWatcher(std::string path, std::chrono::milliseconds debounce,
                std::function<void()> on_change);
  ~BundleWatcher();
  BundleWatcher(const BundleWatcher&) = delete;
  BundleWatcher& operator=(const BundleWatcher&) = delete;

  common::Status Start();
  void Stop();

 private:
  void Run();
  void AddWatches(const std::string& dir);

  std::string path_;
  bool directory_bundle_ = false;  // else a single file, named file_name_
  std::string file_name_;
  std::chrono::milliseconds debounce_;
  std::function<void()> on_change_;
  int fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_WATCHER_H_
