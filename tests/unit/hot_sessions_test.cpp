// HotSessions (daemon/hot_sessions.h) on its own: indexes, the bound, the
// generation check, the lease (with the clock passed in). The daemon-level behaviour is in
// tests/integration/hot_cache_test.cpp.
#include "hot_sessions.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace torii::daemon {
namespace {

constexpr int64_t kNow = 1'000'000;
constexpr int64_t kLater = 9'000'000;
// The monotonic clock of lookups and proofs, and the lease, in microseconds.
constexpr uint64_t kMono = 50'000'000;
constexpr uint64_t kLease = 1'000'000;

// Active, with a proof of the listener's life just now.
void Live(HotSessions& cache) {
  cache.Activate();
  cache.Renew(kMono);
}

std::string Key(const char* prefix, int i) { return std::string(prefix) + std::to_string(i); }

TEST(HotSessions, BoundEvictsLeastRecentlyUsedAndKeepsTheUserIndexSound) {
  HotSessions cache(2, kLease);
  Live(cache);
  // Three sessions of one user: the first (which named the user in the
  // index) is evicted past the bound while the other two stay.
  for (int i = 0; i < 3; i++) {
    cache.Insert(cache.generation(), Key("d", i), Key("i", i), "user-1", kLater, Key("row", i));
  }
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.stats().capacity_evictions, 1u);
  EXPECT_EQ(cache.FindByDigest("d0", kNow, kMono), nullptr);
  ASSERT_NE(cache.FindByDigest("d2", kNow, kMono), nullptr);
  EXPECT_EQ(*cache.FindById("i1", kNow, kMono), "row1");
  // The user's remaining sessions still go with the user.
  cache.InvalidateUser("user-1");
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.FindById("i2", kNow, kMono), nullptr);
}

// A hit moves its entry to the front only when it may have drifted into
// the back half; either way the least recently used entry is the one that
// goes past the bound.
TEST(HotSessions, AHitKeepsItsEntryAndTheLeastRecentlyUsedGoes) {
  HotSessions cache(4, kLease);
  Live(cache);
  for (int i = 0; i < 4; i++) cache.Insert(cache.generation(), Key("d", i), Key("i", i), "u", kLater, Key("row", i));
  // d0 is at the back: the hit moves it to the front, so d1 goes next.
  ASSERT_NE(cache.FindByDigest("d0", kNow, kMono), nullptr);
  cache.Insert(cache.generation(), "d4", "i4", "u", kLater, "row4");
  EXPECT_EQ(cache.FindByDigest("d1", kNow, kMono), nullptr);
  ASSERT_NE(cache.FindByDigest("d0", kNow, kMono), nullptr);
  // d3 is in the front half: the hit leaves it there, and d2 (behind it,
  // not used since) goes next.
  ASSERT_NE(cache.FindByDigest("d3", kNow, kMono), nullptr);
  cache.Insert(cache.generation(), "d5", "i5", "u", kLater, "row5");
  EXPECT_EQ(cache.FindByDigest("d2", kNow, kMono), nullptr);
  EXPECT_NE(cache.FindByDigest("d3", kNow, kMono), nullptr);
  EXPECT_NE(cache.FindByDigest("d0", kNow, kMono), nullptr);
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_EQ(cache.stats().capacity_evictions, 2u);
}

TEST(HotSessions, ALoadThatRacedAnInvalidationIsNotInserted) {
  HotSessions cache(10, kLease);
  Live(cache);
  uint64_t gen = cache.generation();
  cache.InvalidateId("i1");  // arrives while the load of i1 is in flight
  cache.Insert(gen, "d1", "i1", "u", kLater, "row");
  EXPECT_EQ(cache.FindByDigest("d1", kNow, kMono), nullptr);
  EXPECT_EQ(cache.stats().stale_drops, 1u);
  // A load that started after the invalidation is fine.
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");
  EXPECT_NE(cache.FindByDigest("d1", kNow, kMono), nullptr);
}

