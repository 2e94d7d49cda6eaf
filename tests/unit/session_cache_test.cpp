// torii::SessionCache over a scripted daemon: a ROUTER that answers
// get_session from an in-memory table and a PUB that sends heartbeats and
// the events the test asks for, both inproc on one thread so that "the
// event was published before the reply" is exact. Covers hits, eviction by
// session and user events, flush on stale, no caching while not live,
// expiry, LRU capacity, and the read-through race.
#include "torii/session_cache.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "msgpack_util.h"
#include "eventually.h"
#include "scripted_daemon.h"
#include "torii/protocol.h"

namespace torii {
namespace {

using test::Eventually;
using test::Get;
using test::S;

struct FakeSession {
  std::string id;
  std::string user_id;
  Micros expires_at;
};

// The scripted daemon (tests/support/scripted_daemon.h): get_session from
// an in-memory table. Its table and hook are guarded by `mu_`; the test
// changes them with the methods below.
class FakeDaemon : public test::ScriptedDaemon {
 public:
  // Runs on the daemon thread just before a get_session reply is sent;
  // may Publish() (the event then reaches the subscriber before the reply).
  using BeforeReply = std::function<void(const std::string& token, FakeDaemon&)>;

  explicit FakeDaemon(zmq::context_t& ctx) : ScriptedDaemon(ctx, "cache-test", {{"session", 0}, {"user", 0}}) {
    Start();
  }
  ~FakeDaemon() override { Stop(); }

  int gets() const { return gets_.load(); }

  void Put(const std::string& token, FakeSession s) {
    std::lock_guard<std::mutex> lock(mu_);
    table_[token] = std::move(s);
  }
  void Remove(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    table_.erase(token);
  }
  void SetBeforeReply(BeforeReply f) {
    std::lock_guard<std::mutex> lock(mu_);
    before_reply_ = std::move(f);
  }
  void SessionEvent(std::string kind, const FakeSession& s) {
    PublishLater("session." + kind, [s](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, s.id);
      PackStr(pk, "user_id");
      PackStr(pk, s.user_id);
    }, 2);
  }
  void UserEvent(std::string kind, const std::string& user_id) {
    PublishLater("user." + kind, [user_id](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, user_id);
      PackStr(pk, "email");
      PackStr(pk, "someone@example.com");
    }, 2);
  }

 private:
  void Answer(const msgpack::object& root, Packer& pk) override {
    uint64_t id = Get(root, "id")->via.u64;
    std::string token(S(*Get(*Get(root, "args"), "token")));
    gets_++;
    std::optional<FakeSession> found;
    BeforeReply hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = table_.find(token);
      // Like the daemon: an expired session is not found.
      if (it != table_.end() && it->second.expires_at > NowMicros()) found = it->second;
      hook = before_reply_;
    }
    if (hook) hook(token, *this);
    pk.pack_map(3);
    PackStr(pk, "id");
    pk.pack_uint64(id);
    if (found) {
      PackStr(pk, "ok");
      pk.pack_true();
      PackStr(pk, "result");
      pk.pack_map(7);
      PackStr(pk, "id");
      PackStr(pk, found->id);
      PackStr(pk, "user_id");
      PackStr(pk, found->user_id);
      PackStr(pk, "expires_at");
      PackTimestamp(pk, found->expires_at);
      PackStr(pk, "user_agent");
      pk.pack_nil();
      PackStr(pk, "ip_address");
      pk.pack_nil();
      PackStr(pk, "metadata");
      pk.pack_map(0);
      PackStr(pk, "created_at");
      PackTimestamp(pk, NowMicros());
    } else {
      PackStr(pk, "ok");
      pk.pack_false();
      PackStr(pk, "error");
      pk.pack_map(2);
      PackStr(pk, "code");
      PackStr(pk, "not_found");
      PackStr(pk, "message");
      PackStr(pk, "no such session");
    }
  }

  std::mutex mu_;
  std::map<std::string, FakeSession> table_;
  BeforeReply before_reply_;
  std::atomic<int> gets_{0};
};

