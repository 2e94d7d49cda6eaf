// torii::Subscriber against an in-process PUB socket publishing crafted
// events: delivery and decoding, going live on a heartbeat, and each stale
// condition (gap, a heartbeat showing a dropped last message, epoch change,
// heartbeat silence, resync, malformed); with several endpoints, events
// deduplicated by eid, live() while any endpoint is caught up, and the stale
// rule (a condition another live endpoint vouches for is absorbed).
#include "torii/subscriber.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "msgpack_util.h"
#include "torii/protocol.h"

namespace torii {
namespace {

using test::Clock;
using test::Get;
using test::MsSince;
using test::S;

// A PUB socket that publishes events the way PROTOCOL.md section 3 says,
// with whatever seq and epoch the test wants.
class TestPub {
 public:
  explicit TestPub(zmq::context_t& ctx) : socket_(ctx, zmq::socket_type::pub) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  }
  const std::string& endpoint() const { return endpoint_; }

  // {seq, epoch, at, extra...}; `extra` packs `extra_keys` key/value pairs.
  void Event(std::string_view topic, std::string_view epoch, uint64_t seq, uint32_t extra_keys = 0,
             const std::function<void(Packer&)>& extra = nullptr) {
    msgpack::sbuffer b;
    Packer pk(b);
    pk.pack_map(3 + extra_keys);
    PackStr(pk, "seq");
    pk.pack_uint64(seq);
    PackStr(pk, "epoch");
    PackStr(pk, epoch);
    PackStr(pk, "at");
    PackTimestamp(pk, 1700000000123456);
    if (extra) extra(pk);
    Raw(topic, std::string_view(b.data(), b.size()));
  }
  void Raw(std::string_view topic, std::string_view body) {
    socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(body), zmq::send_flags::none);
  }
  void Heartbeat(std::string_view epoch, uint64_t torii_seq, const std::map<std::string, uint64_t>& seqs) {
    Event("torii.heartbeat", epoch, torii_seq, 1, [&](Packer& pk) {
      PackStr(pk, "seqs");
      pk.pack_map(static_cast<uint32_t>(seqs.size() + 1));
      PackStr(pk, "torii");
      pk.pack_uint64(torii_seq);
      for (const auto& [f, s] : seqs) {
        PackStr(pk, f);
        pk.pack_uint64(s);
      }
    });
  }
  void WithId(std::string_view topic, std::string_view epoch, uint64_t seq, std::string_view id) {
    Event(topic, epoch, seq, 1, [&](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, id);
    });
  }
  // A relayed database event: `id` and the database's `eid`.
  void WithEid(std::string_view topic, std::string_view epoch, uint64_t seq, std::string_view id, uint64_t eid) {
    Event(topic, epoch, seq, 2, [&](Packer& pk) {
      PackStr(pk, "id");
      PackStr(pk, id);
      PackStr(pk, "eid");
      pk.pack_uint64(eid);
    });
  }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
};

// Records what the subscriber reports.
struct Recorder {
  std::vector<Event> events;
  std::vector<StaleReason> stale;
  void Attach(Subscriber& s) {
    s.AddListener([this](const Event& e) {
      Event copy;
      copy.topic = e.topic;
      copy.family = e.family;
      copy.kind = e.kind;
      copy.seq = e.seq;
      copy.eid = e.eid;
      copy.epoch = e.epoch;
      copy.at = e.at;
      copy.endpoint = e.endpoint;
      copy.handle = msgpack::clone(e.body());
      events.push_back(std::move(copy));
    },
                  [this](const StaleReason& r) { stale.push_back(r); });
  }
};

std::unique_ptr<Subscriber> MakeSub(std::vector<std::string> endpoints, int64_t heartbeat_ms = 1000,
                                    std::vector<std::string> families = {"session"}) {
  SubscriberOptions o;
  o.endpoints = std::move(endpoints);
  o.families = std::move(families);
  o.heartbeat_ms = heartbeat_ms;
  auto s = Subscriber::Create(std::move(o));
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().ToString());
  return std::move(s.value());
}

// Polls until `done` or 5 s.
template <typename Done>
bool PollUntil(Subscriber& sub, Done done, int64_t limit_ms = 5000) {
  auto start = Clock::now();
  while (!done()) {
    if (MsSince(start) > limit_ms) return false;
    sub.Poll(10);
  }
  return true;
}

