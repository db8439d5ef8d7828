// A real redis-server for tests: started on a unix socket in a fresh temporary directory,
// stopped (and restartable, with its append-only file) on demand. Tests that need Redis fail
// loudly when it cannot start: scripts/install-deps.sh installs it.
#ifndef AEGIS_LIMITS_TESTING_REDIS_SERVER_H_
#define AEGIS_LIMITS_TESTING_REDIS_SERVER_H_

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace aegis::limits::testing {

class RedisServer {
 public:
  RedisServer() {
    char tmpl[] = "/tmp/aegis-redis-XXXXXX";
    dir_ = mkdtemp(tmpl) ? tmpl : "";
    socket_ = dir_ + "/redis.sock";
  }
  ~RedisServer() {
    Stop(SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts redis-server and waits until it answers; false if it did not within 10 s.
  bool Start() {
    if (dir_.empty()) return false;
    pid_ = fork();
    if (pid_ == 0) {
      // It dies with the test, however the test ends.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Its start-up chatter goes to a log file beside its data.
      FILE* log = fopen((dir_ + "/redis.log").c_str(), "a");
      if (log) {
        dup2(fileno(log), 1);
        dup2(fileno(log), 2);
      }
      execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", socket_.c_str(),
             "--unixsocketperm", "700", "--dir", dir_.c_str(), "--save", "", "--appendonly",
             "yes", "--appendfsync", "always", "--loglevel", "warning", nullptr);
      _exit(127);
    }
    if (pid_ < 0) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Answers()) return true;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Stops it with `signal` and waits for it to exit.
  void Stop(int signal = SIGTERM) {
    if (pid_ <= 0) return;
    kill(pid_, signal);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string url() const { return "unix://" + socket_; }

 private:
  // Whether the socket accepts a connection and answers PING.
  bool Answers() const {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socket_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
              write(fd, "PING\r\n", 6) == 6;
    char buf[16] = {};
    ok = ok && read(fd, buf, sizeof buf - 1) > 0 && std::string(buf).rfind("+PONG", 0) == 0;
    close(fd);
    return ok;
  }

  std::string dir_, socket_;
  pid_t pid_ = -1;
};

}  // namespace aegis::limits::testing

#endif  // AEGIS_LIMITS_TESTING_REDIS_SERVER_H_
