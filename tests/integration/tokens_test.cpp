// Secure tokens (PROTOCOL.md section 5) through the real toriid: create,
// check, use exactly once (also under concurrency), delete, expiry, the
// actor's row-level security, and no token or digest in any reply, audit
// row, event or log line.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "event_sub.h"
#include "request_fixture.h"
#include "torii/pg.h"
#include "torii/values.h"

namespace torii::test {
namespace {

class TokensTest : public RequestTest {
 protected:
  Value NewToken(const std::string& user_id, const std::string& purpose = "password_reset", int64_t ttl_s = 3600) {
    Reply r = Call("create_token", V::Map({{"user_id", user_id}, {"purpose", purpose}, {"ttl_s", ttl_s}}));
    EXPECT_TRUE(r.ok()) << r.ToString();
    Secret(r.result()["token"].str());
    return r.result();
  }
  static std::string Hex(std::string_view token) {
    auto d = TokenDigest(token);
    static const char* k = "0123456789abcdef";
    std::string out;
    for (uint8_t b : d) {
      out += k[b >> 4];
      out += k[b & 15];
    }
    return out;
  }
};

TEST_F(TokensTest, CreateCheckUseOnce) {
  Value user = NewUser();
  std::string uid = user["id"].str();
  Value t = NewToken(uid, "magic_link");
  std::string token = t["token"].str();
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(t["user_id"].str(), uid);
  EXPECT_EQ(t["purpose"].str(), "magic_link");
  EXPECT_TRUE(t["used_at"].is_nil());
  EXPECT_TRUE(t["expires_at"].is_timestamp());
  EXPECT_GT(t["expires_at"].micros(), t["created_at"].micros() + 3599LL * 1000000);
  for (const char* k : {"id", "user_id", "purpose", "expires_at", "used_at", "created_at", "token"}) {
    EXPECT_TRUE(t.has(k)) << k;
  }

  // The database holds the digest only.
  PgConn c = Connect(daemon().database_url());
  EXPECT_EQ(Scalar(c.get(), "SELECT encode(token_hash, 'hex') FROM secure_tokens WHERE id = '" + t["id"].str() + "'"),
            Hex(token));

  Reply check = Call("check_token", V::Map({{"token", token}, {"purpose", "magic_link"}}));
  ASSERT_TRUE(check.ok()) << check.ToString();
  EXPECT_EQ(check.result()["id"].str(), t["id"].str());
  EXPECT_FALSE(check.result().has("token"));
  EXPECT_TRUE(check.result()["used_at"].is_nil());
  // Checking does not use it.
  EXPECT_TRUE(Call("check_token", V::Map({{"token", token}, {"purpose", "magic_link"}})).ok());

  // The wrong purpose is not found, and does not use it either.
  EXPECT_EQ(Call("use_token", V::Map({{"token", token}, {"purpose", "password_reset"}})).code(), "not_found");
  EXPECT_EQ(Call("check_token", V::Map({{"token", token}, {"purpose", "email_verification"}})).code(), "not_found");

  Reply used = Call("use_token", V::Map({{"token", token}, {"purpose", "magic_link"}}));
  ASSERT_TRUE(used.ok()) << used.ToString();
  EXPECT_TRUE(used.result()["used_at"].is_timestamp());
  EXPECT_FALSE(used.result().has("token"));
  EXPECT_EQ(Call("use_token", V::Map({{"token", token}, {"purpose", "magic_link"}})).code(), "not_found");
  EXPECT_EQ(Call("check_token", V::Map({{"token", token}, {"purpose", "magic_link"}})).code(), "not_found");
  // Unknown is not found the same way.
  std::string unknown = NewSessionToken();
  Reply u = Call("use_token", V::Map({{"token", unknown}, {"purpose", "magic_link"}}));
  EXPECT_EQ(u.code(), "not_found");
  EXPECT_EQ(u.message(), Call("use_token", V::Map({{"token", token}, {"purpose", "magic_link"}})).message());
}

TEST_F(TokensTest, ArgumentErrors) {
  Value user = NewUser();
  std::string uid = user["id"].str();
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", uid}, {"purpose", "login"}, {"ttl_s", 60}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", uid}, {"purpose", "magic_link"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", uid}, {"purpose", "magic_link"}, {"ttl_s", 0}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", uid}, {"ttl_s", 60}})).code(), "invalid_argument");
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", "nope"}, {"purpose", "magic_link"}, {"ttl_s", 60}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", uid}, {"purpose", "magic_link"}, {"ttl_s", "60"}})).code(),
            "bad_request");
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", uid}, {"purpose", "magic_link"}, {"ttl_s", 60}, {"x", 1}}))
                .code(),
            "invalid_argument");
  // A missing user is a foreign-key violation.
  EXPECT_EQ(Call("create_token", V::Map({{"user_id", "00000000-0000-4000-8000-000000000001"},
                                         {"purpose", "magic_link"},
                                         {"ttl_s", 60}}))
                .code(),
            "foreign_key");
  EXPECT_EQ(Call("check_token", V::Map({{"purpose", "magic_link"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("use_token", V::Map({{"token", "abc"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("use_token", V::Map({{"token", "abc"}, {"purpose", "other"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("use_token", V::Map({{"token", ""}, {"purpose", "magic_link"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("delete_user_tokens", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("delete_user_tokens", V::Map({{"user_id", uid}, {"purpose", "x"}})).code(), "invalid_argument");
  PgConn c = Connect(daemon().database_url());
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM secure_tokens"), "0");
}

TEST_F(TokensTest, DeleteUserTokensAndCascade) {
  std::string a = NewUser()["id"].str();
  std::string b = NewUser()["id"].str();
  std::string ta = NewToken(a, "password_reset")["token"].str();
  NewToken(a, "password_reset");
  std::string tm = NewToken(a, "magic_link")["token"].str();
  std::string tb = NewToken(b, "password_reset")["token"].str();

  Reply d = Call("delete_user_tokens", V::Map({{"user_id", a}, {"purpose", "password_reset"}}));
  ASSERT_TRUE(d.ok()) << d.ToString();
  EXPECT_EQ(d.result()["deleted"].u64(), 2u);
  EXPECT_EQ(Call("check_token", V::Map({{"token", ta}, {"purpose", "password_reset"}})).code(), "not_found");
  EXPECT_TRUE(Call("check_token", V::Map({{"token", tm}, {"purpose", "magic_link"}})).ok());
  EXPECT_TRUE(Call("check_token", V::Map({{"token", tb}, {"purpose", "password_reset"}})).ok());
  d = Call("delete_user_tokens", V::Map({{"user_id", a}}));
  EXPECT_EQ(d.result()["deleted"].u64(), 1u);
  EXPECT_EQ(Call("delete_user_tokens", V::Map({{"user_id", a}})).result()["deleted"].u64(), 0u);

  // Deleting the user deletes its tokens.
  ASSERT_TRUE(Call("delete_user", V::Map({{"id", b}})).ok());
  EXPECT_EQ(Call("check_token", V::Map({{"token", tb}, {"purpose", "password_reset"}})).code(), "not_found");
  PgConn c = Connect(daemon().database_url());
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM secure_tokens"), "0");
}

TEST_F(TokensTest, ConcurrentUseSucceedsOnce) {
  std::string uid = NewUser()["id"].str();
  for (int round = 0; round < 5; round++) {
    std::string token = NewToken(uid, "password_reset")["token"].str();
    std::atomic<int> ok{0}, not_found{0}, other{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 10; i++) {
      threads.emplace_back([&] {
        WireClient c(daemon().request_endpoint());
        Reply r = c.Call("use_token", V::Map({{"token", token}, {"purpose", "password_reset"}}));
        if (r.ok()) {
          ok++;
        } else if (r.code() == "not_found") {
          not_found++;
        } else {
          other++;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 1) << "round " << round;
    EXPECT_EQ(not_found.load(), 9) << "round " << round;
    EXPECT_EQ(other.load(), 0) << "round " << round;
  }
}

TEST_F(TokensTest, ExpiresAfterItsTtl) {
  std::string uid = NewUser()["id"].str();
  Value t = NewToken(uid, "email_verification", 1);
  std::string token = t["token"].str();
  EXPECT_TRUE(Call("check_token", V::Map({{"token", token}, {"purpose", "email_verification"}})).ok());
  // Poll until it is gone; it must be gone soon after its expires_at.
  int64_t expires_ms = t["expires_at"].micros() / 1000;
  std::string code;
  while (NowMs() < expires_ms + 5000) {
    code = Call("check_token", V::Map({{"token", token}, {"purpose", "email_verification"}})).code();
    if (code == "not_found") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(code, "not_found");
  EXPECT_GE(NowMs() + 50, expires_ms);  // not before its time (clock slack: 50 ms)
  EXPECT_EQ(Call("use_token", V::Map({{"token", token}, {"purpose", "email_verification"}})).code(), "not_found");
}

TEST_F(TokensTest, ActorSeesOnlyItsOwn) {
  std::string a = NewUser()["id"].str();
  std::string b = NewUser()["id"].str();
  std::string tb = NewToken(b, "magic_link")["token"].str();
  // Own: allowed.
  Reply mine = client().Call(Req{.op = V("create_token"),
                                 .args = V::Map({{"user_id", a}, {"purpose", "magic_link"}, {"ttl_s", 60}}),
                                 .actor = V(a)});
  ASSERT_TRUE(mine.ok()) << mine.ToString();
  Secret(mine.result()["token"].str());
  Reply use_mine = client().Call(Req{.op = V("use_token"),
                                     .args = V::Map({{"token", mine.result()["token"].str()}, {"purpose", "magic_link"}}),
                                     .actor = V(a)});
  EXPECT_TRUE(use_mine.ok()) << use_mine.ToString();
  // Another user's: not found, and untouched; creating one for them is forbidden.
  EXPECT_EQ(client()
                .Call(Req{.op = V("use_token"),
                          .args = V::Map({{"token", tb}, {"purpose", "magic_link"}}),
                          .actor = V(a)})
                .code(),
            "not_found");
  EXPECT_TRUE(Call("check_token", V::Map({{"token", tb}, {"purpose", "magic_link"}})).ok());
  EXPECT_EQ(client()
                .Call(Req{.op = V("create_token"),
                          .args = V::Map({{"user_id", b}, {"purpose", "magic_link"}, {"ttl_s", 60}}),
                          .actor = V(a)})
                .code(),
            "forbidden");
  Reply del = client().Call(Req{.op = V("delete_user_tokens"), .args = V::Map({{"user_id", b}}), .actor = V(a)});
  ASSERT_TRUE(del.ok()) << del.ToString();
  EXPECT_EQ(del.result()["deleted"].u64(), 0u);
}

// The addition user_torii_id: create, check and use name the user's
// metadata.torii_id (nil when absent), also for an actor's own token.
TEST_F(TokensTest, ResultsCarryTheUsersToriiId) {
  std::string torii_id = "usr_7pQ2mX9kLr4Tz";
  Reply created =
      Call("create_user", V::Map({{"email", "tok-tid@example.com"}, {"metadata", V::Map({{"torii_id", torii_id}})}}));
  ASSERT_TRUE(created.ok()) << created.ToString();
  std::string a = created.result()["id"].str();
  Value t = NewToken(a, "magic_link");
  EXPECT_EQ(t["user_torii_id"].str(), torii_id);
  Reply check = Call("check_token", V::Map({{"token", t["token"].str()}, {"purpose", "magic_link"}}));
  ASSERT_TRUE(check.ok()) << check.ToString();
  EXPECT_EQ(check.result()["user_torii_id"].str(), torii_id);
  Reply use = Call("use_token", V::Map({{"token", t["token"].str()}, {"purpose", "magic_link"}}));
  ASSERT_TRUE(use.ok()) << use.ToString();
  EXPECT_EQ(use.result()["user_torii_id"].str(), torii_id);
  EXPECT_EQ(use.result()["user_id"].str(), a);

  Value plain = NewToken(NewUser()["id"].str(), "email_verification");
  EXPECT_TRUE(plain.has("user_torii_id"));
  EXPECT_TRUE(plain["user_torii_id"].is_nil());

  Reply mine = client().Call(Req{.op = V("create_token"),
                                 .args = V::Map({{"user_id", a}, {"purpose", "password_reset"}, {"ttl_s", 60}}),
                                 .actor = V(a)});
  ASSERT_TRUE(mine.ok()) << mine.ToString();
  Secret(mine.result()["token"].str());
  EXPECT_EQ(mine.result()["user_torii_id"].str(), torii_id);
  Reply use_mine = client().Call(Req{.op = V("use_token"),
                                     .args = V::Map({{"token", mine.result()["token"].str()}, {"purpose", "password_reset"}}),
                                     .actor = V(a)});
  ASSERT_TRUE(use_mine.ok()) << use_mine.ToString();
  EXPECT_EQ(use_mine.result()["user_torii_id"].str(), torii_id);
}

TEST_F(TokensTest, NoTokenOrDigestInAuditEventsOrLog) {
  EventSub sub(daemon().event_endpoint(), {""});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());  // subscribed
  std::string uid = NewUser()["id"].str();
  std::vector<std::string> tokens;
  for (const char* p : {"magic_link", "password_reset", "email_verification"}) {
    tokens.push_back(NewToken(uid, p)["token"].str());
  }
  ASSERT_TRUE(Call("use_token", V::Map({{"token", tokens[0]}, {"purpose", "magic_link"}})).ok());
  ASSERT_TRUE(Call("delete_user_tokens", V::Map({{"user_id", uid}, {"purpose", "password_reset"}})).ok());
  ASSERT_TRUE(Call("delete_user", V::Map({{"id", uid}})).ok());

  PgConn c = Connect(daemon().database_url());
  // Audited: 3 inserts, 1 update, 1 delete by op, 2 deletes by cascade.
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM audit_logs WHERE table_name = 'secure_tokens'"), "7");
  std::string audit = Scalar(c.get(), "SELECT string_agg(coalesce(old_data::text, '') || coalesce(new_data::text, ''), ' ') "
                                      "FROM audit_logs WHERE table_name = 'secure_tokens'");
  EXPECT_EQ(audit.find("token_hash"), std::string::npos) << audit;
  // list_audit serves the same entries by table.
  Reply listed = Call("list_audit", V::Map({{"table", "secure_tokens"}}));
  ASSERT_TRUE(listed.ok()) << listed.ToString();
  EXPECT_EQ(listed.result()["entries"].size(), 7u);
  EXPECT_EQ(listed.raw.find("token_hash"), std::string::npos);
  std::vector<Event> seen;
  sub.WaitForTopic("user.deleted", 5000, &seen);
  std::string events;
  for (const auto& e : seen) events += e.raw;
  for (const auto& t : tokens) {
    std::string hex = Hex(t);
    EXPECT_EQ(audit.find(t), std::string::npos);
    EXPECT_EQ(audit.find(hex), std::string::npos);
    EXPECT_EQ(events.find(t), std::string::npos);
    std::string raw(reinterpret_cast<const char*>(TokenDigest(t).data()), 32);
    EXPECT_EQ(events.find(raw), std::string::npos);
    EXPECT_EQ(daemon().log().find(hex), std::string::npos);
  }
}

}  // namespace
}  // namespace torii::test