// Publishes heartbeats until the subscriber is live (its subscription has
// reached the publisher). Returns the torii seq used last.
uint64_t GoLive(TestPub& pub, Subscriber& sub, std::string_view epoch, const std::map<std::string, uint64_t>& seqs,
                uint64_t torii_seq = 0) {
  auto start = Clock::now();
  while (!sub.live() && MsSince(start) < 5000) {
    pub.Heartbeat(epoch, ++torii_seq, seqs);
    sub.Poll(10);
  }
  EXPECT_TRUE(sub.live());
  return torii_seq;
}

TEST(SubscriberTest, NotLiveUntilAHeartbeatThenDeliversSubscribedEvents) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  EXPECT_FALSE(sub->live());
  GoLive(pub, *sub, "E1", {{"session", 0}, {"user", 0}});

  pub.WithId("user.created", "E1", 1, "u1");  // not subscribed
  pub.WithId("session.created", "E1", 1, "s1");
  pub.WithId("session.deleted", "E1", 2, "s1");
  ASSERT_TRUE(PollUntil(*sub, [&] { return rec.events.size() >= 2; }));
  ASSERT_EQ(rec.events.size(), 2u);
  const Event& e = rec.events[0];
  EXPECT_EQ(e.topic, "session.created");
  EXPECT_EQ(e.family, "session");
  EXPECT_EQ(e.kind, "created");
  EXPECT_EQ(e.seq, 1u);
  EXPECT_EQ(e.epoch, "E1");
  EXPECT_EQ(e.at, 1700000000123456);
  EXPECT_EQ(e.Str("id"), "s1");
  EXPECT_EQ(rec.events[1].kind, "deleted");
  EXPECT_TRUE(rec.stale.empty());
  EXPECT_TRUE(sub->live());
  // Heartbeats are not events unless asked for.
  EXPECT_GE(sub->stats().heartbeats, 1u);
}

TEST(SubscriberTest, ASeqGapIsStaleUntilACleanHeartbeat) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  pub.WithId("session.created", "E1", 1, "a");
  pub.WithId("session.created", "E1", 2, "b");
  pub.WithId("session.created", "E1", 4, "d");
  ASSERT_TRUE(PollUntil(*sub, [&] { return rec.events.size() >= 3; }));
  ASSERT_EQ(rec.stale.size(), 1u);
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kGap);
  EXPECT_EQ(rec.stale[0].family, "session");
  EXPECT_EQ(rec.stale[0].epoch, "E1");
  EXPECT_EQ(rec.stale[0].expected, 3u);
  EXPECT_EQ(rec.stale[0].got, 4u);
  EXPECT_NE(rec.stale[0].ToString().find("expected seq 3, got 4"), std::string::npos) << rec.stale[0].ToString();
  EXPECT_EQ(rec.events.size(), 3u);  // the event after the gap is still delivered
  EXPECT_FALSE(sub->live());

  pub.Heartbeat("E1", ++t, {{"session", 4}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return sub->live(); }));
  EXPECT_EQ(rec.stale.size(), 1u);
}

TEST(SubscriberTest, AHeartbeatShowingAMissedLastMessageIsAGap) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  pub.WithId("session.deleted", "E1", 1, "a");
  // session seq 2 was published and dropped; the heartbeat tells.
  pub.Heartbeat("E1", ++t, {{"session", 2}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  EXPECT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kGap);
  EXPECT_EQ(rec.stale[0].family, "session");
  EXPECT_EQ(rec.stale[0].expected, 2u);
  EXPECT_EQ(rec.stale[0].got, 2u);
  EXPECT_FALSE(sub->live());
  pub.Heartbeat("E1", ++t, {{"session", 2}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return sub->live(); }));
  EXPECT_EQ(rec.stale.size(), 1u);
}

TEST(SubscriberTest, ALostHeartbeatIsAGapInTheToriiFamily) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  // A torii message (could have been a resync) went missing.
  pub.Heartbeat("E1", t + 2, {{"session", 0}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kGap);
  EXPECT_EQ(rec.stale[0].family, "torii");
  EXPECT_FALSE(sub->live());
}

