#include "frontdoors/proxy/mcp_stdio.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/json.h"
#include "common/strings.h"
#include "frontdoors/proxy/mcp.h"
#include "net/http_client.h"

namespace aegis::proxy {

using common::Json;
using common::StrCat;

namespace {

// Reads '\n'-terminated lines from a file descriptor.
class LineReader {
 public:
  // `stop_fd` (optional): once it is readable, Next returns nullopt.
  LineReader(int fd, size_t max, int stop_fd = -1) : fd_(fd), max_(max), stop_fd_(stop_fd) {}
  // The next line without its '\n' (a final unterminated line too), or nullopt at the end.
  // `too_long` is set for a line over the limit; its bytes are skipped.
  std::optional<std::string> Next(bool* too_long) {
    *too_long = false;
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (skipping_) {
          skipping_ = false;
          *too_long = true;
        }
        return line;
      }
      if (buf_.size() > max_) {
        buf_.clear();
        skipping_ = true;
      }
      if (stop_fd_ >= 0) {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          return std::nullopt;
        }
        if (fds[1].revents != 0 && (fds[0].revents & POLLIN) == 0) return std::nullopt;
      }
      char chunk[65536];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (buf_.empty() && !skipping_) return std::nullopt;
        std::string line = std::move(buf_);
        buf_.clear();
        *too_long = skipping_;
        skipping_ = false;
        return line;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  size_t max_;
  int stop_fd_;
  std::string buf_;
  bool skipping_ = false;
};

// The running server, for PassOn (0: none). A signal handler may read only lock-free atomics.
volatile sig_atomic_t server_pid = 0;

// SIGTERM, SIGINT and SIGHUP are the client's way of ending the wrapper (the MCP SDK sends
// SIGTERM to a server that outlives the end of its input); they go on to the server, whose end
// ends the wrapper. Dying of them instead would leave the server running, orphaned.
void PassOn(int sig) {
  if (server_pid > 0) ::kill(static_cast<pid_t>(server_pid), sig);
}

// How long a server may outlive the end of its input before it is sent SIGTERM, and then SIGKILL
// (what the MCP SDK's stdio client gives a server).
constexpr int kServerGraceMs = 2000;

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

class Gateway {
 public:
  Gateway(const StdioGatewayOptions& o, int out_fd, const std::function<void(const std::string&)>& log)
      : o_(o), out_fd_(out_fd), log_(log) {}

  // A line from the client: decided (tools/call), noted (tools/list), or passed to the server.
  // Returns false when the server's input is gone.
  bool FromClient(const std::string& line, bool too_long, int server_in) {
    if (too_long) {
      Reply(mcp::ErrorMessage(nullptr, mcp::kInvalidRequest,
                              StrCat("message longer than ", o_.max_line_bytes, " bytes")));
      return true;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) return true;
    auto message = common::ParseJson(line, {.max_bytes = o_.max_line_bytes, .max_depth = 64});
    if (!message.ok()) {
      Reply(mcp::ErrorMessage(nullptr, mcp::kParseError,
                              StrCat("Parse error: ", message.status().message())));
      return true;
    }
    if (message->is_array()) {
      Reply(mcp::ErrorMessage(nullptr, mcp::kInvalidRequest,
                              "JSON-RPC batches are not accepted; send one message"));
      return true;
    }
    const Json* method = message->is_object() ? message->Find("method") : nullptr;
    const Json* id = message->is_object() ? message->Find("id") : nullptr;
    std::string out = line;
    if (method && method->is_string() && method->as_string() == "tools/list" && id) {
      std::lock_guard lock(mu_);
      list_ids_.insert(id->Canonical());
    }
    if (method && method->is_string() && method->as_string() == "tools/call") {
      const Json* params = message->Find("params");
      const Json* name = params && params->is_object() ? params->Find("name") : nullptr;
      const Json* arguments = params && params->is_object() ? params->Find("arguments") : nullptr;
      if (!id || !name || !name->is_string() || (arguments && !arguments->is_object())) {
        Reply(mcp::ErrorMessage(id, mcp::kInvalidParams,
                                "tools/call needs an id, params.name (a string) and "
                                "params.arguments (an object, if given)"));
        return true;
      }
      Json decision = Decide(name->as_string(), arguments ? *arguments : Json::EmptyObject());
      const Json* effective = decision.Find("effective_decision");
      // Not `? as_string() : ""`: that is a temporary std::string, gone before `e` is read.
      std::string_view e = effective && effective->is_string()
                               ? std::string_view(effective->as_string())
                               : std::string_view();
      if (e != "allow" && e != "sanitize") {
        Reply(mcp::RefusalResult(*id, decision));
        return true;
      }
      const Json* clean = decision.Find("sanitized_params");
      if (e == "sanitize" && clean) {
        Json rewritten = *message;
        for (auto& [key, value] : rewritten.mutable_object()) {
          if (key == "params") value.Set("arguments", *clean);
        }
        out = rewritten.Canonical();
      }
    }
    out += '\n';
    return WriteAll(server_in, out);
  }

