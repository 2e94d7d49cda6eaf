// One of two daemons restarts under a service's cache (issue 29): a
// torii::SessionCache over a Client and a Subscriber connected to both
// daemons keeps all its entries when one daemon is SIGKILLed and restarted
// while the other stays up, whether changes flowed before (busy: the
// position rule) or nothing changed since the subscriber connected (quiet:
// the other endpoint has been live since before anything was cached); a
// session deleted through the restarted daemon and one deleted with plain
// SQL then stop being served once their events arrive. It still flushes
// when no endpoint stayed live across the gap: both daemons restarted one
// after the other, or the only live one restarted. The Python client has
// the same cases (lib/python/tests/test_ha_restart.py).
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
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

class HaRestartTest : public ::testing::Test {
 protected:
  using Sess = SessionRef;
  static constexpr int kSessions = 50;

  void SetUp() override {
    url_ = FreshDatabase();
    d_[0] = std::make_unique<DaemonProcess>(SharedDbOptions(url_));
    d_[1] = std::make_unique<DaemonProcess>(SharedDbOptions(url_));
    client_.emplace(NewClient({d_[0]->request_endpoint(), d_[1]->request_endpoint()}, 5000));
  }

  std::vector<Sess> MakeSessions(int n) {
    return CreateSessions(*client_, CreateUser(*client_, "ha-restart" + std::to_string(++users_) + "@example.com"), n);
  }

  // Polls until every running daemon has published the creation of
  // `sessions` sessions (under load a daemon relays them late, and a
  // subscriber made now would see them: not a quiet start).
  void WaitRelayed(uint64_t sessions) {
    for (auto& d : d_) {
      if (!d->running()) continue;
      Client c = NewClient({d->request_endpoint()}, 5000);
      auto start = Clock::now();
      uint64_t seq = 0;
      while (MsSince(start) < 20000) {
        auto r = c.Call("stats");
        const msgpack::object* events = r.ok() ? FindMapValue(r->result(), "events") : nullptr;
        const msgpack::object* seqs = events != nullptr ? FindMapValue(*events, "seq") : nullptr;
        const msgpack::object* s = seqs != nullptr ? FindMapValue(*seqs, "session") : nullptr;
        seq = s != nullptr && s->type == msgpack::type::POSITIVE_INTEGER ? s->via.u64 : 0;
        if (seq >= sessions) break;
        usleep(20000);
      }
      ASSERT_GE(seq, sessions) << "a daemon did not relay the creations";
    }
  }

  // A Subscriber on both endpoints and a SessionCache over it; waits until
  // the endpoints in `live` are live.
  void Subscribe(std::vector<size_t> live = {0, 1}) {
    SubscriberOptions so;
    so.endpoints = {d_[0]->event_endpoint(), d_[1]->event_endpoint()};
    so.families = {"session", "user"};
    so.heartbeat_ms = 100;
    auto sub = Subscriber::Create(so);
    ASSERT_TRUE(sub.ok());
    sub_ = std::move(sub.value());
    sub_->AddListener(
        [this](const Event& e) {
          if (e.topic == "session.deleted") deleted_.insert(std::string(e.Str("id")));
        },
        [this](const StaleReason& r) { stale_.push_back(r.ToString()); });
    cache_.emplace(*client_, *sub_);
    auto all_live = [&] {
      for (size_t i : live) {
        if (!sub_->endpoint_live(i)) return false;
      }
      return true;
    };
    auto start = Clock::now();
    while (!all_live() && MsSince(start) < 10000) sub_->Poll(50);
    ASSERT_TRUE(all_live());
  }

  // Polls until both daemons sent a few heartbeats (what they relayed
  // before has arrived).
  void Settle() {
    const uint64_t hb = sub_->stats().heartbeats;
    auto start = Clock::now();
    while (sub_->stats().heartbeats < hb + 4 && MsSince(start) < 5000) sub_->Poll(20);
  }

  void Cache(const std::vector<Sess>& sessions) {
    Settle();  // the creations' events first, or they would evict what we cache
    for (const auto& s : sessions) ASSERT_TRUE(cache_->Get(s.token).ok());
    for (const auto& s : sessions) ASSERT_TRUE(cache_->Get(s.token).ok());
    ASSERT_EQ(cache_->size(), sessions.size());
  }

  // SIGKILL daemon `i`, poll through its silence, start it again and poll
  // until its endpoint is live again.
  void KillAndRestart(size_t i) {
    d_[i]->Kill();
    auto start = Clock::now();
    while (MsSince(start) < 600) sub_->Poll(20);  // 6 heartbeat intervals of silence
    EXPECT_FALSE(sub_->endpoint_live(i));
    d_[i]->Start();
    start = Clock::now();
    while (!sub_->endpoint_live(i) && MsSince(start) < 15000) sub_->Poll(20);
    ASSERT_TRUE(sub_->endpoint_live(i)) << "endpoint " << i << " not live after its daemon restarted";
  }

