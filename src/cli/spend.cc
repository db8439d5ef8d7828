#include "cli/spend.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <iostream>

#include "common/json.h"
#include "net/http_server.h"

namespace aegis::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

int Spend(const std::vector<std::string>& args) {
  static constexpr const char* kUsage =
      "usage: aegis spend [--server HOST:PORT] [--prefix P] [--tenant T] [--agent A] "
      "[--tool T] [--rule R] [--window day|month|Ns] [--json]\n";
  std::string server = "127.0.0.1:8181", query;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    static constexpr std::string_view kFilters[] = {"--prefix", "--tenant", "--agent", "--tool",
                                                    "--rule",   "--window"};
    bool filter = std::find(std::begin(kFilters), std::end(kFilters), args[i]) != std::end(kFilters);
    if ((args[i] == "--server" || filter) && i + 1 < args.size()) {
      const std::string& v = args[++i];
      if (!filter) {
        server = v;
        continue;
      }
      for (char c : v) {
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' ||
                  c == '_' || c == '.' || c == ':';
        if (!ok) {
          std::cerr << "aegis: spend: " << args[i - 1]
                    << " may hold letters, digits and / - _ . : only\n";
          return 2;
        }
      }
      query += (query.empty() ? "?" : "&") + args[i - 1].substr(2) + "=" + v;
    } else if (args[i] == "--json") {
      json = true;
    } else {
      std::cerr << "aegis: spend: unknown argument " << args[i] << "\n" << kUsage;
      return 2;
    }
  }
  std::string host;
  int port;
  common::Status st = net::ParseHostPort(server, host, port);
  if (!st.ok()) {
    std::cerr << "aegis: spend: " << st.message() << "\n";
    return 2;
  }
  try {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(resolver.resolve(host, std::to_string(port)));
    http::request<http::empty_body> req{http::verb::get, "/v1/spend" + query, 11};
    req.set(http::field::host, host);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    if (res.result_int() != 200) {
      std::cerr << "aegis: spend: " << server << " answered " << res.result_int() << ": "
                << res.body() << "\n";
      return 1;
    }
    if (json) {
      std::cout << res.body() << "\n";
      return 0;
    }
    auto parsed = common::ParseJson(res.body());
    const common::Json* rows = parsed.ok() ? parsed->Find("budgets") : nullptr;
    if (!rows || !rows->is_array()) {
      std::cerr << "aegis: spend: unexpected answer from " << server << "\n";
      return 1;
    }
    std::printf("%-44s %-7s %-20s %12s %12s %12s\n", "budget", "window", "window start",
                "spent USD", "limit USD", "left USD");
    for (const auto& r : rows->as_array()) {
      auto text = [&](const char* k) {
        const common::Json* v = r.Find(k);
        if (!v) return std::string();
        if (v->is_string()) return v->as_string();
        return v->Canonical();
      };
      std::printf("%-44s %-7s %-20s %12s %12s %12s\n", text("key").c_str(),
                  text("window").c_str(), text("window_start").substr(0, 19).c_str(),
                  text("spent_usd").c_str(), text("limit_usd").c_str(),
                  text("remaining_usd").c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "aegis: spend: cannot reach " << server << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace aegis::cli
