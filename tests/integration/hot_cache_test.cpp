// The daemon's hot-session cache (daemon/hot_sessions.h) against a real
// daemon and PostgreSQL: hits answer without SQL, the daemon's own writes
// and other writers' (a second daemon, plain SQL) evict, a load that raced
// with an invalidation is not inserted, the cache is bypassed while the
// LISTEN connection is down, expiry is checked at read time, the bound, and
// the lease: a silent LISTEN connection stops the cache from serving within
// [cache] lease_ms.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "frozen_process.h"
#include "request_fixture.h"
#include "eventually.h"
#include "torii/subscriber.h"
#include "wire.h"

namespace torii::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

Value CacheStats(WireClient& c) {
  Reply r = c.Call("stats");
  EXPECT_TRUE(r.ok()) << r.ToString();
  return r.result()["cache"];
}

class HotCacheTest : public RequestTest {
 protected:
  void SetUp() override {
    RequestTest::SetUp();
    ASSERT_TRUE(Eventually([&] { return CacheStats(client())["active"].boolean(); })) << "cache never active";
  }
  Value Cache() { return CacheStats(client()); }
  Reply GetByToken(const std::string& token, int timeout_ms = 10000) {
    return Call("get_session", V::Map({{"token", token}}), timeout_ms);
  }
  // A session looked up twice, so that the second lookup was a hit.
  Value CachedSession(const std::string& user_id) {
    Value s = NewSession(user_id);
    std::string token = s["token"].str();
    EXPECT_TRUE(GetByToken(token).ok());
    uint64_t hits = Cache()["hits"].u64();
    EXPECT_TRUE(GetByToken(token).ok());
    EXPECT_EQ(Cache()["hits"].u64(), hits + 1) << "the second lookup was not a hit";
    return s;
  }
};

// While another connection holds an ACCESS EXCLUSIVE lock on sessions, any
// statement reading it waits: a lookup that answers at once ran no SQL.
TEST_F(HotCacheTest, HitAnswersWithoutSqlByTokenAndById) {
  Value u = NewUser();
  Value s = CachedSession(u["id"].str());
  std::string token = s["token"].str();
  std::string id = s["id"].str();
  std::string cold_token = NewSession(u["id"].str())["token"].str();  // never looked up

  PgConn locker = Connect(daemon().database_url());
  Exec(locker.get(), "BEGIN");
  Exec(locker.get(), "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE");
  uint64_t hits = Cache()["hits"].u64();
  Reply by_token = GetByToken(token, 3000);
  Reply by_id = Call("get_session", V::Map({{"id", id}}), 3000);
  ASSERT_TRUE(by_token.ok()) << by_token.ToString();
  ASSERT_TRUE(by_id.ok()) << by_id.ToString();
  EXPECT_EQ(by_token.result()["id"].str(), id);
  EXPECT_EQ(by_id.result()["id"].str(), id);
  EXPECT_EQ(by_token.result()["user_id"].str(), u["id"].str());
  EXPECT_EQ(by_token.result()["expires_at"].micros(), s["expires_at"].micros());
  EXPECT_FALSE(by_token.result().has("token")) << "the token is never returned by get_session";
  EXPECT_EQ(Cache()["hits"].u64(), hits + 2);

  // A session not in the cache needs the table: the same lookup of an
  // uncached session waits for the lock and misses its deadline.
  Reply miss = client().Call(Req{.op = V("get_session"), .args = V::Map({{"token", cold_token}}),
                                 .timeout_ms = V(int64_t{300})},
                             5000);
  EXPECT_EQ(miss.code(), "timeout") << miss.ToString();
  Exec(locker.get(), "ROLLBACK");
}

