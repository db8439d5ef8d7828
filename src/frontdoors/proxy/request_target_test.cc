#include "frontdoors/proxy/request_target.h"

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace aegis::proxy {
namespace {

using namespace std::literals;
using Form = RequestTarget::Form;

// What an accepted request must parse to.
struct Want {
  Form form = Form::kOrigin;
  bool tls = false;
  std::string_view host;
  int port = 0;
  bool explicit_port = false;
  std::string_view path;
  std::string_view query;
  bool has_query = false;
};

struct Case {
  std::string_view name;
  std::string_view method;
  std::string_view target;
  std::vector<std::string_view> hosts;
  std::string_view error;  // empty: accepted, and parses to `want`
  Want want;
};

Case Ok(std::string_view name, std::string_view method, std::string_view target,
        std::vector<std::string_view> hosts, Want want) {
  return Case{name, method, target, std::move(hosts), {}, want};
}

Case Bad(std::string_view name, std::string_view method, std::string_view target,
         std::vector<std::string_view> hosts, std::string_view error) {
  return Case{name, method, target, std::move(hosts), error, {}};
}

const std::string kLongTarget = "/" + std::string(kMaxRequestTargetBytes, 'a');
const std::string kOverlongHost = "http://" + std::string(250, 'a') + ".com/";  // 254 bytes
const std::string kLongLabel = "http://" + std::string(64, 'a') + ".com/";
const std::string kLongPort = "http://good.com:" + std::string(5000, '9') + "/";

const std::vector<Case>& Cases() {
  static const auto* cases = new std::vector<Case>{
      // ---- accepted: origin-form ----
      Ok("origin_simple", "GET", "/v1/charges", {"api.stripe.com"},
         {Form::kOrigin, false, "api.stripe.com", 80, false, "/v1/charges", "", false}),
      Ok("origin_root", "GET", "/", {"a.example"},
         {Form::kOrigin, false, "a.example", 80, false, "/", "", false}),
      Ok("origin_query_kept_raw", "GET", "/s?q=a%20b&x=%2F&y=?z/:@", {"example.com"},
         {Form::kOrigin, false, "example.com", 80, false, "/s", "q=a%20b&x=%2F&y=?z/:@", true}),
      Ok("origin_empty_query", "GET", "/p?", {"example.com"},
         {Form::kOrigin, false, "example.com", 80, false, "/p", "", true}),
      Ok("origin_host_port", "POST", "/x", {"example.com:8080"},
         {Form::kOrigin, false, "example.com", 8080, true, "/x", "", false}),
      Ok("origin_host_upper_case_trailing_dot", "GET", "/", {"EXAMPLE.Com."},
         {Form::kOrigin, false, "example.com", 80, false, "/", "", false}),
      Ok("origin_host_ipv6_canonicalised", "GET", "/", {"[2001:DB8:0:0::1]:8443"},
         {Form::kOrigin, false, "[2001:db8::1]", 8443, true, "/", "", false}),
      Ok("origin_host_ipv4", "GET", "/", {"10.0.0.1"},
         {Form::kOrigin, false, "10.0.0.1", 80, false, "/", "", false}),
      Ok("origin_path_all_pchars", "GET", "/a:b@c/!$&'()*+,;=-._~", {"example.com"},
         {Form::kOrigin, false, "example.com", 80, false, "/a:b@c/!$&'()*+,;=-._~", "", false}),
      Ok("origin_path_escapes_kept", "GET", "/caf%C3%A9/%2e%2E", {"example.com"},
         {Form::kOrigin, false, "example.com", 80, false, "/caf%C3%A9/%2e%2E", "", false}),
      Ok("origin_extension_method", "PROPFIND", "/dav/", {"example.com"},
         {Form::kOrigin, false, "example.com", 80, false, "/dav/", "", false}),

      // ---- accepted: absolute-form ----
      Ok("absolute_http", "GET", "http://example.com/x", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, false, "/x", "", false}),
      Ok("absolute_https_query", "POST", "https://api.stripe.com/v1/charges?limit=3",
         {"api.stripe.com"},
         {Form::kAbsolute, true, "api.stripe.com", 443, false, "/v1/charges", "limit=3", true}),
      Ok("absolute_http_port", "GET", "http://example.com:8080/x", {"example.com:8080"},
         {Form::kAbsolute, false, "example.com", 8080, true, "/x", "", false}),
      Ok("absolute_https_port", "GET", "https://example.com:8443/", {"example.com:8443"},
         {Form::kAbsolute, true, "example.com", 8443, true, "/", "", false}),
      Ok("absolute_empty_path_is_slash", "GET", "http://example.com", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, false, "/", "", false}),
      Ok("absolute_query_without_path", "GET", "http://example.com?x=1", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, false, "/", "x=1", true}),
      Ok("absolute_upper_case_scheme_and_host", "GET", "HTTP://EXAMPLE.COM/A", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, false, "/A", "", false}),
      Ok("absolute_mixed_case_https", "GET", "HttPs://Example.com/", {"example.com"},
         {Form::kAbsolute, true, "example.com", 443, false, "/", "", false}),
      Ok("absolute_trailing_dot", "GET", "http://example.com./", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, false, "/", "", false}),
      Ok("absolute_host_header_upper_trailing_dot", "GET", "http://example.com/", {"EXAMPLE.COM."},
         {Form::kAbsolute, false, "example.com", 80, false, "/", "", false}),
      Ok("absolute_host_header_default_port", "GET", "http://example.com/", {"example.com:80"},
         {Form::kAbsolute, false, "example.com", 80, false, "/", "", false}),
      Ok("absolute_https_host_header_443", "GET", "https://example.com/", {"example.com:443"},
         {Form::kAbsolute, true, "example.com", 443, false, "/", "", false}),
      Ok("absolute_explicit_default_port", "GET", "http://example.com:80/", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, true, "/", "", false}),
      Ok("absolute_ipv6", "GET", "http://[::1]:8080/", {"[::1]:8080"},
         {Form::kAbsolute, false, "[::1]", 8080, true, "/", "", false}),
      Ok("absolute_ipv6_spellings_agree", "GET", "http://[0:0:0:0:0:0:0:1]/", {"[::1]"},
         {Form::kAbsolute, false, "[::1]", 80, false, "/", "", false}),
      Ok("absolute_ipv4", "GET", "http://127.0.0.1:9000/x", {"127.0.0.1:9000"},
         {Form::kAbsolute, false, "127.0.0.1", 9000, true, "/x", "", false}),
      Ok("absolute_idna_label", "GET", "https://xn--bcher-kva.example/", {"xn--bcher-kva.example"},
         {Form::kAbsolute, true, "xn--bcher-kva.example", 443, false, "/", "", false}),
      Ok("absolute_at_in_path_is_path", "GET", "http://example.com/@evil.com", {"example.com"},
         {Form::kAbsolute, false, "example.com", 80, false, "/@evil.com", "", false}),

      // ---- accepted: authority-form ----
      Ok("connect_443", "CONNECT", "api.stripe.com:443", {"api.stripe.com:443"},
         {Form::kAuthority, false, "api.stripe.com", 443, true, "", "", false}),
      Ok("connect_ipv6", "CONNECT", "[2001:db8::1]:443", {"[2001:db8::1]:443"},
         {Form::kAuthority, false, "[2001:db8::1]", 443, true, "", "", false}),
      Ok("connect_normalised", "CONNECT", "API.Stripe.com.:8443", {"api.stripe.com:8443"},
         {Form::kAuthority, false, "api.stripe.com", 8443, true, "", "", false}),

      // ---- Host header fields ----
      Bad("no_host_header", "GET", "/", {}, "no Host header"),
      Bad("two_host_headers", "GET", "/", {"good.com", "good.com"}, "more than one Host"),
      Bad("two_host_headers_differ", "GET", "http://good.com/", {"good.com", "evil.com"},
          "more than one Host"),
      Bad("empty_host_header_origin", "GET", "/", {""}, "Host header is empty"),
      Bad("empty_host_header_absolute", "GET", "http://good.com/", {""}, "Host header is empty"),
      Bad("host_header_disagrees", "GET", "http://evil.com/", {"good.com"}, "another host"),
      Bad("host_header_disagrees_subdomain", "GET", "http://good.com.evil.com/", {"good.com"},
          "another host"),
      Bad("host_header_other_port", "GET", "http://good.com/", {"good.com:8080"}, "another port"),
      Bad("host_header_other_port_https", "GET", "https://good.com/", {"good.com:80"},
          "another port"),
      Bad("host_header_other_explicit_port", "GET", "http://good.com:8080/", {"good.com"},
          "another port"),
      Bad("connect_host_header_disagrees", "CONNECT", "good.com:443", {"evil.com:443"},
          "another host"),
      Bad("connect_host_header_without_port", "CONNECT", "good.com:443", {"good.com"},
          "another port"),
      Bad("host_header_userinfo", "GET", "/", {"user@good.com"},
          "Host header: host contains userinfo"),
      Bad("host_header_path", "GET", "/", {"good.com/evil"}, "Host header: host contains a path"),
      Bad("host_header_space", "GET", "/", {"good.com evil.com"},
          "Host header: host contains a control"),
      Bad("host_header_crlf", "GET", "/", {"good.com\r\nX-Injected: 1"},
          "Host header: host contains a control"),
      Bad("host_header_percent", "GET", "/", {"good%2ecom"}, "Host header: host contains percent"),
      Bad("host_header_numeric", "GET", "/", {"0x7f.1"}, "Host header: host ends in a number"),
      Bad("host_header_bad_port", "GET", "/", {"good.com:99999"}, "Host header: invalid port"),
      Bad("host_header_empty_port", "GET", "/", {"good.com:"}, "Host header: empty port"),
      Bad("host_header_look_alike", "GET", "/", {"xn--pypal-4ve.com"},
          "Host header: host has an IDNA label mixing"),
      Bad("host_header_ipv4_mapped", "GET", "/", {"[::ffff:127.0.0.1]"},
          "Host header: IPv6 literal embeds an IPv4"),

      // ---- forms and methods ----
      Bad("connect_origin_form", "CONNECT", "/", {"good.com:443"},
          "CONNECT needs an authority-form"),
      Bad("connect_absolute_form", "CONNECT", "http://good.com:443/", {"good.com:443"},
          "CONNECT needs an authority-form"),
      Bad("connect_without_port", "CONNECT", "good.com", {"good.com"}, "needs a port"),
      Bad("connect_empty_port", "CONNECT", "good.com:", {"good.com"}, "empty port"),
      Bad("connect_port_zero", "CONNECT", "good.com:0", {"good.com"}, "invalid port"),
      Bad("connect_userinfo", "CONNECT", "user@good.com:443", {"good.com:443"}, "userinfo"),
      Bad("connect_ipv4_mapped", "CONNECT", "[::ffff:10.0.0.1]:443", {"[::ffff:10.0.0.1]:443"},
          "embeds an IPv4"),
      Bad("authority_form_with_get", "GET", "good.com:443", {"good.com:443"}, "only for CONNECT"),
      Bad("authority_form_lower_case_connect", "connect", "good.com:443", {"good.com:443"},
          "only for CONNECT"),
      Bad("asterisk_form", "OPTIONS", "*", {"good.com"}, "asterisk-form"),
      Bad("method_empty", "", "/", {"good.com"}, "method is not an HTTP token"),
      Bad("method_with_space", "G ET", "/", {"good.com"}, "method is not an HTTP token"),
      Bad("method_with_slash", "GET/", "/", {"good.com"}, "method is not an HTTP token"),
      Bad("target_empty", "GET", "", {"good.com"}, "request-target is empty"),
      Bad("target_too_long", "GET", kLongTarget, {"good.com"}, "longer than 8192"),
      Bad("relative_reference", "GET", "path/x", {"good.com"}, "must be origin-form"),
      Bad("bare_host", "GET", "good.com", {"good.com"}, "must be origin-form"),
      Bad("origin_double_slash", "GET", "//evil.com/path", {"good.com"},
          "must not start with '//'"),
      Bad("scheme_ftp", "GET", "ftp://good.com/", {"good.com"}, "scheme must be http or https"),
      Bad("scheme_javascript", "GET", "javascript:alert(1)", {"good.com"},
          "scheme must be http or https"),
      Bad("scheme_https_lookalike", "GET", "httpx://good.com/", {"good.com"},
          "scheme must be http or https"),
      Bad("scheme_without_slashes", "GET", "http:good.com/", {"good.com"}, "needs \"//\""),
      Bad("scheme_one_slash", "GET", "http:/good.com/", {"good.com"}, "needs \"//\""),
      Bad("empty_authority", "GET", "http:///path", {"good.com"}, "empty host"),
      Bad("empty_authority_query", "GET", "http://?x", {"good.com"}, "empty host"),

      // ---- userinfo and parser-differential tricks ----
      Bad("userinfo", "GET", "http://evil.com@good.com/", {"good.com"}, "userinfo"),
      Bad("userinfo_user_password", "GET", "http://user:pass@good.com/", {"good.com"}, "userinfo"),
      Bad("userinfo_empty", "GET", "http://@good.com/", {"good.com"}, "userinfo"),
      Bad("userinfo_after_backslash", "GET", "http://good.com\\@evil.com/", {"good.com"},
          "backslash"),
      Bad("userinfo_after_encoded_slash", "GET", "http://good.com%2f@evil.com", {"good.com"},
          "userinfo"),
      Bad("userinfo_encoded_at", "GET", "http://evil.com%40good.com/", {"good.com"}, "userinfo"),
      Bad("fragment_hides_authority", "GET", "http://good.com#@evil.com/", {"good.com"},
          "fragment"),
      Bad("fragment_origin", "GET", "/path#frag", {"good.com"}, "fragment"),
      Bad("backslash_in_path", "GET", "/a\\b", {"good.com"}, "backslash"),
      Bad("backslash_authority", "GET", "http:\\\\evil.com/", {"good.com"}, "backslash"),
      Bad("percent_encoded_host", "GET", "http://good%2ecom/", {"good.com"}, "percent-encoding"),
      Bad("nul_escape_in_host", "GET", "http://good.com%00.evil.com/", {"good.com"},
          "percent-encoding"),
      Bad("ipv6_zone_id", "GET", "http://[fe80::1%25eth0]/", {"good.com"}, "percent-encoding"),
      Bad("nul_in_host", "GET", "http://good.com\0.evil.com/"sv, {"good.com"}, "control byte"),
      Bad("nul_in_path", "GET", "/a\0b"sv, {"good.com"}, "control byte"),
      Bad("tab_in_path", "GET", "/a\tb", {"good.com"}, "control byte"),
      Bad("cr_in_path", "GET", "/a\rb", {"good.com"}, "control byte"),
      Bad("lf_in_path", "GET", "/a\nb", {"good.com"}, "control byte"),
      Bad("tab_in_host", "GET", "http://good.com\t.evil.com/", {"good.com"}, "control byte"),
      Bad("request_splitting", "GET", "/ HTTP/1.1\r\nHost: evil.com\r\n\r\nGET /", {"good.com"},
          "control byte"),
      Bad("space_in_path", "GET", "/a b", {"good.com"}, "control byte, space"),
      Bad("del_in_path", "GET", "/a\x7f", {"good.com"}, "DEL"),
      Bad("non_ascii_path", "GET", "/caf\xc3\xa9", {"good.com"}, "non-ASCII"),
      Bad("non_ascii_host", "GET",
          "http://b\xc3\xbc"
          "cher.de/",
          {"good.com"}, "non-ASCII"),

      // ---- IP literals in odd encodings ----
      Bad("ipv4_short_form", "GET", "http://127.1/", {"127.1"}, "ends in a number"),
      Bad("ipv4_integer", "GET", "http://2130706433/", {"good.com"}, "ends in a number"),
      Bad("ipv4_hex_integer", "GET", "http://0x7f000001/", {"good.com"}, "ends in a number"),
      Bad("ipv4_octal_integer", "GET", "http://017700000001/", {"good.com"}, "ends in a number"),
      Bad("ipv4_octal_dotted", "GET", "http://0177.0.0.1/", {"good.com"}, "ends in a number"),
      Bad("ipv4_hex_dotted", "GET", "http://0x7f.0.0.1/", {"good.com"}, "ends in a number"),
      Bad("ipv4_leading_zero", "GET", "http://127.0.0.01/", {"good.com"}, "ends in a number"),
      Bad("ipv4_bare_0x", "GET", "http://0x/", {"good.com"}, "ends in a number"),
      Bad("ipv4_five_parts", "GET", "http://1.2.3.4.5/", {"good.com"}, "ends in a number"),
      Bad("numeric_last_label", "GET", "http://good.123/", {"good.123"}, "ends in a number"),
      Bad("ipv6_mapped_hex", "GET", "http://[::ffff:7f00:1]/", {"[::ffff:7f00:1]"},
          "embeds an IPv4"),
      Bad("ipv6_mapped_dotted", "GET", "http://[::ffff:127.0.0.1]/", {"[::ffff:127.0.0.1]"},
          "embeds an IPv4"),
      Bad("ipv6_compatible", "GET", "http://[::169.254.169.254]/", {"good.com"}, "embeds an IPv4"),
      Bad("ipv6_nat64", "GET", "http://[64:ff9b::a9fe:a9fe]/", {"good.com"}, "embeds an IPv4"),
      Bad("ipv6_unbracketed", "GET", "http://::1/", {"good.com"}, "must be in brackets"),
      Bad("ipv6_two_gaps", "GET", "http://[1::2::3]/", {"good.com"}, "invalid IPv6"),
      Bad("ipv6_unterminated", "GET", "http://[::1/", {"good.com"}, "unterminated IPv6"),
      Bad("ipv6_junk_after", "GET", "http://[::1]evil.com/", {"good.com"}, "junk after IPv6"),
      Bad("ipv6_empty_port", "GET", "http://[::1]:/", {"[::1]"}, "empty port"),

      // ---- ports ----
      Bad("port_twice", "GET", "http://good.com:80:80/", {"good.com"}, "more than one ':'"),
      Bad("port_too_big", "GET", "http://good.com:65536/", {"good.com"}, "invalid port"),
      Bad("port_zero", "GET", "http://good.com:0/", {"good.com"}, "invalid port"),
      Bad("port_plus", "GET", "http://good.com:+80/", {"good.com"}, "invalid port"),
      Bad("port_minus", "GET", "http://good.com:-80/", {"good.com"}, "invalid port"),
      Bad("port_letters", "GET", "http://good.com:8o/", {"good.com"}, "invalid port"),
      Bad("port_empty", "GET", "http://good.com:/", {"good.com"}, "empty port"),
      Bad("port_overflow", "GET", "http://good.com:99999999999999999999/", {"good.com"},
          "invalid port"),
      Bad("port_very_long", "GET", kLongPort, {"good.com"}, "invalid port"),
      Bad("empty_host_with_port", "GET", "http://:80/", {"good.com"}, "empty host"),

      // ---- host names ----
      Bad("host_overlong", "GET", kOverlongHost, {"good.com"}, "longer than 253"),
      Bad("host_label_64", "GET", kLongLabel, {"good.com"}, "label longer than 63"),
      Bad("host_empty_label", "GET", "http://good..com/", {"good.com"}, "empty label"),
      Bad("host_only_dot", "GET", "http://./", {"good.com"}, "empty host"),
      Bad("host_wildcard", "GET", "http://*.good.com/", {"good.com"}, "host contains '*'"),
      Bad("idna_mixed_script", "GET", "http://xn--pypal-4ve.com/", {"xn--pypal-4ve.com"},
          "mixing Latin"),
      Bad("idna_whole_script_cyrillic", "GET", "http://xn--80ak6aa92e.com/", {"xn--80ak6aa92e.com"},
          "look like Latin"),
      Bad("idna_whole_script_greek", "GET", "https://xn--mxa1ag.com/", {"xn--mxa1ag.com"},
          "look like Latin"),
      Bad("idna_disguised_ascii", "GET", "http://xn--abc-.com/", {"good.com"}, "plain ASCII"),
      Bad("idna_zero_width", "GET", "http://xn--paypal-df0c.com/", {"good.com"}, "invisible"),
      Bad("idna_invalid_punycode", "GET", "http://xn--.com/", {"good.com"}, "not valid Punycode"),

      // ---- path and query ----
      Bad("pct_lone", "GET", "/a%", {"good.com"}, "'%' not followed by two hex digits"),
      Bad("pct_non_hex", "GET", "/a%g1", {"good.com"}, "'%' not followed by two hex digits"),
      Bad("pct_one_digit", "GET", "/a%1", {"good.com"}, "'%' not followed by two hex digits"),
      Bad("pct_in_query", "GET", "/a?x=%zz", {"good.com"}, "'%' not followed by two hex digits"),
      Bad("pct_absolute_path", "GET", "http://good.com/%", {"good.com"},
          "'%' not followed by two hex digits"),
      Bad("char_brackets_in_path", "GET", "/a[0]", {"good.com"}, "contains '['"),
      Bad("char_quote_in_query", "GET", "/a?x=\"y\"", {"good.com"}, "contains '\"'"),
      Bad("char_pipe", "GET", "/a|b", {"good.com"}, "contains '|'"),
      Bad("char_angle", "GET", "/<script>", {"good.com"}, "contains '<'"),
      Bad("char_brace_in_absolute", "GET", "http://good.com/{x}", {"good.com"}, "contains '{'"),
      Bad("char_caret", "GET", "/a^b", {"good.com"}, "contains '^'"),
      Bad("char_backtick", "GET", "/a`b", {"good.com"}, "contains '`'"),
  };
  return *cases;
}

