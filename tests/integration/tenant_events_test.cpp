// Tenants on the event stream of the real daemon (PROTOCOL.md section 6,
// issue 26), with CURVE keys bound to tenants by the authorized-keys folder
// and the real schema/0014 triggers (changes written in SQL with
// torii.tenant set): a subscriber bound to tenant a that subscribes to
// everything gets none of b's 1,000 changes and no false gap while it keeps
// getting a's events and heartbeats; asking for b's stream by name gets it
// nothing; an unbound subscriber sees both tenants with contiguous seqs per
// (tenant, family); a key bound to the default tenant sees only default
// events; and a SIGHUP that moves or removes a bound key takes effect on
// new connections.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "daemon_process.h"
#include "eventually.h"
#include "pg_cluster.h"
#include "sql.h"
#include "torii/client.h"
#include "torii/curve.h"
#include "torii/subscriber.h"

namespace torii::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

CurveKeyPair NewPair() {
  auto p = GenerateCurveKeyPair();
  EXPECT_TRUE(p.ok()) << p.error().message();
  return *p;
}

// What one subscriber received, by listener.
struct Seen {
  std::vector<std::string> events;             // "tenant:topic" of every non-torii event
  std::map<std::string, std::vector<uint64_t>> seqs;  // "tenant/family" -> seqs in order (events only)
  std::map<std::string, uint64_t> heartbeats;  // tenant -> heartbeats received
  std::vector<std::string> stale;
  size_t Count(const std::string& tenant_topic) const {
    return static_cast<size_t>(std::count(events.begin(), events.end(), tenant_topic));
  }
};

class TenantEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("torii-tenant-events");
    keys_dir_ = dir_ + "/authorized";
    server_ = NewPair();
    ASSERT_TRUE(WriteCurveKeyPair(dir_ + "/server", server_).ok());
    free_ = NewPair();
    alice_ = NewPair();
    carol_ = NewPair();
    dflt_ = NewPair();
    dave_ = NewPair();
    Authorize("free.pub", free_);
    Authorize("c/dave.pub", dave_);
    Authorize("a/alice.pub", alice_);
    Authorize("a/carol.pub", carol_);
    Authorize("default/dflt.pub", dflt_);
    // Logged and skipped, never fatal.
    Authorize("Not A Tenant/x.pub", NewPair());

    DaemonOptions o;
    o.settings["security.curve_secret_key_file"] = TomlString(dir_ + "/server.key");
    o.settings["security.curve_authorized_keys_dir"] = TomlString(keys_dir_);
    o.settings["events.heartbeat_ms"] = "100";
    o.settings["cleanup.interval_s"] = "0";
    // The tenants table is read again on the probe timer, at most every 5 s.
    o.settings["events.probe_interval_ms"] = "500";
    o.settings["events.probe_timeout_ms"] = "1500";
    o.wait_ready = false;
    daemon_ = std::make_unique<DaemonProcess>(o);
    Client c = NewClient(free_);
    bool answered = false;
    Eventually(
        [&] {
          CallOptions co;
          co.timeout_ms = 200;
          answered = c.Call("ping", {}, co).ok();
          return answered || !daemon_->running();
        },
        30000, [] {});
    ASSERT_TRUE(answered) << "toriid never answered an authorized ping:" << daemon_->LogTail();
    sql_ = Connect(daemon_->database_url());
    Exec(sql_.get(), "INSERT INTO tenants (name) VALUES ('a'), ('b')");
  }

  void TearDown() override {
    daemon_.reset();
    RemoveTree(dir_);
  }

  void Authorize(const std::string& name, const CurveKeyPair& pair) {
    fs::path p(keys_dir_ + "/" + name);
    fs::create_directories(p.parent_path());
    std::ofstream(p) << pair.public_key << "\n";
  }

  Client NewClient(const CurveKeyPair& pair) {
    ClientOptions o;
    o.endpoints = {daemon_->request_endpoint()};
    o.default_timeout_ms = 5000;
    o.server_public_key = server_.public_key;
    o.client_public_key = pair.public_key;
    o.client_secret_key = pair.secret_key;
    auto c = Client::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(c.value());
  }

  // A subscriber with `pair`'s key, subscribed to everything ("" with the
  // default options) or to `tenant`'s stream by name; `seen` records it.
  std::unique_ptr<Subscriber> NewSubscriber(const CurveKeyPair& pair, Seen* seen, const std::string& tenant = "") {
    SubscriberOptions o;
    o.endpoints = {daemon_->event_endpoint()};
    o.heartbeat_ms = 100;
    o.deliver_torii_events = true;
    o.tenant = tenant;
    o.server_public_key = server_.public_key;
    o.client_public_key = pair.public_key;
    o.client_secret_key = pair.secret_key;
    auto s = Subscriber::Create(std::move(o));
    EXPECT_TRUE(s.ok()) << s.error().message();
    (*s)->AddListener(
        [seen](const torii::Event& e) {
          if (e.family == "torii") {
            if (e.kind == "heartbeat") seen->heartbeats[e.tenant]++;
            return;
          }
          seen->events.push_back(e.tenant + ":" + e.topic);
          seen->seqs[e.tenant + "/" + e.family].push_back(e.seq);
        },
        [seen](const StaleReason& r) { seen->stale.push_back(r.ToString()); });
    return std::move(s.value());
  }

  // `n` users created in `tenant` by one SQL statement (one event each).
  void Users(const std::string& tenant, int n, const std::string& tag) {
    Exec(sql_.get(), "BEGIN");
    Exec(sql_.get(), "SET LOCAL torii.tenant = '" + tenant + "'");
    Exec(sql_.get(), "INSERT INTO users (id, email) SELECT gen_random_uuid(), '" + tag +
                         "-' || i || '@example.com' FROM generate_series(1, " + std::to_string(n) + ") i");
    Exec(sql_.get(), "COMMIT");
  }

  // Polls every subscriber until `done` or `ms`.
  bool PollAll(const std::vector<Subscriber*>& subs, const std::function<bool()>& done, int ms = 15000) {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) {
      for (Subscriber* s : subs) s->Poll(5);
      if (done()) return true;
    }
    return false;
  }

  std::string dir_, keys_dir_;
  CurveKeyPair server_, free_, alice_, carol_, dflt_, dave_;
  std::unique_ptr<DaemonProcess> daemon_;
  PgConn sql_;
};