  // A line from the server: tools/list answers are filtered; everything else passes as is.
  void FromServer(const std::string& line) {
    auto message = common::ParseJson(line, {.max_bytes = o_.max_line_bytes, .max_depth = 128});
    const Json* id = message.ok() && message->is_object() ? message->Find("id") : nullptr;
    bool is_list = false;
    if (id && !message->Find("method")) {
      std::lock_guard lock(mu_);
      is_list = list_ids_.erase(id->Canonical()) > 0;
    }
    if (!is_list) {
      Reply(line);
      return;
    }
    std::vector<std::string> names;
    if (const Json* result = message->Find("result"); result && result->is_object()) {
      if (const Json* tools = result->Find("tools"); tools && tools->is_array()) {
        for (const Json& t : tools->as_array()) {
          const Json* n = t.is_object() ? t.Find("name") : nullptr;
          if (n && n->is_string()) names.push_back(n->as_string());
        }
      }
    }
    std::set<std::string, std::less<>> offered = Offered(names);
    mcp::FilterTools(*message, [&](std::string_view n) { return offered.count(n) > 0; });
    Reply(message->Canonical());
  }

  void Reply(std::string_view line) {
    std::lock_guard lock(out_mu_);
    WriteAll(out_fd_, StrCat(line, "\n"));
  }

 private:
  net::FetchRequest Request(std::string path, std::string body) const {
    net::FetchRequest r;
    r.method = "POST";
    r.url = o_.aegis_url + path;
    r.timeout = o_.timeout;
    r.headers.emplace_back("Content-Type", "application/json");
    if (!o_.token.empty()) r.headers.emplace_back("x-aegis-token", o_.token);
    r.body = std::move(body);
    return r;
  }

  // {"agent":..,"tenant":..,"tool":..} members the calls share.
  std::vector<Json::Member> Who() const {
    std::vector<Json::Member> who;
    if (!o_.agent.empty()) who.push_back({"agent", Json::String(o_.agent)});
    if (!o_.tenant.empty()) who.push_back({"tenant", Json::String(o_.tenant)});
    who.push_back({"tool", Json::String(o_.tool)});
    return who;
  }

  // The decision JSON; when Aegis cannot be asked or refuses the request, a deny saying why.
  Json Decide(const std::string& action, const Json& arguments) {
    std::vector<Json::Member> call = Who();
    call.push_back({"action", Json::String(action)});
    call.push_back({"params", arguments});
    auto body = Json::Object(std::move(call));
    auto res = net::Fetch(Request("/v1/decide", body.ok() ? body->Canonical() : "{}"));
    std::string why;
    if (!res.ok()) {
      why = StrCat("Aegis cannot be reached: ", res.status().message());
    } else {
      auto decision = common::ParseJson(res->body, {.max_bytes = 1 << 20, .max_depth = 64});
      if (decision.ok() && decision->is_object() && decision->Find("effective_decision")) {
        return *std::move(decision);
      }
      const Json* message = decision.ok() && decision->is_object() ? decision->Find("message")
                                                                   : nullptr;
      why = StrCat("Aegis answered ", res->status,
                   message && message->is_string() ? ": " + message->as_string() : "");
    }
    log_(StrCat("aegis: mcp wrap: tools/call ", action, " refused: ", why));
    return *Json::Object({{"decision", Json::String("deny")},
                          {"effective_decision", Json::String("deny")},
                          {"reasons", Json::Array({*Json::Object({{"code", Json::String(
                                                                       "aegis_unavailable")},
                                                                  {"detail", Json::String(why)}})})}});
  }