// The client side: Client + Subscriber + SessionCache on the test thread.
struct Rig {
  zmq::context_t ctx;
  FakeDaemon daemon{ctx};
  std::optional<Client> client;
  std::unique_ptr<Subscriber> sub;
  std::unique_ptr<SessionCache> cache;
  int events = 0;

  // `sub_tenant`: the Subscriber's tenant option; `cache_tenant`: the cache's.
  explicit Rig(size_t max_entries = 100, const std::string& sub_tenant = "", const std::string& cache_tenant = "",
               const std::string& client_tenant = "") {
    ClientOptions co;
    co.tenant = client_tenant;
    co.endpoints = {daemon.requests_endpoint()};
    co.context = &ctx;
    co.default_timeout_ms = 3000;
    auto c = Client::Create(co);
    EXPECT_TRUE(c.ok());
    client.emplace(std::move(c.value()));
    SubscriberOptions so;
    so.endpoints = {daemon.events_endpoint()};
    so.families = {"session", "user"};
    so.context = &ctx;
    so.heartbeat_ms = 1000;
    so.tenant = sub_tenant;
    auto s = Subscriber::Create(so);
    EXPECT_TRUE(s.ok());
    sub = std::move(s.value());
    sub->AddListener([this](const Event&) { events++; }, nullptr);
    SessionCacheOptions o;
    o.max_entries = max_entries;
    o.tenant = cache_tenant;
    cache = std::make_unique<SessionCache>(*client, *sub, o);
  }
  ~Rig() {
    cache.reset();
    sub.reset();
    client.reset();
  }

  bool WaitLive() {
    return Eventually([&] { return sub->live(); }, 5000, [&] { sub->Poll(10); });
  }
  // Polls until `n` more events (of subscribed families) were delivered.
  bool WaitEvents(int n) {
    int target = events + n;
    return Eventually([&] { return events >= target; }, 5000, [&] { sub->Poll(10); });
  }
};

Micros InOneHour() { return NowMicros() + 3600LL * 1000000; }

TEST(SessionCacheTest, ServesRepeatedGetsFromTheCacheOnceLive) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  rig.daemon.Put("tok-a", {"s-a", "u-1", InOneHour()});
  auto first = rig.cache->Get("tok-a");
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ((*first)->id, "s-a");
  EXPECT_EQ((*first)->user_id, "u-1");
  EXPECT_EQ(S(*Get((*first)->object(), "user_id")), "u-1");
  auto second = rig.cache->Get("tok-a");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->id, "s-a");
  EXPECT_EQ(rig.daemon.gets(), 1);
  EXPECT_EQ(rig.cache->stats().hits, 1u);
  EXPECT_EQ(rig.cache->size(), 1u);

  auto missing = rig.cache->Get("tok-none");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_FALSE(rig.cache->Get("tok-none").ok());
  EXPECT_EQ(rig.daemon.gets(), 3);  // not_found is never cached
}

TEST(SessionCacheTest, DoesNotCacheUntilTheSubscriberIsLive) {
  Rig rig;
  rig.daemon.SetHeartbeats(false);
  rig.daemon.Put("tok-a", {"s-a", "u-1", InOneHour()});
  ASSERT_FALSE(rig.sub->live());
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  EXPECT_EQ(rig.daemon.gets(), 2);
  EXPECT_EQ(rig.cache->stats().not_cached_stale, 2u);
  EXPECT_EQ(rig.cache->size(), 0u);

  rig.daemon.SetHeartbeats(true);
  ASSERT_TRUE(rig.WaitLive());
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  EXPECT_EQ(rig.daemon.gets(), 3);
}