TEST_F(TenantEventsTest, EachKeySeesItsTenantOnly) {
  EXPECT_TRUE(daemon_->WaitForLog("Not A Tenant/: not a tenant name", 1000)) << daemon_->LogTail();
  EXPECT_TRUE(daemon_->WaitForLog("(4 of them bound to 3 tenants)", 1000)) << daemon_->LogTail();
  // The daemon learns tenant a from its first event (or the tenants table).
  Users("a", 1, "a-first");

  Seen a, spy, all, dflt;
  auto sub_a = NewSubscriber(alice_, &a);          // bound to a, subscribes to ""
  auto sub_spy = NewSubscriber(carol_, &spy, "b");  // bound to a, asks for b's stream by name
  auto sub_all = NewSubscriber(free_, &all);       // unbound, subscribes to ""
  auto sub_dflt = NewSubscriber(dflt_, &dflt);     // bound to default, subscribes to ""
  std::vector<Subscriber*> subs = {sub_a.get(), sub_spy.get(), sub_all.get(), sub_dflt.get()};
  ASSERT_TRUE(PollAll(subs, [&] { return sub_a->live() && sub_all->live() && sub_dflt->live(); }))
      << "a live: " << sub_a->live() << ", all live: " << sub_all->live() << ", default live: " << sub_dflt->live();
  // a's first event may have reached them before the heartbeat that made
  // them live: count from here.
  for (Seen* s : {&a, &spy, &all, &dflt}) *s = Seen();

  // 1,000 changes of b, then 3 of a and 2 of the default tenant.
  Users("b", 1000, "b");
  Users("a", 3, "a");
  Users("default", 2, "d");
  ASSERT_TRUE(PollAll(subs, [&] {
    return a.Count("a:user.created") >= 3 && all.Count("b:user.created") >= 1000 &&
           all.Count("a:user.created") >= 3 && all.Count("default:user.created") >= 2 &&
           dflt.Count("default:user.created") >= 2;
  })) << "a: " << a.events.size() << ", all: " << all.events.size() << ", default: " << dflt.events.size();
  // A few more heartbeats after the burst: each shows its tenant's seqs.
  std::map<std::string, uint64_t> before_a = a.heartbeats, before_all = all.heartbeats;
  ASSERT_TRUE(PollAll(subs, [&] { return a.heartbeats["a"] >= before_a["a"] + 3 && all.heartbeats["b"] >= before_all["b"] + 3; }));

  // Bound to a: a's events and heartbeats only, no gap, still live.
  EXPECT_EQ(a.events, (std::vector<std::string>(3, "a:user.created")));
  EXPECT_EQ(a.seqs["a/user"], (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(a.heartbeats.size(), 1u) << "heartbeats of another tenant reached a key bound to a";
  EXPECT_GT(a.heartbeats["a"], 0u);
  EXPECT_TRUE(a.stale.empty()) << a.stale[0];
  EXPECT_TRUE(sub_a->live());

  // Bound to a, asking for b by name: nothing at all.
  EXPECT_EQ(sub_spy->stats().messages, 0u) << "a key bound to a received b's stream";

  // Unbound: every tenant, seqs contiguous per (tenant, family).
  EXPECT_EQ(all.Count("b:user.created"), 1000u);
  ASSERT_EQ(all.seqs["b/user"].size(), 1000u);
  for (size_t i = 0; i < 1000; i++) ASSERT_EQ(all.seqs["b/user"][i], i + 1) << "b's user seq at " << i;
  EXPECT_EQ(all.seqs["a/user"], (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(all.Count("default:user.created"), 2u);
  EXPECT_GT(all.heartbeats["default"], 0u);
  EXPECT_GT(all.heartbeats["a"], 0u);
  EXPECT_GT(all.heartbeats["b"], 0u);
  EXPECT_TRUE(all.stale.empty()) << all.stale[0];

  // Bound to the default tenant: default events only, as before tenants.
  EXPECT_EQ(dflt.events, (std::vector<std::string>(2, "default:user.created")));
  EXPECT_EQ(dflt.heartbeats.size(), 1u);
  EXPECT_GT(dflt.heartbeats["default"], 0u);
  EXPECT_TRUE(dflt.stale.empty()) << dflt.stale[0];
}

TEST_F(TenantEventsTest, SighupMovesAndRemovesBoundKeys) {
  Users("a", 1, "a-first");
  Users("b", 1, "b-first");
  // alice's key moves from a to b, carol's goes.
  fs::create_directories(keys_dir_ + "/b");
  fs::rename(keys_dir_ + "/a/alice.pub", keys_dir_ + "/b/alice.pub");
  fs::remove(keys_dir_ + "/a/carol.pub");
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(daemon_->WaitForLog("1 keys revoked", 10000)) << daemon_->LogTail();
  ASSERT_TRUE(daemon_->WaitForLog("1 keys changed tenant binding", 10000)) << daemon_->LogTail();

  Seen moved, removed;
  auto sub_moved = NewSubscriber(alice_, &moved);
  auto sub_removed = NewSubscriber(carol_, &removed);
  std::vector<Subscriber*> subs = {sub_moved.get(), sub_removed.get()};
  ASSERT_TRUE(PollAll(subs, [&] { return sub_moved->live(); }));
  Users("a", 2, "a");
  Users("b", 2, "b");
  ASSERT_TRUE(PollAll(subs, [&] { return moved.Count("b:user.created") >= 2; }));
  // A window of a few heartbeats for anything else to show up.
  uint64_t hb = moved.heartbeats["b"];
  ASSERT_TRUE(PollAll(subs, [&] { return moved.heartbeats["b"] >= hb + 5; }));
  EXPECT_EQ(moved.events, (std::vector<std::string>(2, "b:user.created")));
  EXPECT_EQ(moved.heartbeats.count("a"), 0u);
  EXPECT_EQ(sub_removed->stats().messages, 0u) << "a removed key still receives events";
}

// A tenant registered while the daemon runs gets its own heartbeats before
// its first event (the tenants table is read again), so a subscriber bound
// to it goes live and then sees its first event as seq 1.
TEST_F(TenantEventsTest, ANewTenantGetsHeartbeatsBeforeItsFirstEvent) {
  Seen c;
  auto sub_c = NewSubscriber(dave_, &c);
  Exec(sql_.get(), "INSERT INTO tenants (name) VALUES ('c')");
  ASSERT_TRUE(PollAll({sub_c.get()}, [&] { return sub_c->live(); }, 15000))
      << "no heartbeat of tenant c within 15 s:" << daemon_->LogTail();
  // Before the tenant existed it heard nothing: missed heartbeats, once.
  for (const auto& r : c.stale) EXPECT_NE(r.find("missed_heartbeats"), std::string::npos) << r;
  c.stale.clear();
  EXPECT_TRUE(c.events.empty());
  EXPECT_EQ(c.heartbeats.size(), 1u);
  EXPECT_GT(c.heartbeats["c"], 0u);
  Users("c", 1, "c");
  ASSERT_TRUE(PollAll({sub_c.get()}, [&] { return !c.events.empty(); }));
  EXPECT_EQ(c.seqs["c/user"], (std::vector<uint64_t>{1}));
  EXPECT_TRUE(c.stale.empty()) << c.stale[0];
}

}  // namespace
}  // namespace torii::test
