// torii::Subscriber and torii::SessionCache against the real daemon
// (issue 4): a concurrent revoke/read test of the cache's guarantee, and
// on_stale when the daemon's LISTEN connection is lost, and the bound on
// staleness when the daemon of the events falls silent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "eventually.h"
#include "frozen_process.h"
#include "request_fixture.h"
#include "torii/client.h"
#include "torii/jwt_deny_list.h"
#include "torii/pg.h"
#include "torii/session_cache.h"
#include "torii/subscriber.h"
#include "torii/types.h"

namespace torii::test {
namespace {

class CacheTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    DaemonOptions o;
    o.settings["events.heartbeat_ms"] = "100";
    o.settings["cleanup.interval_s"] = "0";
    return o;
  }

  std::unique_ptr<Subscriber> NewSubscriber() {
    SubscriberOptions so;
    so.endpoints = {daemon().event_endpoint()};
    so.families = {"session", "user"};
    so.heartbeat_ms = 100;
    auto sub = Subscriber::Create(so);
    EXPECT_TRUE(sub.ok());
    return std::move(sub.value());
  }
  Client NewClient() {
    ClientOptions co;
    co.endpoints = {daemon().request_endpoint()};
    auto c = Client::Create(co);
    EXPECT_TRUE(c.ok());
    return std::move(c.value());
  }
};

TEST_F(CacheTest, NeverServesARevokedSessionAfterItsEvent) {
  Value user = NewUser();
  struct S {
    std::string id, token;
  };
  std::vector<S> sessions;
  for (int i = 0; i < 150; i++) {
    Value s = NewSession(user["id"].str());
    sessions.push_back({s["id"].str(), s["token"].str()});
  }

  std::atomic<bool> stop{false};
  std::atomic<int> revoked_count{0};
  std::atomic<bool> reading{false};        // the reader's subscriber is live and it reads
  std::atomic<size_t> delivered_count{0};  // session.deleted events the reader saw
  std::string failure;
  uint64_t hits = 0, gets = 0, served_after_delivery = 0;

  std::thread reader([&] {
    auto sub = NewSubscriber();
    Client client = NewClient();
    // Our own listener, on the same Subscriber and so in the same Poll, sees
    // each delete exactly when the cache does.
    std::set<std::string> delivered;
    sub->AddListener([&](const Event& e) {
      if (e.topic == "session.deleted") {
        const msgpack::object& body = e.body();
        for (uint32_t i = 0; i < body.via.map.size; i++) {
          const auto& kv = body.via.map.ptr[i];
          if (std::string(kv.key.via.str.ptr, kv.key.via.str.size) == "id") {
            delivered.insert(std::string(kv.val.via.str.ptr, kv.val.via.str.size));
            delivered_count = delivered.size();
          }
        }
      }
    }, nullptr);
    SessionCache cache(client, *sub);
    Eventually([&] { return sub->live(); }, 5000, [&] { sub->Poll(50); });
    std::mt19937 rng(42);
    while (!stop) {
      reading = true;
      const S& s = sessions[rng() % sessions.size()];
      std::set<std::string> before = delivered;
      auto r = cache.Get(s.token);
      gets++;
      if (r.ok() && before.count(s.id)) {
        served_after_delivery++;
        if (failure.empty()) failure = "session " + s.id + " served after its delete event was delivered";
      }
    }
    hits = cache.stats().hits;
    // Every revoked session is gone from the cache's point of view now.
    sub->Poll(200);
    for (size_t i = 0; i < static_cast<size_t>(revoked_count.load()); i++) {
      auto r = cache.Get(sessions[i].token);
      if (r.ok() && failure.empty()) failure = "revoked session " + sessions[i].id + " still served at the end";
    }
  });

  // The revoker deletes sessions one by one while the reader reads. A
  // failure is noted and asserted only once the reader is joined (an
  // ASSERT with the thread running would end the whole binary).
  bool started = Eventually([&] { return reading.load(); });
  std::string revoke_failure = started ? "" : "the reader never started reading";
  WireClient revoker(daemon().request_endpoint());
  for (int i = 0; i < 100 && revoke_failure.empty(); i++) {
    Reply r = revoker.Call("delete_session", V::Map({{"id", sessions[i].id}}));
    if (!r.ok()) revoke_failure = "delete_session: " + r.ToString();
    revoked_count = i + 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(15));  // pacing: deletes spread over the reads
  }
  // Until the reader's subscriber has delivered every delete.
  bool all_delivered = revoke_failure.empty() && Eventually([&] { return delivered_count.load() >= 100; });
  stop = true;
  reader.join();
  ASSERT_TRUE(revoke_failure.empty()) << revoke_failure;
  EXPECT_TRUE(all_delivered) << delivered_count.load() << " of 100 session.deleted events delivered";
  std::printf("cache: %lu gets, %lu hits\n", (unsigned long)gets, (unsigned long)hits);
  EXPECT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(served_after_delivery, 0u);
  EXPECT_GT(hits, 0u) << "the cache never cached anything";
}