TEST(HotSessions, InactiveMeansBypassedAndEmpty) {
  HotSessions cache(10, kLease);
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");  // not active yet
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.FindByDigest("d1", kNow, kMono), nullptr);
  EXPECT_EQ(cache.stats().bypassed, 1u);
  Live(cache);
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");
  EXPECT_EQ(cache.size(), 1u);
  cache.Deactivate();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(HotSessions, ExpiredEntriesAreMissesAtReadTime) {
  HotSessions cache(10, kLease);
  Live(cache);
  cache.Insert(cache.generation(), "d1", "i1", "u", kNow + 1, "row");
  EXPECT_NE(cache.FindByDigest("d1", kNow, kMono), nullptr);
  EXPECT_EQ(cache.FindByDigest("d1", kNow + 1, kMono), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(HotSessions, ServedOnlyWhileTheLeaseHolds) {
  HotSessions cache(10, kLease);
  cache.Activate();
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");
  // Active but with no proof yet: every lookup falls through.
  EXPECT_EQ(cache.FindByDigest("d1", kNow, kMono), nullptr);
  EXPECT_EQ(cache.stats().lease_lapsed, 1u);
  EXPECT_EQ(cache.LeaseAgeUs(kMono), -1);

  // The lease counts from when the proof was sent, not from when it came back.
  cache.Renew(kMono);
  struct Case {
    uint64_t at;
    bool served;
  };
  for (Case c : {Case{kMono, true}, Case{kMono + kLease - 1, true}, Case{kMono + kLease, false},
                 Case{kMono + 10 * kLease, false}}) {
    SCOPED_TRACE(c.at - kMono);
    EXPECT_EQ(cache.Leased(c.at), c.served);
    EXPECT_EQ(cache.FindByDigest("d1", kNow, c.at) != nullptr, c.served);
    EXPECT_EQ(cache.FindById("i1", kNow, c.at) != nullptr, c.served);
  }
  EXPECT_EQ(cache.stats().lease_lapsed, 5u);
  EXPECT_EQ(cache.stats().hits, 4u);
  EXPECT_EQ(cache.stats().misses, 0u) << "a lapsed lookup is not a miss";
  // A lapse keeps the entries: a probe that comes back proves that every
  // invalidation before it arrived.
  EXPECT_EQ(cache.size(), 1u);
  cache.Renew(kMono + 10 * kLease);
  EXPECT_NE(cache.FindByDigest("d1", kNow, kMono + 10 * kLease + 5), nullptr);
  EXPECT_EQ(cache.LeaseAgeUs(kMono + 10 * kLease + 5), 5);
  // An older proof (a reordered callback) does not move the lease back.
  cache.Renew(kMono);
  EXPECT_TRUE(cache.Leased(kMono + 10 * kLease + kLease - 1));
}

TEST(HotSessions, AReconnectStartsWithTheLeaseLapsed) {
  HotSessions cache(10, kLease);
  Live(cache);
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");
  cache.Deactivate();
  cache.Renew(kMono + 1);  // a late probe of the lost connection
  EXPECT_FALSE(cache.Leased(kMono + 2));
  cache.Activate();
  EXPECT_FALSE(cache.Leased(kMono + 2)) << "the old connection's proof carried over";
  EXPECT_EQ(cache.size(), 0u) << "not flushed on reconnect";
  cache.Renew(kMono + 3);
  EXPECT_TRUE(cache.Leased(kMono + 3));
  // A shorter lease (a reload) applies to the proof already held.
  cache.set_lease_us(10);
  EXPECT_FALSE(cache.Leased(kMono + 13));
  EXPECT_TRUE(cache.Leased(kMono + 12));
}

// The coherence rules for other writers' events (HotSessions::OnEvent), one
// row per event: which of three cached sessions stay. i1 and i2 are user
// u1's, i3 is u2's; i1 expires at kNow + 1, when the events are handled.
TEST(HotSessions, EventsTakeOutWhatTheyAnnounce) {
  struct Case {
    StreamEvent event;
    std::vector<std::string> stay;
  };
  const std::vector<std::string> all = {"i1", "i2", "i3"};
  const Case cases[] = {
      {{"session", "updated", "i2"}, {"i1", "i3"}},
      {{"session", "deleted", "i2"}, {"i1", "i3"}},
      {{"session", "deleted", "i-unknown"}, all},
      {{"session", "updated", ""}, {}},
      {{"session", "deleted", ""}, {}},
      {{"session", "expired", ""}, {"i2", "i3"}},
      {{"user", "deleted", "u1"}, {"i3"}},
      {{"user", "deleted", ""}, {}},
      {{"torii", "resync", ""}, {}},
      // Changes that leave a cached session as it was.
      {{"session", "created", "i1"}, all},
      {{"user", "updated", "u1"}, all},
      {{"user", "created", "u3"}, all},
      {{"torii", "heartbeat", ""}, all},
  };
  for (const Case& c : cases) {
    std::string name = std::string(c.event.family) + "." + std::string(c.event.kind) + " '" +
                       std::string(c.event.id) + "'";
    HotSessions cache(10, kLease);
    Live(cache);
    cache.Insert(cache.generation(), "d1", "i1", "u1", kNow + 1, "row1");
    cache.Insert(cache.generation(), "d2", "i2", "u1", kLater, "row2");
    cache.Insert(cache.generation(), "d3", "i3", "u2", kLater, "row3");
    cache.OnEvent(c.event, kNow + 1);
    std::vector<std::string> stay;
    for (const std::string& id : all) {
      if (cache.FindById(id, kNow, kMono) != nullptr) stay.push_back(id);
    }
    EXPECT_EQ(stay, c.stay) << name;
  }
}

// An event that arrives while a load of its session is in flight keeps that
// load out, as this daemon's own invalidations do.
TEST(HotSessions, AnEventDuringALoadKeepsTheLoadOut) {
  for (StreamEvent event : {StreamEvent{"session", "deleted", "i1"}, StreamEvent{"user", "deleted", "u1"},
                            StreamEvent{"torii", "resync", ""}}) {
    HotSessions cache(10, kLease);
    Live(cache);
    uint64_t gen = cache.generation();
    cache.OnEvent(event, kNow);
    cache.Insert(gen, "d1", "i1", "u1", kLater, "row");
    EXPECT_EQ(cache.FindByDigest("d1", kNow, kMono), nullptr) << event.family << "." << event.kind;
    EXPECT_EQ(cache.stats().stale_drops, 1u) << event.family << "." << event.kind;
  }
}

}  // namespace
}  // namespace torii::daemon
