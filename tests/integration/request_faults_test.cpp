// The request path when things go wrong, through the real toriid: a request
// held by a row lock times out on time; a full queue is `overloaded`;
// PostgreSQL going away gives `unavailable` within a second and the daemon
// recovers by itself when it returns (private clusters, never the shared
// one); SIGTERM with requests in flight answers them and exits 0.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <set>
#include <thread>

#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// A transaction in another session holding a row lock on one user.
class RowLock {
 public:
  RowLock(const std::string& conninfo, const std::string& user_id) : conn_(Connect(conninfo)) {
    Exec(conn_.get(), "BEGIN");
    Exec(conn_.get(), "SELECT id FROM users WHERE id = '" + user_id + "' FOR UPDATE");
  }
  void Release() {
    if (conn_) Exec(conn_.get(), "ROLLBACK");
    conn_.reset();
  }

 private:
  PgConn conn_;
};

class RequestFaultsTest : public RequestTest {};

TEST_F(RequestFaultsTest, RowLockGivesTimeoutOnTimeAndDaemonKeepsServing) {
  Value u = NewUser();
  std::string id = u["id"].str();
  RowLock lock(daemon().database_url(), id);
  constexpr int kTimeout = 500;
  auto start = Clock::now();
  Reply r = client().Call(
      Req{.op = V("update_user"), .args = V::Map({{"id", id}, {"password_hash", "h"}}), .timeout_ms = V(kTimeout)});
  int64_t took = MsSince(start);
  EXPECT_EQ(r.code(), "timeout") << r.ToString();
  EXPECT_GE(took, kTimeout - 20);
  EXPECT_LE(took, kTimeout + 250) << "the timeout reply must come on time";
  // Local ops were never blocked; database ops work again after the timeout.
  EXPECT_TRUE(Call("ping").ok());
  Value other = NewUser();
  Reply g = Call("get_user", V::Map({{"id", other["id"].str()}}));
  EXPECT_TRUE(g.ok()) << g.ToString();
  // The row is still locked: another try times out again, on time.
  start = Clock::now();
  Reply again = client().Call(
      Req{.op = V("verify_email"), .args = V::Map({{"id", id}}), .timeout_ms = V(300)});
  EXPECT_EQ(again.code(), "timeout") << again.ToString();
  EXPECT_LE(MsSince(start), 300 + 250);
  lock.Release();
  Reply done = Call("update_user", V::Map({{"id", id}, {"password_hash", "h2"}}));
  ASSERT_TRUE(done.ok()) << done.ToString();
  EXPECT_EQ(done.result()["password_hash"].str(), "h2");
  // The timed-out update did not happen later behind our back.
  EXPECT_TRUE(Call("get_user", V::Map({{"id", id}})).result()["email_verified_at"].is_nil());
  EXPECT_GE(Call("stats").result()["timeouts"].u64(), 2u);
}

TEST_F(RequestFaultsTest, DefaultDeadlineComesFromConfig) {
  DaemonProcess d({.settings = {{"server.request_timeout_ms", "400"}}});
  WireClient c(d.request_endpoint());
  Value u = Value::Decode(c.Call("create_user", V::Map({{"email", "lock@x.io"}})).raw)["result"];
  ASSERT_TRUE(u["id"].is_str());
  RowLock lock(d.database_url(), u["id"].str());
  auto start = Clock::now();
  Reply r = c.Call("delete_user", V::Map({{"id", u["id"].str()}}));
  EXPECT_EQ(r.code(), "timeout") << r.ToString();
  EXPECT_GE(MsSince(start), 380);
  EXPECT_LE(MsSince(start), 400 + 250);
  lock.Release();
  Reply g = c.Call("get_user", V::Map({{"id", u["id"].str()}}));
  EXPECT_TRUE(g.ok()) << "the timed-out delete must not take effect later " << g.ToString() << d.LogTail(60);
}

class OverloadTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    return {.settings = {{"database.max_connections", "1"},
                         {"database.min_connections", "1"},
                         {"server.pipeline_depth", "1"},
                         {"server.max_pending", "2"}}};
  }
};

TEST_F(OverloadTest, FullQueueIsOverloadedAndQueuedRequestsStillComplete) {
  Value u = NewUser();
  std::string id = u["id"].str();
  RowLock lock(daemon().database_url(), id);
  // 1 runs (held by the lock), 2 and 3 wait in the queue, 4 is refused.
  for (int i = 1; i <= 4; i++) {
    client().SendRaw(Req{.op = V("update_user"),
                         .args = V::Map({{"id", id}, {"password_hash", "h" + std::to_string(i)}}),
                         .id = V(i),
                         .timeout_ms = V(20000)}
                         .Encode());
  }
  Reply refused = client().Recv(5000);
  ASSERT_TRUE(refused.received);
  EXPECT_EQ(refused.id().i64(), 4);
  EXPECT_EQ(refused.code(), "overloaded") << refused.ToString();
  lock.Release();
  std::set<int64_t> done;
  for (int i = 0; i < 3; i++) {
    Reply r = client().Recv(10000);
    ASSERT_TRUE(r.received);
    EXPECT_TRUE(r.ok()) << r.ToString();
    done.insert(r.id().i64());
  }
  EXPECT_EQ(done, (std::set<int64_t>{1, 2, 3}));
  EXPECT_GE(Call("stats").result()["overloaded"].u64(), 1u);
}

// PostgreSQL stops under a running daemon, then comes back.
void OutageAndRecovery(bool immediate) {
  PgCluster cluster;
  DaemonProcess d({.database_url = cluster.CreateDatabase()});
  WireClient c(d.request_endpoint());
  Reply made = c.Call("create_user", V::Map({{"email", "survivor@x.io"}}));
  ASSERT_TRUE(made.ok()) << made.ToString();
  std::string id = made.result()["id"].str();

  // The cluster runs with synchronous_commit=off, so an immediate stop could
  // lose the last commits; a checkpoint makes the survivor durable.
  Exec(Connect(d.database_url()).get(), "CHECKPOINT");
  cluster.Stop(immediate);
  // Every request during the outage is answered `unavailable` within a
  // second: the first ones may meet the connection just broken.
  for (int i = 0; i < 5; i++) {
    auto start = Clock::now();
    Reply r = c.Call("get_user", V::Map({{"id", id}}), 5000);
    int64_t took = MsSince(start);
    EXPECT_EQ(r.code(), "unavailable") << "attempt " << i << ": " << r.ToString();
    EXPECT_LT(took, 1000) << "attempt " << i;
    EXPECT_EQ(r.message().find("password"), std::string::npos);
  }
  EXPECT_TRUE(c.Call("ping").ok()) << "local ops do not need the database";
  EXPECT_TRUE(d.running());

  cluster.Start();
  auto start = Clock::now();
  Reply back;
  while (MsSince(start) < 20000) {
    back = c.Call("get_user", V::Map({{"id", id}}), 5000);
    if (back.ok()) break;
    EXPECT_EQ(back.code(), "unavailable") << back.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // pacing a poll, not waiting for a result
  }
  ASSERT_TRUE(back.ok()) << "no recovery within 20 s: " << back.ToString() << d.LogTail();
  EXPECT_EQ(back.result()["email"].str(), "survivor@x.io");
  Reply after = c.Call("create_user", V::Map({{"email", "after@x.io"}}));
  EXPECT_TRUE(after.ok()) << after.ToString();
  EXPECT_EQ(d.Stop(), 0) << d.LogTail();
}

TEST(RequestOutageTest, FastShutdownGivesUnavailableThenRecovers) { OutageAndRecovery(false); }
TEST(RequestOutageTest, ImmediateShutdownGivesUnavailableThenRecovers) { OutageAndRecovery(true); }

