// The JWT deny-list operations (PROTOCOL.md section 5) through the real
// toriid: revoke_jwt, revoke_user_jwts, is_jwt_revoked, list_jwt_revocations
// pages, their events (jwt.revoked, jwt.user_revoked), and the actor
// refusal.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <thread>

#include "event_sub.h"
#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

class JwtTest : public RequestTest {};

constexpr const char* kUser = "0b5e3c1a-1111-4222-8333-444455556666";

TEST_F(JwtTest, RevokeAndCheck) {
  int64_t exp = NowMs() + 3600 * 1000;
  EXPECT_FALSE(Call("is_jwt_revoked", V::Map({{"jti", "j1"}})).result()["revoked"].boolean());
  Reply r = Call("revoke_jwt", V::Map({{"jti", "j1"}, {"expires_at", V(exp)}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result().size(), 0u);
  EXPECT_TRUE(Call("revoke_jwt", V::Map({{"jti", "j1"}, {"expires_at", V(exp)}})).ok());  // idempotent
  EXPECT_TRUE(Call("is_jwt_revoked", V::Map({{"jti", "j1"}})).result()["revoked"].boolean());
  EXPECT_FALSE(Call("is_jwt_revoked", V::Map({{"jti", "j2"}})).result()["revoked"].boolean());
  // Past its exp it no longer counts.
  ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "old"}, {"expires_at", V(NowMs() - 1000)}, {"user_id", kUser}})).ok());
  EXPECT_FALSE(Call("is_jwt_revoked", V::Map({{"jti", "old"}})).result()["revoked"].boolean());

  // Per-user cutoff.
  int64_t before = NowMs();
  ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", kUser}, {"issued_before", V(before)}})).ok());
  auto revoked = [&](V issued) {
    Reply q = Call("is_jwt_revoked", V::Map({{"jti", "x"}, {"user_id", kUser}, {"issued_at", issued}}));
    EXPECT_TRUE(q.ok()) << q.ToString();
    return q.result()["revoked"].boolean();
  };
  EXPECT_TRUE(revoked(V(before - 1000)));
  EXPECT_FALSE(revoked(V(before + 1000)));
  EXPECT_TRUE(revoked(V()));  // no issued_at: any cutoff of the user counts
  EXPECT_FALSE(Call("is_jwt_revoked", V::Map({{"jti", "x"}, {"user_id", "0b5e3c1a-1111-4222-8333-444455556667"},
                                               {"issued_at", V(before - 1000)}}))
                   .result()["revoked"]
                   .boolean());
  // A cutoff never moves back.
  ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", kUser}, {"issued_before", V(before - 60000)}})).ok());
  EXPECT_TRUE(revoked(V(before - 1000)));
  // Default: now.
  ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", kUser}})).ok());
  EXPECT_TRUE(revoked(V(before + 1)));
}