TEST(SubscriberTest, ANewEpochOnAKnownEndpointIsStale) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  GoLive(pub, *sub, "E1", {{"session", 5}});
  // The daemon restarted: seqs start again at 1 under a new epoch.
  pub.WithId("session.created", "E2", 1, "x");
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  ASSERT_EQ(rec.stale.size(), 1u);
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kEpochChange);
  EXPECT_EQ(rec.stale[0].old_epoch, "E1");
  EXPECT_EQ(rec.stale[0].epoch, "E2");
  EXPECT_FALSE(sub->live());
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.events.empty(); }));
  EXPECT_EQ(rec.events[0].epoch, "E2");
  // A clean heartbeat of the new epoch makes it live again, with no gap for
  // seq 1 after the old epoch's 5.
  pub.Heartbeat("E2", 1, {{"session", 1}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return sub->live(); }));
  EXPECT_EQ(rec.stale.size(), 1u);
}

TEST(SubscriberTest, ResyncIsStaleWithItsReason) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  pub.Event("torii.resync", "E1", ++t, 1, [](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, "listen connection lost");
  });
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kResync);
  EXPECT_EQ(rec.stale[0].detail, "listen connection lost");
  EXPECT_FALSE(sub->live());
  EXPECT_TRUE(rec.events.empty());  // torii.* not delivered by default
  const uint64_t gen = sub->stale_generation();
  pub.Heartbeat("E1", ++t, {{"session", 0}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return sub->live(); }));
  EXPECT_EQ(sub->stale_generation(), gen);
}

TEST(SubscriberTest, HeartbeatSilenceIsStaleOncePerSilence) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  constexpr int64_t kHeartbeat = 50;
  auto sub = MakeSub({pub.endpoint()}, kHeartbeat);
  Recorder rec;
  rec.Attach(*sub);
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  ASSERT_TRUE(rec.stale.empty() || rec.stale.back().kind == StaleKind::kMissedHeartbeats);
  rec.stale.clear();
  auto silent_since = Clock::now();
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  const int64_t took = MsSince(silent_since);
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kMissedHeartbeats);
  EXPECT_GE(took, 3 * kHeartbeat - 5);
  EXPECT_FALSE(sub->live());
  // Still silent: not reported again.
  auto start = Clock::now();
  while (MsSince(start) < 4 * kHeartbeat) sub->Poll(kHeartbeat);
  EXPECT_EQ(rec.stale.size(), 1u);
  // Messages again: a clean heartbeat makes it live.
  pub.Heartbeat("E1", ++t, {{"session", 0}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return sub->live(); }));
  EXPECT_EQ(rec.stale.size(), 1u);
}

TEST(SubscriberTest, AnEndpointThatNeverSpeaksIsStale) {
  zmq::context_t ctx;
  TestPub pub(ctx);  // bound, publishes nothing
  auto sub = MakeSub({pub.endpoint()}, 30);
  Recorder rec;
  rec.Attach(*sub);
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kMissedHeartbeats);
  EXPECT_FALSE(sub->live());
}

TEST(SubscriberTest, MalformedMessagesAreStale) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  pub.Raw("session.deleted", "\xc1");
  ASSERT_TRUE(PollUntil(*sub, [&] { return !rec.stale.empty(); }));
  EXPECT_EQ(rec.stale[0].kind, StaleKind::kMalformed);
  pub.Heartbeat("E1", ++t, {{"session", 0}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return sub->live(); }));
  pub.Raw("session.deleted", "\x81\xa1x\x01");  // a map without seq/epoch
  ASSERT_TRUE(PollUntil(*sub, [&] { return rec.stale.size() == 2; }));
  EXPECT_EQ(rec.stale[1].kind, StaleKind::kMalformed);
  EXPECT_EQ(sub->stats().malformed, 2u);
}

