// Every database operation of PROTOCOL.md section 2 through the real toriid:
// success paths, result shapes, and each error code the operation can give
// (timeout, unavailable and overloaded are in request_faults_test.cpp).
// Value rules too: uuid case, email rules, metadata, timestamps, expiry.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "eventually.h"
#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

class RequestOpsTest : public RequestTest {};

bool IsLowerUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const std::vector<std::string> kUserKeys = {"id",       "email",      "password_hash", "email_verified_at", "name", "locked_at",
                                            "metadata", "created_at", "updated_at"};
const std::vector<std::string> kSessionKeys = {"id",         "user_id",  "expires_at", "user_agent",
                                               "ip_address", "metadata", "created_at"};

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---- users ---------------------------------------------------------------

TEST_F(RequestOpsTest, CreateUserReturnsTheUser) {
  int64_t before = NowMs();
  Reply r = Call("create_user", V::Map({{"email", "Alice@Example.COM"},
                                        {"password_hash", "h1"},
                                        {"metadata", V::Map({{"plan", "pro"}})}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  Value u = r.result();
  EXPECT_EQ(Sorted(u.keys()), Sorted(kUserKeys));
  EXPECT_TRUE(IsLowerUuid(u["id"].str())) << u["id"].str();
  EXPECT_EQ(u["email"].str(), "Alice@Example.COM") << "the stored email keeps its case";
  EXPECT_EQ(u["password_hash"].str(), "h1");
  EXPECT_TRUE(u["email_verified_at"].is_nil());
  EXPECT_EQ(u["metadata"]["plan"].str(), "pro");
  ASSERT_TRUE(u["created_at"].is_timestamp());
  ASSERT_TRUE(u["updated_at"].is_timestamp());
  EXPECT_GE(u["created_at"].micros() / 1000, before - 5000);
  EXPECT_LE(u["created_at"].micros() / 1000, NowMs() + 5000);
}

TEST_F(RequestOpsTest, CreateUserDefaults) {
  Reply r = Call("create_user", V::Map({{"email", "a@b"}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_TRUE(r.result()["password_hash"].is_nil());
  EXPECT_TRUE(r.result()["metadata"].is_map());
  EXPECT_EQ(r.result()["metadata"].size(), 0u);
}

TEST_F(RequestOpsTest, UuidsAreAcceptedInAnyCaseAndReturnedLowerCase) {
  std::string id = "0f8FAD5B-D9CB-469F-A165-70867728950E";
  Reply r = Call("create_user", V::Map({{"id", id}, {"email", "u@x.io"}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["id"].str(), "0f8fad5b-d9cb-469f-a165-70867728950e");
  for (const std::string& form : {id, Upper(id), std::string("0f8fad5b-d9cb-469f-a165-70867728950e")}) {
    Reply g = Call("get_user", V::Map({{"id", form}}));
    ASSERT_TRUE(g.ok()) << form << " " << g.ToString();
    EXPECT_EQ(g.result()["id"].str(), "0f8fad5b-d9cb-469f-a165-70867728950e");
  }
  Value s = NewSession(Upper(r.result()["id"].str()));
  EXPECT_EQ(s["user_id"].str(), "0f8fad5b-d9cb-469f-a165-70867728950e");
  Reply gs = Call("get_session", V::Map({{"id", Upper(s["id"].str())}}));
  ASSERT_TRUE(gs.ok()) << gs.ToString();
  EXPECT_EQ(gs.result()["id"].str(), s["id"].str());
}

TEST_F(RequestOpsTest, MalformedUuidsAreInvalidArgument) {
  for (const char* bad : {"", "0f8fad5b", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5bd9cb469fa16570867728950e",
                          "{0f8fad5b-d9cb-469f-a165-70867728950e}", "0f8fad5b-d9cb-469f-a165-70867728950g",
                          "0f8fad5b-d9cb-469f-a165-70867728950e0"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(Call("get_user", V::Map({{"id", bad}})).code(), "invalid_argument");
    EXPECT_EQ(Call("create_user", V::Map({{"id", bad}, {"email", "a@b"}})).code(), "invalid_argument");
    EXPECT_EQ(Call("list_sessions", V::Map({{"user_id", bad}})).code(), "invalid_argument");
  }
  // A uuid of the wrong type is a type error.
  EXPECT_EQ(Call("get_user", V::Map({{"id", 12}})).code(), "bad_request");
  EXPECT_EQ(Call("get_user", V::Map({{"id", V::Bin(std::string(16, 'x'))}})).code(), "bad_request");
}

TEST_F(RequestOpsTest, CreateUserErrors) {
  NewUser("taken@example.com");
  EXPECT_EQ(Call("create_user", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_user").code(), "invalid_argument") << "no args at all";
  EXPECT_EQ(Call("create_user", V::Map({{"email", nullptr}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_user", V::Map({{"email", 5}})).code(), "bad_request");
  EXPECT_EQ(Call("create_user", V::Map({{"email", "a@b"}, {"password_hash", 5}})).code(), "bad_request");
  EXPECT_EQ(Call("create_user", V::Map({{"email", "a@b"}, {"metadata", "x"}})).code(), "bad_request");
  EXPECT_EQ(Call("create_user", V::Map({{"email", "a@b"}, {"nickname", "x"}})).code(), "invalid_argument");
  Reply dup = Call("create_user", V::Map({{"email", "TAKEN@example.com"}}));
  EXPECT_EQ(dup.code(), "duplicate") << dup.ToString();
  EXPECT_EQ(dup.message().find("TAKEN"), std::string::npos) << "the message does not echo the value";
  Value u = NewUser();
  EXPECT_EQ(Call("create_user", V::Map({{"id", u["id"].str()}, {"email", "other@example.com"}})).code(), "duplicate");
}

TEST_F(RequestOpsTest, EmailRules) {
  std::string local(64, 'a');
  std::string domain = std::string(254 - 64 - 1 - 4, 'b') + ".com";
  std::string e254 = local + "@" + domain;
  ASSERT_EQ(e254.size(), 254u);
  Reply ok = Call("create_user", V::Map({{"email", e254}}));
  EXPECT_TRUE(ok.ok()) << "254 bytes is allowed: " << ok.ToString();
  EXPECT_EQ(Call("create_user", V::Map({{"email", "c" + e254}})).code(), "invalid_argument") << "255 bytes";
  for (const char* bad : {"", "plain", "@example.com", "user@", "a@b@c", "two words@example.com"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(Call("create_user", V::Map({{"email", bad}})).code(), "invalid_argument");
    EXPECT_EQ(Call("get_user_by_email", V::Map({{"email", bad}})).code(), "invalid_argument");
  }
  EXPECT_EQ(Call("create_user", V::Map({{"email", std::string("a\0b@c", 5)}})).code(), "invalid_argument");
  // Multi-byte UTF-8 counts bytes: 127 two-byte characters = 254 bytes.
  std::string wide;
  for (int i = 0; i < 125; i++) wide += "\xc3\xa9";
  EXPECT_TRUE(Call("create_user", V::Map({{"email", wide + "@xy"}})).ok());  // 250 + 3 bytes
  EXPECT_EQ(Call("create_user", V::Map({{"email", wide + "\xc3\xa9\xc3\xa9@x"}})).code(), "invalid_argument");
}

TEST_F(RequestOpsTest, EmailsAreCaseInsensitiveForUniquenessAndLookup) {
  Value u = NewUser("Mixed.Case@Example.com");
  for (const char* form : {"mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM", "Mixed.Case@Example.com"}) {
    SCOPED_TRACE(form);
    Reply g = Call("get_user_by_email", V::Map({{"email", form}}));
    ASSERT_TRUE(g.ok()) << g.ToString();
    EXPECT_EQ(g.result()["id"].str(), u["id"].str());
    EXPECT_EQ(g.result()["email"].str(), "Mixed.Case@Example.com");
    EXPECT_TRUE(g.result().has("password_hash"));
    EXPECT_EQ(Call("create_user", V::Map({{"email", form}})).code(), "duplicate");
  }
  EXPECT_EQ(Call("get_user_by_email", V::Map({{"email", "nobody@example.com"}})).code(), "not_found");
  EXPECT_EQ(Call("get_user_by_email", V::Map({})).code(), "invalid_argument");
  // update_user to another user's email in another case: duplicate.
  Value other = NewUser("other@example.com");
  EXPECT_EQ(Call("update_user", V::Map({{"id", other["id"].str()}, {"email", "MIXED.case@example.com"}})).code(),
            "duplicate");
  // Changing only the case of one's own email is allowed and kept.
  Reply own = Call("update_user", V::Map({{"id", u["id"].str()}, {"email", "MIXED.CASE@example.com"}}));
  ASSERT_TRUE(own.ok()) << own.ToString();
  EXPECT_EQ(own.result()["email"].str(), "MIXED.CASE@example.com");
}

TEST_F(RequestOpsTest, GetUser) {
  Value u = NewUser();
  Reply g = Call("get_user", V::Map({{"id", u["id"].str()}}));
  ASSERT_TRUE(g.ok()) << g.ToString();
  EXPECT_EQ(g.result().bytes(), u.bytes()) << "the same record as create_user returned";
  EXPECT_EQ(Call("get_user", V::Map({{"id", "00000000-0000-4000-8000-000000000000"}})).code(), "not_found");
  EXPECT_EQ(Call("get_user", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_user", V::Map({{"id", u["id"].str()}, {"email", "x@y"}})).code(), "invalid_argument");
}

TEST_F(RequestOpsTest, UpdateUser) {
  Value u = NewUser();
  std::string id = u["id"].str();
  Reply r = Call("update_user", V::Map({{"id", id},
                                        {"email", "new@example.com"},
                                        {"password_hash", "h2"},
                                        {"metadata", V::Map({{"a", 1}, {"b", V::Map({{"c", true}})}})}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["email"].str(), "new@example.com");
  EXPECT_EQ(r.result()["password_hash"].str(), "h2");
  EXPECT_EQ(r.result()["metadata"]["a"].i64(), 1);
  EXPECT_GE(r.result()["updated_at"].micros(), u["updated_at"].micros());
  EXPECT_EQ(r.result()["created_at"].micros(), u["created_at"].micros());
  // metadata_merge: shallow merge into the stored map.
  Reply m = Call("update_user", V::Map({{"id", id}, {"metadata_merge", V::Map({{"b", "flat"}, {"d", 4}})}}));
  ASSERT_TRUE(m.ok()) << m.ToString();
  EXPECT_EQ(m.result()["metadata"]["a"].i64(), 1);
  EXPECT_EQ(m.result()["metadata"]["b"].str(), "flat");
  EXPECT_EQ(m.result()["metadata"]["d"].i64(), 4);
  // metadata replaces.
  Reply rep = Call("update_user", V::Map({{"id", id}, {"metadata", V::Map({{"only", "this"}})}}));
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep.result()["metadata"].keys(), std::vector<std::string>{"only"});
  // nil password_hash clears it; the email is untouched.
  Reply clear = Call("update_user", V::Map({{"id", id}, {"password_hash", nullptr}}));
  ASSERT_TRUE(clear.ok()) << clear.ToString();
  EXPECT_TRUE(clear.result()["password_hash"].is_nil());
  EXPECT_EQ(clear.result()["email"].str(), "new@example.com");
  // Errors.
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}})).code(), "invalid_argument") << "nothing to update";
  EXPECT_EQ(Call("update_user", V::Map({{"email", "x@y"}})).code(), "invalid_argument") << "no id";
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"email", "bad"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"email", nullptr}})).code(), "invalid_argument");
  EXPECT_EQ(Call("update_user", V::Map({{"id", id}, {"metadata", 3}})).code(), "bad_request");
  EXPECT_EQ(Call("update_user", V::Map({{"id", "00000000-0000-4000-8000-000000000000"}, {"password_hash", "x"}})).code(),
            "not_found");
}

TEST_F(RequestOpsTest, VerifyEmail) {
  Value u = NewUser();
  std::string id = u["id"].str();
  int64_t before = NowMs();
  Reply now = Call("verify_email", V::Map({{"id", id}}));
  ASSERT_TRUE(now.ok()) << now.ToString();
  ASSERT_TRUE(now.result()["email_verified_at"].is_timestamp());
  EXPECT_NEAR(now.result()["email_verified_at"].micros() / 1000, before, 5000);
  // `at` as integer milliseconds.
  Reply ms = Call("verify_email", V::Map({{"id", id}, {"at", int64_t{1700000000123}}}));
  ASSERT_TRUE(ms.ok()) << ms.ToString();
  EXPECT_EQ(ms.result()["email_verified_at"].micros(), 1700000000123000);
  // `at` as a msgpack timestamp, microsecond precision kept.
  Reply ts = Call("verify_email", V::Map({{"id", id}, {"at", V::Timestamp(1600000000654321)}}));
  ASSERT_TRUE(ts.ok()) << ts.ToString();
  EXPECT_EQ(ts.result()["email_verified_at"].micros(), 1600000000654321);
  // A 32-bit timestamp ext (seconds only).
  Reply t32 = Call("verify_email", V::Map({{"id", id}, {"at", V::Ext(-1, std::string("\x60\x00\x00\x00", 4))}}));
  ASSERT_TRUE(t32.ok()) << t32.ToString();
  EXPECT_EQ(t32.result()["email_verified_at"].micros(), int64_t{0x60000000} * 1000000);
  EXPECT_EQ(Call("verify_email", V::Map({{"id", id}, {"at", "2024-01-01"}})).code(), "bad_request");
  EXPECT_EQ(Call("verify_email", V::Map({{"id", id}, {"at", V::Ext(5, "abcd")}})).code(), "bad_request");
  EXPECT_EQ(Call("verify_email", V::Map({{"id", "00000000-0000-4000-8000-000000000000"}})).code(), "not_found");
  EXPECT_EQ(Call("verify_email", V::Map({})).code(), "invalid_argument");
}

TEST_F(RequestOpsTest, DeleteUserTakesItsSessions) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str());
  Reply d = Call("delete_user", V::Map({{"id", u["id"].str()}}));
  ASSERT_TRUE(d.ok()) << d.ToString();
  EXPECT_EQ(d.result()["deleted"].i64(), 1);
  EXPECT_EQ(Call("get_user", V::Map({{"id", u["id"].str()}})).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"token", s["token"].str()}})).code(), "not_found");
  EXPECT_EQ(Call("delete_user", V::Map({{"id", u["id"].str()}})).code(), "not_found");
  EXPECT_EQ(Call("delete_user", V::Map({})).code(), "invalid_argument");
}

TEST_F(RequestOpsTest, ListUsersPagesOldestFirstWithoutHashes) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; i++) ids.push_back(NewUser()["id"].str());
  std::vector<std::string> seen;
  V after = nullptr;
  int pages = 0;
  for (;;) {
    Reply r = Call("list_users", V::Map({{"limit", 2}, {"after", after}}));
    ASSERT_TRUE(r.ok()) << r.ToString();
    Value users = r.result()["users"];
    ASSERT_TRUE(users.is_array());
    for (size_t i = 0; i < users.size(); i++) {
      EXPECT_FALSE(users[i].has("password_hash")) << "never in list results";
      seen.push_back(users[i]["id"].str());
    }
    pages++;
    ASSERT_LE(pages, 4);
    if (r.result()["next"].is_nil()) break;
    ASSERT_TRUE(r.result()["next"].is_str());
    after = r.result()["next"].str();
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, ids) << "oldest first, each once";
  Reply all = Call("list_users");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.result()["users"].size(), 5u);
  EXPECT_TRUE(all.result()["next"].is_nil());
  EXPECT_EQ(Call("list_users", V::Map({{"limit", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_users", V::Map({{"limit", 1001}})).code(), "invalid_argument");
  EXPECT_TRUE(Call("list_users", V::Map({{"limit", 1000}})).ok());
  EXPECT_EQ(Call("list_users", V::Map({{"limit", "2"}})).code(), "bad_request");
  EXPECT_EQ(Call("list_users", V::Map({{"after", "garbage"}})).code(), "invalid_argument");
}

// ---- metadata --------------------------------------------------------------

TEST_F(RequestOpsTest, MetadataRoundTripsNestedValues) {
  V meta = V::Map({{"str", "héllo"},
                   {"int", -42},
                   {"big", uint64_t{18000000000000000000ULL}},
                   {"float", 2.5},
                   {"yes", true},
                   {"no", false},
                   {"nothing", nullptr},
                   {"list", V::Array({V(1), V("two"), V::Array({}), V::Map({{"k", "v"}})})},
                   {"nested", V::Map({{"deeper", V::Map({{"deepest", V::Array({V(nullptr)})}})}})},
                   {"", "empty key"}});
  Reply c = Call("create_user", V::Map({{"email", "meta@example.com"}, {"metadata", meta}}));
  ASSERT_TRUE(c.ok()) << c.ToString();
  Reply g = Call("get_user", V::Map({{"id", c.result()["id"].str()}}));
  ASSERT_TRUE(g.ok());
  Value m = g.result()["metadata"];
  EXPECT_EQ(m["str"].str(), "héllo");
  EXPECT_EQ(m["int"].i64(), -42);
  EXPECT_EQ(m["big"].u64(), 18000000000000000000ULL);
  EXPECT_DOUBLE_EQ(m["float"].dbl(), 2.5);
  EXPECT_TRUE(m["yes"].boolean());
  EXPECT_TRUE(m.has("no") && !m["no"].boolean());
  EXPECT_TRUE(m["nothing"].is_nil());
  ASSERT_EQ(m["list"].size(), 4u);
  EXPECT_EQ(m["list"][1].str(), "two");
  EXPECT_EQ(m["list"][2].size(), 0u);
  EXPECT_EQ(m["list"][3]["k"].str(), "v");
  EXPECT_TRUE(m["nested"]["deeper"]["deepest"][0].is_nil());
  EXPECT_EQ(m[""].str(), "empty key");
  // Session metadata too.
  Reply s = Call("create_session", V::Map({{"user_id", c.result()["id"].str()}, {"ttl_s", 60}, {"metadata", meta}}));
  ASSERT_TRUE(s.ok()) << s.ToString();
  Secret(s.result()["token"].str());
  EXPECT_EQ(s.result()["metadata"]["nested"]["deeper"]["deepest"].size(), 1u);
}

TEST_F(RequestOpsTest, MetadataRejectsEachForbiddenKind) {
  Value u = NewUser();
  struct Case {
    const char* name;
    V meta;
  };
  std::vector<Case> cases = {
      {"binary", V::Map({{"b", V::Bin("\x01\x02")}})},
      {"nested binary", V::Map({{"a", V::Array({V::Bin("x")})}})},
      {"ext", V::Map({{"e", V::Ext(7, "abc")}})},
      {"timestamp ext", V::Map({{"t", V::Timestamp(1)}})},
      {"int key", V::RawMap({{V(1), V("x")}})},
      {"nested int key", V::Map({{"m", V::RawMap({{V(true), V("x")}})}})},
      {"NaN", V::Map({{"n", std::nan("")}})},
      {"inf", V::Map({{"i", std::numeric_limits<double>::infinity()}})},
      {"-inf", V::Map({{"i", V::Array({V(-std::numeric_limits<double>::infinity())})}})},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Call("create_user", V::Map({{"email", "m@x.io"}, {"metadata", c.meta}})).code(), "invalid_argument");
    EXPECT_EQ(Call("update_user", V::Map({{"id", u["id"].str()}, {"metadata", c.meta}})).code(), "invalid_argument");
    EXPECT_EQ(Call("update_user", V::Map({{"id", u["id"].str()}, {"metadata_merge", c.meta}})).code(),
              "invalid_argument");
    EXPECT_EQ(Call("create_session", V::Map({{"user_id", u["id"].str()}, {"ttl_s", 5}, {"metadata", c.meta}})).code(),
              "invalid_argument");
  }
  // Not a map at all: a type error.
  EXPECT_EQ(Call("create_user", V::Map({{"email", "m@x.io"}, {"metadata", V::Array({})}})).code(), "bad_request");
  // Nothing was created along the way.
  EXPECT_EQ(Call("get_user_by_email", V::Map({{"email", "m@x.io"}})).code(), "not_found");
}

// ---- sessions --------------------------------------------------------------

TEST_F(RequestOpsTest, CreateSessionWithTtl) {
  Value u = NewUser();
  int64_t before = NowMs();
  Reply r = Call("create_session", V::Map({{"user_id", u["id"].str()},
                                           {"ttl_s", 3600},
                                           {"user_agent", "curl/8"},
                                           {"ip_address", "192.0.2.1"}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  Value s = r.result();
  Secret(s["token"].str());
  std::vector<std::string> keys = kSessionKeys;
  keys.push_back("token");
  EXPECT_EQ(Sorted(s.keys()), Sorted(keys));
  EXPECT_TRUE(IsLowerUuid(s["id"].str()));
  EXPECT_EQ(s["user_id"].str(), u["id"].str());
  EXPECT_EQ(s["user_agent"].str(), "curl/8");
  EXPECT_EQ(s["ip_address"].str(), "192.0.2.1");
  std::string token = s["token"].str();
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_NEAR(s["expires_at"].micros() / 1000, before + 3600 * 1000, 5000);
  // Only create_session shows the token; optional fields come back nil.
  Reply g = Call("get_session", V::Map({{"token", token}}));
  ASSERT_TRUE(g.ok()) << g.ToString();
  EXPECT_EQ(Sorted(g.result().keys()), Sorted(kSessionKeys));
  EXPECT_EQ(g.result()["id"].str(), s["id"].str());
  Value bare = NewSession(u["id"].str());
  EXPECT_TRUE(bare["user_agent"].is_nil());
  EXPECT_TRUE(bare["ip_address"].is_nil());
  EXPECT_NE(bare["token"].str(), token);
}

TEST_F(RequestOpsTest, CreateSessionWithExpiresAtInBothForms) {
  Value u = NewUser();
  int64_t at_ms = NowMs() + 86400000;
  Reply ms = Call("create_session", V::Map({{"user_id", u["id"].str()}, {"expires_at", at_ms}}));
  ASSERT_TRUE(ms.ok()) << ms.ToString();
  Secret(ms.result()["token"].str());
  EXPECT_EQ(ms.result()["expires_at"].micros(), at_ms * 1000);
  int64_t at_us = at_ms * 1000 + 123;
  Reply ext = Call("create_session", V::Map({{"user_id", u["id"].str()}, {"expires_at", V::Timestamp(at_us)}}));
  ASSERT_TRUE(ext.ok()) << ext.ToString();
  Secret(ext.result()["token"].str());
  EXPECT_EQ(ext.result()["expires_at"].micros(), at_us);
  std::string given_id = "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE";
  Reply with_id = Call("create_session", V::Map({{"user_id", u["id"].str()}, {"ttl_s", 10}, {"id", given_id}}));
  ASSERT_TRUE(with_id.ok()) << with_id.ToString();
  Secret(with_id.result()["token"].str());
  EXPECT_EQ(with_id.result()["id"].str(), "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", u["id"].str()}, {"ttl_s", 10}, {"id", given_id}})).code(),
            "duplicate");
}

TEST_F(RequestOpsTest, CreateSessionErrors) {
  Value u = NewUser();
  std::string uid = u["id"].str();
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}})).code(), "invalid_argument") << "no expiry";
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", 10}, {"expires_at", NowMs() + 10000}})).code(),
            "invalid_argument")
      << "both";
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", -5}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", "60"}})).code(), "bad_request");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"expires_at", NowMs() - 1000}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"expires_at", "tomorrow"}})).code(), "bad_request");
  EXPECT_EQ(Call("create_session", V::Map({{"ttl_s", 10}})).code(), "invalid_argument") << "no user_id";
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", "nope"}, {"ttl_s", 10}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", 10}, {"user_agent", 1}})).code(),
            "bad_request");
  EXPECT_EQ(Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", 10}, {"token", "mine"}})).code(),
            "invalid_argument")
      << "clients cannot choose the token";
  Reply fk = Call("create_session", V::Map({{"user_id", "00000000-0000-4000-8000-000000000000"}, {"ttl_s", 10}}));
  EXPECT_EQ(fk.code(), "foreign_key") << fk.ToString();
}

