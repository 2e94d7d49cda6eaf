// Unit tests of lib/torii/values: uuids, emails, session tokens and their
// digests, against known vectors where the standard gives one.
#include "torii/values.h"
#include "torii/tenant.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace torii {
namespace {

std::string Hex(const std::array<uint8_t, 32>& d) {
  std::string s;
  AppendHex(s, d.data(), d.size());
  return s;
}

TEST(Uuid, NormalizeAcceptsAnyCaseAndReturnsLower) {
  struct Case {
    const char* in;
    const char* want;  // nullptr: refused
  } cases[] = {
      {"0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9", "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"},
      {"0A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9", "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"},
      {"0a1B2c3D-4e5F-4071-8293-a4B5c6D7e8F9", "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"},
      {"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},
      {"ffffffff-ffff-ffff-ffff-ffffffffffff", "ffffffff-ffff-ffff-ffff-ffffffffffff"},
      {"", nullptr},
      {"0a1b2c3d4e5f40718293a4b5c6d7e8f9", nullptr},          // no dashes
      {"{0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9}", nullptr},    // braces
      {"0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f", nullptr},       // short
      {"0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f90", nullptr},     // long
      {"0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8fg", nullptr},      // not hex
      {"0a1b2c3d-4e5f-4071-8293a-4b5c6d7e8f9", nullptr},      // dash misplaced
      {"0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f\0", nullptr},     // NUL (becomes short)
      {" 0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f", nullptr},      // leading space
      {"0a1b2c3d_4e5f_4071_8293_a4b5c6d7e8f9", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    auto got = NormalizeUuid(c.in);
    if (c.want == nullptr) {
      EXPECT_FALSE(got.has_value());
    } else {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, c.want);
    }
  }
}

TEST(Uuid, NewUuidIsVersion4Variant1AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; i++) {
    std::string u = NewUuid();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(NormalizeUuid(u), u);  // canonical and lower case
    EXPECT_EQ(u[14], '4') << u;
    EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b') << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Uuid, V5KnownVectors) {
  const char* dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";  // RFC 4122 NAMESPACE_DNS
  // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
  EXPECT_EQ(UuidV5(dns, "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  // The namespace may be given in upper case.
  EXPECT_EQ(UuidV5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  // Deterministic, name-sensitive, version 5.
  EXPECT_EQ(UuidV5(dns, "a"), UuidV5(dns, "a"));
  EXPECT_NE(UuidV5(dns, "a"), UuidV5(dns, "b"));
  std::string long_name(200, 'n');  // several SHA-1 blocks
  std::string u = UuidV5(dns, long_name);
  EXPECT_EQ(u[14], '5');
  EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b') << u;
  EXPECT_EQ(UuidV5("not-a-uuid", "x"), "");
}

TEST(Email, Rules) {
  struct Case {
    std::string email;
    bool valid;
  } cases[] = {
      {"a@b", true},
      {"alice@example.com", true},
      {"Alice.Smith+tag@Example.COM", true},
      {"jörg@例え.jp", true},  // UTF-8 bytes are allowed
      {"", false},
      {"@example.com", false},
      {"alice@", false},
      {"alice", false},
      {"a@b@c", false},
      {"a@@b", false},
      {"a b@c", false},
      {"a@b c", false},
      {"a\t@b", false},
      {"a@b\n", false},
      {std::string("a\0@b", 4), false},
      {"a\x7f@b", false},
      {std::string(64, 'x') + "@" + std::string(189, 'y'), true},   // 254 bytes
      {std::string(64, 'x') + "@" + std::string(190, 'y'), false},  // 255 bytes
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.email);
    EXPECT_EQ(ValidEmail(c.email), c.valid);
  }
  EXPECT_EQ((std::string(64, 'x') + "@" + std::string(189, 'y')).size(), 254u);
}

TEST(TenantName, IsOneTo64BytesOfLowerCaseLettersDigitsAndUnderscoreDotDash) {
  struct {
    std::string name;
    bool valid;
  } cases[] = {
      {"default", true},
      {"acme", true},
      {"a", true},
      {"acme-corp_2.eu", true},
      {"0", true},
      {std::string(64, 'x'), true},
      {"", false},
      {std::string(65, 'x'), false},
      {"Acme", false},  // no upper case: names are compared byte for byte
      {"acme corp", false},
      {"acme/eu", false},
      {"@acme", false},  // would look like an event topic's tenant prefix
      {"*", false},
      {std::string("a\0b", 3), false},
      {"jörg", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(IsValidTenantName(c.name), c.valid);
  }
  EXPECT_TRUE(IsValidTenantName(kDefaultTenant));
}

TEST(Token, Is43CharsOfBase64UrlAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; i++) {
    std::string t = NewSessionToken();
    ASSERT_EQ(t.size(), 43u) << t;
    for (char c : t) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << t;
    }
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Token, DigestIsSha256OfTheTokenText) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(Hex(TokenDigest("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(TokenDigest("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(TokenDigest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string t = NewSessionToken();
  EXPECT_EQ(TokenDigest(t), TokenDigest(t));
  EXPECT_NE(TokenDigest(t), TokenDigest(t + "x"));
}

TEST(Base64Url, KnownVectors) {
  auto enc = [](const std::string& s) { return Base64UrlEncode(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg");
  EXPECT_EQ(enc("fo"), "Zm8");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  EXPECT_EQ(enc("\xfb\xff\xbf"), "-_-_");  // the url-safe alphabet, not + and /
}

TEST(Hex, EncodesLowerCaseAndDecodesEitherCase) {
  EXPECT_EQ(HexEncode(std::string_view("\x00\x01\xab\xff", 4)), "0001abff");
  EXPECT_EQ(HexEncode(""), "");
  std::string out;
  ASSERT_TRUE(HexDecode("0001abFF", &out));
  EXPECT_EQ(out, std::string("\x00\x01\xab\xff", 4));
  ASSERT_TRUE(HexDecode("", &out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(HexDecode("abc", &out));   // odd length
  EXPECT_FALSE(HexDecode("0g", &out));    // not a digit
  EXPECT_FALSE(HexDecode("g0", &out));
  EXPECT_FALSE(HexDecode(std::string_view("0\0", 2), &out));
  std::string all;
  for (int b = 0; b < 256; b++) all.push_back(static_cast<char>(b));
  ASSERT_TRUE(HexDecode(HexEncode(all), &out));
  EXPECT_EQ(out, all);
}

TEST(Hex, ByteaHexNeedsItsPrefix) {
  std::string out;
  ASSERT_TRUE(DecodeByteaHex("\\x00ff", &out));
  EXPECT_EQ(out, std::string("\x00\xff", 2));
  ASSERT_TRUE(DecodeByteaHex("\\x", &out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(DecodeByteaHex("00ff", &out));
  EXPECT_FALSE(DecodeByteaHex("\\x0", &out));
  EXPECT_FALSE(DecodeByteaHex("\\", &out));
}

TEST(Time, NowMicrosIsPlausible) {
  Micros now = NowMicros();
  EXPECT_GT(now, 1700000000LL * 1000000);   // after 2023-11
  EXPECT_LT(now, 4102444800LL * 1000000);   // before 2100
}

}  // namespace
}  // namespace torii
