// Change events (PROTOCOL.md section 3, issue 4) from the real daemon:
// every kind from daemon writes and from plain SQL (cascades included),
// seq contiguity under a burst, heartbeats, resync after the LISTEN
// connection is lost or PostgreSQL restarts, a slow subscriber's gap, and
// no secret in any event.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <set>
#include <thread>

#include "event_sub.h"
#include "eventually.h"
#include "tcp_proxy.h"
#include "request_fixture.h"
#include "torii/pg.h"
#include "torii/values.h"

namespace torii::test {
namespace {

class EventsTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    DaemonOptions o;
    o.settings["events.heartbeat_ms"] = "100";
    o.settings["cleanup.interval_s"] = "0";
    return o;
  }

  // A subscriber that is known to be connected: it has seen a heartbeat.
  std::unique_ptr<EventSub> Subscribe(std::vector<std::string> prefixes = {"user.", "session.", "torii."}) {
    prefixes.push_back("torii.heartbeat");
    auto sub = std::make_unique<EventSub>(daemon().event_endpoint(), prefixes);
    EXPECT_FALSE(sub->WaitForTopic("torii.heartbeat", 5000).topic.empty()) << "no heartbeat";
    return sub;
  }

  PgConn Sql() {
    auto c = ConnectBlocking(daemon().database_url());
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(c.value());
  }
  void Exec(PGconn* c, const std::string& sql) {
    auto r = ExecBlocking(c, sql);
    ASSERT_TRUE(r.ok()) << sql << ": " << r.error().message();
  }
};

