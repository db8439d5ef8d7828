#include "net/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "common/strings.h"
#include "net/http_server.h"

namespace aegis::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using common::StatusCode;
using common::StrCat;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;
using ::testing::Not;

// An HttpServer on 127.0.0.1 and a free port, answering with `handler`.
std::unique_ptr<HttpServer> StartServer(HttpHandler handler) {
  HttpServerOptions options;
  options.address = "127.0.0.1:0";
  options.threads = 1;
  auto server = std::make_unique<HttpServer>(options, std::move(handler));
  EXPECT_TRUE(server->Start().ok());
  return server;
}

// A port on which nothing listens.
int ClosedPort() {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

TEST(ParseUrlTest, AcceptsAndNormalises) {
  auto u = ParseUrl("HTTPS://Hooks.Example.COM/services/T0/B1/xyz?a=1&b=%2F");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_FALSE(u->host_is_ip);
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/services/T0/B1/xyz?a=1&b=%2F");
  EXPECT_EQ(u->Origin(), "https://hooks.example.com");

  u = ParseUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_FALSE(u->tls);
  EXPECT_TRUE(u->host_is_ip);
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->HostHeader(), "127.0.0.1:8080");

  u = ParseUrl("http://[::1]:9000?q=1");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_TRUE(u->host_is_ip);
  EXPECT_EQ(u->target, "/?q=1");
  EXPECT_EQ(u->Origin(), "http://[::1]:9000");
}

TEST(ParseUrlTest, RefusesAnythingAmbiguous) {
  for (std::string_view bad : {
           "",
           "hooks.example.com/x",
           "ftp://example.com/",
           "http:/example.com/",
           "http://",
           "http:///path",
           "http://user@example.com/",
           "http://user:secret@example.com/",
           "http://example.com /",
           "http://example.com/a b",
           "http://example.com/a\tb",
           "http://example.com/\x01",
           "http://example.com/caf\xc3\xa9",
           "http://example.com\\@evil.com/",
           "http://example.com/#fragment",
           "http://example.com/%zz",
           "http://example.com/%4",
           "http://example.com/<script>",
           "http://example.com/a\"b",
           "http://[::1/",
           "http://[::g]/",
           "http://::1/",
           "http://example.com:0/",
           "http://example.com:65536/",
           "http://example.com:http/",
           "http://example.com:/",
           "http://ex%61mple.com/",
           "http://0x7f.0.0.1/",
           "http://2130706433/",
           "http://a..b/",
       }) {
    auto u = ParseUrl(bad);
    EXPECT_FALSE(u.ok()) << "accepted: " << bad;
    if (!u.ok()) {
      EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(ParseUrlTest, ErrorsNeverQuoteThePath) {
  auto u = ParseUrl("https://hooks.example.com/services/SECRET-TOKEN/<x>");
  ASSERT_FALSE(u.ok());
  EXPECT_THAT(u.status().message(), Not(HasSubstr("SECRET")));
}

TEST(FetchTest, RoundTripsStatusHeadersAndBody) {
  std::mutex mu;
  std::map<std::string, std::string> seen;
  auto server = StartServer([&](const HttpRequest& req, HttpResponse& res) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen["method"] = std::string(req.method_string());
      seen["target"] = std::string(req.target());
      seen["host"] = std::string(req[http::field::host]);
      seen["x-test"] = std::string(req["X-Test"]);
      seen["content-type"] = std::string(req[http::field::content_type]);
      seen["body"] = req.body();
    }
    res.result(http::status::created);
    res.set("X-Reply", "yes");
    res.body() = "echo:" + req.body();
  });
  FetchRequest request;
  request.url = StrCat("http://127.0.0.1:", server->port(), "/hook?x=1");
  request.headers = {{"X-Test", "42"}, {"Content-Type", "application/json"}};
  request.body = R"({"hello":"world"})";
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 201);
  ASSERT_NE(response->Header("x-reply"), nullptr);
  EXPECT_EQ(*response->Header("x-reply"), "yes");
  EXPECT_EQ(response->Header("x-absent"), nullptr);
  EXPECT_EQ(response->body, R"(echo:{"hello":"world"})");

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["target"], "/hook?x=1");
  EXPECT_EQ(seen["host"], StrCat("127.0.0.1:", server->port()));
  EXPECT_EQ(seen["x-test"], "42");
  EXPECT_EQ(seen["content-type"], "application/json");
  EXPECT_EQ(seen["body"], R"({"hello":"world"})");
  server->Stop(std::chrono::milliseconds(100));
}

