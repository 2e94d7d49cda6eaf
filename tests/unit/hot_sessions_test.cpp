// HotSessions (daemon/hot_sessions.h) on its own: indexes, the bound, the
// generation check. The daemon-level behaviour is in
// tests/integration/hot_cache_test.cpp.
#include "hot_sessions.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::daemon {
namespace {

constexpr int64_t kNow = 1'000'000;
constexpr int64_t kLater = 9'000'000;

std::string Key(const char* prefix, int i) { return std::string(prefix) + std::to_string(i); }

TEST(HotSessions, BoundEvictsLeastRecentlyUsedAndKeepsTheUserIndexSound) {
  HotSessions cache(2);
  cache.Activate();
  // Three sessions of one user: the first (which named the user in the
  // index) is evicted past the bound while the other two stay.
  for (int i = 0; i < 3; i++) {
    cache.Insert(cache.generation(), Key("d", i), Key("i", i), "user-1", kLater, Key("row", i));
  }
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.stats().capacity_evictions, 1u);
  EXPECT_EQ(cache.FindByDigest("d0", kNow), nullptr);
  ASSERT_NE(cache.FindByDigest("d2", kNow), nullptr);
  EXPECT_EQ(*cache.FindById("i1", kNow), "row1");
  // The user's remaining sessions still go with the user.
  cache.InvalidateUser("user-1");
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.FindById("i2", kNow), nullptr);
}

TEST(HotSessions, ALoadThatRacedAnInvalidationIsNotInserted) {
  HotSessions cache(10);
  cache.Activate();
  uint64_t gen = cache.generation();
  cache.InvalidateId("i1");  // arrives while the load of i1 is in flight
  cache.Insert(gen, "d1", "i1", "u", kLater, "row");
  EXPECT_EQ(cache.FindByDigest("d1", kNow), nullptr);
  EXPECT_EQ(cache.stats().stale_drops, 1u);
  // A load that started after the invalidation is fine.
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");
  EXPECT_NE(cache.FindByDigest("d1", kNow), nullptr);
}

TEST(HotSessions, InactiveMeansBypassedAndEmpty) {
  HotSessions cache(10);
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");  // not active yet
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.FindByDigest("d1", kNow), nullptr);
  EXPECT_EQ(cache.stats().bypassed, 1u);
  cache.Activate();
  cache.Insert(cache.generation(), "d1", "i1", "u", kLater, "row");
  EXPECT_EQ(cache.size(), 1u);
  cache.Deactivate();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(HotSessions, ExpiredEntriesAreMissesAtReadTime) {
  HotSessions cache(10);
  cache.Activate();
  cache.Insert(cache.generation(), "d1", "i1", "u", kNow + 1, "row");
  EXPECT_NE(cache.FindByDigest("d1", kNow), nullptr);
  EXPECT_EQ(cache.FindByDigest("d1", kNow + 1), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace torii::daemon
