// The login guard (PROTOCOL.md section 5) through the real toriid: failure
// counts per lower-cased email, the lock at max_failures (also for eight
// concurrent failures, many rounds), the user lock ops, replies that do not
// tell whether a user has the email, and the actor refusal.
#include <gtest/gtest.h>

#include <cstdlib>
#include <algorithm>
#include <atomic>
#include <thread>

#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

class GuardTest : public RequestTest {};

TEST_F(GuardTest, CountsPerLowerCasedEmailWithinTheWindow) {
  Reply r = Call("record_login_failure", V::Map({{"email", "Someone@Example.com"}, {"ip_address", "10.0.0.1"}}));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["failures"].u64(), 1u);
  EXPECT_FALSE(r.result()["locked"].boolean());
  r = Call("record_login_failure", V::Map({{"email", "someone@example.COM"}}));
  EXPECT_EQ(r.result()["failures"].u64(), 2u);
  r = Call("record_login_failure", V::Map({{"email", "other@example.com"}}));
  EXPECT_EQ(r.result()["failures"].u64(), 1u);

  Reply lf = Call("login_failures", V::Map({{"email", "SOMEONE@example.com"}}));
  ASSERT_TRUE(lf.ok()) << lf.ToString();
  EXPECT_EQ(lf.result()["count"].u64(), 2u);
  EXPECT_TRUE(lf.result()["latest_at"].is_timestamp());
  EXPECT_LE(std::abs(lf.result()["latest_at"].micros() / 1000 - NowMs()), 10000);
  // `since` in the future: none.
  lf = Call("login_failures", V::Map({{"email", "someone@example.com"}, {"since", V(NowMs() + 60000)}}));
  EXPECT_EQ(lf.result()["count"].u64(), 0u);
  EXPECT_TRUE(lf.result()["latest_at"].is_nil());

  // Old failures fall out of the window.
  Sql("UPDATE login_failures SET at = now() - interval '1 hour' WHERE email = 'someone@example.com'");
  r = Call("record_login_failure", V::Map({{"email", "someone@example.com"}, {"window_s", 600}}));
  EXPECT_EQ(r.result()["failures"].u64(), 1u);
  r = Call("record_login_failure", V::Map({{"email", "someone@example.com"}, {"window_s", 7200}}));
  EXPECT_EQ(r.result()["failures"].u64(), 4u);

  Reply c = Call("clear_login_failures", V::Map({{"email", "someone@EXAMPLE.com"}}));
  ASSERT_TRUE(c.ok()) << c.ToString();
  EXPECT_EQ(c.result()["deleted"].u64(), 4u);
  EXPECT_EQ(Call("login_failures", V::Map({{"email", "someone@example.com"}})).result()["count"].u64(), 0u);
  EXPECT_EQ(Call("login_failures", V::Map({{"email", "other@example.com"}})).result()["count"].u64(), 1u);
}

TEST_F(GuardTest, LocksTheUserAtMaxFailures) {
  Value user = NewUser("Locked.Person@example.com");
  std::string id = user["id"].str();
  for (int i = 1; i <= 4; i++) {
    Reply r = Call("record_login_failure", V::Map({{"email", "locked.person@example.com"}, {"max_failures", 5}}));
    ASSERT_TRUE(r.ok()) << r.ToString();
    EXPECT_EQ(r.result()["failures"].u64(), static_cast<uint64_t>(i));
    EXPECT_FALSE(r.result()["locked"].boolean());
  }
  EXPECT_TRUE(Call("get_user_lock", V::Map({{"email", "locked.person@example.com"}})).result()["locked_at"].is_nil());
  Reply r = Call("record_login_failure", V::Map({{"email", "locked.person@example.com"}, {"max_failures", 5}}));
  EXPECT_EQ(r.result()["failures"].u64(), 5u);
  EXPECT_TRUE(r.result()["locked"].boolean());
  Reply lock = Call("get_user_lock", V::Map({{"email", "LOCKED.person@example.com"}}));
  ASSERT_TRUE(lock.ok()) << lock.ToString();
  EXPECT_TRUE(lock.result()["locked_at"].is_timestamp());
  int64_t locked_at = lock.result()["locked_at"].micros();
  // get_user shows it too; a further failure keeps the first lock time.
  r = Call("record_login_failure", V::Map({{"email", "locked.person@example.com"}, {"max_failures", 5}}));
  EXPECT_TRUE(r.result()["locked"].boolean());
  EXPECT_EQ(Call("get_user_lock", V::Map({{"email", "locked.person@example.com"}})).result()["locked_at"].micros(),
            locked_at);

  // Unlock, lock by hand.
  ASSERT_TRUE(Call("set_user_lock", V::Map({{"email", "locked.person@example.com"}, {"locked_at", nullptr}})).ok());
  EXPECT_TRUE(Call("get_user_lock", V::Map({{"email", "locked.person@example.com"}})).result()["locked_at"].is_nil());
  Reply set = Call("set_user_lock", V::Map({{"email", "locked.person@example.com"}, {"locked_at", V(int64_t{1700000000000})}}));
  ASSERT_TRUE(set.ok()) << set.ToString();
  EXPECT_EQ(set.result().size(), 0u);
  EXPECT_EQ(Call("get_user_lock", V::Map({{"email", "locked.person@example.com"}})).result()["locked_at"].micros(),
            1700000000000000LL);
}