  // Deletes `s` (through daemon `via`, or with plain SQL when via < 0),
  // polls until its event is delivered, then it is never served again.
  void DeleteAndExpectGone(const Sess& s, int via) {
    const uint64_t duplicates = sub_->stats().duplicates;
    if (via >= 0) {
      Client c = NewClient({d_[via]->request_endpoint()}, 5000);
      auto r = c.Call("delete_session", [&](Packer& pk) {
        pk.pack_map(1);
        PackStr(pk, "id");
        PackStr(pk, s.id);
      });
      ASSERT_TRUE(r.ok()) << r.error().ToString();
    } else {
      PgConn conn = Connect(url_);
      Exec(conn.get(), "DELETE FROM sessions WHERE id = $1", {s.id.c_str()});
    }
    auto start = Clock::now();
    while (!deleted_.count(s.id) && MsSince(start) < 10000) sub_->Poll(10);
    ASSERT_TRUE(deleted_.count(s.id)) << "no session.deleted for " << s.id;
    // And its copy from the other live daemon: until that daemon has
    // relayed the change, its own cache may still answer a miss with the
    // old row, which the SessionCache would then keep (a separate
    // limitation of caching behind several daemons, not of the stale rule
    // tested here).
    if (sub_->endpoint_live(0) && sub_->endpoint_live(1)) {
      start = Clock::now();
      while (sub_->stats().duplicates <= duplicates && MsSince(start) < 10000) sub_->Poll(10);
      ASSERT_GT(sub_->stats().duplicates, duplicates) << "no second copy of session.deleted for " << s.id;
    }
    for (int i = 0; i < 3; i++) {
      auto r = cache_->Get(s.token);
      ASSERT_FALSE(r.ok()) << "session " << s.id << " served after its event was delivered";
      EXPECT_EQ(r.error().code(), Code::kNotFound);
    }
  }

  // One daemon restarts under a cache of kSessions entries: nothing
  // flushed, every entry kept and served from the cache, then deletes
  // through the restarted daemon and with SQL evict.
  void ExpectKeptThroughOneRestart(const std::vector<Sess>& sessions, size_t restarted) {
    const uint64_t hits = cache_->stats().hits;
    KillAndRestart(restarted);
    EXPECT_TRUE(stale_.empty()) << stale_[0];
    EXPECT_EQ(cache_->stats().flushes, 0u);
    EXPECT_EQ(cache_->size(), sessions.size());
    EXPECT_GE(sub_->stats().absorbed, 2u);  // the silence and the new epoch at least
    for (const auto& s : sessions) ASSERT_TRUE(cache_->Get(s.token).ok());
    EXPECT_EQ(cache_->stats().hits, hits + sessions.size()) << "entries were fetched again";
    DeleteAndExpectGone(sessions[0], static_cast<int>(restarted));
    DeleteAndExpectGone(sessions[1], -1);
    EXPECT_EQ(cache_->size(), sessions.size() - 2);
    EXPECT_EQ(cache_->stats().flushes, 0u);
  }

  std::string url_;
  std::unique_ptr<DaemonProcess> d_[2];
  std::optional<Client> client_;
  std::unique_ptr<Subscriber> sub_;
  std::optional<SessionCache> cache_;
  std::set<std::string> deleted_;
  std::vector<std::string> stale_;
  int users_ = 0;
};

TEST_F(HaRestartTest, QuietServiceKeepsItsCacheWhenOneDaemonRestarts) {
  auto sessions = MakeSessions(kSessions);  // before the subscriber: nothing changes after it connects
  WaitRelayed(kSessions);
  Subscribe();
  Cache(sessions);
  EXPECT_EQ(sub_->stats().events, 0u) << "not quiet: events arrived";
  ExpectKeptThroughOneRestart(sessions, 0);
}

TEST_F(HaRestartTest, QuietServiceKeepsItsCacheWhenTheOtherDaemonRestarts) {
  auto sessions = MakeSessions(kSessions);
  WaitRelayed(kSessions);
  Subscribe();
  Cache(sessions);
  ExpectKeptThroughOneRestart(sessions, 1);
}

TEST_F(HaRestartTest, BusyServiceKeepsItsCacheWhenOneDaemonRestarts) {
  Subscribe();
  auto sessions = MakeSessions(kSessions);  // their events flow through both daemons
  Cache(sessions);
  EXPECT_GE(sub_->stats().duplicates, static_cast<uint64_t>(kSessions));
  ExpectKeptThroughOneRestart(sessions, 0);
}

TEST_F(HaRestartTest, BothDaemonsRestartedOneAfterTheOtherFlushes) {
  auto sessions = MakeSessions(10);
  Subscribe();
  Cache(sessions);
  KillAndRestart(0);
  EXPECT_TRUE(stale_.empty());
  EXPECT_EQ(cache_->stats().flushes, 0u);
  // Endpoint 0 is live again, but only since its restart: nobody stayed live
  // across both gaps.
  KillAndRestart(1);
  EXPECT_FALSE(stale_.empty());
  EXPECT_GE(cache_->stats().flushes, 1u);
  EXPECT_EQ(cache_->size(), 0u);
  DeleteAndExpectGone(sessions[0], 1);
}

TEST_F(HaRestartTest, TheOnlyLiveDaemonRestartedFlushes) {
  auto sessions = MakeSessions(10);
  d_[1]->Kill();  // down before the subscriber connects: never live
  Subscribe({0});
  Cache(sessions);
  stale_.clear();  // endpoint 1's silence at the start, if it was reported
  const uint64_t flushes = cache_->stats().flushes;
  KillAndRestart(0);
  EXPECT_FALSE(stale_.empty());
  EXPECT_GT(cache_->stats().flushes, flushes);
  EXPECT_EQ(cache_->size(), 0u);
  DeleteAndExpectGone(sessions[0], 0);
}

}  // namespace
}  // namespace torii::test