TEST_F(JwtTest, Errors) {
  int64_t exp = NowMs() + 60000;
  EXPECT_EQ(Call("revoke_jwt", V::Map({{"jti", "a"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("revoke_jwt", V::Map({{"expires_at", V(exp)}})).code(), "invalid_argument");
  EXPECT_EQ(Call("revoke_jwt", V::Map({{"jti", ""}, {"expires_at", V(exp)}})).code(), "invalid_argument");
  EXPECT_EQ(Call("revoke_jwt", V::Map({{"jti", std::string(256, 'a')}, {"expires_at", V(exp)}})).code(),
            "invalid_argument");
  EXPECT_TRUE(Call("revoke_jwt", V::Map({{"jti", std::string(255, 'a')}, {"expires_at", V(exp)}})).ok());
  EXPECT_EQ(Call("revoke_jwt", V::Map({{"jti", "a"}, {"expires_at", V(exp)}, {"user_id", "x"}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("revoke_jwt", V::Map({{"jti", "a"}, {"expires_at", "soon"}})).code(), "bad_request");
  EXPECT_EQ(Call("revoke_user_jwts", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("revoke_user_jwts", V::Map({{"user_id", kUser}, {"issued_before", V(NowMs())},
                                              {"expires_at", V(NowMs() - 10000)}}))
                .code(),
            "invalid_argument");
  EXPECT_EQ(Call("is_jwt_revoked", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("is_jwt_revoked", V::Map({{"jti", "a"}, {"issued_at", V(NowMs())}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_jwt_revocations", V::Map({{"limit", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_jwt_revocations", V::Map({{"limit", 1001}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_jwt_revocations", V::Map({{"after", "zzz"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("list_jwt_revocations", V::Map({{"after", "unot-a-uuid"}})).code(), "invalid_argument");
  std::string uid = NewUser()["id"].str();
  for (const char* op : {"revoke_jwt", "revoke_user_jwts", "is_jwt_revoked", "list_jwt_revocations"}) {
    V args = std::string(op) == "list_jwt_revocations" ? V::Map({})
             : std::string(op) == "revoke_user_jwts"   ? V::Map({{"user_id", uid}})
                                                       : V::Map({{"jti", "z"}, {"expires_at", V(exp)}});
    if (std::string(op) == "is_jwt_revoked") args = V::Map({{"jti", "z"}});
    EXPECT_EQ(client().Call(Req{.op = V(op), .args = args, .actor = V(uid)}).code(), "forbidden") << op;
  }
  PgConn c = Connect(daemon().database_url());
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM jwt_revocations"), "1");
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM jwt_user_cutoffs"), "0");
}

TEST_F(JwtTest, ListPagesThroughTheUnexpiredList) {
  int64_t exp = NowMs() + 3600 * 1000;
  std::set<std::string> jtis, users;
  for (int i = 0; i < 25; i++) {
    std::string jti = "jti-" + std::to_string(i) + (i % 3 == 0 ? "/ü" : "");
    ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", jti}, {"expires_at", V(exp + i)}})).ok());
    jtis.insert(jti);
  }
  ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "expired"}, {"expires_at", V(NowMs() - 5000)}})).ok());
  for (int i = 0; i < 12; i++) {
    char id[40];
    std::snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012d", 0xa0000000u + i * 7919u, i);
    ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", std::string(id)}})).ok());
    users.insert(id);
  }
  ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", kUser}, {"issued_before", V(NowMs() - 7200000)},
                                               {"expires_at", V(NowMs() - 3600000)}}))
                  .ok());  // cutoff already past its expires_at: not listed

  for (int limit : {1, 7, 37, 1000}) {
    std::set<std::string> got_j, got_u;
    std::string after;
    int pages = 0;
    bool users_started = false;
    for (;;) {
      V args = after.empty() ? V::Map({{"limit", limit}}) : V::Map({{"limit", limit}, {"after", after}});
      Reply r = Call("list_jwt_revocations", args);
      ASSERT_TRUE(r.ok()) << r.ToString();
      pages++;
      Value res = r.result();
      EXPECT_LE(res["jtis"].size() + res["users"].size(), static_cast<size_t>(limit));
      if (users_started) EXPECT_EQ(res["jtis"].size(), 0u);
      for (size_t i = 0; i < res["jtis"].size(); i++) {
        EXPECT_TRUE(res["jtis"][i]["expires_at"].is_timestamp());
        EXPECT_TRUE(got_j.insert(res["jtis"][i]["jti"].str()).second) << "twice: " << res["jtis"][i]["jti"].str();
      }
      for (size_t i = 0; i < res["users"].size(); i++) {
        users_started = true;
        EXPECT_TRUE(res["users"][i]["issued_before"].is_timestamp());
        EXPECT_TRUE(got_u.insert(res["users"][i]["user_id"].str()).second);
      }
      if (res["next"].is_nil()) break;
      after = res["next"].str();
      ASSERT_LT(pages, 100);
    }
    EXPECT_EQ(got_j, jtis) << "limit " << limit;
    EXPECT_EQ(got_u, users) << "limit " << limit;
    if (limit == 1) EXPECT_EQ(pages, 37);
    if (limit == 1000) EXPECT_EQ(pages, 1);
  }
}

TEST_F(JwtTest, Events) {
  EventSub sub(daemon().event_endpoint(), {"jwt.", "torii.heartbeat"});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());  // subscribed
  int64_t exp = NowMs() + 3600 * 1000;
  ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "e1"}, {"expires_at", V(exp)}, {"user_id", kUser}})).ok());
  Event e = sub.WaitForTopic("jwt.revoked", 5000);
  ASSERT_EQ(e.topic, "jwt.revoked");
  EXPECT_EQ(e.body["jti"].str(), "e1");
  EXPECT_EQ(e.body["user_id"].str(), kUser);
  EXPECT_EQ(e.body["expires_at"].micros(), exp * 1000);
  EXPECT_EQ(e.body["seq"].u64(), 1u);
  // Idempotent: the same revocation again sends nothing; a later exp does.
  ASSERT_TRUE(Call("revoke_jwt", V::Map({{"jti", "e1"}, {"expires_at", V(exp)}})).ok());
  ASSERT_TRUE(Call("revoke_user_jwts", V::Map({{"user_id", kUser}, {"issued_before", V(exp - 10000)}})).ok());
  e = sub.WaitFor([](const Event& ev) { return ev.topic.rfind("jwt.", 0) == 0; }, 5000);
  ASSERT_EQ(e.topic, "jwt.user_revoked");
  EXPECT_EQ(e.body["user_id"].str(), kUser);
  EXPECT_EQ(e.body["issued_before"].micros(), (exp - 10000) * 1000);
  EXPECT_EQ(e.body["seq"].u64(), 2u);
  // Revoking by plain SQL is published too.
  Sql("INSERT INTO jwt_revocations (jti, expires_at) VALUES ('sql-jti', now() + interval '1 hour')");
  e = sub.WaitForTopic("jwt.revoked", 5000);
  EXPECT_EQ(e.body["jti"].str(), "sql-jti");
  EXPECT_TRUE(e.body["user_id"].is_nil());
  EXPECT_EQ(e.body["seq"].u64(), 3u);
}

}  // namespace
}  // namespace torii::test