TEST(SubscriberTest, LiveWhileAnyEndpointIsCaughtUp) {
  zmq::context_t ctx;
  TestPub a(ctx);
  TestPub b(ctx);
  auto sub = MakeSub({a.endpoint(), b.endpoint()});
  Recorder rec;
  rec.Attach(*sub);
  EXPECT_FALSE(sub->live());
  uint64_t ta = 0;
  auto start = Clock::now();
  // Only `a` speaks: live through `a`, `b` not.
  while (!sub->live() && MsSince(start) < 5000) {
    a.Heartbeat("EA", ++ta, {{"session", 0}});
    sub->Poll(10);
  }
  EXPECT_TRUE(sub->live());
  EXPECT_TRUE(sub->endpoint_live(0));
  EXPECT_FALSE(sub->endpoint_live(1));
  uint64_t tb = 0;
  start = Clock::now();
  while (!sub->endpoint_live(1) && MsSince(start) < 5000) {
    a.Heartbeat("EA", ++ta, {{"session", 0}});
    b.Heartbeat("EB", ++tb, {{"session", 0}});
    sub->Poll(10);
  }
  EXPECT_TRUE(sub->endpoint_live(1));
  // Each endpoint has its own seqs: the same seq from two daemons is no gap;
  // events without an eid are not deduplicated.
  a.WithId("session.created", "EA", 1, "x");
  b.WithId("session.created", "EB", 1, "y");
  ASSERT_TRUE(PollUntil(*sub, [&] { return rec.events.size() == 2; }));
  EXPECT_TRUE(rec.stale.empty());
  EXPECT_NE(rec.events[0].endpoint, rec.events[1].endpoint);
}

// Two fake daemons relaying one database, both live.
struct TwoDaemons {
  zmq::context_t ctx;
  TestPub a{ctx};
  TestPub b{ctx};
  std::unique_ptr<Subscriber> sub;
  Recorder rec;
  uint64_t ta = 0, tb = 0;  // torii seqs
  uint64_t sa = 0, sb = 0;  // session seqs

  explicit TwoDaemons(int64_t heartbeat_ms = 1000, size_t window = 65536) {
    SubscriberOptions o;
    o.endpoints = {a.endpoint(), b.endpoint()};
    o.families = {"session"};
    o.heartbeat_ms = heartbeat_ms;
    o.dedup_window = window;
    auto s = Subscriber::Create(std::move(o));
    EXPECT_TRUE(s.ok());
    sub = std::move(s.value());
    rec.Attach(*sub);
  }
  void HeartbeatA() { a.Heartbeat("EA", ++ta, {{"session", sa}}); }
  void HeartbeatB() { b.Heartbeat("EB", ++tb, {{"session", sb}}); }
  void BothLive() {
    auto start = Clock::now();
    while (!(sub->endpoint_live(0) && sub->endpoint_live(1)) && MsSince(start) < 5000) {
      HeartbeatA();
      HeartbeatB();
      sub->Poll(10);
    }
    ASSERT_TRUE(sub->endpoint_live(0) && sub->endpoint_live(1));
  }
  // `a` live, a cache's first live() (the anchor), then `b` live: `b` has
  // not been live since before anything was cached, so only a position of
  // `b`'s can vouch for `a` (the position rule on its own).
  void ALiveThenBoth() {
    ta = GoLive(a, *sub, "EA", {{"session", sa}}, ta);
    BothLive();
  }
  void A(uint64_t eid) { a.WithEid("session.deleted", "EA", ++sa, "s" + std::to_string(eid), eid); }
  void B(uint64_t eid) { b.WithEid("session.deleted", "EB", ++sb, "s" + std::to_string(eid), eid); }
  std::vector<uint64_t> Eids() const {
    std::vector<uint64_t> out;
    for (const auto& e : rec.events) out.push_back(e.eid.value_or(0));
    return out;
  }
};

TEST(SubscriberTest, EventsFromSeveralDaemonsAreDeliveredOnceByEid) {
  TwoDaemons t;
  t.BothLive();
  t.A(10);
  t.B(10);
  t.A(11);
  t.B(11);
  t.B(12);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().duplicates == 2 && t.rec.events.size() == 3; }));
  std::vector<uint64_t> eids = t.Eids();
  std::sort(eids.begin(), eids.end());
  EXPECT_EQ(eids, (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_EQ(t.sub->stats().events, 3u);
  EXPECT_TRUE(t.rec.stale.empty());
  // The body keeps the eid for the listener.
  ASSERT_NE(Get(t.rec.events[0].body(), "eid"), nullptr);
}

TEST(SubscriberTest, AGapOnOneEndpointIsAbsorbedWhenAnotherLiveOneHadItsPosition) {
  TwoDaemons t;
  t.ALiveThenBoth();
  t.A(5);
  t.B(5);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().duplicates == 1; }));
  // `a` loses eid 6 (seq 2): its next message is seq 3.
  t.sa++;
  t.A(7);
  t.B(6);
  t.B(7);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() == 3 && t.sub->stats().duplicates == 2; }));
  EXPECT_TRUE(t.rec.stale.empty()) << t.rec.stale[0].ToString();
  EXPECT_EQ(t.sub->stats().absorbed, 1u);
  EXPECT_EQ(t.sub->stats().stale, 0u);
  EXPECT_TRUE(t.sub->live());
  EXPECT_FALSE(t.sub->endpoint_live(0));  // `a` itself waits for its next clean heartbeat
  std::vector<uint64_t> eids = t.Eids();
  std::sort(eids.begin(), eids.end());
  EXPECT_EQ(eids, (std::vector<uint64_t>{5, 6, 7}));
  // A clean heartbeat brings `a` back.
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.HeartbeatA();
    return t.sub->endpoint_live(0);
  }));
}

