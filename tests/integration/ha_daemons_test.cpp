// Two daemons on one database (issue 18): a SessionCache subscribed to both
// stays live and keeps being invalidated when one daemon dies, events are
// delivered once (deduplicated by eid), and a Client with both endpoints
// keeps answering reads within their deadline.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "daemon_process.h"
#include "shared_db.h"
#include "pg_cluster.h"
#include "torii/client.h"
#include "torii/session_cache.h"
#include "torii/subscriber.h"

namespace torii::test {
namespace {

using Clock = std::chrono::steady_clock;

auto OneStr(std::string key, std::string value) {
  return [key, value](Packer& pk) {
    pk.pack_map(1);
    PackStr(pk, key);
    PackStr(pk, value);
  };
}

TEST(TwoDaemons, SessionCacheStaysLiveThroughTheLossOfOneAndEventsComeOnce) {
  std::string url = FreshDatabase();
  DaemonProcess d1(SharedDbOptions(url));
  DaemonProcess d2(SharedDbOptions(url));

  SubscriberOptions so;
  so.endpoints = {d1.event_endpoint(), d2.event_endpoint()};
  so.families = {"session", "user"};
  so.heartbeat_ms = 100;
  auto sub = Subscriber::Create(so);
  ASSERT_TRUE(sub.ok());
  Subscriber& s = **sub;
  std::map<std::string, int> deleted;  // session id -> deliveries
  int stale = 0;
  bool eid_seen = true;
  s.AddListener(
      [&](const Event& e) {
        eid_seen = eid_seen && e.eid.has_value();
        if (e.topic == "session.deleted") deleted[std::string(e.Str("id"))]++;
      },
      [&](const StaleReason& r) {
        stale++;
        ADD_FAILURE() << "on_stale: " << r.ToString();
      });
  Client client = NewClient({d1.request_endpoint(), d2.request_endpoint()}, 2000);
  SessionCache cache(client, s);

  auto start = Clock::now();
  while (!(s.endpoint_live(0) && s.endpoint_live(1)) && MsSince(start) < 10000) s.Poll(50);
  ASSERT_TRUE(s.endpoint_live(0) && s.endpoint_live(1));

  auto user = client.Call("create_user", OneStr("email", "ha-cache@example.com"));
  ASSERT_TRUE(user.ok()) << user.error().ToString();
  std::vector<SessionRef> sessions = CreateSessions(client, StrField(user->result(), "id"), 4);
  ASSERT_EQ(sessions.size(), 4u);
  // Every event comes through both daemons and is delivered once: wait
  // until each has its copy from the second daemon too.
  auto all_twice = [&] { return s.stats().events == 5 && s.stats().duplicates == 5; };
  start = Clock::now();
  while (!all_twice() && MsSince(start) < 10000) s.Poll(50);
  ASSERT_TRUE(all_twice()) << "events " << s.stats().events << ", duplicates " << s.stats().duplicates;
  EXPECT_TRUE(eid_seen) << "an event without eid";

  for (const auto& x : sessions) ASSERT_TRUE(cache.Get(x.token).ok());
  for (const auto& x : sessions) ASSERT_TRUE(cache.Get(x.token).ok());
  ASSERT_EQ(cache.size(), 4u);
  const uint64_t hits_before = cache.stats().hits;
  EXPECT_EQ(hits_before, 4u);

  // Both daemons up: a delete is delivered once and evicts.
  ASSERT_TRUE(client.Call("delete_session", OneStr("id", sessions[0].id)).ok());
  start = Clock::now();
  while (s.stats().duplicates < 6 && MsSince(start) < 10000) s.Poll(50);
  EXPECT_EQ(deleted[sessions[0].id], 1);
  auto gone = cache.Get(sessions[0].token);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), Code::kNotFound);

  // One daemon dies. The cache stays live (the other daemon vouches for
  // the silence), is not flushed, and keeps being invalidated.
  d1.Kill();
  start = Clock::now();
  bool always_live = true;
  while (MsSince(start) < 1500) {
    s.Poll(20);
    always_live = always_live && s.live();
  }
  EXPECT_TRUE(always_live);
  EXPECT_FALSE(s.endpoint_live(0));
  EXPECT_TRUE(s.endpoint_live(1));
  EXPECT_EQ(stale, 0);
  EXPECT_GE(s.stats().absorbed, 1u);
  EXPECT_EQ(cache.stats().flushes, 0u);
  EXPECT_EQ(cache.size(), 3u);

  ASSERT_TRUE(client.Call("delete_session", OneStr("id", sessions[1].id)).ok());
  start = Clock::now();
  while (deleted[sessions[1].id] == 0 && MsSince(start) < 10000) s.Poll(50);
  EXPECT_EQ(deleted[sessions[1].id], 1);
  gone = cache.Get(sessions[1].token);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), Code::kNotFound);
  // The other entries are still served from the cache.
  ASSERT_TRUE(cache.Get(sessions[2].token).ok());
  EXPECT_EQ(cache.stats().hits, hits_before + 1);
}

TEST(TwoDaemons, ClientReadsKeepSucceedingWithinTheirDeadlineWhenOneDies) {
  std::string url = FreshDatabase();
  DaemonProcess d1(SharedDbOptions(url));
  DaemonProcess d2(SharedDbOptions(url));
  Client client = NewClient({d1.request_endpoint(), d2.request_endpoint()}, 2000);
  auto user = client.Call("create_user", OneStr("email", "ha-client@example.com"));
  ASSERT_TRUE(user.ok()) << user.error().ToString();
  const std::string email = "ha-client@example.com";

  const int64_t deadline = 2000;
  CallOptions co;
  co.timeout_ms = deadline;
  int64_t worst = 0;
  int writes_unavailable = 0, writes_ok = 0;
  for (int i = 0; i < 120; i++) {
    if (i == 40) d1.Kill();
    auto t = Clock::now();
    auto r = client.Call("get_user_by_email", OneStr("email", email), co);
    int64_t took = MsSince(t);
    worst = std::max(worst, took);
    ASSERT_TRUE(r.ok()) << "read " << i << ": " << r.error().ToString();
    EXPECT_LT(took, deadline);
    // A write: never resent; at most the one in flight at the kill fails.
    auto w = client.Call("update_user", [&](Packer& pk) {
      pk.pack_map(2);
      PackStr(pk, "id");
      PackStr(pk, StrField(user->result(), "id"));
      PackStr(pk, "metadata");
      pk.pack_map(1);
      PackStr(pk, "i");
      pk.pack_int64(i);
    }, co);
    if (w.ok()) {
      writes_ok++;
    } else {
      EXPECT_TRUE(w.error().code() == Code::kUnavailable || w.error().code() == Code::kTimeout) << w.error().ToString();
      writes_unavailable++;
    }
  }
  std::printf("[ ha       ] slowest read %lld ms; writes ok %d, failed %d\n", static_cast<long long>(worst),
              writes_ok, writes_unavailable);
  EXPECT_LE(writes_unavailable, 1);
  EXPECT_FALSE(client.connected(0));
  EXPECT_TRUE(client.connected(1));
}

}  // namespace
}  // namespace torii::test