TEST(SessionCacheTest, ASessionEventEvictsThatSession) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  FakeSession a{"s-a", "u-1", InOneHour()};
  FakeSession b{"s-b", "u-1", InOneHour()};
  rig.daemon.Put("tok-a", a);
  rig.daemon.Put("tok-b", b);
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  ASSERT_TRUE(rig.cache->Get("tok-b").ok());
  EXPECT_EQ(rig.cache->size(), 2u);

  // delete_session: the row goes, then its event is delivered.
  rig.daemon.Remove("tok-a");
  rig.daemon.SessionEvent("deleted", a);
  ASSERT_TRUE(rig.WaitEvents(1));
  EXPECT_EQ(rig.cache->size(), 1u);
  auto gone = rig.cache->Get("tok-a");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), Code::kNotFound);
  ASSERT_TRUE(rig.cache->Get("tok-b").ok());  // the other one is still cached
  EXPECT_EQ(rig.daemon.gets(), 3);
  EXPECT_EQ(rig.cache->stats().evictions, 1u);
}

// Keyed by tenant: another tenant's deletion of the same session id (or the
// default tenant's) leaves this cache's entry; its own tenant's evicts it.
TEST(SessionCacheTest, OnlyItsTenantsEventsEvict) {
  Rig rig(100, "*", "acme");
  ASSERT_TRUE(rig.WaitLive());
  FakeSession a{"s-a", "u-1", InOneHour()};
  rig.daemon.Put("tok-a", a);
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  auto deleted = [&](const std::string& prefix) {
    rig.daemon.PublishLater(prefix + "session.deleted", [a](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, a.id);
      PackStr(pk, "user_id");
      PackStr(pk, a.user_id);
    }, 2);
  };
  deleted("@beta/");
  deleted("");
  ASSERT_TRUE(rig.WaitEvents(2));
  EXPECT_EQ(rig.cache->size(), 1u);
  EXPECT_EQ(rig.cache->stats().evictions, 0u);
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  EXPECT_EQ(rig.daemon.gets(), 1) << "served from the cache";
  deleted("@acme/");
  ASSERT_TRUE(rig.WaitEvents(1));
  EXPECT_EQ(rig.cache->size(), 0u);
  EXPECT_EQ(rig.cache->stats().evictions, 1u);
}

// A cache in front of a client of tenant acme whose subscriber follows the
// default stream would never hear of acme's deletions, though the default
// tenant's heartbeats keep the subscriber live: it caches nothing, and
// every Get goes to the daemon. Following every tenant's stream ("*", live
// on this fake daemon's default heartbeats) caches.
TEST(SessionCacheTest, ASubscriberOfAnotherTenantsStreamCachesNothing) {
  {
    Rig rig(100, "", "", "acme");
    ASSERT_TRUE(rig.WaitLive());
    rig.daemon.Put("tok-a", {"s-a", "u-1", InOneHour()});
    for (int i = 0; i < 3; i++) ASSERT_TRUE(rig.cache->Get("tok-a").ok());
    EXPECT_EQ(rig.daemon.gets(), 3);
    EXPECT_EQ(rig.cache->size(), 0u);
    EXPECT_EQ(rig.cache->stats().hits, 0u);
  }
  {
    Rig rig(100, "*", "", "acme");
    ASSERT_TRUE(rig.WaitLive());
    rig.daemon.Put("tok-a", {"s-a", "u-1", InOneHour()});
    for (int i = 0; i < 3; i++) ASSERT_TRUE(rig.cache->Get("tok-a").ok());
    EXPECT_EQ(rig.daemon.gets(), 1);
    EXPECT_EQ(rig.cache->stats().hits, 2u);
  }
}

TEST(SessionCacheTest, UserUpdatedOrDeletedEvictsAllItsSessions) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  rig.daemon.Put("tok-1", {"s-1", "u-1", InOneHour()});
  rig.daemon.Put("tok-2", {"s-2", "u-1", InOneHour()});
  rig.daemon.Put("tok-3", {"s-3", "u-2", InOneHour()});
  for (auto t : {"tok-1", "tok-2", "tok-3"}) ASSERT_TRUE(rig.cache->Get(t).ok());
  EXPECT_EQ(rig.cache->size(), 3u);

  rig.daemon.UserEvent("created", "u-1");  // changes nothing cached
  rig.daemon.UserEvent("updated", "u-1");
  ASSERT_TRUE(rig.WaitEvents(2));
  EXPECT_EQ(rig.cache->size(), 1u);
  rig.daemon.UserEvent("deleted", "u-2");
  ASSERT_TRUE(rig.WaitEvents(1));
  EXPECT_EQ(rig.cache->size(), 0u);
}