TEST_F(EventsTest, EveryKindFromDaemonWrites) {
  auto sub = Subscribe();
  Value user = NewUser("Alice@Example.com");
  std::string uid = user["id"].str();
  Event e = sub->WaitForTopic("user.created", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["id"].str(), uid);
  EXPECT_EQ(e.body["email"].str(), "Alice@Example.com");
  EXPECT_TRUE(e.body["seq"].is_int());
  EXPECT_TRUE(e.body["at"].is_timestamp());
  EXPECT_FALSE(e.body["epoch"].str().empty());

  ASSERT_TRUE(Call("update_user", V::Map({{"id", uid}, {"email", "alice2@example.com"}})).ok());
  e = sub->WaitForTopic("user.updated", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["email"].str(), "alice2@example.com");
  EXPECT_EQ(e.body["old_email"].str(), "Alice@Example.com");
  std::set<std::string> changed;
  for (size_t i = 0; i < e.body["changed"].size(); i++) changed.insert(e.body["changed"][i].str());
  EXPECT_TRUE(changed.count("email")) << e.body.ToString();
  EXPECT_FALSE(changed.count("password_hash"));

  ASSERT_TRUE(Call("update_user", V::Map({{"id", uid}, {"metadata", V::Map({{"plan", "pro"}})}})).ok());
  e = sub->WaitForTopic("user.updated", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_FALSE(e.body.has("old_email")) << "old_email only when the email changed";
  EXPECT_EQ(e.raw.find("pro"), std::string::npos) << "metadata values never travel in events";

  Value session = NewSession(uid);
  std::string sid = session["id"].str();
  e = sub->WaitForTopic("session.created", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["id"].str(), sid);
  EXPECT_EQ(e.body["user_id"].str(), uid);

  ASSERT_TRUE(Call("extend_session", V::Map({{"id", sid}, {"ttl_s", 7200}})).ok());
  e = sub->WaitForTopic("session.updated", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["id"].str(), sid);
  EXPECT_TRUE(e.body["expires_at"].is_timestamp());

  ASSERT_TRUE(Call("delete_session", V::Map({{"id", sid}})).ok());
  e = sub->WaitForTopic("session.deleted", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["id"].str(), sid);

  // Deleting a user deletes its sessions: one event each, by cascade.
  Value s2 = NewSession(uid);
  ASSERT_TRUE(Call("delete_user", V::Map({{"id", uid}})).ok());
  std::vector<Event> seen;
  e = sub->WaitForTopic("user.deleted", 5000, &seen);
  ASSERT_FALSE(e.topic.empty());
  Event cascade = sub->WaitFor([&](const Event& ev) { return ev.topic == "session.deleted" && ev.body["id"].str() == s2["id"].str(); }, 5000);
  bool already = false;
  for (const auto& ev : seen) already |= ev.topic == "session.deleted" && ev.body["id"].str() == s2["id"].str();
  EXPECT_TRUE(already || !cascade.topic.empty()) << "cascaded session delete not published";
}

TEST_F(EventsTest, PlainSqlWritesArePublished) {
  auto sub = Subscribe();
  PgConn c = Sql();
  std::string uid = NewUuid();
  std::string sid = NewUuid();
  Exec(c.get(), "INSERT INTO users (id, email) VALUES ('" + uid + "', 'psql@example.com')");
  Event e = sub->WaitForTopic("user.created", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["id"].str(), uid);
  Exec(c.get(), "INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES ('" + sid + "', '" + uid +
                    "', '\\x01', now() + interval '1 hour')");
  e = sub->WaitForTopic("session.created", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["id"].str(), sid);
  Exec(c.get(), "UPDATE users SET email = 'psql2@example.com' WHERE id = '" + uid + "'");
  e = sub->WaitForTopic("user.updated", 5000);
  ASSERT_FALSE(e.topic.empty());
  EXPECT_EQ(e.body["old_email"].str(), "psql@example.com");
  Exec(c.get(), "DELETE FROM users WHERE id = '" + uid + "'");
  std::vector<Event> seen;
  sub->WaitFor([&](const Event&) {
    bool u = false, s = false;
    for (const auto& ev : seen) {
      u |= ev.topic == "user.deleted" && ev.body["id"].str() == uid;
      s |= ev.topic == "session.deleted" && ev.body["id"].str() == sid;
    }
    return u && s;
  }, 5000, &seen);
  bool u = false, s = false;
  for (const auto& ev : seen) {
    u |= ev.topic == "user.deleted";
    s |= ev.topic == "session.deleted" && ev.body["user_id"].str() == uid;
  }
  EXPECT_TRUE(u);
  EXPECT_TRUE(s) << "cascade from plain SQL not published";
  // A rolled-back change publishes nothing.
  Exec(c.get(), "BEGIN; INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'rolled@example.com'); ROLLBACK");
  Event none = sub->WaitFor([](const Event& ev) { return ev.topic == "user.created"; }, 500);
  EXPECT_TRUE(none.topic.empty()) << "an event for a rolled-back insert";
}

TEST_F(EventsTest, SeqIsContiguousPerFamilyUnderABurst) {
  auto sub = Subscribe({"user."});
  PgConn c = Sql();
  Exec(c.get(), "INSERT INTO users (id, email) SELECT gen_random_uuid(), 'burst' || i || '@example.com' "
                "FROM generate_series(1, 10000) i");
  uint64_t last = 0;
  int got = 0;
  std::string epoch;
  while (got < 10000) {
    Event e = sub->Next(10000);
    ASSERT_FALSE(e.topic.empty()) << "only " << got << " of 10000 events arrived";
    if (e.topic != "user.created") continue;
    uint64_t seq = e.body["seq"].u64();
    if (last != 0) {
      ASSERT_EQ(seq, last + 1) << "seq skipped after " << got << " events";
    }
    if (epoch.empty()) epoch = e.body["epoch"].str();
    EXPECT_EQ(e.body["epoch"].str(), epoch);
    last = seq;
    got++;
  }
  // The daemon's own counter agrees.
  Reply st = Call("stats");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st.result()["events"]["seq"]["user"].u64(), last);
  EXPECT_GE(st.result()["events"]["received"].u64(), 10000u);
}

TEST_F(EventsTest, HeartbeatCadenceAndSeqs) {
  auto sub = Subscribe({"torii."});
  auto start = std::chrono::steady_clock::now();
  int beats = 0;
  Event last;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500)) {
    Event e = sub->Next(500);
    if (e.topic == "torii.heartbeat") {
      beats++;
      last = e;
    }
  }
  // 100 ms interval over 1.5 s: about 15; a loaded machine may lose a few.
  EXPECT_GE(beats, 10);
  EXPECT_LE(beats, 17);
  ASSERT_TRUE(last.body["seqs"].is_map());
  EXPECT_TRUE(last.body["seqs"].has("user"));
  EXPECT_TRUE(last.body["seqs"].has("session"));
  // The heartbeat's own seq is the torii family's latest.
  EXPECT_EQ(last.body["seqs"]["torii"].u64(), last.body["seq"].u64());
}