TEST_F(RequestOpsTest, GetSessionByTokenOrId) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str());
  Reply by_token = Call("get_session", V::Map({{"token", s["token"].str()}}));
  Reply by_id = Call("get_session", V::Map({{"id", s["id"].str()}}));
  ASSERT_TRUE(by_token.ok()) << by_token.ToString();
  ASSERT_TRUE(by_id.ok()) << by_id.ToString();
  EXPECT_EQ(by_token.result().bytes(), by_id.result().bytes());
  EXPECT_FALSE(by_id.result().has("token"));
  EXPECT_EQ(Call("get_session", V::Map({{"token", s["token"].str()}, {"id", s["id"].str()}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("get_session", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_session", V::Map({{"token", ""}})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_session", V::Map({{"token", std::string(2000, 'a')}})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_session", V::Map({{"token", 5}})).code(), "bad_request");
  EXPECT_EQ(Call("get_session", V::Map({{"token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"id", "00000000-0000-4000-8000-000000000000"}})).code(), "not_found");
  // A token differing only in case is another token.
  std::string t = s["token"].str();
  std::string flipped = t;
  for (char& c : flipped) {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      c = std::islower(static_cast<unsigned char>(c)) ? std::toupper(c) : std::tolower(c);
      break;
    }
  }
  EXPECT_EQ(Call("get_session", V::Map({{"token", flipped}})).code(), "not_found");
}

TEST_F(RequestOpsTest, ExtendSession) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str(), 60);
  int64_t before = NowMs();
  Reply e = Call("extend_session", V::Map({{"token", s["token"].str()}, {"ttl_s", 7200}}));
  ASSERT_TRUE(e.ok()) << e.ToString();
  EXPECT_NEAR(e.result()["expires_at"].micros() / 1000, before + 7200 * 1000, 5000);
  EXPECT_FALSE(e.result().has("token"));
  int64_t at_ms = NowMs() + 999999;
  Reply e2 = Call("extend_session", V::Map({{"id", s["id"].str()}, {"expires_at", at_ms}}));
  ASSERT_TRUE(e2.ok()) << e2.ToString();
  EXPECT_EQ(e2.result()["expires_at"].micros(), at_ms * 1000);
  Reply e3 = Call("extend_session", V::Map({{"id", s["id"].str()}, {"expires_at", V::Timestamp(at_ms * 1000 + 7)}}));
  ASSERT_TRUE(e3.ok()) << e3.ToString();
  EXPECT_EQ(e3.result()["expires_at"].micros(), at_ms * 1000 + 7);
  Reply g = Call("get_session", V::Map({{"id", s["id"].str()}}));
  EXPECT_EQ(g.result()["expires_at"].micros(), at_ms * 1000 + 7);
  EXPECT_EQ(Call("extend_session", V::Map({{"id", s["id"].str()}})).code(), "invalid_argument");
  EXPECT_EQ(Call("extend_session", V::Map({{"id", s["id"].str()}, {"ttl_s", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("extend_session", V::Map({{"ttl_s", 10}})).code(), "invalid_argument");
  EXPECT_EQ(Call("extend_session", V::Map({{"id", "00000000-0000-4000-8000-000000000000"}, {"ttl_s", 10}})).code(),
            "not_found");
}

TEST_F(RequestOpsTest, ExpiredSessionsAreNotFoundEverywhereAndNeverRevived) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str());
  Value live = NewSession(u["id"].str());
  ExpireSession(s["id"].str());
  std::string token = s["token"].str();
  std::string id = s["id"].str();
  EXPECT_EQ(Call("get_session", V::Map({{"token", token}})).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"id", id}})).code(), "not_found");
  EXPECT_EQ(Call("extend_session", V::Map({{"token", token}, {"ttl_s", 3600}})).code(), "not_found");
  EXPECT_EQ(Call("extend_session", V::Map({{"id", id}, {"expires_at", NowMs() + 3600000}})).code(), "not_found");
  // Still not found: the extend attempts did not bring it back.
  EXPECT_EQ(Call("get_session", V::Map({{"id", id}})).code(), "not_found");
  Reply list = Call("list_sessions", V::Map({{"user_id", u["id"].str()}}));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list.result()["sessions"].size(), 1u);
  EXPECT_EQ(list.result()["sessions"][0]["id"].str(), live["id"].str());
  EXPECT_EQ(Call("delete_session", V::Map({{"token", token}})).code(), "not_found");
}

// The addition include_expired: the row whatever its expiry, by token or id;
// absent or false is the plain lookup. A caller that judges expiry itself
// (Torii) gets an expired session with its past expires_at.
TEST_F(RequestOpsTest, GetSessionIncludeExpired) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str());
  std::string token = s["token"].str();
  std::string id = s["id"].str();
  Reply live = Call("get_session", V::Map({{"token", token}, {"include_expired", true}}));
  ASSERT_TRUE(live.ok()) << live.code();
  EXPECT_EQ(live.result()["id"].str(), id);
  EXPECT_GT(live.result()["expires_at"].micros() / 1000, NowMs());
  ExpireSession(id);
  // That lookup filled the daemon's session cache; the plain SQL update
  // evicts the entry through its event, and until the daemon has it the
  // entry may still answer (the cache's rule for writes made outside it).
  ASSERT_TRUE(Eventually([&] {
    Reply r = Call("get_session", V::Map({{"token", token}, {"include_expired", true}}));
    return r.ok() && r.result()["expires_at"].micros() / 1000 < NowMs();
  })) << "the expiry never reached the daemon's cache";
  for (const char* key : {"token", "id"}) {
    SCOPED_TRACE(key);
    V value = std::string(key) == "token" ? V(token) : V(id);
    Reply r = Call("get_session", V::Map({{key, value}, {"include_expired", true}}));
    ASSERT_TRUE(r.ok()) << r.code();
    EXPECT_EQ(r.result()["id"].str(), id);
    EXPECT_EQ(r.result()["user_id"].str(), u["id"].str());
    EXPECT_LT(r.result()["expires_at"].micros() / 1000, NowMs());
    EXPECT_FALSE(r.result().has("token"));
    EXPECT_EQ(Call("get_session", V::Map({{key, value}})).code(), "not_found");
    EXPECT_EQ(Call("get_session", V::Map({{key, value}, {"include_expired", false}})).code(), "not_found");
  }
  EXPECT_EQ(Call("get_session", V::Map({{"token", "never-issued"}, {"include_expired", true}})).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"token", token}, {"include_expired", "yes"}})).code(), "bad_request");
  // Deleted: gone for include_expired too.
  EXPECT_EQ(Call("delete_session", V::Map({{"id", id}})).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"id", id}, {"include_expired", true}})).code(), "not_found");
}