TEST(SubscriberTest, AGapIsHeldUntilALaggingEndpointReachesItsPosition) {
  TwoDaemons t;
  t.ALiveThenBoth();
  t.A(5);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() == 1; }));
  t.sa++;
  t.A(7);  // a gap on `a`; `b` has not relayed eid 5 yet
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() == 2; }));
  EXPECT_TRUE(t.rec.stale.empty());
  EXPECT_EQ(t.sub->stats().absorbed, 0u);
  t.B(5);
  t.B(6);
  t.B(7);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().absorbed == 1 && t.rec.events.size() == 3; }));
  EXPECT_TRUE(t.rec.stale.empty());
}

TEST(SubscriberTest, AHeldGapNobodyVouchesForIsReportedAfterThreeHeartbeats) {
  TwoDaemons t(100);
  t.ALiveThenBoth();
  t.A(5);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() == 1; }));
  t.sa++;
  t.A(7);
  auto start = Clock::now();
  // `b` stays live but never relays eid 5.
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.HeartbeatA();
    t.HeartbeatB();
    return !t.rec.stale.empty();
  }));
  EXPECT_GE(MsSince(start), 250);
  ASSERT_EQ(t.rec.stale.size(), 1u);
  EXPECT_EQ(t.rec.stale[0].kind, StaleKind::kGap);
  EXPECT_EQ(t.rec.stale[0].endpoint, 0u);
  EXPECT_NE(t.rec.stale[0].detail.find("no other endpoint vouched"), std::string::npos);
  EXPECT_EQ(t.sub->stats().absorbed, 0u);
}

TEST(SubscriberTest, AGapIsReportedAtOnceWhenNoOtherEndpointIsLive) {
  TwoDaemons t;
  uint64_t torii = GoLive(t.a, *t.sub, "EA", {{"session", 0}});
  (void)torii;
  EXPECT_FALSE(t.sub->endpoint_live(1));
  t.A(5);
  t.sa++;
  t.A(7);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return !t.rec.stale.empty(); }));
  EXPECT_EQ(t.rec.stale[0].kind, StaleKind::kGap);
  EXPECT_FALSE(t.sub->live());
}

TEST(SubscriberTest, OneSilentDaemonIsAbsorbedAndTheOtherKeepsItLive) {
  TwoDaemons t(100);
  t.ALiveThenBoth();
  t.A(5);
  t.B(5);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().duplicates == 1; }));
  // `a` dies: only `b` speaks, for 6 heartbeat intervals.
  auto start = Clock::now();
  bool always_live = true;
  while (MsSince(start) < 600) {
    t.HeartbeatB();
    t.sub->Poll(20);
    always_live = always_live && t.sub->live();
  }
  EXPECT_TRUE(always_live);
  EXPECT_FALSE(t.sub->endpoint_live(0));
  EXPECT_TRUE(t.rec.stale.empty());
  EXPECT_EQ(t.sub->stats().absorbed, 1u);
  t.B(6);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() == 2; }));
  // Then `b` dies too: nobody is live, the silence is reported.
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return !t.rec.stale.empty(); }));
  EXPECT_EQ(t.rec.stale[0].kind, StaleKind::kMissedHeartbeats);
  EXPECT_EQ(t.rec.stale[0].endpoint, 1u);
  EXPECT_FALSE(t.sub->live());
}