class RequestTargetTest : public testing::TestWithParam<Case> {};

TEST_P(RequestTargetTest, Parses) {
  const Case& c = GetParam();
  auto got = ParseRequestTarget(c.method, c.target, c.hosts);
  if (!c.error.empty()) {
    ASSERT_FALSE(got.ok()) << "accepted; host " << got->host << " path " << got->path;
    EXPECT_EQ(got.status().code(), common::StatusCode::kInvalidArgument);
    const std::string& message = got.status().message();
    EXPECT_NE(message.find(c.error), std::string::npos) << message;
    // A reason a client can read: short, printable, never the input echoed back.
    EXPECT_LE(message.size(), 120u) << message;
    for (char ch : message) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << message;
    return;
  }
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->form, c.want.form);
  EXPECT_EQ(got->tls, c.want.tls);
  EXPECT_EQ(got->host, c.want.host);
  EXPECT_EQ(got->port, c.want.port);
  EXPECT_EQ(got->explicit_port, c.want.explicit_port);
  EXPECT_EQ(got->path, c.want.path);
  EXPECT_EQ(got->query, c.want.query);
  EXPECT_EQ(got->has_query, c.want.has_query);
}

INSTANTIATE_TEST_SUITE_P(Table, RequestTargetTest, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

TEST(RequestTargetTableTest, IsLargeAndNamesAreUnique) {
  EXPECT_GE(Cases().size(), 80u);
  std::vector<std::string_view> names;
  for (const Case& c : Cases()) {
    for (std::string_view n : names) EXPECT_NE(n, c.name);
    names.push_back(c.name);
  }
}

TEST(RequestTargetErrorTest, DoesNotEchoALongPort) {
  auto got = ParseRequestTarget("GET", kLongPort, {"good.com"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message().find("99999999999"), std::string::npos) << got.status();
}

}  // namespace
}  // namespace aegis::proxy