TEST(FetchTest, ReturnsErrorStatusesAsResponses) {
  auto server = StartServer([](const HttpRequest& req, HttpResponse& res) {
    res.result(req.method() == http::verb::get ? http::status::not_found
                                               : http::status::service_unavailable);
    res.set(http::field::retry_after, "3");
    res.body() = "nope";
  });
  FetchRequest request;
  request.method = "GET";
  request.url = StrCat("http://127.0.0.1:", server->port(), "/missing");
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->body, "nope");

  request.method = "POST";
  response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 503);
  ASSERT_NE(response->Header("Retry-After"), nullptr);
  EXPECT_EQ(*response->Header("Retry-After"), "3");
  server->Stop(std::chrono::milliseconds(100));
}

TEST(FetchTest, CapsTheResponseBody) {
  auto server = StartServer([](const HttpRequest& req, HttpResponse& res) {
    res.body() = std::string(kMaxFetchBodyBytes + (req.target() == "/big" ? 1 : 0), 'x');
  });
  FetchRequest request;
  request.url = StrCat("http://127.0.0.1:", server->port(), "/exact");
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body.size(), kMaxFetchBodyBytes);

  request.url = StrCat("http://127.0.0.1:", server->port(), "/big");
  response = Fetch(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kResourceExhausted);
  server->Stop(std::chrono::milliseconds(100));
}

TEST(FetchTest, TimesOutOnAServerThatNeverAnswers) {
  // A listening socket that never reads: the kernel completes the TCP handshake from the
  // backlog, takes the request into its buffer, and no answer ever comes.
  asio::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  FetchRequest request;
  request.url = StrCat("http://127.0.0.1:", silent.local_endpoint().port(), "/secret-path");
  request.timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto response = Fetch(request);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("timed out"));
  EXPECT_THAT(response.status().message(), Not(HasSubstr("secret-path")));
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2000));
}

TEST(FetchTest, ConnectionRefused) {
  FetchRequest request;
  request.url = StrCat("http://127.0.0.1:", ClosedPort(), "/hooks/SECRET");
  auto response = Fetch(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("connecting to http://127.0.0.1:"));
  EXPECT_THAT(response.status().message(), Not(HasSubstr("SECRET")));
}

TEST(FetchTest, RefusesBadRequests) {
  FetchRequest request;
  request.url = "http://user:pw@127.0.0.1/";
  EXPECT_EQ(Fetch(request).status().code(), StatusCode::kInvalidArgument);

  request.url = "http://127.0.0.1:1/";
  request.headers = {{"X-Evil", "a\r\nX-Injected: 1"}};
  EXPECT_EQ(Fetch(request).status().code(), StatusCode::kInvalidArgument);
  request.headers = {{"Bad Name", "x"}};
  EXPECT_EQ(Fetch(request).status().code(), StatusCode::kInvalidArgument);
  request.headers = {{"Host", "evil.example"}};
  EXPECT_EQ(Fetch(request).status().code(), StatusCode::kInvalidArgument);
  request.headers = {};
  request.method = "PO ST";
  EXPECT_EQ(Fetch(request).status().code(), StatusCode::kInvalidArgument);
}

// A self-signed certificate for the names in `san` ("DNS:localhost"), as PEM.
struct TestCert {
  std::string cert_pem, key_pem;
};