// The quiet case (issue 29): nothing with an eid was ever delivered, so a
// stale condition has no position; `b`, live since before anything could
// be cached, vouches for `a`'s silence, its restart (a new epoch) and its
// own resync.
TEST(SubscriberTest, AQuietDaemonsRestartIsAbsorbedByOneLiveSinceBeforeAnythingWasCached) {
  TwoDaemons t(100);
  t.BothLive();
  EXPECT_TRUE(t.sub->live());  // what a cache asks before it caches: the anchor
  auto start = Clock::now();
  bool always_live = true;
  while (MsSince(start) < 600) {  // `a` dies: silent for 6 intervals
    t.HeartbeatB();
    t.sub->Poll(20);
    always_live = always_live && t.sub->live();
  }
  EXPECT_TRUE(always_live);
  EXPECT_FALSE(t.sub->endpoint_live(0));
  EXPECT_EQ(t.sub->stats().absorbed, 1u);
  // `a` comes back under a new epoch and publishes its start-up resync.
  t.ta = 0;
  t.a.Event("torii.resync", "EA2", ++t.ta, 1, [](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, "the daemon started");
  });
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.a.Heartbeat("EA2", ++t.ta, {{"session", 0}});
    t.HeartbeatB();
    return t.sub->endpoint_live(0);
  }));
  EXPECT_TRUE(t.rec.stale.empty()) << t.rec.stale[0].ToString();
  EXPECT_GE(t.sub->stats().absorbed, 3u);  // the silence, the epoch change, the resync
  // Changes after the restart come through both and are delivered once.
  t.a.WithEid("session.deleted", "EA2", 1, "s1", 1);
  t.B(1);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().duplicates == 1; }));
  EXPECT_EQ(t.rec.events.size(), 1u);
}

// The quiet vouch needs an endpoint live since before anything was cached:
// `b` became live after `a` (entries may have been cached through `a`
// alone), so `a`'s silence is reported.
TEST(SubscriberTest, AQuietSilenceIsReportedWhenTheOtherBecameLiveLater) {
  TwoDaemons t(100);
  uint64_t ta = GoLive(t.a, *t.sub, "EA", {{"session", 0}});
  t.ta = ta;
  t.BothLive();
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.HeartbeatB();
    return !t.rec.stale.empty();
  }));
  EXPECT_EQ(t.rec.stale[0].kind, StaleKind::kMissedHeartbeats);
  EXPECT_EQ(t.rec.stale[0].endpoint, 0u);
  EXPECT_EQ(t.sub->stats().absorbed, 0u);
  // After that report both are live before a cache asks again: `b` now
  // vouches for `a`.
  t.rec.stale.clear();
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.HeartbeatA();
    t.HeartbeatB();
    return t.sub->endpoint_live(0);
  }));
  EXPECT_TRUE(t.sub->live());
  auto start = Clock::now();
  while (MsSince(start) < 600) {
    t.HeartbeatB();
    t.sub->Poll(20);
  }
  EXPECT_TRUE(t.rec.stale.empty()) << t.rec.stale[0].ToString();
  EXPECT_EQ(t.sub->stats().absorbed, 1u);
}

// A rolling restart of both quiet daemons: `a` restarts (absorbed by `b`),
// then `b` restarts while `a` is live again, but `a` has been live only
// since its restart: nobody stayed live across both gaps, so it flushes.
TEST(SubscriberTest, ARollingRestartOfBothQuietDaemonsIsReported) {
  TwoDaemons t(100);
  t.BothLive();
  EXPECT_TRUE(t.sub->live());
  t.ta = 0;
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.a.Heartbeat("EA2", ++t.ta, {{"session", 0}});
    t.HeartbeatB();
    return t.sub->stats().absorbed == 1 && t.sub->endpoint_live(0);
  }));
  EXPECT_TRUE(t.rec.stale.empty());
  t.tb = 0;
  ASSERT_TRUE(PollUntil(*t.sub, [&] {
    t.a.Heartbeat("EA2", ++t.ta, {{"session", 0}});
    t.b.Heartbeat("EB2", ++t.tb, {{"session", 0}});
    return !t.rec.stale.empty();
  }));
  EXPECT_EQ(t.rec.stale[0].kind, StaleKind::kEpochChange);
  EXPECT_EQ(t.rec.stale[0].endpoint, 1u);
}