  std::set<std::string, std::less<>> Offered(const std::vector<std::string>& names) {
    std::set<std::string, std::less<>> out;
    std::vector<Json> actions;
    for (const std::string& n : names) actions.push_back(Json::String(n));
    std::vector<Json::Member> request = Who();
    request.push_back({"actions", Json::Array(std::move(actions))});
    auto body = Json::Object(std::move(request));
    auto res = net::Fetch(Request("/v1/offers", body.ok() ? body->Canonical() : "{}"));
    auto parsed = res.ok() && res->status == 200 ? common::ParseJson(res->body)
                                                  : common::StatusOr<Json>(common::InternalError(""));
    const Json* offered = parsed.ok() && parsed->is_object() ? parsed->Find("offered") : nullptr;
    if (!offered || !offered->is_array()) {
      log_(StrCat("aegis: mcp wrap: tools/list: cannot ask Aegis which tools are allowed (",
                  res.ok() ? StrCat("HTTP ", res->status) : res.status().message(),
                  "); listing none"));
      return out;
    }
    for (const Json& n : offered->as_array()) {
      if (n.is_string()) out.insert(n.as_string());
    }
    return out;
  }

  const StdioGatewayOptions& o_;
  int out_fd_;
  const std::function<void(const std::string&)>& log_;
  std::mutex mu_;
  std::set<std::string> list_ids_;  // canonical JSON of tools/list request ids awaiting answers
  std::mutex out_mu_;
};

}  // namespace

int RunStdioGateway(const StdioGatewayOptions& options, const std::vector<std::string>& command,
                    int in_fd, int out_fd, const std::function<void(const std::string&)>& log) {
  if (command.empty()) return 127;
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) return 127;
  pid_t pid = ::fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    ::dup2(to_child[0], 0);
    ::dup2(from_child[1], 1);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) ::close(fd);
    std::vector<char*> argv;
    for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::string msg = StrCat("aegis: mcp wrap: cannot run ", command[0], ": ",
                             std::strerror(errno), "\n");
    WriteAll(2, msg);
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  // A client or server that goes away must not kill the gateway with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  server_pid = pid;
  struct sigaction pass_on = {};
  pass_on.sa_handler = PassOn;
  pass_on.sa_flags = SA_RESTART;
  sigemptyset(&pass_on.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &pass_on, nullptr);
  Gateway gateway(options, out_fd, log);
  // The server's end (its output closed) also ends reading from the client.
  int server_done[2];
  if (::pipe(server_done) != 0) return 127;
  std::thread from_server([&] {
    LineReader reader(from_child[0], options.max_line_bytes);
    bool too_long = false;
    while (auto line = reader.Next(&too_long)) {
      if (too_long) {
        log(StrCat("aegis: mcp wrap: the server sent a message over ", options.max_line_bytes,
                   " bytes; dropped"));
        continue;
      }
      gateway.FromServer(*line);
    }
    ::close(server_done[1]);
  });
  LineReader reader(in_fd, options.max_line_bytes, server_done[0]);
  bool too_long = false;
  while (auto line = reader.Next(&too_long)) {
    if (!gateway.FromClient(*line, too_long, to_child[1])) break;
  }
  ::close(to_child[1]);  // end of input: the server sees EOF and ends
  // One that does not (its output stays open) is asked to, then made to.
  auto server_ended_within = [&](int ms) {
    pollfd done = {server_done[0], POLLIN, 0};
    int n;
    while ((n = ::poll(&done, 1, ms)) < 0 && errno == EINTR) {
    }
    return n != 0;
  };
  if (!server_ended_within(kServerGraceMs)) {
    log(StrCat("aegis: mcp wrap: the server is still running ", kServerGraceMs,
               " ms after the end of its input; sending SIGTERM"));
    ::kill(pid, SIGTERM);
    if (!server_ended_within(kServerGraceMs)) ::kill(pid, SIGKILL);
  }
  from_server.join();
  ::close(from_child[0]);
  ::close(server_done[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  server_pid = 0;
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::signal(sig, SIG_DFL);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace aegis::proxy