TEST_F(RequestOpsTest, DeleteSession) {
  Value u = NewUser();
  Value a = NewSession(u["id"].str());
  Value b = NewSession(u["id"].str());
  Reply d1 = Call("delete_session", V::Map({{"token", a["token"].str()}}));
  ASSERT_TRUE(d1.ok()) << d1.ToString();
  EXPECT_EQ(d1.result()["deleted"].i64(), 1);
  Reply d2 = Call("delete_session", V::Map({{"id", b["id"].str()}}));
  ASSERT_TRUE(d2.ok()) << d2.ToString();
  EXPECT_EQ(d2.result()["deleted"].i64(), 1);
  EXPECT_EQ(Call("delete_session", V::Map({{"id", b["id"].str()}})).code(), "not_found");
  EXPECT_EQ(Call("delete_session", V::Map({{"token", a["token"].str()}})).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"token", a["token"].str()}})).code(), "not_found");
  EXPECT_EQ(Call("delete_session", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("delete_session", V::Map({{"id", 1}})).code(), "bad_request");
}

TEST_F(RequestOpsTest, ListSessionsNewestFirst) {
  Value u = NewUser();
  Value other = NewUser();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; i++) ids.push_back(NewSession(u["id"].str())["id"].str());
  NewSession(other["id"].str());
  Reply r = Call("list_sessions", V::Map({{"user_id", u["id"].str()}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  Value list = r.result()["sessions"];
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["id"].str(), ids[2]);
  EXPECT_EQ(list[2]["id"].str(), ids[0]);
  for (size_t i = 0; i < list.size(); i++) {
    EXPECT_FALSE(list[i].has("token"));
    EXPECT_EQ(list[i]["user_id"].str(), u["id"].str());
  }
  Reply none = Call("list_sessions", V::Map({{"user_id", "00000000-0000-4000-8000-000000000000"}}));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.result()["sessions"].size(), 0u);
  EXPECT_EQ(Call("list_sessions", V::Map({})).code(), "invalid_argument");
}