TEST(SubscriberTest, ADatabaseResyncIsReportedOnceAndADaemonsOwnIsAbsorbed) {
  TwoDaemons t;
  t.BothLive();
  t.A(5);
  t.B(5);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().duplicates == 1; }));
  // `a`'s own resync (no eid: its LISTEN connection came back): `b` vouches.
  t.a.Event("torii.resync", "EA", ++t.ta, 1, [](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, "listen lost");
  });
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().absorbed == 1; }));
  EXPECT_TRUE(t.rec.stale.empty());
  // A bulk import's resync comes from the database (an eid), through both.
  auto bulk = [](Packer& pk) {
    PackStr(pk, "reason");
    PackStr(pk, "bulk import");
    PackStr(pk, "eid");
    pk.pack_uint64(9);
  };
  t.a.Event("torii.resync", "EA", ++t.ta, 2, bulk);
  t.b.Event("torii.resync", "EB", ++t.tb, 2, bulk);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.sub->stats().duplicates == 2; }));
  ASSERT_EQ(t.rec.stale.size(), 1u);
  EXPECT_EQ(t.rec.stale[0].kind, StaleKind::kResync);
  EXPECT_EQ(t.rec.stale[0].detail, "bulk import");
}

TEST(SubscriberTest, TheDedupWindowIsBounded) {
  TwoDaemons t(1000, 2);
  t.BothLive();
  t.A(1);
  t.A(2);
  t.A(3);
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() == 3; }));
  t.B(3);  // still in the window {2, 3}: a duplicate
  t.B(1);  // left the window: delivered a second time
  ASSERT_TRUE(PollUntil(*t.sub, [&] { return t.rec.events.size() + t.sub->stats().duplicates == 5; }));
  EXPECT_EQ(t.Eids(), (std::vector<uint64_t>{1, 2, 3, 1}));
  EXPECT_EQ(t.sub->stats().duplicates, 1u);
}

TEST(SubscriberTest, CreateRejectsBadOptions) {
  SubscriberOptions o;
  EXPECT_EQ(Subscriber::Create(o).error().code(), Code::kInvalidArgument);
  o.endpoints = {"tcp://127.0.0.1:1"};
  o.heartbeat_ms = 0;
  EXPECT_EQ(Subscriber::Create(o).error().code(), Code::kInvalidArgument);
  o.heartbeat_ms = 1000;
  o.endpoints.assign(65, "tcp://127.0.0.1:1");
  EXPECT_EQ(Subscriber::Create(o).error().code(), Code::kInvalidArgument);
}

// Tenants (PROTOCOL.md section 6): `@T/` topics are stripped, seqs and
// heartbeats are per (tenant, family), and SubscriberOptions::tenant picks
// the stream.
void TenantHeartbeat(TestPub& pub, std::string_view tenant, std::string_view epoch, uint64_t torii_seq,
                     const std::map<std::string, uint64_t>& seqs) {
  pub.Event("@" + std::string(tenant) + "/torii.heartbeat", epoch, torii_seq, 1, [&](Packer& pk) {
    PackStr(pk, "seqs");
    pk.pack_map(static_cast<uint32_t>(seqs.size() + 1));
    PackStr(pk, "torii");
    pk.pack_uint64(torii_seq);
    for (const auto& [f, s] : seqs) {
      PackStr(pk, f);
      pk.pack_uint64(s);
    }
  });
}

std::unique_ptr<Subscriber> MakeTenantSub(const std::string& endpoint, const std::string& tenant,
                                          std::vector<std::string> families) {
  SubscriberOptions o;
  o.endpoints = {endpoint};
  o.families = std::move(families);
  o.tenant = tenant;
  auto s = Subscriber::Create(std::move(o));
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().ToString());
  return std::move(s.value());
}