TEST_F(CacheTest, SubscriberGoesStaleOnResync) {
  auto sub = NewSubscriber();
  std::vector<std::string> reasons;
  sub->AddListener(nullptr, [&](const StaleReason& r) { reasons.push_back(r.ToString()); });
  ASSERT_TRUE(Eventually([&] { return sub->live(); }, 5000, [&] { sub->Poll(50); }));
  reasons.clear();
  auto conn = ConnectBlocking(daemon().database_url());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(ExecBlocking(conn->get(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE application_name = 'toriid-listener' AND datname = current_database()")
                  .ok());
  ASSERT_TRUE(Eventually([&] { return !reasons.empty(); }, 3000, [&] { sub->Poll(50); }))
      << "no on_stale after the LISTEN connection was lost";
  EXPECT_FALSE(sub->live());
  // Live again after the next clean heartbeat.
  EXPECT_TRUE(Eventually([&] { return sub->live(); }, 3000, [&] { sub->Poll(50); }));
}

// Bounded staleness: the daemon whose events the caches follow is frozen
// (SIGSTOP: no events, no heartbeats, no error) while a session is deleted
// through another daemon. A cache serves it for at most 3 x heartbeat_ms
// after the last message (the Subscriber's own bound), or
// max_staleness_ms when set; the deny-lists turn stale within the same
// bounds.
class StalenessTest : public CacheTest {
 protected:
  static constexpr int64_t kHeartbeatMs = 200;
  static constexpr int64_t kTightMs = 300;
  DaemonOptions Options() override {
    DaemonOptions o = CacheTest::Options();
    o.settings["events.heartbeat_ms"] = std::to_string(kHeartbeatMs);
    return o;
  }
};

TEST_F(StalenessTest, AFrozenDaemonIsTrustedForAtMostTheBound) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
  };
  DaemonProcess other(DaemonOptions{.database_url = daemon().database_url(),
                                    .settings = {{"events.heartbeat_ms", std::to_string(kHeartbeatMs)}}});
  SubscriberOptions so;
  so.endpoints = {daemon().event_endpoint()};
  so.heartbeat_ms = kHeartbeatMs;
  auto sub = Subscriber::Create(so);
  ASSERT_TRUE(sub.ok());
  ClientOptions co;
  co.endpoints = {other.request_endpoint()};
  auto client = Client::Create(co);
  ASSERT_TRUE(client.ok());
  SessionCache by_default(*client, **sub);
  SessionCache tight(*client, **sub, SessionCacheOptions{.max_staleness_ms = kTightMs});
  JwtDenyList deny_default(*client, **sub);
  JwtDenyList deny_tight(*client, **sub, JwtDenyListOptions{.max_staleness_ms = kTightMs});

  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!(*sub)->live() && Clock::now() < deadline) (*sub)->Poll(50);
  ASSERT_TRUE((*sub)->live());
  ASSERT_TRUE(deny_default.Load().ok());
  ASSERT_TRUE(deny_tight.Load().ok());
  Value s = NewSession(NewUser()["id"].str());
  std::string token = s["token"].str();
  // The session's own session.created event evicts its id: wait until it
  // has been delivered, or it could arrive after the fill (sent before the
  // freeze) and empty both caches at the first lookup.
  bool created_seen = false;
  (*sub)->AddListener([&](const Event& e) {
    if (e.topic == "session.created" && e.Str("id") == s["id"].str()) created_seen = true;
  }, nullptr);
  while (!created_seen && Clock::now() < deadline) (*sub)->Poll(50);
  ASSERT_TRUE(created_seen) << "the session's session.created never arrived";
  for (SessionCache* c : {&by_default, &tight}) {
    while (c->stats().hits == 0 && Clock::now() < deadline) ASSERT_TRUE(c->Get(token).ok());
    ASSERT_GT(c->stats().hits, 0u) << "never cached";
  }
  EXPECT_FALSE(deny_tight.Check("unknown").stale);

  FrozenProcess frozen(daemon().pid());
  auto frozen_at = Clock::now();
  auto del = client->Call("delete_session", [&](Packer& pk) {
    pk.pack_map(1);
    pk.pack(std::string("id"));
    pk.pack(s["id"].str());
  });
  ASSERT_TRUE(del.ok()) << del.error().ToString();
  auto deleted_at = Clock::now();

  // Each observer until it stops trusting the frozen daemon; a Get counts
  // from when it began.
  struct Watch {
    const char* name;
    int64_t bound_ms;
    int64_t last_trusted_ms = -1;  // since the freeze
    bool done = false;
  };
  Watch w_default{"SessionCache (3 x heartbeat_ms)", 3 * kHeartbeatMs};
  Watch w_tight{"SessionCache (max_staleness_ms)", kTightMs};
  Watch d_default{"JwtDenyList (3 x heartbeat_ms)", 3 * kHeartbeatMs};
  Watch d_tight{"JwtDenyList (max_staleness_ms)", kTightMs};
  deadline = Clock::now() + std::chrono::seconds(5);
  while (!(w_default.done && w_tight.done && d_default.done && d_tight.done) && Clock::now() < deadline) {
    for (auto [c, w] : {std::pair{&by_default, &w_default}, {&tight, &w_tight}}) {
      if (w->done) continue;
      int64_t at = ms_since(frozen_at);
      auto r = c->Get(token);
      if (r.ok()) {
        w->last_trusted_ms = at;
      } else {
        ASSERT_EQ(r.error().code(), Code::kNotFound) << r.error().ToString();
        w->done = true;
      }
    }
    for (auto [d, w] : {std::pair{&deny_default, &d_default}, {&deny_tight, &d_tight}}) {
      if (w->done) continue;
      int64_t at = ms_since(frozen_at);
      if (d->Check("unknown").stale) {
        w->done = true;
        EXPECT_TRUE(d->revoked("unknown")) << "fail-closed: an unknown JWT is denied while stale";
      } else {
        w->last_trusted_ms = at;
      }
    }
  }
  // The last message was sent before the freeze, so the bound holds from
  // it. A message counts from when the Subscriber processes it, so one
  // still in flight at the freeze may count a little later: 50 ms for that
  // on a busy machine.
  for (const Watch* w : {&w_default, &w_tight, &d_default, &d_tight}) {
    EXPECT_TRUE(w->done) << w->name << " still trusted the frozen daemon after 5 s";
    EXPECT_LE(w->last_trusted_ms, w->bound_ms + 50) << w->name;
    std::printf("[ stale    ] %s: last trusted %lld ms after the freeze (bound %lld ms; deleted at %lld ms)\n", w->name,
                static_cast<long long>(w->last_trusted_ms), static_cast<long long>(w->bound_ms),
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(deleted_at - frozen_at)
                                           .count()));
  }
  EXPECT_GT(tight.stats().silent_lookups, 0u);
  EXPECT_LT(w_tight.last_trusted_ms, 3 * kHeartbeatMs) << "the option did not tighten the bound";
}

}  // namespace
}  // namespace torii::test