TEST_F(GuardTest, RepliesDoNotTellWhetherTheUserExists) {
  NewUser("exists@example.com");
  for (const char* email : {"exists@example.com", "missing@example.com"}) {
    Reply r = Call("record_login_failure", V::Map({{"email", email}, {"max_failures", 1}}));
    ASSERT_TRUE(r.ok()) << r.ToString();
    EXPECT_EQ(r.result()["failures"].u64(), 1u) << email;
    EXPECT_TRUE(r.result()["locked"].boolean()) << email;
    EXPECT_EQ(r.result().keys(), (std::vector<std::string>{"failures", "locked"}));
    Reply s = Call("set_user_lock", V::Map({{"email", email}, {"locked_at", nullptr}}));
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(s.result().size(), 0u);
    Reply g = Call("get_user_lock", V::Map({{"email", email}}));
    ASSERT_TRUE(g.ok()) << g.ToString();
    EXPECT_TRUE(g.result()["locked_at"].is_nil());
    Reply c = Call("clear_login_failures", V::Map({{"email", email}}));
    EXPECT_EQ(c.result()["deleted"].u64(), 1u);
  }
}

TEST_F(GuardTest, ArgumentErrorsAndActor) {
  EXPECT_EQ(Call("record_login_failure", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("record_login_failure", V::Map({{"email", "not-an-email"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("record_login_failure", V::Map({{"email", "a@b.c"}, {"window_s", 0}})).code(), "invalid_argument");
  EXPECT_EQ(Call("record_login_failure", V::Map({{"email", "a@b.c"}, {"max_failures", 0}})).code(),
            "invalid_argument");
  EXPECT_EQ(Call("record_login_failure", V::Map({{"email", "a@b.c"}, {"max_failures", "5"}})).code(), "bad_request");
  EXPECT_EQ(Call("login_failures", V::Map({{"email", "a@b.c"}, {"since", "yesterday"}})).code(), "bad_request");
  EXPECT_EQ(Call("set_user_lock", V::Map({{"email", "a@b.c"}})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_user_lock", V::Map({})).code(), "invalid_argument");
  EXPECT_EQ(Call("clear_login_failures", V::Map({{"email", 3}})).code(), "bad_request");
  std::string uid = NewUser("actor@example.com")["id"].str();
  for (const char* op : {"record_login_failure", "login_failures", "clear_login_failures", "get_user_lock"}) {
    Reply r = client().Call(Req{.op = V(op), .args = V::Map({{"email", "actor@example.com"}}), .actor = V(uid)});
    EXPECT_EQ(r.code(), "forbidden") << op;
  }
  Reply r = client().Call(Req{.op = V("set_user_lock"),
                              .args = V::Map({{"email", "actor@example.com"}, {"locked_at", nullptr}}),
                              .actor = V(uid)});
  EXPECT_EQ(r.code(), "forbidden");
  PgConn c = Connect(daemon().database_url());
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM login_failures"), "0");
}

// Eight simultaneous failures against a limit of five: counts 1..8, and
// exactly the 5th to 8th say locked. Many rounds, so that a race would show.
TEST_F(GuardTest, ConcurrentFailuresLockExactlyAtTheLimit) {
  NewUser("race@example.com");
  constexpr int kThreads = 8;
  std::vector<std::unique_ptr<WireClient>> clients;
  for (int i = 0; i < kThreads; i++) clients.push_back(std::make_unique<WireClient>(daemon().request_endpoint()));
  for (int round = 0; round < 20; round++) {
    ASSERT_TRUE(Call("clear_login_failures", V::Map({{"email", "race@example.com"}})).ok());
    ASSERT_TRUE(Call("set_user_lock", V::Map({{"email", "race@example.com"}, {"locked_at", nullptr}})).ok());
    std::vector<uint64_t> counts(kThreads);
    std::vector<int> locked(kThreads, -1);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; i++) {
      threads.emplace_back([&, i] {
        ready++;
        while (ready.load() < kThreads) std::this_thread::yield();
        Reply r = clients[i]->Call("record_login_failure",
                                   V::Map({{"email", i % 2 ? "RACE@example.com" : "race@example.com"}, {"max_failures", 5}}));
        if (r.ok()) {
          counts[i] = r.result()["failures"].u64();
          locked[i] = r.result()["locked"].boolean() ? 1 : 0;
        }
      });
    }
    for (auto& t : threads) t.join();
    std::vector<std::pair<uint64_t, int>> got;
    for (int i = 0; i < kThreads; i++) got.emplace_back(counts[i], locked[i]);
    std::sort(got.begin(), got.end());
    for (int i = 0; i < kThreads; i++) {
      EXPECT_EQ(got[i].first, static_cast<uint64_t>(i + 1)) << "round " << round;
      EXPECT_EQ(got[i].second, i + 1 >= 5 ? 1 : 0) << "round " << round << " count " << got[i].first;
    }
    EXPECT_TRUE(Call("get_user_lock", V::Map({{"email", "race@example.com"}})).result()["locked_at"].is_timestamp());
  }
}

}  // namespace
}  // namespace torii::test
