// A real PostgreSQL server for tests: a fresh cluster (initdb, trust authentication, superuser
// "aegis") in a new temporary directory, listening on 127.0.0.1 on a free port and on a unix
// socket in that directory, fsync off. Stoppable and restartable on the same data and port;
// stopped, and its directory removed, on destruction. Tests that need it fail loudly when it
// cannot start: scripts/install-deps.sh installs PostgreSQL.
//
// initdb and postgres refuse to run as root: when the test runs as root, they run as the
// `postgres` system user (which then owns the temporary directory). The server gets SIGKILL if
// the thread that started it exits, so it never outlives the test: start it from the main thread.
#ifndef AEGIS_APPROVALS_TESTING_POSTGRES_SERVER_H_
#define AEGIS_APPROVALS_TESTING_POSTGRES_SERVER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace aegis::approvals::testing {

class PostgresServer {
 public:
  PostgresServer() {
    char tmpl[] = "/tmp/aegis-pg-XXXXXX";
    dir_ = mkdtemp(tmpl) ? tmpl : "";
    bin_ = FindBinDir();
    if (geteuid() == 0) {
      // Looked up here: getpwnam is not safe between fork and exec in a threaded program.
      passwd* pw = getpwnam("postgres");
      if (pw) {
        run_as_uid_ = static_cast<int>(pw->pw_uid);
        run_as_gid_ = static_cast<int>(pw->pw_gid);
      }
      if (!dir_.empty() && pw && chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) dir_.clear();
    }
  }
  ~PostgresServer() {
    Stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Creates the cluster on first use, starts postgres and waits until it accepts connections;
  // false if it did not within 30 s (see log()).
  bool Start() {
    if (dir_.empty() || bin_.empty() || pid_ > 0) return false;
    if (geteuid() == 0 && run_as_uid_ < 0) return false;  // no postgres user to run as
    if (!std::filesystem::exists(data_dir() + "/PG_VERSION")) {
      pid_t init = Spawn({bin_ + "/initdb", "-D", data_dir(), "-A", "trust", "-U", "aegis", "-E",
                          "UTF8", "--locale=C", "--no-sync", "--no-instructions"});
      int status = 0;
      if (init < 0 || waitpid(init, &status, 0) != init || !WIFEXITED(status) ||
          WEXITSTATUS(status) != 0) {
        return false;
      }
    }
    if (port_ == 0) port_ = FreePort();
    if (port_ == 0) return false;
    pid_ = Spawn({bin_ + "/postgres",
                  "-D",
                  data_dir(),
                  "-c",
                  "listen_addresses=127.0.0.1",
                  "-c",
                  "port=" + std::to_string(port_),
                  "-c",
                  "unix_socket_directories=" + dir_,
                  "-c",
                  "fsync=off",
                  "-c",
                  "synchronous_commit=off",
                  "-c",
                  "full_page_writes=off",
                  "-c",
                  "shared_buffers=16MB",
                  "-c",
                  "max_connections=60",
                  "-c",
                  "log_min_messages=warning"});
    if (pid_ < 0) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
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

  // Stops it (SIGINT: fast shutdown, clients are disconnected) and waits for it to exit;
  // SIGKILL after 10 s.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int status;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }

  // Creates database `name` (a plain identifier) with createdb; false on failure.
  bool CreateDatabase(const std::string& name) {
    if (pid_ <= 0) return false;
    pid_t p = Spawn(
        {bin_ + "/createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", "aegis", name},
        /*as_server_user=*/false);
    int status = 0;
    return p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  // A libpq connection string for database `db` over TCP.
  std::string conninfo(const std::string& db = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=aegis dbname=" + db;
  }
  int port() const { return port_; }
  const std::string& socket_dir() const { return dir_; }
  // The server's and initdb's output, for failure messages.
  std::string log() const {
    std::ifstream in(dir_ + "/postgres.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string data_dir() const { return dir_ + "/data"; }

  // The newest /usr/lib/postgresql/<version>/bin with a postgres binary, or $AEGIS_PG_BIN.
  static std::string FindBinDir() {
    if (const char* env = std::getenv("AEGIS_PG_BIN")) return env;
    std::string best;
    int best_version = -1;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      std::string name = entry.path().filename().string();
      int version = std::atoi(name.c_str());
      if (version > best_version && std::filesystem::exists(entry.path() / "bin" / "postgres")) {
        best_version = version;
        best = (entry.path() / "bin").string();
      }
    }
    return best;
  }

  // A TCP port on 127.0.0.1 that nobody listens on right now (0 if none).
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  // Forks and execs `argv` with output to the log; as the postgres user when running as root
  // (unless !as_server_user). Everything the child needs is prepared before fork.
  pid_t Spawn(const std::vector<std::string>& argv, bool as_server_user = true) const {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::string log = dir_ + "/postgres.log";
    bool switch_user = as_server_user && geteuid() == 0;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (switch_user &&
        (setgroups(0, nullptr) != 0 || setgid(run_as_gid_) != 0 || setuid(run_as_uid_) != 0)) {
      _exit(126);
    }
    // After the switch of user, which clears it. Dies with the test, however the test ends.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(125);
    if (chdir(dir_.c_str()) != 0) _exit(124);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    execv(args[0], args.data());
    _exit(127);
  }

  // Whether the server accepts a connection and authenticates user aegis: sends a protocol 3.0
  // startup message and expects an authentication request ('R'), not an error ('E', e.g.
  // "the database system is starting up").
  bool Answers() const {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    timeval timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (ok) {
      std::string body;
      for (std::string_view p : {"user", "aegis", "database", "postgres", ""}) {
        body.append(p);
        body.push_back('\0');
      }
      std::string message(8, '\0');
      uint32_t length = htonl(static_cast<uint32_t>(8 + body.size()));
      uint32_t version = htonl(196608);  // 3.0
      memcpy(&message[0], &length, 4);
      memcpy(&message[4], &version, 4);
      message += body;
      ok = write(fd, message.data(), message.size()) == static_cast<ssize_t>(message.size());
      char reply = 0;
      ok = ok && read(fd, &reply, 1) == 1 && reply == 'R';
      if (ok) {
        const char terminate[] = {'X', 0, 0, 0, 4};
        ok = write(fd, terminate, sizeof terminate) == sizeof terminate;
      }
    }
    close(fd);
    return ok;
  }

  std::string dir_, bin_;
  int run_as_uid_ = -1, run_as_gid_ = -1;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace aegis::approvals::testing

#endif  // AEGIS_APPROVALS_TESTING_POSTGRES_SERVER_H_