TEST_F(EventsTest, ResyncAfterListenConnectionIsTerminated) {
  auto sub = Subscribe();
  PgConn c = Sql();
  auto t0 = std::chrono::steady_clock::now();
  Exec(c.get(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'toriid-listener' AND datname = current_database()");
  Event e = sub->WaitForTopic("torii.resync", 2000);
  ASSERT_FALSE(e.topic.empty()) << "no torii.resync within 2 s";
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("resync %lld ms after pg_terminate_backend\n", (long long)took.count());
  EXPECT_FALSE(e.body["reason"].str().empty());
  // Events flow again.
  NewUser();
  EXPECT_FALSE(sub->WaitForTopic("user.created", 5000).topic.empty());
  Reply st = Call("stats");
  EXPECT_GE(st.result()["events"]["reconnects"].u64(), 1u);
}

TEST_F(EventsTest, SlowSubscriberSeesAGap) {
  // A subscriber that does not read while the daemon publishes more than the
  // queues hold: PUB drops, and the seq numbers show it.
  daemon_.reset();
  DaemonOptions o = Options();
  o.settings["events.send_hwm"] = "100";
  daemon_ = std::make_unique<DaemonProcess>(o);
  client_ = std::make_unique<WireClient>(daemon_->request_endpoint());
  // Small queues and a small fixed TCP receive buffer. The sending side's
  // kernel buffer still grows up to tcp_wmem's maximum (4 MiB by default),
  // so the events must add up to more than that: 15,000 of about 300 bytes
  // (long emails). With 5,000 short ones every event once got through.
  constexpr uint64_t kEvents = 15000;
  EventSub sub(daemon().event_endpoint(), {"user."}, 100, 4096);
  EventSub ready(daemon().event_endpoint(), {"torii.heartbeat"});
  ASSERT_FALSE(ready.WaitForTopic("torii.heartbeat", 5000).topic.empty());
  // The subscription is in place once a user event reaches it (PUB drops
  // what it sends before then); later copies of these are skipped below.
  int settle = 0;
  ASSERT_TRUE(Eventually(
      [&] {
        Call("create_user", V::Map({{"email", "settle" + std::to_string(settle++) + "@example.com"}}));
        return !sub.WaitForTopic("user.created", 200).topic.empty();
      },
      10000, [] {}))
      << "the slow subscriber never got an event";
  const uint64_t base = Call("stats").result()["events"]["seq"]["user"].u64();
  PgConn c = Sql();
  Exec(c.get(), "INSERT INTO users (id, email) SELECT gen_random_uuid(), 'slow' || i || '@' || repeat('x', 200) || "
                "'.example.com' FROM generate_series(1, " + std::to_string(kEvents) + ") i");
  // Wait until the daemon has published all of them, then read.
  // Reading starts either way: what the subscriber lost is the point.
  Eventually([&] { return Call("stats").result()["events"]["seq"]["user"].u64() >= base + kEvents; }, 20000);
  uint64_t last = 0, gaps = 0, got = 0;
  for (;;) {
    Event e = sub.Next(500);
    if (e.topic.empty()) break;
    uint64_t seq = e.body["seq"].u64();
    if (seq <= base) continue;  // a settling event
    if (last != 0 && seq != last + 1) gaps++;
    last = seq;
    got++;
  }
  std::printf("slow subscriber got %lu of %lu, %lu gaps\n", (unsigned long)got, (unsigned long)kEvents,
              (unsigned long)gaps);
  EXPECT_LT(got, kEvents);
  EXPECT_TRUE(gaps > 0 || last < base + kEvents) << "a dropped message must show as a seq gap or a short tail";
}

TEST_F(EventsTest, NoSecretInAnyEvent) {
  auto sub = Subscribe();
  std::string hash = "$argon2id$v=19$m=65536$event-secret-hash";
  Reply u = Call("create_user", V::Map({{"email", "sec@example.com"}, {"password_hash", hash}}));
  ASSERT_TRUE(u.ok());
  std::string uid = u.result()["id"].str();
  Reply s = Call("create_session", V::Map({{"user_id", uid}, {"ttl_s", 60}}));
  ASSERT_TRUE(s.ok());
  std::string token = s.result()["token"].str();
  auto digest = TokenDigest(token);
  std::string raw_digest(reinterpret_cast<const char*>(digest.data()), digest.size());
  static const char* hex = "0123456789abcdef";
  std::string hex_digest;
  for (uint8_t b : digest) {
    hex_digest += hex[b >> 4];
    hex_digest += hex[b & 15];
  }
  ASSERT_TRUE(Call("update_user", V::Map({{"id", uid}, {"password_hash", "$argon2id$new-secret"}})).ok());
  ASSERT_TRUE(Call("extend_session", V::Map({{"token", token}, {"ttl_s", 120}})).ok());
  ASSERT_TRUE(Call("delete_session", V::Map({{"token", token}})).ok());
  ASSERT_TRUE(Call("delete_user", V::Map({{"id", uid}})).ok());
  std::vector<Event> seen;
  sub->WaitForTopic("user.deleted", 5000, &seen);
  ASSERT_GE(seen.size(), 6u);
  for (const auto& e : seen) {
    for (const std::string& secret : {hash, std::string("$argon2id$new-secret"), token, raw_digest, hex_digest}) {
      EXPECT_EQ(e.raw.find(secret), std::string::npos) << e.topic << " carries a secret";
    }
  }
}

TEST(EventsRestart, PostgresRestartGivesResync) {
  PgCluster cluster;
  DaemonOptions o;
  o.database_url = cluster.CreateDatabase();
  o.settings["events.heartbeat_ms"] = "100";
  DaemonProcess d(o);
  EventSub sub(d.event_endpoint(), {"torii.", "user."});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());
  cluster.Restart(false);
  Event e = sub.WaitForTopic("torii.resync", 10000);
  ASSERT_FALSE(e.topic.empty()) << "no resync after a PostgreSQL restart";
  WireClient client(d.request_endpoint());
  // The pool recovers too; then events flow.
  Reply r;
  ASSERT_TRUE(Eventually(
      [&] {
        r = client.Call("create_user", V::Map({{"email", "after-restart@example.com"}}), 2000);
        return r.ok();
      },
      10000, [] {}))
      << r.ToString();
  EXPECT_FALSE(sub.WaitForTopic("user.created", 5000).topic.empty());
}

TEST(EventsProbe, SilentNetworkPathIsDetectedAndRecovered) {
  PgClusterOptions co;
  co.tcp = true;
  PgCluster cluster(co);
  std::string db = DbNameOf(cluster.CreateDatabase());
  TcpProxy proxy(cluster.info().port);
  DaemonOptions o;
  o.database_url = TcpConnInfoVia(cluster, proxy.port(), db);
  o.settings["events.heartbeat_ms"] = "50";
  o.settings["events.probe_interval_ms"] = "200";
  o.settings["events.probe_timeout_ms"] = "300";
  o.settings["database.connect_timeout_ms"] = "1000";
  o.settings["cleanup.interval_s"] = "0";
  DaemonProcess d(o);
  EventSub sub(d.event_endpoint(), {"torii."});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());

  // The path goes silent: no RST, no FIN. The probe does not come back, so
  // the daemon must stop vouching for the stream (heartbeats pause).
  proxy.Freeze();
  auto t0 = std::chrono::steady_clock::now();
  auto last_beat = t0;
  bool paused = false;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    Event e = sub.Next(50);
    auto now = std::chrono::steady_clock::now();
    if (e.topic == "torii.heartbeat") last_beat = now;
    if (now - last_beat > std::chrono::milliseconds(400)) {
      paused = true;
      break;
    }
  }
  ASSERT_TRUE(paused) << "heartbeats went on over a frozen LISTEN connection";
  auto detected = std::chrono::duration_cast<std::chrono::milliseconds>(last_beat - t0).count();
  std::printf("silent path detected %lld ms after the freeze (bound: probe_interval 200 + probe_timeout 300)\n",
              (long long)detected);
  EXPECT_LE(detected, 200 + 300 + 400);

  proxy.Thaw();
  Event e = sub.WaitForTopic("torii.resync", 10000);
  ASSERT_FALSE(e.topic.empty()) << "no resync after the path came back";
  EXPECT_FALSE(sub.WaitForTopic("torii.heartbeat", 2000).topic.empty()) << "heartbeats did not resume";
  WireClient client(d.request_endpoint());
  Reply st = client.Call("stats");
  ASSERT_TRUE(st.ok());
  EXPECT_GE(st.result()["events"]["probe_failures"].u64(), 1u);
}

}  // namespace
}  // namespace torii::test