TestCert MakeSelfSigned(const std::string& san) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("aegis test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, san},
                            {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    EXPECT_NE(ext, nullptr);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  EXPECT_GT(X509_sign(cert, key, EVP_sha256()), 0);

  auto to_pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    return pem;
  };
  TestCert out;
  out.cert_pem = to_pem([&](BIO* bio) { PEM_write_bio_X509(bio, cert); });
  out.key_pem = to_pem(
      [&](BIO* bio) { PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

// A one-connection-at-a-time HTTPS server: answers 200 with the request body and the SNI it
// saw (X-SNI), and counts handshakes that failed (the client refused the certificate).
class TlsServer {
 public:
  explicit TlsServer(const TestCert& cert)
      : context_(ssl::context::tls_server),
        acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    context_.use_certificate_chain(asio::buffer(cert.cert_pem));
    context_.use_private_key(asio::buffer(cert.key_pem), ssl::context::pem);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    stop_ = true;
    boost::system::error_code ec;
    tcp::socket wake(ioc_);
    wake.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int handshake_failures() const { return handshake_failures_.load(); }

 private:
  void Serve() {
    while (true) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stop_) return;
      if (ec) continue;
      ssl::stream<tcp::socket> stream(std::move(socket), context_);
      stream.handshake(ssl::stream_base::server, ec);
      if (ec) {
        ++handshake_failures_;
        continue;
      }
      const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
      beast::flat_buffer buffer;
      http::request<http::string_body> request;
      http::read(stream, buffer, request, ec);
      if (ec) continue;
      http::response<http::string_body> response(http::status::ok, 11);
      response.set("X-SNI", sni ? sni : "");
      response.body() = "tls:" + request.body();
      response.prepare_payload();
      http::write(stream, response, ec);
    }
  }

  asio::io_context ioc_;
  ssl::context context_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshake_failures_{0};
  std::thread thread_;
};

class FetchTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = MakeSelfSigned("DNS:localhost");
    dir_ = std::filesystem::temp_directory_path() /
           StrCat("aegis_http_client_test_", static_cast<int>(getpid()));
    std::filesystem::create_directories(dir_);
    ca_file_ = (dir_ / "ca.pem").string();
    std::ofstream(ca_file_) << cert_.cert_pem;
    server_ = std::make_unique<TlsServer>(cert_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  TestCert cert_;
  std::filesystem::path dir_;
  std::string ca_file_;
  std::unique_ptr<TlsServer> server_;
};

TEST_F(FetchTlsTest, VerifiesAgainstTheGivenCaAndSendsSni) {
  FetchRequest request;
  request.url = StrCat("https://localhost:", server_->port(), "/hook");
  request.body = "ping";
  request.ca_file = ca_file_;
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "tls:ping");
  ASSERT_NE(response->Header("X-SNI"), nullptr);
  EXPECT_EQ(*response->Header("X-SNI"), "localhost");
  EXPECT_EQ(server_->handshake_failures(), 0);
}

TEST_F(FetchTlsTest, RefusesACertificateTheSystemDoesNotTrust) {
  FetchRequest request;
  request.url = StrCat("https://localhost:", server_->port(), "/hook");
  auto response = Fetch(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("certificate verification failed"));
  EXPECT_THAT(response.status().message(), HasSubstr("self-signed"));
}

TEST_F(FetchTlsTest, RefusesAHostNameMismatch) {
  // Trusted certificate, but it names "localhost", not the address asked for.
  FetchRequest request;
  request.url = StrCat("https://127.0.0.1:", server_->port(), "/hook");
  request.ca_file = ca_file_;
  auto response = Fetch(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(response.status().message(), HasSubstr("certificate verification failed"));
  EXPECT_THAT(response.status().message(), HasSubstr("mismatch"));
}

TEST_F(FetchTlsTest, RefusesAnUnreadableCaFile) {
  FetchRequest request;
  request.url = StrCat("https://localhost:", server_->port(), "/hook");
  request.ca_file = (dir_ / "missing.pem").string();
  EXPECT_EQ(Fetch(request).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(FetchTlsTest, PlainHttpToATlsPortFailsCleanly) {
  FetchRequest request;
  request.url = StrCat("http://127.0.0.1:", server_->port(), "/hook");
  request.timeout = std::chrono::milliseconds(2000);
  auto response = Fetch(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace aegis::net
