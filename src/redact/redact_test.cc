#include "redact/redact.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "redact/detectors.h"

namespace aegis::redact {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::string kKey(32, 'k');

Redactor Make(std::vector<std::string> detectors, Style style = Style::kMask,
              std::string key = kKey) {
  auto r = Redactor::Create(std::move(detectors), style, std::move(key));
  EXPECT_TRUE(r.ok()) << r.status();
  return *std::move(r);
}

const Redactor& All() {
  static const Redactor* r = new Redactor(Make({"all"}));
  return *r;
}

// The text with findings masked, using every detector.
std::string Redacted(std::string text, const Redactor& r = All()) {
  r.RedactText(text);
  return text;
}

// The single finding's text and detector, or "" if the scan does not find exactly one.
std::string Only(std::string_view text, const Redactor& r = All()) {
  auto f = r.Scan(text);
  if (f.size() != 1) return "";
  return std::string(DetectorName(f[0].detector)) + ":" +
         std::string(text.substr(f[0].begin, f[0].end - f[0].begin));
}

common::Json Parse(std::string_view text) {
  auto j = common::ParseJson(text);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : common::Json();
}

// ---- Names, construction -----------------------------------------------------------------------

TEST(RedactorTest, DetectorNamesRoundTrip) {
  for (int i = 0; i < kDetectorCount; ++i) {
    auto d = static_cast<Detector>(i);
    EXPECT_EQ(ParseDetector(DetectorName(d)), d);
  }
  EXPECT_EQ(ParseDetector("all"), std::nullopt);
  EXPECT_EQ(ParseDetector("SSN"), std::nullopt);
  EXPECT_EQ(ParseStyle("partial"), Style::kPartial);
  EXPECT_EQ(StyleName(Style::kHash), "hash");
  EXPECT_EQ(ParseStyle("blur"), std::nullopt);
}

TEST(RedactorTest, CreateRefusesUnknownDetectorsAndShortKeys) {
  auto bad = Redactor::Create({"ssn", "passport"}, Style::kMask, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("passport"));
  EXPECT_FALSE(Redactor::Create({"ssn"}, Style::kHash, std::string(31, 'k')).ok());
  EXPECT_TRUE(Redactor::Create({"ssn"}, Style::kHash, std::string(32, 'k')).ok());
  EXPECT_TRUE(Redactor::Create({"ssn"}, Style::kMask, "").ok());
}

TEST(RedactorTest, AllExpandsAndEmptyMeansNone) {
  EXPECT_EQ(Make({"all"}).detectors().size(), static_cast<size_t>(kDetectorCount));
  EXPECT_THAT(Make({"email", "ssn", "ssn"}).detectors(),
              ElementsAre(Detector::kSsn, Detector::kEmail));
  Redactor none = Make({});
  EXPECT_THAT(none.Scan("SSN 123-45-6789 a@example.com"), IsEmpty());
  std::string text = "123-45-6789";
  EXPECT_EQ(none.RedactText(text), 0u);
}

TEST(RedactorTest, OnlyEnabledDetectorsFind) {
  Redactor ssn = Make({"ssn"});
  EXPECT_EQ(Redacted("123-45-6789 a@example.com", ssn), "[REDACTED:ssn] a@example.com");
  Redactor email = Make({"email"});
  EXPECT_EQ(Redacted("123-45-6789 a@example.com", email), "123-45-6789 [REDACTED:email]");
}

// ---- SSN ----------------------------------------------------------------------------------------

TEST(SsnTest, Positives) {
  EXPECT_EQ(Only("123-45-6789"), "ssn:123-45-6789");
  EXPECT_EQ(Only("patient 078-12-3456 admitted"), "ssn:078-12-3456");
  EXPECT_EQ(Only("SSN: 123456789"), "ssn:123456789");
  EXPECT_EQ(Only("social security number 123 45 6789"), "ssn:123 45 6789");
  EXPECT_EQ(Only("patientSSN=123456789"), "ssn:123456789");
}

TEST(SsnTest, LookAlikesAreRefused) {
  EXPECT_EQ(Only("000-12-3456"), "");  // area 000
  EXPECT_EQ(Only("666-12-3456"), "");  // area 666
  EXPECT_EQ(Only("900-12-3456"), "");  // area 9xx
  EXPECT_EQ(Only("987-65-4321"), "");
  EXPECT_EQ(Only("123-00-4567"), "");              // group 00
  EXPECT_EQ(Only("123-45-0000"), "");              // serial 0000
  EXPECT_EQ(Only("order 123456789 shipped"), "");  // nine digits, no context
  EXPECT_EQ(Only("123 45 6789"), "");              // spaced, no context
  EXPECT_EQ(Only("ref 1-123-45-6789"), "");        // part of a longer number
  EXPECT_EQ(Only("classname 123456789"), "");      // "ssn" inside another word
}

// ---- Dates of birth -----------------------------------------------------------------------------

TEST(DobTest, PositivesNeedContext) {
  EXPECT_EQ(Only("DOB: 01/02/1980"), "dob:01/02/1980");
  EXPECT_EQ(Only("date of birth 1980-01-02"), "dob:1980-01-02");
  EXPECT_EQ(Only("She was born on March 3, 1980."), "dob:March 3, 1980");
  EXPECT_EQ(Only("Birthdate: 3rd of March 1980"), "dob:3rd of March 1980");
  EXPECT_EQ(Only("D.O.B. 31.12.1979"), "dob:31.12.1979");
  EXPECT_EQ(Only("birth_date=1980-01-02T00:00:00Z"), "dob:1980-01-02T00:00:00Z");
  EXPECT_EQ(Only("dateOfBirth 19800102"), "dob:19800102");
  EXPECT_EQ(Only("dob 2/29/1980"), "dob:2/29/1980");  // a leap year
  EXPECT_EQ(Only("dob 29/2/80"), "dob:29/2/80");
}

TEST(DobTest, DatesWithoutBirthContextAreLeftAlone) {
  EXPECT_EQ(Redacted("Admitted 2024-03-01, discharged 03/05/2024."),
            "Admitted 2024-03-01, discharged 03/05/2024.");
  EXPECT_EQ(Only("meeting on March 3, 1980"), "");
  EXPECT_EQ(Only("adobe 1980-01-02"), "");     // "dob" inside a word
  EXPECT_EQ(Only("stubborn 1980-01-02"), "");  // "born" inside a word
  // Context on another line does not count.
  EXPECT_EQ(Only("DOB: see below\n1980-01-02"), "");
}

TEST(DobTest, ImpossibleDatesAreRefused) {
  EXPECT_EQ(Only("DOB: 1980-02-30"), "");
  EXPECT_EQ(Only("DOB: 13/13/1980"), "");
  EXPECT_EQ(Only("DOB: 2/29/1981"), "");
  EXPECT_EQ(Only("DOB: 1700-01-01"), "");
}

// ---- Email --------------------------------------------------------------------------------------

TEST(EmailTest, Positives) {
  EXPECT_EQ(Only("john.doe+tag@example.co.uk"), "email:john.doe+tag@example.co.uk");
  EXPECT_EQ(Only("(mail: a_b%c@sub.example.org)"), "email:a_b%c@sub.example.org");
  EXPECT_EQ(Only("write to John@Example.COM."), "email:John@Example.COM");
  EXPECT_EQ(Only("<x@xn--bcher-kva.example>"), "email:x@xn--bcher-kva.example");
  EXPECT_EQ(Only("...dots@example.com"), "email:dots@example.com");
}

TEST(EmailTest, LookAlikesAreRefused) {
  EXPECT_EQ(Only("john@localhost"), "");
  EXPECT_EQ(Only("a@b.c"), "");
  EXPECT_EQ(Only("john..doe@example.com"), "");
  EXPECT_EQ(Only("@example.com"), "");
  EXPECT_EQ(Only("user@-bad.com"), "");
  EXPECT_EQ(Only("user@example.123"), "");
  EXPECT_EQ(Only(std::string(65, 'a') + "@example.com"), "");  // local part over 64
}

// ---- Phone --------------------------------------------------------------------------------------

TEST(PhoneTest, Positives) {
  EXPECT_EQ(Only("call +1 415 555 2671 now"), "phone:+1 415 555 2671");
  EXPECT_EQ(Only("+44 20 7946 0958"), "phone:+44 20 7946 0958");
  EXPECT_EQ(Only("+1 (415) 555-2671"), "phone:+1 (415) 555-2671");
  EXPECT_EQ(Only("+4930901820"), "phone:+4930901820");
  EXPECT_EQ(Only("(415) 555-2671"), "phone:(415) 555-2671");
  EXPECT_EQ(Only("1 (415) 555-2671"), "phone:1 (415) 555-2671");
  EXPECT_EQ(Only("415-555-2671"), "phone:415-555-2671");
  EXPECT_EQ(Only("415.555.2671"), "phone:415.555.2671");
  EXPECT_EQ(Only("1-800-555-0199"), "phone:1-800-555-0199");
  EXPECT_EQ(Only("020 7946 0958"), "phone:020 7946 0958");
  EXPECT_EQ(Only("06 12 34 56 78"), "phone:06 12 34 56 78");
  EXPECT_EQ(Only("030-1234-5678"), "phone:030-1234-5678");
}

TEST(PhoneTest, PlainNumbersAndDatesAreRefused) {
  EXPECT_EQ(Only("4155552671"), "");    // a plain long number
  EXPECT_EQ(Only("123-456-7890"), "");  // area code cannot start with 1
  EXPECT_EQ(Only("415-155-2671"), "");  // nor the exchange
  EXPECT_EQ(Only("415 555 2671"), "");  // spaces only: a list of numbers
  EXPECT_EQ(Only("2024-01-15"), "");
  EXPECT_EQ(Only("01.02.2024"), "");
  EXPECT_EQ(Only("10:30:45"), "");
  EXPECT_EQ(Only("+12 3"), "");
  EXPECT_EQ(Only("3+4155552671"), "");  // arithmetic, not a number
  EXPECT_EQ(Only("415-555-2671-9999"), "");
  EXPECT_EQ(Only("010.001.002.003"), "ip:010.001.002.003");
}

// ---- Cards --------------------------------------------------------------------------------------

TEST(CardTest, Positives) {
  EXPECT_EQ(Only("4111 1111 1111 1111"), "card:4111 1111 1111 1111");
  EXPECT_EQ(Only("4111-1111-1111-1111"), "card:4111-1111-1111-1111");
  EXPECT_EQ(Only("card=4111111111111111;"), "card:4111111111111111");
  EXPECT_EQ(Only("5555555555554444"), "card:5555555555554444");
  EXPECT_EQ(Only("2223003122003222"), "card:2223003122003222");  // Mastercard 2-series
  EXPECT_EQ(Only("378282246310005"), "card:378282246310005");    // Amex
  EXPECT_EQ(Only("3782 822463 10005"), "card:3782 822463 10005");
  EXPECT_EQ(Only("6011111111111117"), "card:6011111111111117");
  EXPECT_EQ(Only("3530111333300000"), "card:3530111333300000");  // JCB
  // A following group is not part of the card.
  EXPECT_EQ(Only("4111 1111 1111 1111 2024"), "card:4111 1111 1111 1111");
}

TEST(CardTest, LookAlikesAreRefused) {
  EXPECT_EQ(Only("4111 1111 1111 1112"), "");  // Luhn
  EXPECT_EQ(Only("4111111111111121"), "");     // Luhn
  EXPECT_EQ(Only("1234567812345670"), "");     // Luhn-valid, no network starts with 1
  EXPECT_EQ(Only("1709287353000"), "");        // a millisecond timestamp
  EXPECT_EQ(Only("5105105105105100"), "card:5105105105105100");
  EXPECT_EQ(Only("51051051051051"), "");       // Mastercard is 16 digits
  EXPECT_EQ(Only("4111 1111-1111 1111"), "");  // mixed separators
  EXPECT_EQ(Only("x4111111111111111"), "");    // inside a word
}

// ---- IBAN ---------------------------------------------------------------------------------------

TEST(IbanTest, Positives) {
  EXPECT_EQ(Only("DE89 3704 0044 0532 0130 00"), "iban:DE89 3704 0044 0532 0130 00");
  EXPECT_EQ(Only("IBAN GB82WEST12345698765432."), "iban:GB82WEST12345698765432");
  EXPECT_EQ(Only("FR14 2004 1010 0505 0001 3M02 606"), "iban:FR14 2004 1010 0505 0001 3M02 606");
  EXPECT_EQ(Only("NO9386011117947"), "iban:NO9386011117947");
  // A number after the IBAN is not part of it.
  EXPECT_EQ(Only("ES91 2100 0418 4502 0005 1332 2024"), "iban:ES91 2100 0418 4502 0005 1332");
}

TEST(IbanTest, LookAlikesAreRefused) {
  EXPECT_EQ(Only("DE89 3704 0044 0532 0130 01"), "");  // mod-97
  EXPECT_EQ(Only("GB82WEST12345698765433"), "");       // mod-97
  EXPECT_EQ(Only("XX89 3704 0044 0532 0130 00"), "");  // no such country
  EXPECT_EQ(Only("GB82 WEST 1234 5698 7654 3"), "");   // too short for GB
  EXPECT_EQ(Only("DE89370400440532013000X"), "");      // runs on
}

TEST(ChecksumTest, LuhnAndMod97) {
  EXPECT_TRUE(internal::LuhnValid("79927398713"));
  EXPECT_FALSE(internal::LuhnValid("79927398710"));
  EXPECT_FALSE(internal::LuhnValid(""));
  EXPECT_TRUE(internal::IbanChecksumValid("GB82WEST12345698765432"));
  EXPECT_FALSE(internal::IbanChecksumValid("GB82WEST12345698765423"));
  EXPECT_FALSE(internal::IbanChecksumValid("GB82 WEST"));
}

// ---- IP addresses -------------------------------------------------------------------------------

TEST(IpTest, Positives) {
  EXPECT_EQ(Only("from 10.0.0.1"), "ip:10.0.0.1");
  EXPECT_EQ(Only("192.168.1.20:8080"), "ip:192.168.1.20");
  EXPECT_EQ(Only("255.255.255.255."), "ip:255.255.255.255");
  EXPECT_EQ(Only("2001:db8::1"), "ip:2001:db8::1");
  EXPECT_EQ(Only("[::1]:80"), "ip:::1");
  EXPECT_EQ(Only("fe80::1ff:fe23:4567:890a"), "ip:fe80::1ff:fe23:4567:890a");
  EXPECT_EQ(Only("::ffff:192.0.2.128"), "ip:::ffff:192.0.2.128");
  EXPECT_EQ(Only("2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
            "ip:2001:0db8:85a3:0000:0000:8a2e:0370:7334");
  // Decided: a bare dotted quad is an address even if it might be a version (docs/redaction.md).
  EXPECT_EQ(Only("1.2.3.4"), "ip:1.2.3.4");
}

TEST(IpTest, VersionsAndLookAlikesAreRefused) {
  EXPECT_EQ(Only("256.1.1.1"), "");
  EXPECT_EQ(Only("1.2.3.4.5"), "");
  EXPECT_EQ(Only("v1.2.3.4"), "");
  EXPECT_EQ(Only("version 1.2.3.4"), "");
  EXPECT_EQ(Only("Release: 10.0.19041.1"), "");
  EXPECT_EQ(Only("build=4.2.1.7"), "");
  EXPECT_EQ(Only("1.2.3"), "");
  EXPECT_EQ(Only("std::string"), "");
  EXPECT_EQ(Only("12:30:45"), "");
  EXPECT_EQ(Only("00:1A:2B:3C:4D:5E"), "");  // a MAC address
  EXPECT_EQ(Only("dead::beef"), "");         // no digit: taken for a word
  EXPECT_EQ(Only("::"), "");
}

// ---- Secrets and JWTs ---------------------------------------------------------------------------

const std::string kJwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

TEST(SecretTest, Positives) {
  EXPECT_EQ(Only("aws_access_key_id = AKIAIOSFODNN7EXAMPLE"), "secret:AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(Only("ASIAY34FZKBOKMUTVV7A"), "secret:ASIAY34FZKBOKMUTVV7A");
  std::string ghp = "ghp_" + std::string(36, 'a');
  EXPECT_EQ(Only("token " + ghp), "secret:" + ghp);
  std::string ghs = "ghs_" + std::string(30, 'Z') + "012345";
  EXPECT_EQ(Only(ghs), "secret:" + ghs);
  std::string pat = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(Only(pat), "secret:" + pat);
  EXPECT_EQ(Only("xoxb-123456789012-abcdefABCDEF"), "secret:xoxb-123456789012-abcdefABCDEF");
  EXPECT_EQ(Only("sk_live_4eC39HqLyjWDarjtT1zdp7dc"), "secret:sk_live_4eC39HqLyjWDarjtT1zdp7dc");
  EXPECT_EQ(Only("rk_live_51H8abcdefghijklmnop"), "secret:rk_live_51H8abcdefghijklmnop");
  std::string google = "AIzaSyA-" + std::string(31, 'x');
  EXPECT_EQ(Only("key=" + google + "&q=1"), "secret:" + google);
  EXPECT_EQ(Only("Authorization: Bearer abcDEF0123456789xyz=="), "secret:abcDEF0123456789xyz==");
}

TEST(SecretTest, PemBlockIsRedactedWhole) {
  std::string pem =
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd+/==\n"
      "-----END RSA PRIVATE KEY-----";
  EXPECT_EQ(Redacted("key:\n" + pem + "\ntrailer"), "key:\n[REDACTED:secret]\ntrailer");
  EXPECT_EQ(Redacted("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n\nnext"),
            "[REDACTED:secret]\n\nnext");
  EXPECT_EQ(Only("-----BEGIN PUBLIC KEY-----"), "");
}

TEST(SecretTest, PemBodiesInOtherShapes) {
  // A JSON-escaped key in raw text, a key pasted on one line, and prose after a key with no END.
  EXPECT_EQ(
      Redacted(
          R"({"k":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n"})"),
      R"({"k":"[REDACTED:secret]\n"})");
  std::string line(64, 'Q');
  EXPECT_EQ(Redacted("-----BEGIN PRIVATE KEY----- " + line + " " + line +
                     "== -----END PRIVATE KEY----- done"),
            "[REDACTED:secret] done");
  EXPECT_EQ(Redacted("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkq\n"
                     "see the attached note."),
            "[REDACTED:secret]\nsee the attached note.");
}

TEST(SecretTest, TokensRunToTheirEnd) {
  std::string ghp = "ghp_" + std::string(40, 'b');  // longer than the classic 36
  EXPECT_EQ(Only("x " + ghp + " y"), "secret:" + ghp);
  EXPECT_EQ(Only("ghp_" + std::string(36, 'b') + "_x"), "");  // runs on into a word
  EXPECT_EQ(Only("use Bearer abcDEF0123456789xyz."), "secret:abcDEF0123456789xyz");
  std::string jwe = kJwt + ".c2lnbmF0dXJl.dGFn";
  EXPECT_EQ(Only(jwe + " end"), "jwt:" + jwe);
}

TEST(SecretTest, LookAlikesAreRefused) {
  EXPECT_EQ(Only("AKIASHORT123"), "");
  EXPECT_EQ(Only("XAKIAIOSFODNN7EXAMPLE"), "");
  EXPECT_EQ(Only("the bearer authentication scheme"), "");
  EXPECT_EQ(Only("Bearer tokenwithoutanydigits"), "");
  EXPECT_EQ(Only("Bearer abc123"), "");  // too short
  EXPECT_EQ(Only("ghp_short"), "");
  EXPECT_EQ(Only("sk_live_short"), "");
  EXPECT_EQ(Only("pk_live_4eC39HqLyjWDarjtT1zdp7dc"), "");  // publishable, not secret
  EXPECT_EQ(Only("AIza" + std::string(36, 'x')), "");       // too long
}

TEST(JwtTest, PositivesAndBearerJwts) {
  EXPECT_EQ(Only("token=" + kJwt), "jwt:" + kJwt);
  EXPECT_EQ(Only("Authorization: Bearer " + kJwt), "jwt:" + kJwt);
  // With only the secret detector, a bearer JWT is still a secret.
  EXPECT_EQ(Only("Bearer " + kJwt, Make({"secret"})), "secret:" + kJwt);
  // alg none: empty signature.
  std::string unsigned_jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
  EXPECT_EQ(Only(unsigned_jwt), "jwt:" + unsigned_jwt);
}

TEST(JwtTest, LookAlikesAreRefused) {
  EXPECT_EQ(Only("eyJ.a.b"), "");
  EXPECT_EQ(Only("eyJhbGciOiJIUzI1NiJ9"), "");  // one segment
  EXPECT_EQ(Only("xeyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.abc"), "");
}

// ---- Styles -------------------------------------------------------------------------------------

TEST(StyleTest, Mask) {
  EXPECT_EQ(Redacted("SSN 123-45-6789, mail a@example.com"),
            "SSN [REDACTED:ssn], mail [REDACTED:email]");
}

TEST(StyleTest, PartialKeepsLastFour) {
  Redactor r = Make({"all"}, Style::kPartial);
  EXPECT_EQ(Redacted("123-45-6789", r), "***-**-6789");
  EXPECT_EQ(Redacted("4111 1111 1111 1111", r), "**** **** **** 1111");
  EXPECT_EQ(Redacted("+1 (415) 555-2671", r), "+* (***) ***-2671");
  EXPECT_EQ(Redacted("DOB: 01/02/1980", r), "DOB: **/**/1980");
  EXPECT_EQ(Redacted("DOB: 2 March 1980", r), "DOB: * ***** 1980");
  EXPECT_EQ(Redacted("ip 10.0.0.1", r), "ip **.*.0.1");  // five digits: keeps two
}

TEST(StyleTest, HashIsStableAndKeyed) {
  Redactor a = Make({"all"}, Style::kHash, std::string(32, 'a'));
  Redactor a2 = Make({"ssn"}, Style::kHash, std::string(32, 'a'));
  Redactor b = Make({"all"}, Style::kHash, std::string(32, 'b'));
  std::string ha = Redacted("123-45-6789", a);
  EXPECT_THAT(ha, ::testing::MatchesRegex(R"(\[ssn:hmac:[0-9a-f]{12}\])"));
  EXPECT_EQ(Redacted("123-45-6789", a2), ha);              // same key, same value
  EXPECT_EQ(Redacted("SSN 123 45 6789", a), "SSN " + ha);  // normalised before hashing
  EXPECT_NE(Redacted("123-45-6789", b), ha);               // another key
  EXPECT_NE(Redacted("123-45-6788", a), ha);               // another value
  EXPECT_EQ(Redacted("A@Example.com", a), Redacted("a@example.COM", a));
}

// ---- Text handling ------------------------------------------------------------------------------

TEST(TextTest, FindingsAreOrderedAndDisjoint) {
  std::string text =
      "Patient John, SSN 123-45-6789, DOB: 01/02/1980, phone (415) 555-2671, "
      "email john@example.com, card 4111 1111 1111 1111, IBAN DE89370400440532013000, "
      "from 10.1.2.3, key AKIAIOSFODNN7EXAMPLE.";
  auto f = All().Scan(text);
  std::vector<Detector> kinds;
  for (size_t i = 0; i < f.size(); ++i) {
    kinds.push_back(f[i].detector);
    EXPECT_LT(f[i].begin, f[i].end);
    if (i > 0) {
      EXPECT_LE(f[i - 1].end, f[i].begin);
    }
  }
  EXPECT_THAT(kinds,
              ElementsAre(Detector::kSsn, Detector::kDob, Detector::kPhone, Detector::kEmail,
                          Detector::kCard, Detector::kIban, Detector::kIp, Detector::kSecret));
  std::string copy = text;
  EXPECT_EQ(All().RedactText(copy), 8u);
  EXPECT_EQ(copy,
            "Patient John, SSN [REDACTED:ssn], DOB: [REDACTED:dob], phone [REDACTED:phone], "
            "email [REDACTED:email], card [REDACTED:card], IBAN [REDACTED:iban], "
            "from [REDACTED:ip], key [REDACTED:secret].");
}

TEST(TextTest, Utf8AroundFindingsStaysValid) {
  std::string text =
      "\xc3\xa9"
      "123-45-6789\xe2\x82\xac \xf0\x9f\x98\x80john@example.com\xc3\xbc";
  ASSERT_TRUE(common::IsValidUtf8(text));
  for (Style s : {Style::kMask, Style::kPartial, Style::kHash}) {
    std::string copy = text;
    EXPECT_EQ(Make({"all"}, s).RedactText(copy), 2u);
    EXPECT_TRUE(common::IsValidUtf8(copy)) << copy;
    EXPECT_EQ(copy.find("6789\xe2\x82\xac") == std::string::npos, s != Style::kPartial);
  }
}

TEST(TextTest, InvalidUtf8AndBinaryDoNotStopTheScan) {
  std::string text = std::string("\xff\xfe\x00 ", 4) + "123-45-6789 \xc3 \x80\x80" +
                     std::string("\x00", 1) + "john@example.com\xed\xa0\x80";
  std::string copy = text;
  EXPECT_EQ(All().RedactText(copy), 2u);
  EXPECT_EQ(copy, std::string("\xff\xfe\x00 ", 4) + "[REDACTED:ssn] \xc3 \x80\x80" +
                      std::string("\x00", 1) + "[REDACTED:email]\xed\xa0\x80");

  std::mt19937 rng(7);
  std::string binary(1 << 20, '\0');
  for (char& c : binary) c = static_cast<char>(rng());
  auto f = All().Scan(binary);
  for (size_t i = 0; i < f.size(); ++i) {
    ASSERT_LT(f[i].begin, f[i].end);
    ASSERT_LE(f[i].end, binary.size());
    if (i > 0) {
      ASSERT_LE(f[i - 1].end, f[i].begin);
    }
  }
  All().RedactText(binary);
}

TEST(TextTest, HugeStringsAreScannedWhole) {
  std::string prose;
  while (prose.size() < (10u << 20)) {
    prose += "The patient was seen in clinic on a Tuesday and reported feeling better. ";
  }
  std::string text = "SSN 123-45-6789 " + prose + " a@example.com " + prose + " 10.0.0.1";
  auto f = All().Scan(text);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[1].detector, Detector::kEmail);
  EXPECT_EQ(f[2].end, text.size());

  // Long runs that look like the start of something, all refused: each is scanned in one pass.
  for (std::string unit : {"1111 ", "a:", "a", "1-", "1.", "9"}) {
    std::string run;
    run.reserve(10u << 20);
    while (run.size() < (10u << 20)) run += unit;
    run += "@x.io 123-45-6789";
    auto found = All().Scan(run);
    ASSERT_FALSE(found.empty()) << unit;
    EXPECT_EQ(found.back().detector, Detector::kSsn) << unit;
  }
}

TEST(TextTest, ConcurrentScansAgree) {
  std::string text = "SSN 123-45-6789, card 4111111111111111, a@example.com, 2001:db8::1";
  auto want = All().Scan(text);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Redactor copy = All();  // copies share the compiled patterns
      for (int i = 0; i < 2000; ++i) {
        if (copy.Scan(text) != want) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(want.size(), 4u);
}

// The pass that lets short texts skip RE2 must be a necessary condition: padding a text past its
// length limit (so that every text is searched) finds the same.
TEST(TextTest, ShortTextPrecheckIsConservative) {
  const std::vector<std::string> texts = {"123-45-6789",
                                          "a@b.io",
                                          "AKIAIOSFODNN7EXAMPLE",
                                          "::1",
                                          "1.2.3.4",
                                          "+44 20 7946 0958",
                                          "ghp_" + std::string(36, 'a'),
                                          "Bearer abcdefghijklmno1",
                                          "dob 2/1/80",
                                          kJwt,
                                          "github_pat_11ABCDEFG0123456789_abcdef",
                                          "xoxb-123456789012-abc",
                                          "DE89370400440532013000",
                                          "4111111111111111",
                                          "(415) 555-2671",
                                          "born 2 March 1980",
                                          "SSN 123456789",
                                          "Smith",
                                          "2024-03-01",
                                          "enc-1001"};
  const std::string pad(600, ' ');
  for (const auto& t : texts) {
    auto short_scan = All().Scan(t);
    auto long_scan = All().Scan(t + pad);
    EXPECT_EQ(short_scan, long_scan) << t;
    EXPECT_EQ(short_scan.empty(), t == "Smith" || t == "2024-03-01" || t == "enc-1001") << t;
  }
}

// ---- Field paths --------------------------------------------------------------------------------

TEST(FieldPathTest, Validate) {
  for (const char* ok :
       {"params", "params.patient.ssn", "params.records[*].dob", "params.list[0]",
        "params[\"first name\"]", "params['a.b'][12].c", "params[*][*]", "params.x-y.$ref.@id"}) {
    EXPECT_TRUE(ValidateFieldPath(ok).ok()) << ok;
  }
  for (const char* bad : {"", "param", "paramsx", "request.body", "params.", "params..a", "params[",
                          "params[x]", "params[01]", "params[1", "params['a]", "params[\"a\"",
                          "params.a b", "params[-1]", "params[9999999999]"}) {
    EXPECT_FALSE(ValidateFieldPath(bad).ok()) << bad;
  }
  EXPECT_THAT(ValidateFieldPath("params.a[x]").message(), ::testing::HasSubstr("offset 9"));
}

TEST(JsonTest, FieldPathsReplaceWholeValues) {
  Redactor r = Make({});
  common::Json v = Parse(R"({
    "patient": {"ssn": "123-45-6789", "name": "Jane", "mrn": 12345, "vip": true, "alias": null},
    "records": [{"dob": "1980-01-02", "code": "A"}, {"dob": 19800102, "code": "B"}, {"code": "C"}],
    "list": ["a", "b"],
    "first name": "Jane"
  })");
  auto res = r.RedactJson(
      v, {"params.patient.ssn", "params.patient.mrn", "params.patient.vip", "params.patient.alias",
          "params.records[*].dob", "params.list[1]", "params[\"first name\"]", "params.missing.x",
          "params.list[7]", "params.records[*].missing"});
  EXPECT_EQ(v.Canonical(),
            R"({"first name":"[REDACTED]","list":["a","[REDACTED]"],)"
            R"("patient":{"alias":null,"mrn":"[REDACTED]","name":"Jane","ssn":"[REDACTED]",)"
            R"("vip":"[REDACTED]"},"records":[{"code":"A","dob":"[REDACTED]"},)"
            R"({"code":"B","dob":"[REDACTED]"},{"code":"C"}]})");
  EXPECT_EQ(res.replaced, 7u);
  EXPECT_THAT(res.paths,
              ElementsAre("params[\"first name\"]", "params.list[1]", "params.patient.mrn",
                          "params.patient.ssn", "params.patient.vip", "params.records[0].dob",
                          "params.records[1].dob"));
}

TEST(JsonTest, FieldPathToAContainerRedactsEverythingInside) {
  Redactor r = Make({});
  common::Json v = Parse(
      R"({"patient": {"name": "Jane", "ids": [1, "x", {"k": 2.5}], "n": null}, "keep": "me"})");
  auto res = r.RedactJson(v, {"params.patient", "params.patient.name"});
  EXPECT_EQ(v.Canonical(),
            R"({"keep":"me","patient":{"ids":["[REDACTED]","[REDACTED]",{"k":"[REDACTED]"}],)"
            R"("n":null,"name":"[REDACTED]"}})");
  EXPECT_EQ(res.replaced, 4u);  // overlapping paths redact once
  EXPECT_THAT(res.paths, ElementsAre("params.patient"));

  common::Json all = Parse(R"({"a": ["x", {"b": "y"}]})");
  EXPECT_EQ(r.RedactJson(all, {"params"}).replaced, 2u);
  EXPECT_EQ(all.Canonical(), R"({"a":["[REDACTED]",{"b":"[REDACTED]"}]})");

  common::Json star = Parse(R"({"m": {"a": "x", "b": ["y"]}})");
  r.RedactJson(star, {"params.m[*]"});
  EXPECT_EQ(star.Canonical(), R"({"m":{"a":"[REDACTED]","b":["[REDACTED]"]}})");
}

TEST(JsonTest, FieldStyles) {
  common::Json v = Parse(R"({"ssn": "123-45-6789", "n": 4111111111111111})");
  Make({}, Style::kPartial).RedactJson(v, {"params.ssn", "params.n"});
  EXPECT_EQ(v.Canonical(), R"({"n":"************1111","ssn":"***-**-6789"})");
  common::Json h1 = Parse(R"({"ssn": "123-45-6789"})");
  common::Json h2 = Parse(R"({"x": {"y": "123-45-6789"}})");
  Redactor hash = Make({}, Style::kHash);
  hash.RedactJson(h1, {"params.ssn"});
  hash.RedactJson(h2, {"params.x.y"});
  EXPECT_THAT(h1.Find("ssn")->as_string(), ::testing::MatchesRegex(R"(\[hmac:[0-9a-f]{12}\])"));
  EXPECT_EQ(h1.Find("ssn")->as_string(), h2.Find("x")->Find("y")->as_string());
}

TEST(JsonTest, DetectorsScanEveryOtherStringWithKeyContext) {
  Redactor r = Make({"all"});
  common::Json v = Parse(R"({
    "dob": "1980-01-02", "admitted": "2024-03-01", "patient": {"dateOfBirth": "02/01/1980"},
    "ssn": "123456789", "ssn_list": ["123456789", "987654321"], "order": "123456789",
    "note": "call 415-555-2671 or mail a@example.com",
    "card": 4111111111111111, "count": 4111111111111112, "socialSecurityNumber": 123456789,
    "123-45-6789": "keys are left alone", "amount": 12.5, "ok": true, "none": null
  })");
  auto res = r.RedactJson(v, {});
  EXPECT_EQ(v.Canonical(),
            R"({"123-45-6789":"keys are left alone","admitted":"2024-03-01","amount":12.5,)"
            R"("card":"[REDACTED:card]","count":4111111111111112,"dob":"[REDACTED:dob]",)"
            R"("none":null,"note":"call [REDACTED:phone] or mail [REDACTED:email]","ok":true,)"
            R"("order":"123456789","patient":{"dateOfBirth":"[REDACTED:dob]"},)"
            R"("socialSecurityNumber":"[REDACTED:ssn]","ssn":"[REDACTED:ssn]",)"
            R"("ssn_list":["[REDACTED:ssn]","987654321"]})");
  // 987654321: area 9xx is never an SSN.
  EXPECT_EQ(res.replaced, 8u);
  EXPECT_THAT(res.paths,
              ElementsAre("params.card", "params.dob", "params.note", "params.patient.dateOfBirth",
                          "params.socialSecurityNumber", "params.ssn", "params.ssn_list[0]"));
}