TEST_F(RequestOpsTest, DeleteUserSessions) {
  Value u = NewUser();
  Value other = NewUser();
  Value keep = NewSession(u["id"].str());
  for (int i = 0; i < 3; i++) NewSession(u["id"].str());
  Value others = NewSession(other["id"].str());
  Reply r = Call("delete_user_sessions", V::Map({{"user_id", u["id"].str()}, {"except", Upper(keep["id"].str())}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["deleted"].i64(), 3);
  Reply list = Call("list_sessions", V::Map({{"user_id", u["id"].str()}}));
  ASSERT_EQ(list.result()["sessions"].size(), 1u);
  EXPECT_EQ(list.result()["sessions"][0]["id"].str(), keep["id"].str());
  Reply all = Call("delete_user_sessions", V::Map({{"user_id", u["id"].str()}}));
  EXPECT_EQ(all.result()["deleted"].i64(), 1);
  Reply again = Call("delete_user_sessions", V::Map({{"user_id", u["id"].str()}}));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.result()["deleted"].i64(), 0);
  EXPECT_TRUE(Call("get_session", V::Map({{"token", others["token"].str()}})).ok()) << "other users untouched";
  EXPECT_EQ(Call("delete_user_sessions", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("delete_user_sessions", V::Map({{"user_id", u["id"].str()}, {"except", "x"}})).code(),
            "invalid_argument");
}

TEST_F(RequestOpsTest, NoSecretInRepliesOfOtherOps) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str());
  std::string token = s["token"].str();
  for (Reply r : {Call("get_session", V::Map({{"id", s["id"].str()}})),
                  Call("list_sessions", V::Map({{"user_id", u["id"].str()}})),
                  Call("extend_session", V::Map({{"id", s["id"].str()}, {"ttl_s", 100}})), Call("list_users")}) {
    EXPECT_EQ(r.raw.find(token), std::string::npos);
    EXPECT_EQ(r.raw.find("secret-hash"), std::string::npos);
  }
}

}  // namespace
}  // namespace torii::test