TEST(SessionCacheTest, StaleDropsEverythingAndStopsCachingUntilAHeartbeat) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  rig.daemon.Put("tok-1", {"s-1", "u-1", InOneHour()});
  rig.daemon.Put("tok-2", {"s-2", "u-2", InOneHour()});
  ASSERT_TRUE(rig.cache->Get("tok-1").ok());
  ASSERT_TRUE(rig.cache->Get("tok-2").ok());
  EXPECT_EQ(rig.cache->size(), 2u);

  rig.daemon.SetHeartbeats(false);
  rig.daemon.PublishLater("torii.resync", [](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, "test");
  }, 1);
  EXPECT_TRUE(Eventually([&] { return rig.cache->size() == 0; }, 5000, [&] { rig.sub->Poll(10); }));
  EXPECT_FALSE(rig.sub->live());
  const int gets = rig.daemon.gets();
  ASSERT_TRUE(rig.cache->Get("tok-1").ok());
  ASSERT_TRUE(rig.cache->Get("tok-1").ok());
  EXPECT_EQ(rig.daemon.gets(), gets + 2);  // not cached while stale

  rig.daemon.SetHeartbeats(true);
  ASSERT_TRUE(rig.WaitLive());
  ASSERT_TRUE(rig.cache->Get("tok-1").ok());
  ASSERT_TRUE(rig.cache->Get("tok-1").ok());
  EXPECT_EQ(rig.daemon.gets(), gets + 3);
}

TEST(SessionCacheTest, NeverServesAnEntryPastItsExpiry) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  const Micros expires = NowMicros() + 200000;
  rig.daemon.Put("tok-a", {"s-a", "u-1", expires});
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  auto hit = rig.cache->Get("tok-a");
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(rig.daemon.gets(), 1);
  // No event comes for an expiry; the clock alone must retire the entry.
  while (NowMicros() < expires) rig.sub->Poll(10);
  auto after = rig.cache->Get("tok-a");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), Code::kNotFound);
  EXPECT_EQ(rig.cache->stats().expired, 1u);
  EXPECT_EQ(rig.daemon.gets(), 2);
}

TEST(SessionCacheTest, EvictsTheLeastRecentlyUsedBeyondCapacity) {
  Rig rig(2);
  ASSERT_TRUE(rig.WaitLive());
  for (auto t : {"a", "b", "c"}) rig.daemon.Put(t, {std::string("s-") + t, "u", InOneHour()});
  ASSERT_TRUE(rig.cache->Get("a").ok());
  ASSERT_TRUE(rig.cache->Get("b").ok());
  ASSERT_TRUE(rig.cache->Get("a").ok());  // a is now the most recent
  ASSERT_TRUE(rig.cache->Get("c").ok());  // evicts b
  EXPECT_EQ(rig.cache->size(), 2u);
  EXPECT_EQ(rig.cache->stats().capacity_evictions, 1u);
  const int gets = rig.daemon.gets();
  ASSERT_TRUE(rig.cache->Get("a").ok());
  ASSERT_TRUE(rig.cache->Get("c").ok());
  EXPECT_EQ(rig.daemon.gets(), gets);
  ASSERT_TRUE(rig.cache->Get("b").ok());
  EXPECT_EQ(rig.daemon.gets(), gets + 1);
}