TEST(JsonTest, FieldsFirstThenDetectors) {
  Redactor r = Make({"ssn", "email"}, Style::kPartial);
  common::Json v = Parse(R"({"a": "123-45-6789", "b": "123-45-6789 x@example.com"})");
  auto res = r.RedactJson(v, {"params.a"});
  EXPECT_EQ(v.Canonical(), R"({"a":"***-**-6789","b":"***-**-6789 *@******e.com"})");
  EXPECT_EQ(res.replaced, 3u);
  EXPECT_THAT(res.paths, ElementsAre("params.a", "params.b"));
}

TEST(JsonTest, PiiSplitByEscapesIsFound) {
  common::Json v = Parse(R"({"note": "\u0031\u0032\u0033-45-6789", "m": "a\u0040example.com"})");
  auto res = All().RedactJson(v, {});
  EXPECT_EQ(v.Canonical(), R"({"m":"[REDACTED:email]","note":"[REDACTED:ssn]"})");
  EXPECT_EQ(res.replaced, 2u);
}

TEST(JsonTest, DeepNestingIsWalkedWithoutRecursion) {
  // As deep as the parser allows...
  std::string text;
  for (int i = 0; i < 31; ++i) text += R"({"a":[)";
  text += R"("SSN 123-45-6789")";
  for (int i = 0; i < 31; ++i) text += "]}";
  common::Json v = Parse(text);
  auto res = All().RedactJson(v, {});
  EXPECT_EQ(res.replaced, 1u);
  ASSERT_EQ(res.paths.size(), 1u);
  EXPECT_EQ(res.paths[0].size(), std::string("params").size() + 31 * std::string(".a[0]").size());

  // ...and far deeper, built by hand.
  common::Json deep = common::Json::String("a@example.com");
  for (int i = 0; i < 5000; ++i) {
    std::vector<common::Json> items;
    items.push_back(std::move(deep));
    deep = common::Json::Array(std::move(items));
  }
  EXPECT_EQ(All().RedactJson(deep, {}).replaced, 1u);
  std::string wildcard = "params";
  for (int i = 0; i < 5000; ++i) wildcard += "[*]";
  EXPECT_EQ(Make({}).RedactJson(deep, {wildcard}).replaced, 1u);
}

TEST(JsonTest, ScalarRootAndEmptyInputs) {
  common::Json s = common::Json::String("mail a@example.com");
  EXPECT_EQ(All().RedactJson(s, {}).paths, std::vector<std::string>{"params"});
  EXPECT_EQ(s.as_string(), "mail [REDACTED:email]");
  common::Json empty = common::Json::EmptyObject();
  EXPECT_EQ(All().RedactJson(empty, {"params.a"}).replaced, 0u);
}

}  // namespace
}  // namespace aegis::redact