TEST(SubscriberTenants, PrefixStrippedAndSeqsPerTenant) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeSub({pub.endpoint()}, 1000, {});  // everything, every tenant (an unbound key)
  std::vector<std::pair<std::string, std::string>> got;  // (tenant, topic)
  std::vector<StaleReason> stale;
  sub->AddListener([&](const Event& e) { got.emplace_back(e.tenant, e.topic); },
                   [&](const StaleReason& r) { stale.push_back(r); });
  uint64_t t = GoLive(pub, *sub, "E1", {{"session", 0}});
  const uint64_t h0 = sub->stats().heartbeats;
  TenantHeartbeat(pub, "acme", "E1", 1, {{"session", 0}});
  // Interleaved, each tenant's seqs from 1: no gap.
  pub.WithId("@acme/session.created", "E1", 1, "a1");
  pub.WithId("session.created", "E1", 1, "d1");
  pub.WithId("@acme/session.created", "E1", 2, "a2");
  pub.WithId("session.created", "E1", 2, "d2");
  pub.Heartbeat("E1", ++t, {{"session", 2}});
  TenantHeartbeat(pub, "acme", "E1", 2, {{"session", 2}});
  ASSERT_TRUE(PollUntil(*sub, [&] { return got.size() >= 4 && sub->stats().heartbeats >= h0 + 3; }));
  EXPECT_TRUE(stale.empty()) << stale[0].ToString();
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(got, (std::vector<P>{{"acme", "session.created"}, {"default", "session.created"},
                                 {"acme", "session.created"}, {"default", "session.created"}}));
  EXPECT_TRUE(sub->live());
  // A gap in acme's stream names acme.
  pub.WithId("@acme/session.deleted", "E1", 4, "a2");
  ASSERT_TRUE(PollUntil(*sub, [&] { return !stale.empty(); }));
  EXPECT_EQ(stale[0].kind, StaleKind::kGap);
  EXPECT_EQ(stale[0].tenant, "acme");
  EXPECT_EQ(stale[0].expected, 3u);
  EXPECT_NE(stale[0].ToString().find("gap on session of tenant acme"), std::string::npos) << stale[0].ToString();
  // A malformed prefix is malformed, not another tenant.
  pub.WithId("@Bad Name/session.created", "E1", 1, "x");
  ASSERT_TRUE(PollUntil(*sub, [&] { return stale.size() >= 2; }));
  EXPECT_EQ(stale[1].kind, StaleKind::kMalformed);
}

TEST(SubscriberTenants, ATenantsStreamOnly) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeTenantSub(pub.endpoint(), "acme", {"session"});
  std::vector<std::string> got;
  std::vector<StaleReason> stale;
  sub->AddListener([&](const Event& e) { got.push_back(e.tenant + ":" + e.topic + ":" + std::string(e.Str("id"))); },
                   [&](const StaleReason& r) { stale.push_back(r); });
  uint64_t t = 0;
  for (auto start = Clock::now(); !sub->live() && MsSince(start) < 5000;) {
    pub.Heartbeat("E1", ++t, {{"session", 0}});  // the default tenant's: not subscribed
    TenantHeartbeat(pub, "acme", "E1", t, {{"session", 0}});
    sub->Poll(10);
  }
  ASSERT_TRUE(sub->live());
  pub.WithId("session.created", "E1", 1, "d1");
  pub.WithId("@acme/user.created", "E1", 1, "u1");
  pub.WithId("@acme/session.created", "E1", 1, "a1");
  pub.WithId("@beta/session.created", "E1", 1, "b1");
  ASSERT_TRUE(PollUntil(*sub, [&] { return !got.empty(); }));
  sub->Poll(50);
  EXPECT_EQ(got, (std::vector<std::string>{"acme:session.created:a1"}));
  EXPECT_TRUE(stale.empty());
  EXPECT_EQ(sub->stats().heartbeats, sub->stats().messages - 1) << "only acme's heartbeats and one event came";
}

TEST(SubscriberTenants, EveryTenantKeepsFamiliesLocally) {
  zmq::context_t ctx;
  TestPub pub(ctx);
  auto sub = MakeTenantSub(pub.endpoint(), "*", {"session"});
  std::vector<std::string> got;
  sub->AddListener([&](const Event& e) { got.push_back(e.tenant + ":" + e.topic); }, nullptr);
  GoLive(pub, *sub, "E1", {{"session", 0}});
  pub.WithId("user.created", "E1", 1, "u1");
  pub.WithId("@acme/user.created", "E1", 1, "u2");
  pub.WithId("@acme/session.created", "E1", 1, "a1");
  pub.WithId("session.created", "E1", 1, "d1");
  ASSERT_TRUE(PollUntil(*sub, [&] { return got.size() >= 2; }));
  EXPECT_EQ(got, (std::vector<std::string>{"acme:session.created", "default:session.created"}));
  EXPECT_EQ(sub->stats().stale, 0u);
}

TEST(SubscriberTenants, TenantOptionIsChecked) {
  SubscriberOptions o;
  o.endpoints = {"tcp://127.0.0.1:1"};
  o.tenant = "Not Valid";
  auto s = Subscriber::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace torii