TEST(SessionCacheTest, AReplyOvertakenByItsDeleteEventIsNotCached) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  FakeSession a{"s-a", "u-1", InOneHour()};
  rig.daemon.Put("tok-a", a);
  // The daemon read the row, then a concurrent delete_session committed and
  // its event went out before the (now stale) reply.
  rig.daemon.SetBeforeReply([a](const std::string& token, FakeDaemon& d) {
    d.Remove(token);
    d.Publish("session.deleted", [a](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, a.id);
      PackStr(pk, "user_id");
      PackStr(pk, a.user_id);
    }, 2);
  });
  auto r = rig.cache->Get("tok-a");
  ASSERT_TRUE(r.ok());  // the caller gets what the daemon said...
  EXPECT_EQ(rig.cache->stats().not_cached_race, 1u);  // ...but it is not kept
  EXPECT_EQ(rig.cache->size(), 0u);
  rig.daemon.SetBeforeReply(nullptr);
  auto again = rig.cache->Get("tok-a");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), Code::kNotFound);
  EXPECT_EQ(rig.daemon.gets(), 2);
}

TEST(SessionCacheTest, AnUnrelatedEventDuringAGetDoesNotBlockCaching) {
  Rig rig;
  ASSERT_TRUE(rig.WaitLive());
  rig.daemon.Put("tok-a", {"s-a", "u-1", InOneHour()});
  rig.daemon.SetBeforeReply([](const std::string&, FakeDaemon& d) {
    d.Publish("session.deleted", [](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, "s-other");
      PackStr(pk, "user_id");
      PackStr(pk, "u-2");
    }, 2);
  });
  ASSERT_TRUE(rig.cache->Get("tok-a").ok());
  EXPECT_EQ(rig.cache->size(), 1u);
  EXPECT_EQ(rig.cache->stats().not_cached_race, 0u);
}

TEST(SessionCacheTest, ADeletedSessionIsNeverServedUnderInterleavedRevokesAndReads) {
  // Many sessions, revoked one by one while reads go on. After each
  // revoke's event has been delivered, no read may return it.
  Rig rig(64);
  ASSERT_TRUE(rig.WaitLive());
  constexpr int kSessions = 40;
  std::vector<FakeSession> sessions;
  for (int i = 0; i < kSessions; i++) {
    FakeSession s{"s-" + std::to_string(i), "u-" + std::to_string(i % 5), InOneHour()};
    rig.daemon.Put("tok-" + std::to_string(i), s);
    sessions.push_back(s);
  }
  for (int i = 0; i < kSessions; i++) ASSERT_TRUE(rig.cache->Get("tok-" + std::to_string(i)).ok());
  for (int i = 0; i < kSessions; i++) {
    // Every other revoke races a read: its event overtakes the reply.
    if (i % 2 == 0) {
      FakeSession s = sessions[i];
      rig.daemon.SetBeforeReply([s, i](const std::string& token, FakeDaemon& d) {
        if (token != "tok-" + std::to_string(i)) return;
        d.Remove(token);
        d.Publish("session.deleted", [s](Packer& pk) {
          PackStr(pk, "id");
          PackStr(pk, s.id);
          PackStr(pk, "user_id");
          PackStr(pk, s.user_id);
        }, 2);
      });
      // Evict first so the read goes to the daemon and meets the race.
      rig.daemon.UserEvent("updated", s.user_id);
      ASSERT_TRUE(rig.WaitEvents(1));
      (void)rig.cache->Get("tok-" + std::to_string(i));
      rig.daemon.SetBeforeReply(nullptr);
    } else {
      rig.daemon.Remove("tok-" + std::to_string(i));
      rig.daemon.SessionEvent("deleted", sessions[i]);
      ASSERT_TRUE(rig.WaitEvents(1));
    }
    // Revoked so far: none served, from cache or otherwise.
    for (int j = 0; j <= i; j++) {
      auto r = rig.cache->Get("tok-" + std::to_string(j));
      EXPECT_FALSE(r.ok()) << "session " << j << " served after its revoke (step " << i << ")";
    }
    // Not yet revoked: still served.
    if (i + 1 < kSessions) {
      EXPECT_TRUE(rig.cache->Get("tok-" + std::to_string(i + 1)).ok());
    }
  }
}

}  // namespace
}  // namespace torii