TEST(RequestOutageTest, RequestsInFlightWhenPostgresStopsAreAnswered) {
  PgCluster cluster;
  DaemonProcess d({.database_url = cluster.CreateDatabase()});
  WireClient c(d.request_endpoint());
  Reply made = c.Call("create_user", V::Map({{"email", "held@x.io"}}));
  ASSERT_TRUE(made.ok());
  std::string id = made.result()["id"].str();
  RowLock lock(d.database_url(), id);
  for (int i = 0; i < 5; i++) {
    c.SendRaw(Req{.op = V("update_user"),
                  .args = V::Map({{"id", id}, {"password_hash", "x"}}),
                  .id = V(i),
                  .timeout_ms = V(30000)}
                  .Encode());
  }
  // Wait until the daemon holds all five, then take the server away.
  auto start = Clock::now();
  while (c.Call("stats").result()["requests"].u64() < 7 && MsSince(start) < 10000) {
  }
  cluster.Stop(true);
  auto stopped = Clock::now();
  for (int i = 0; i < 5; i++) {
    Reply r = c.Recv(5000);
    ASSERT_TRUE(r.received) << "request left unanswered";
    EXPECT_EQ(r.code(), "unavailable") << r.ToString();
  }
  EXPECT_LT(MsSince(stopped), 2000);
}

TEST_F(RequestFaultsTest, SigtermWithRequestsInFlightAnswersThemAndExitsZero) {
  Value u = NewUser();
  std::string id = u["id"].str();
  RowLock lock(daemon().database_url(), id);
  constexpr int kN = 20;
  for (int i = 0; i < kN; i++) {
    client().SendRaw(Req{.op = V("update_user"),
                         .args = V::Map({{"id", id}, {"metadata_merge", V::Map({{"n" + std::to_string(i), i}})}}),
                         .id = V(i),
                         .timeout_ms = V(30000)}
                         .Encode());
  }
  // A few reads that do not touch the locked row, in flight as well.
  for (int i = kN; i < kN + 5; i++) {
    client().SendRaw(Req{.op = V("list_users"), .id = V(i)}.Encode());
  }
  // The daemon has taken them all once its request counter says so.
  WireClient probe(daemon().request_endpoint());
  auto start = Clock::now();
  uint64_t seen = 0;
  while ((seen = probe.Call("stats").result()["requests"].u64()) < kN + 5 + 1 && MsSince(start) < 10000) {
  }
  ASSERT_GE(seen, static_cast<uint64_t>(kN + 5));
  daemon().Signal(SIGTERM);
  ASSERT_TRUE(daemon().WaitForLog("SIGTERM", 10000)) << daemon().LogTail();
  EXPECT_TRUE(daemon().running()) << "still finishing what is in flight";
  lock.Release();
  std::set<int64_t> answered;
  for (int i = 0; i < kN + 5; i++) {
    Reply r = client().Recv(10000);
    ASSERT_TRUE(r.received) << "only " << answered.size() << " answered" << daemon().LogTail();
    EXPECT_TRUE(r.ok()) << r.ToString();
    answered.insert(r.id().i64());
  }
  EXPECT_EQ(answered.size(), static_cast<size_t>(kN + 5));
  EXPECT_EQ(daemon().Wait(15000), 0) << daemon().LogTail();
  // Every update landed.
  PgConn conn = Connect(daemon().database_url());
  EXPECT_EQ(Scalar(conn.get(), "SELECT count(*) FROM users, jsonb_object_keys(metadata) WHERE id = '" + id + "'"),
            std::to_string(kN));
}

TEST_F(RequestFaultsTest, SigtermWhenIdleExitsZero) {
  EXPECT_TRUE(Call("ping").ok());
  EXPECT_EQ(daemon().Stop(), 0) << daemon().LogTail();
}

TEST_F(RequestFaultsTest, SigintAlsoExitsZero) {
  NewUser();
  daemon().Signal(SIGINT);
  EXPECT_EQ(daemon().Wait(15000), 0) << daemon().LogTail();
}

}  // namespace
}  // namespace torii::test