// A cached token is answered before the request's plan is built (the
// daemon's shortcut for a hit): every rule of the request still holds. A hit
// echoes the id; a wrong shape gets its error and counts no hit; a deadline
// of 0 is a timeout; extra top-level keys and an actor take the general way.
TEST_F(HotCacheTest, AHitKeepsEveryRuleOfTheRequest) {
  Value u = NewUser();
  Value s = CachedSession(u["id"].str());
  std::string token = s["token"].str();
  uint64_t hits = Cache()["hits"].u64();

  Reply hit = client().Call(Req{.op = V("get_session"), .args = V::Map({{"token", token}}),
                                .v = V(int64_t{1}), .timeout_ms = V(int64_t{2000})});
  ASSERT_TRUE(hit.ok()) << hit.ToString();
  EXPECT_EQ(hit.result()["id"].str(), s["id"].str());
  EXPECT_EQ(Cache()["hits"].u64(), hits + 1);

  EXPECT_EQ(Call("get_session", V::Map({{"token", token}, {"bogus", int64_t{1}}})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_session", V::Map({{"token", token}, {"id", s["id"].str()}})).code(), "invalid_argument");
  EXPECT_EQ(Call("get_session", V::Map({{"token", int64_t{7}}})).code(), "bad_request");
  Reply zero = client().Call(Req{.op = V("get_session"), .args = V::Map({{"token", token}}),
                                 .timeout_ms = V(int64_t{0})});
  EXPECT_EQ(zero.code(), "timeout") << zero.ToString();
  Reply bad_v = client().Call(Req{.op = V("get_session"), .args = V::Map({{"token", token}}), .v = V(int64_t{2})});
  EXPECT_EQ(bad_v.code(), "unsupported_version") << bad_v.ToString();
  EXPECT_EQ(Cache()["hits"].u64(), hits + 1) << "a request refused above counted a hit";

  // An actor never reads the cache (row-level security decides).
  Reply as_owner = client().Call(Req{.op = V("get_session"), .args = V::Map({{"token", token}}),
                                     .actor = V(u["id"].str())});
  ASSERT_TRUE(as_owner.ok()) << as_owner.ToString();
  EXPECT_EQ(Cache()["hits"].u64(), hits + 1);
  // include_expired reads it like a plain lookup (through the general path).
  Reply any = Call("get_session", V::Map({{"token", token}, {"include_expired", true}}));
  ASSERT_TRUE(any.ok()) << any.ToString();
  EXPECT_EQ(Cache()["hits"].u64(), hits + 2);
}

TEST_F(HotCacheTest, OwnWritesEvictBeforeTheirReply) {
  Value u = NewUser();
  std::string uid = u["id"].str();

  Value a = CachedSession(uid);
  ASSERT_TRUE(Call("delete_session", V::Map({{"token", a["token"].str()}})).ok());
  EXPECT_EQ(GetByToken(a["token"].str()).code(), "not_found");

  Value b = CachedSession(uid);
  ASSERT_TRUE(Call("delete_session", V::Map({{"id", b["id"].str()}})).ok());
  EXPECT_EQ(GetByToken(b["token"].str()).code(), "not_found");
  EXPECT_EQ(Call("get_session", V::Map({{"id", b["id"].str()}})).code(), "not_found");

  Value c = CachedSession(uid);
  Reply ext = Call("extend_session", V::Map({{"token", c["token"].str()}, {"ttl_s", int64_t{7200}}}));
  ASSERT_TRUE(ext.ok()) << ext.ToString();
  Reply after = GetByToken(c["token"].str());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after.result()["expires_at"].micros(), ext.result()["expires_at"].micros());
  EXPECT_GT(after.result()["expires_at"].micros(), c["expires_at"].micros());

  Value d = CachedSession(uid);
  Reply ext_id = Call("extend_session", V::Map({{"id", d["id"].str()}, {"ttl_s", int64_t{9000}}}));
  ASSERT_TRUE(ext_id.ok()) << ext_id.ToString();
  EXPECT_EQ(GetByToken(d["token"].str()).result()["expires_at"].micros(), ext_id.result()["expires_at"].micros());

  Value e = CachedSession(uid);
  Value f = CachedSession(uid);
  Reply dus = Call("delete_user_sessions", V::Map({{"user_id", uid}, {"except", f["id"].str()}}));
  ASSERT_TRUE(dus.ok()) << dus.ToString();
  EXPECT_EQ(GetByToken(e["token"].str()).code(), "not_found");
  EXPECT_TRUE(GetByToken(f["token"].str()).ok()) << "the session kept by 'except' is still there";

  Value g = CachedSession(uid);
  ASSERT_TRUE(Call("delete_user", V::Map({{"id", uid}})).ok());
  EXPECT_EQ(GetByToken(g["token"].str()).code(), "not_found");
  EXPECT_EQ(GetByToken(f["token"].str()).code(), "not_found");
  EXPECT_EQ(Cache()["entries"].u64(), 0u);
}

// Another daemon on the same database, and plain SQL: their changes reach
// this daemon's cache through its LISTEN connection.
TEST_F(HotCacheTest, ExternalWritesEvictThroughTheEventStream) {
  Value u = NewUser();
  std::string uid = u["id"].str();
  DaemonProcess second(DaemonOptions{.database_url = daemon().database_url()});
  WireClient other(second.request_endpoint());

  Value a = CachedSession(uid);
  ASSERT_TRUE(other.Call("delete_session", V::Map({{"token", a["token"].str()}})).ok());
  EXPECT_TRUE(Eventually([&] { return GetByToken(a["token"].str()).code() == "not_found"; }))
      << "still served after a second daemon deleted it";

  Value b = CachedSession(uid);
  Sql("DELETE FROM sessions WHERE id = '" + b["id"].str() + "'");
  EXPECT_TRUE(Eventually([&] { return GetByToken(b["token"].str()).code() == "not_found"; }))
      << "still served after plain SQL deleted it";

  Value c = CachedSession(uid);
  Sql("UPDATE sessions SET metadata = '{\"k\": \"changed\"}' WHERE id = '" + c["id"].str() + "'");
  EXPECT_TRUE(Eventually([&] { return GetByToken(c["token"].str()).result()["metadata"]["k"].str() == "changed"; }))
      << "the old row still served after plain SQL changed it";

  Value d = CachedSession(uid);
  ExpireSession(d["id"].str());
  EXPECT_TRUE(Eventually([&] { return GetByToken(d["token"].str()).code() == "not_found"; }));

  Value e = CachedSession(uid);
  Sql("DELETE FROM users WHERE id = '" + uid + "'");
  EXPECT_TRUE(Eventually([&] { return GetByToken(e["token"].str()).code() == "not_found"; }));
  EXPECT_GE(Cache()["evictions"].u64(), 5u);
}

// Expiry is judged when the entry is read, with no event to say so.
// get_session with include_expired (how Torii's provider asks every check)
// is answered from the cache when it holds the session (an unexpired entry
// is the same answer either way: under a table lock it answers at once and
// counts a hit), and a lookup by token fills it. An expired row it reads
// never fills the cache: a plain lookup of it still needs the table.
TEST_F(HotCacheTest, IncludeExpiredReadsAndFillsTheCacheButNeverWithAnExpiredRow) {
  Value u = NewUser();
  Value s = CachedSession(u["id"].str());
  std::string cold_token = NewSession(u["id"].str())["token"].str();
  Reply any = Call("get_session", V::Map({{"token", cold_token}, {"include_expired", true}}));
  ASSERT_TRUE(any.ok()) << any.ToString();
  Value gone = NewSession(u["id"].str());
  PgConn sql = Connect(daemon().database_url());
  Exec(sql.get(), "UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE id = '" + gone["id"].str() + "'");
  Reply expired;
  ASSERT_TRUE(Eventually([&] {
    expired = Call("get_session", V::Map({{"token", gone["token"].str()}, {"include_expired", true}}));
    return expired.ok() && expired.result()["expires_at"].micros() < NowMicros();
  })) << "the expired row was never read: " << expired.ToString();

  PgConn locker = Connect(daemon().database_url());
  Exec(locker.get(), "BEGIN");
  Exec(locker.get(), "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE");
  uint64_t hits = Cache()["hits"].u64();
  for (const std::string& token : {s["token"].str(), cold_token}) {
    Reply r = client().Call(Req{.op = V("get_session"), .args = V::Map({{"token", token}, {"include_expired", true}}),
                                .timeout_ms = V(int64_t{3000})},
                            5000);
    EXPECT_TRUE(r.ok()) << "not answered from the cache: " << r.ToString();
  }
  EXPECT_EQ(Cache()["hits"].u64(), hits + 2);
  EXPECT_TRUE(GetByToken(cold_token, 3000).ok()) << "the include_expired lookup did not fill the cache";
  Reply late = client().Call(Req{.op = V("get_session"),
                                 .args = V::Map({{"token", gone["token"].str()}, {"include_expired", true}}),
                                 .timeout_ms = V(int64_t{300})},
                             5000);
  EXPECT_EQ(late.code(), "timeout") << "an expired row filled the cache: " << late.ToString();
  Exec(locker.get(), "ROLLBACK");
}

TEST_F(HotCacheTest, ExpiryIsCheckedAtReadTime) {
  Value u = NewUser();
  Value s = NewSession(u["id"].str(), 1);
  std::string token = s["token"].str();
  int64_t expires_at = s["expires_at"].micros();
  ASSERT_TRUE(GetByToken(token).ok());
  Value before = Cache();
  bool gone = Eventually(
      [&] {
        int64_t sent_us = NowMs() * 1000;
        Reply r = GetByToken(token);
        if (r.ok()) {
          EXPECT_LT(sent_us, expires_at) << "an expired session was served";
          return false;
        }
        EXPECT_EQ(r.code(), "not_found");
        return true;
      },
      10000, [] {});
  ASSERT_TRUE(gone);
  Value after = Cache();
  EXPECT_GT(after["hits"].u64(), before["hits"].u64()) << "it was never a hit before it expired";
  EXPECT_GE(after["evictions"].u64(), before["evictions"].u64() + 1) << "the expired entry was not dropped on read";
}

TEST_F(HotCacheTest, BoundedToCapacity) {
  // The fixture's daemon has the default bound; this one keeps 3.
  DaemonProcess small(DaemonOptions{.database_url = daemon().database_url(), .settings = {{"cache.sessions", "3"}}});
  WireClient c(small.request_endpoint());
  ASSERT_TRUE(Eventually([&] { return CacheStats(c)["active"].boolean(); }));
  Value u = NewUser();
  std::vector<std::string> tokens;
  for (int i = 0; i < 6; i++) {
    tokens.push_back(NewSession(u["id"].str())["token"].str());
    Reply r = c.Call("get_session", V::Map({{"token", tokens.back()}}));
    ASSERT_TRUE(r.ok()) << r.ToString() << "\nDAEMONLOG:\n" << small.log();
  }
  Value st = CacheStats(c);
  EXPECT_EQ(st["capacity"].u64(), 3u);
  EXPECT_EQ(st["entries"].u64(), 3u);
  EXPECT_EQ(st["capacity_evictions"].u64(), 3u);
  EXPECT_GT(st["memory_bytes"].u64(), 0u);
  // The three most recent are the ones kept.
  uint64_t hits = st["hits"].u64();
  for (int i = 3; i < 6; i++) ASSERT_TRUE(c.Call("get_session", V::Map({{"token", tokens[i]}})).ok());
  EXPECT_EQ(CacheStats(c)["hits"].u64(), hits + 3);
  ASSERT_TRUE(c.Call("get_session", V::Map({{"token", tokens[0]}})).ok());
  EXPECT_EQ(CacheStats(c)["hits"].u64(), hits + 3) << "the oldest entry should have been dropped";
}

TEST_F(HotCacheTest, ZeroTurnsItOff) {
  DaemonProcess off(DaemonOptions{.database_url = daemon().database_url(), .settings = {{"cache.sessions", "0"}}});
  WireClient c(off.request_endpoint());
  Value u = NewUser();
  std::string token = NewSession(u["id"].str())["token"].str();
  for (int i = 0; i < 3; i++) ASSERT_TRUE(c.Call("get_session", V::Map({{"token", token}})).ok());
  Value st = CacheStats(c);
  EXPECT_FALSE(st["active"].boolean());
  EXPECT_EQ(st["hits"].u64(), 0u);
  EXPECT_EQ(st["entries"].u64(), 0u);
}

// The LISTEN connection is killed and cannot come back (the database
// refuses new connections; the pool's stay open): the cache is emptied and
// bypassed, a deletion made meanwhile is seen, and it fills again only once
// LISTEN is re-established.
TEST_F(HotCacheTest, BypassedWhileListenerDownUntilResync) {
  Value u = NewUser();
  Value s = CachedSession(u["id"].str());
  Value t = CachedSession(u["id"].str());
  PgConn admin = Connect(daemon().database_url());
  std::string db = Scalar(admin.get(), "SELECT current_database()");
  // Not allowed on the database one is connected to.
  PgConn outside = Connect(SharedCluster().ConnInfo("postgres"));
  Exec(outside.get(), "ALTER DATABASE \"" + db + "\" WITH ALLOW_CONNECTIONS false");
  Exec(admin.get(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'toriid-listener' AND datname = current_database()");
  ASSERT_TRUE(Eventually([&] { return !Cache()["active"].boolean(); })) << "cache still active";
  Value down = Cache();
  EXPECT_EQ(down["entries"].u64(), 0u);
  // Deleted while no event can arrive: a cache would never hear of it.
  Exec(admin.get(), "DELETE FROM sessions WHERE id = '" + s["id"].str() + "'");
  EXPECT_EQ(GetByToken(s["token"].str()).code(), "not_found");
  EXPECT_TRUE(GetByToken(t["token"].str()).ok());
  EXPECT_TRUE(GetByToken(t["token"].str()).ok());
  Value bypassed = Cache();
  EXPECT_EQ(bypassed["hits"].u64(), down["hits"].u64()) << "a hit while LISTEN was down";
  EXPECT_EQ(bypassed["bypassed"].u64(), down["bypassed"].u64() + 3);
  EXPECT_EQ(bypassed["entries"].u64(), 0u) << "filled while LISTEN was down";
  EXPECT_FALSE(bypassed["active"].boolean());

  Exec(outside.get(), "ALTER DATABASE \"" + db + "\" WITH ALLOW_CONNECTIONS true");
  ASSERT_TRUE(Eventually([&] { return Cache()["active"].boolean(); }, 30000)) << "never re-activated";
  ASSERT_TRUE(GetByToken(t["token"].str()).ok());
  uint64_t hits = Cache()["hits"].u64();
  ASSERT_TRUE(GetByToken(t["token"].str()).ok());
  EXPECT_EQ(Cache()["hits"].u64(), hits + 1) << "not filled again after the resync";
}

// The lease: the PostgreSQL backend of the LISTEN connection is stopped, so
// the connection is silent (no error, no notification: a silent network
// partition of that one connection) while the pool still works. Sessions
// deleted with plain SQL must stop being served within lease_ms plus one
// probe round trip: with the lease at 300 ms, 0.5 s.
class HotCacheLeaseTest : public HotCacheTest {
 protected:
  static constexpr int64_t kLeaseMs = 300;
  static constexpr int64_t kHeartbeatMs = 100;
  DaemonOptions Options() override {
    return DaemonOptions{.settings = {{"cache.lease_ms", std::to_string(kLeaseMs)},
                                      {"events.heartbeat_ms", std::to_string(kHeartbeatMs)}}};
  }
};

TEST_F(HotCacheLeaseTest, ASilentListenerStopsTheCacheWithinTheLease) {
  constexpr int64_t kBoundMs = 500;
  Value u = NewUser();
  std::vector<Value> sessions;
  for (int i = 0; i < 30; i++) sessions.push_back(CachedSession(u["id"].str()));
  Value st = Cache();
  EXPECT_EQ(st["lease_ms"].u64(), 300u);
  EXPECT_TRUE(st["leased"].boolean());
  EXPECT_EQ(st["entries"].u64(), 30u);

  // A subscriber of this daemon's events: its heartbeats stop while the
  // lease has lapsed, so it sees the silent LISTEN connection as silence.
  SubscriberOptions so;
  so.endpoints = {daemon().event_endpoint()};
  so.heartbeat_ms = kHeartbeatMs;
  auto sub = Subscriber::Create(so);
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(Eventually([&] {
    (*sub)->Poll(10);
    return (*sub)->live();
  })) << "the subscriber never became live";

  PgConn admin = Connect(daemon().database_url());
  std::unique_ptr<FrozenProcess> frozen = FreezeListenerBackend(admin.get());
  auto frozen_at = steady_clock::now();
  Exec(admin.get(), "DELETE FROM sessions WHERE user_id = '" + u["id"].str() + "'");
  auto deleted_at = steady_clock::now();

  // Every session, over and over, until none is served; a lookup counts
  // from when it was sent (the daemon answered at that time or later).
  int64_t last_served_ms = -1;
  std::vector<bool> gone(sessions.size(), false);
  size_t gone_count = 0;
  auto deadline = deleted_at + milliseconds(5000);
  while (gone_count < sessions.size() && steady_clock::now() < deadline) {
    (*sub)->Poll(0);  // a message counts when it is processed: keep up
    for (size_t i = 0; i < sessions.size(); i++) {
      auto sent = steady_clock::now();
      Reply r = GetByToken(sessions[i]["token"].str());
      int64_t after_ms = std::chrono::duration_cast<milliseconds>(sent - deleted_at).count();
      if (r.ok()) {
        last_served_ms = std::max(last_served_ms, after_ms);
        EXPECT_FALSE(gone[i]) << "served again after not_found";
      } else if (!gone[i]) {
        ASSERT_EQ(r.code(), "not_found") << r.ToString();
        gone[i] = true;
        gone_count++;
      }
    }
  }
  // lease + 3 heartbeats, and 200 ms for a busy machine's timers.
  ASSERT_TRUE(Eventually([&] {
    (*sub)->Poll(10);
    return !(*sub)->live();
  }, 3000)) << "heartbeats went on while the LISTEN connection was silent";
  int64_t sub_stale_ms = std::chrono::duration_cast<milliseconds>(steady_clock::now() - frozen_at).count();
  EXPECT_LE(sub_stale_ms, kLeaseMs + 3 * kHeartbeatMs + 200);
  Value lapsed = Cache();
  ASSERT_EQ(gone_count, sessions.size()) << "deleted sessions still served 5 s after the delete";
  EXPECT_LE(last_served_ms, kBoundMs) << "a deleted session was served " << last_served_ms
                                      << " ms after the delete";
  EXPECT_GT(lapsed["lease_lapsed"].u64(), st["lease_lapsed"].u64()) << "the lookups did not fall through";
  std::printf("[ lease    ] last deleted session served %lld ms after the delete (bound %lld ms); "
              "subscriber stale %lld ms after the freeze\n",
              static_cast<long long>(last_served_ms), static_cast<long long>(kBoundMs),
              static_cast<long long>(sub_stale_ms));

  // Still frozen: the probe times out (probe_timeout_ms) and the listener
  // reconnects on another backend. The entries of the deleted sessions
  // (their events never came) go, and the cache serves again.
  ASSERT_TRUE(Eventually([&] {
    Value c = Cache();
    return c["active"].boolean() && c["leased"].boolean() && c["resets"].u64() > lapsed["resets"].u64();
  }, 30000)) << "never served again";
  frozen->Thaw();
  Value t = CachedSession(u["id"].str());
  EXPECT_EQ(Cache()["entries"].u64(), 1u) << "the cache was not flushed on reconnect";
}

// A silence shorter than probe_timeout_ms: once the backend runs again its
// notifications and the probe come back, in commit order. No reconnect and
// no flush: the entries kept through the lapse serve again, and the one
// deleted meanwhile was evicted by its (late) event.
TEST_F(HotCacheLeaseTest, AProbeThatComesBackRestoresTheLeaseWithoutAFlush) {
  Value u = NewUser();
  Value kept = CachedSession(u["id"].str());
  Value deleted = CachedSession(u["id"].str());
  Reply before = client().Call("stats");
  PgConn admin = Connect(daemon().database_url());
  std::unique_ptr<FrozenProcess> frozen = FreezeListenerBackend(admin.get());
  Exec(admin.get(), "DELETE FROM sessions WHERE id = '" + deleted["id"].str() + "'");
  ASSERT_TRUE(Eventually([&] { return !Cache()["leased"].boolean(); }, 3000)) << "the lease never lapsed";
  EXPECT_EQ(GetByToken(deleted["token"].str()).code(), "not_found");
  EXPECT_EQ(Cache()["entries"].u64(), 2u) << "entries are kept while the lease has lapsed";
  // Probes keep going out (every lease_ms / 4) while the first is still out:
  // one slow round trip does not hold back the next probe.
  auto probes_out = [&] { return client().Call("stats").result()["events"]["probes_out"].u64(); };
  EXPECT_TRUE(Eventually([&] { return probes_out() >= 3; }, 3000)) << "a probe still out held back the next";
  frozen->Thaw();
  ASSERT_TRUE(Eventually([&] { return Cache()["leased"].boolean(); })) << "the lease never came back";
  // They all come back, in order (a probe or two may be out at any moment).
  EXPECT_TRUE(Eventually([&] { return probes_out() <= 1; }, 3000)) << "probes sent while frozen never came back";
  Reply after = client().Call("stats");
  EXPECT_EQ(after.result()["events"]["reconnects"].u64(), before.result()["events"]["reconnects"].u64())
      << "the listener reconnected: thawed too late for this test (probe_timeout_ms)";
  EXPECT_EQ(Cache()["entries"].u64(), 1u) << "the late event did not evict the deleted session";
  uint64_t hits = Cache()["hits"].u64();
  ASSERT_TRUE(GetByToken(kept["token"].str()).ok());
  EXPECT_EQ(Cache()["hits"].u64(), hits + 1) << "the entry kept through the lapse does not serve";
}

// A healthy listener's probes (every lease_ms / 4) renew the lease long
// before it lapses, also while the daemon is busy: no lookup falls through.
TEST_F(HotCacheTest, AHealthyDaemonUnderLoadNeverLetsTheLeaseLapse) {
  Value u = NewUser();
  std::vector<std::string> tokens;
  for (int i = 0; i < 20; i++) tokens.push_back(CachedSession(u["id"].str())["token"].str());
  Value before = Cache();
  EXPECT_EQ(before["lease_ms"].u64(), 1000u) << "the default";
  std::atomic<uint64_t> ok{0};
  std::atomic<bool> failed{false};
  auto until = steady_clock::now() + milliseconds(10000);
  std::vector<std::thread> loaders;
  for (int t = 0; t < 3; t++) {
    loaders.emplace_back([&, t] {
      WireClient c(daemon().request_endpoint());
      for (size_t i = t; steady_clock::now() < until; i++) {
        Reply r = c.Call("get_session", V::Map({{"token", tokens[i % tokens.size()]}}));
        if (r.ok()) {
          ok++;
        } else {
          failed = true;
        }
      }
    });
  }
  for (auto& l : loaders) l.join();
  Value after = Cache();
  EXPECT_FALSE(failed);
  EXPECT_EQ(after["lease_lapsed"].u64(), before["lease_lapsed"].u64()) << "lookups fell through a lapsed lease";
  EXPECT_EQ(after["hits"].u64() - before["hits"].u64(), ok.load()) << "every lookup should have been a hit";
  EXPECT_GT(ok.load(), 100u);
  Reply stats = client().Call("stats");
  std::printf("[ lease    ] %llu lookups in 10 s, 0 fell through; last probe round trip %lld us\n",
              static_cast<unsigned long long>(ok.load()),
              static_cast<long long>(stats.result()["events"]["last_probe_rtt_us"].i64()));
}

}  // namespace
}  // namespace torii::test
