// torii::Subscriber and torii::SessionCache against the real daemon
// (issue 4): a concurrent revoke/read test of the cache's guarantee, and
// on_stale when the daemon's LISTEN connection is lost.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "eventually.h"
#include "request_fixture.h"
#include "torii/client.h"
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
