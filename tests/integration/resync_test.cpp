// Changes that fire no row trigger (issue 31): TRUNCATE (schema/0013's
// statement trigger) and changes with the triggers bypassed followed by
// the operator's resync (torii_resync(), `torii resync`). Two daemons on one
// database and a torii::SessionCache subscribed to both: no truncated or
// deleted session is served afterwards by either daemon (their hot caches)
// or by the cache, and every database-wide resync is relayed by both
// daemons and reported once (by eid).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon_process.h"
#include "shared_db.h"
#include "pg_cluster.h"
#include "sql.h"
#include "torii/client.h"
#include "torii/protocol.h"
#include "torii/session_cache.h"
#include "torii/subscriber.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

// How long a revoked session may still be served after the change
// committed. Healthy deployments see a few ms (p99 5 ms); this bound is
// for a loaded CI machine and an ASan build, and still tells "stopped" from
// "served until expiry" (the bug: served for the whole test).
constexpr int64_t kRevocationBoundMs = 3000;

// Runs the torii CLI; returns its exit status.
int RunCli(std::vector<std::string> args) {
  const std::string cli = std::string(TORII_BUILD_DIR) + "/tools/torii";
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv{const_cast<char*>(cli.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    unsetenv("TORII_DATABASE_URL");
    execv(cli.c_str(), argv.data());
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

class ResyncTest : public ::testing::Test {
 protected:
  using Sess = SessionRef;

  void SetUp() override {
    url_ = FreshDatabase();
    d1_ = std::make_unique<DaemonProcess>(SharedDbOptions(url_));
    d2_ = std::make_unique<DaemonProcess>(SharedDbOptions(url_));
    SubscriberOptions so;
    so.endpoints = {d1_->event_endpoint(), d2_->event_endpoint()};
    so.families = {"session", "user"};
    so.heartbeat_ms = 100;
    so.deliver_torii_events = true;
    auto sub = Subscriber::Create(so);
    ASSERT_TRUE(sub.ok());
    sub_ = std::move(sub.value());
    sub_->AddListener(
        [this](const Event& e) {
          if (e.topic == "torii.resync") {
            resync_events_.push_back(std::string(e.Str("reason")));
            resync_eids_.insert(e.eid.value_or(0));
          }
        },
        [this](const StaleReason& r) {
          if (r.kind == StaleKind::kResync) resync_reports_.push_back(r.ToString());
        });
    for (auto* d : {d1_.get(), d2_.get()}) {
      ClientOptions co;
      co.endpoints = {d->request_endpoint()};
      co.default_timeout_ms = 5000;
      auto c = Client::Create(co);
      ASSERT_TRUE(c.ok());
      direct_.push_back(std::move(c.value()));
    }
    ClientOptions co;
    co.endpoints = {d1_->request_endpoint(), d2_->request_endpoint()};
    co.default_timeout_ms = 5000;
    auto c = Client::Create(co);
    ASSERT_TRUE(c.ok());
    client_.emplace(std::move(c.value()));
    cache_.emplace(*client_, *sub_);
    auto start = Clock::now();
    while (!(sub_->endpoint_live(0) && sub_->endpoint_live(1)) && MsSince(start) < 10000) sub_->Poll(50);
    ASSERT_TRUE(sub_->endpoint_live(0) && sub_->endpoint_live(1));
  }

  std::string NewUser() { return CreateUser(*client_, "resync" + std::to_string(++users_) + "@example.com"); }

  std::vector<Sess> NewSessions(const std::string& uid, int n) { return CreateSessions(*client_, uid, n); }

  Result<Reply> GetThrough(size_t daemon, const std::string& token) {
    return direct_[daemon].Call("get_session", [&](Packer& pk) {
      pk.pack_map(1);
      PackStr(pk, "token");
      PackStr(pk, token);
    });
  }

  // Caches every session in the SessionCache and in both daemons' hot
  // caches (a second get_session through each daemon is a hot hit).
  void Warm(const std::vector<Sess>& sessions) {
    // The creations' events first, or they would evict what we cache.
    Settle();
    for (const auto& s : sessions) {
      for (int i = 0; i < 2; i++) ASSERT_TRUE(cache_->Get(s.token).ok());
      for (size_t d = 0; d < 2; d++) {
        for (int i = 0; i < 2; i++) ASSERT_TRUE(GetThrough(d, s.token).ok());
      }
    }
    ASSERT_EQ(cache_->size(), sessions.size());
  }

  // Polls until both daemons have relayed everything published so far: a
  // heartbeat from each after now.
  void Settle() {
    const uint64_t hb = sub_->stats().heartbeats;
    auto start = Clock::now();
    while (sub_->stats().heartbeats < hb + 4 && MsSince(start) < 5000) sub_->Poll(20);
  }

  // Polls until none of `sessions` is served by the cache or either daemon;
  // returns how long that took after `since`, or fails past the bound.
  // First polls until both daemons relayed the `resyncs` resyncs: until the
  // second daemon has, its own cache may still answer a miss with a
  // truncated row, which the SessionCache would then keep (its copy of the
  // resync is a duplicate): a limitation of caching behind several daemons
  // that this test does not cover.
  int64_t ExpectGone(const std::vector<Sess>& sessions, Clock::time_point since, const std::string& what,
                     size_t resyncs = 1) {
    while (sub_->stats().duplicates < duplicates_before_ + resyncs && MsSince(since) < kRevocationBoundMs) {
      sub_->Poll(5);
    }
    std::string served;
    for (;;) {
      served.clear();
      sub_->Poll(0);
      for (const auto& s : sessions) {
        if (cache_->Get(s.token).ok()) served = "the SessionCache serves " + s.id;
        for (size_t d = 0; d < 2 && served.empty(); d++) {
          auto r = GetThrough(d, s.token);
          if (r.ok()) served = "daemon " + std::to_string(d + 1) + " serves " + s.id;
        }
        if (!served.empty()) break;
      }
      const int64_t ms = MsSince(since);
      if (served.empty()) {
        std::printf("%s: nothing served %lld ms after the change\n", what.c_str(), (long long)ms);
        return ms;
      }
      if (ms > kRevocationBoundMs) {
        ADD_FAILURE() << what << ": " << served << " " << ms << " ms after the change";
        return ms;
      }
      sub_->Poll(5);
    }
  }

  // Every resync relayed so far came from both daemons and was reported
  // once per eid.
  void ExpectEachResyncReportedOnce(size_t expected) {
    auto start = Clock::now();
    while (sub_->stats().duplicates < duplicates_before_ + expected && MsSince(start) < 5000) sub_->Poll(20);
    EXPECT_EQ(resync_eids_.size(), expected);
    EXPECT_EQ(resync_events_.size(), expected) << "a resync delivered twice";
    EXPECT_EQ(resync_reports_.size(), expected);
    EXPECT_EQ(resync_eids_.count(0), 0u) << "a database-wide resync without an eid";
    EXPECT_GE(sub_->stats().duplicates, duplicates_before_ + expected) << "not relayed by both daemons";
  }

  void ResetCounts() {
    resync_events_.clear();
    resync_eids_.clear();
    resync_reports_.clear();
    duplicates_before_ = sub_->stats().duplicates;
  }

  std::string url_;
  std::unique_ptr<DaemonProcess> d1_, d2_;
  std::unique_ptr<Subscriber> sub_;
  std::vector<Client> direct_;
  std::optional<Client> client_;
  std::optional<SessionCache> cache_;
  std::vector<std::string> resync_events_;  // their reasons
  std::set<uint64_t> resync_eids_;
  std::vector<std::string> resync_reports_;
  uint64_t duplicates_before_ = 0;
  int users_ = 0;
};

TEST_F(ResyncTest, TruncateSessionsStopsEveryCopy) {
  auto sessions = NewSessions(NewUser(), 5);
  Warm(sessions);
  ResetCounts();
  PgConn c = Connect(url_);
  auto at = Clock::now();
  Exec(c.get(), "TRUNCATE sessions");
  ExpectGone(sessions, at, "TRUNCATE sessions");
  ExpectEachResyncReportedOnce(1);
  ASSERT_FALSE(resync_events_.empty());
  EXPECT_EQ(resync_events_[0], "TRUNCATE sessions: rows were deleted without per-row events");
  EXPECT_GE(cache_->stats().flushes, 1u);
}

TEST_F(ResyncTest, TruncateUsersCascadeStopsEveryCopy) {
  auto sessions = NewSessions(NewUser(), 3);
  auto more = NewSessions(NewUser(), 2);
  sessions.insert(sessions.end(), more.begin(), more.end());
  Warm(sessions);
  ResetCounts();
  PgConn c = Connect(url_);
  auto at = Clock::now();
  Exec(c.get(), "TRUNCATE users CASCADE");
  ExpectGone(sessions, at, "TRUNCATE users CASCADE", 4);
  // One resync per truncated table with a published change stream: users,
  // sessions, oauth_accounts and passkeys (the JWT tables have no foreign
  // key to users and are not truncated).
  ExpectEachResyncReportedOnce(4);
}

TEST_F(ResyncTest, ReplicaRoleDeleteThenOperatorResync) {
  auto sessions = NewSessions(NewUser(), 5);
  Warm(sessions);
  ResetCounts();
  PgConn c = Connect(url_);
  Exec(c.get(), "BEGIN");
  Exec(c.get(), "SET LOCAL session_replication_role = replica");
  Exec(c.get(), "DELETE FROM sessions");
  Exec(c.get(), "COMMIT");
  // Nothing was published: the copies are still served (what the
  // operator's resync is for).
  Settle();
  EXPECT_TRUE(cache_->Get(sessions[0].token).ok());
  EXPECT_TRUE(resync_events_.empty());

  auto at = Clock::now();
  ASSERT_EQ(RunCli({"resync", "--database", url_, "--reason", "bulk delete with triggers off"}), 0);
  ExpectGone(sessions, at, "DELETE under session_replication_role = replica, then torii resync");
  ExpectEachResyncReportedOnce(1);
  ASSERT_FALSE(resync_events_.empty());
  EXPECT_EQ(resync_events_[0], "an operator's resync: bulk delete with triggers off");
}

TEST_F(ResyncTest, SqlResyncAndBadReasons) {
  auto sessions = NewSessions(NewUser(), 2);
  Warm(sessions);
  ResetCounts();
  PgConn c = Connect(url_);
  // Bad input: a clear error, and nothing sent.
  EXPECT_EQ(FailState(c.get(), "SELECT torii_resync(repeat('x', 201))"), "22023");
  EXPECT_EQ(FailState(c.get(), "SELECT torii_resync(E'two\\nlines')"), "22023");
  EXPECT_EQ(RunCli({"resync", "--database", url_, "--reason", std::string(201, 'x')}), 2);
  // The database is unreachable: exit 3.
  EXPECT_EQ(RunCli({"resync", "--database", "postgresql://127.0.0.1:1/none?connect_timeout=2"}), 3);
  Settle();
  EXPECT_TRUE(resync_events_.empty());
  EXPECT_EQ(cache_->size(), sessions.size());

  Exec(c.get(), "SELECT torii_resync('restored a dump')");
  auto start = Clock::now();
  while (resync_reports_.empty() && MsSince(start) < kRevocationBoundMs) sub_->Poll(10);
  ExpectEachResyncReportedOnce(1);
  EXPECT_EQ(cache_->size(), 0u);
  EXPECT_EQ(resync_events_[0], "an operator's resync: restored a dump");
  // A raw NOTIFY cannot put arbitrary text in the daemons' logs and events.
  ResetCounts();
  Exec(c.get(), "SELECT pg_notify('torii_events', '{\"f\":\"torii\",\"k\":\"resync\",\"source\":\"operator\","
                "\"reason\":\"evil\\nline\",\"eid\":999999999}')");
  start = Clock::now();
  while (resync_events_.empty() && MsSince(start) < kRevocationBoundMs) sub_->Poll(10);
  ASSERT_FALSE(resync_events_.empty());
  EXPECT_EQ(resync_events_[0], "an operator's resync");
}

}  // namespace
}  // namespace torii::test