namespace torii::test {
namespace {

// The typed records decode what the real daemon sends.
TEST_F(CacheTest, TypedRecordsFromTheDaemon) {
  Client client = NewClient();
  auto u = client.Call("create_user", [](Packer& pk) {
    pk.pack_map(2);
    pk.pack(std::string("email"));
    pk.pack(std::string("Typed@Example.com"));
    pk.pack(std::string("metadata"));
    pk.pack_map(1);
    pk.pack(std::string("n"));
    pk.pack(3);
  });
  ASSERT_TRUE(u.ok()) << u.error().ToString();
  auto user = UserFromObject(u->result());
  ASSERT_TRUE(user.ok()) << user.error().ToString();
  EXPECT_EQ(user->email, "Typed@Example.com");
  EXPECT_EQ(user->metadata["n"], 3);
  EXPECT_GT(user->created_at, 0);
  std::string uid = user->id;
  auto s = client.Call("create_session", [&](Packer& pk) {
    pk.pack_map(2);
    pk.pack(std::string("user_id"));
    pk.pack(uid);
    pk.pack(std::string("ttl_s"));
    pk.pack(60);
  });
  ASSERT_TRUE(s.ok());
  auto session = SessionFromObject(s->result());
  ASSERT_TRUE(session.ok()) << session.error().ToString();
  EXPECT_EQ(session->user_id, uid);
  ASSERT_TRUE(session->token);
  EXPECT_EQ(session->token->size(), 43u);
  Secret(*session->token);
  EXPECT_NEAR(static_cast<double>(session->expires_at - session->created_at), 60e6, 2e6);
}

}  // namespace
}  // namespace torii::test
