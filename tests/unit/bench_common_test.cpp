// The benchmark's own arithmetic (tools/bench/common.h): percentiles and
// where in time the slow samples sit.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "common.h"

namespace torii::bench {
namespace {

constexpr int64_t kMs = 1000000;

TEST(SummarizeTest, NearestRankPercentiles) {
  std::vector<int64_t> s;
  for (int64_t i = 1000; i >= 1; i--) s.push_back(i * 1000);  // 1..1000 us, reversed
  LatencySummary r = Summarize(s);
  EXPECT_EQ(r.count, 1000u);
  EXPECT_DOUBLE_EQ(r.p50_us, 500);
  EXPECT_DOUBLE_EQ(r.p99_us, 990);
  EXPECT_DOUBLE_EQ(r.p999_us, 999);
  EXPECT_DOUBLE_EQ(r.max_us, 1000);
}

TEST(SpreadOfTailTest, StallsPackTheTailIntoFewWindows) {
  // One second of 10 ms windows, 10 samples per window sent at its start.
  // Slow samples: 30 in window 42 (a stall), and one in each of windows
  // 0..9 (queueing).
  std::vector<int64_t> sent, lat;
  for (int64_t w = 0; w < 100; w++) {
    for (int k = 0; k < 10; k++) {
      sent.push_back(w * 10 * kMs + k);
      lat.push_back(1 * kMs);
    }
  }
  for (int k = 0; k < 30; k++) {
    sent.push_back(42 * 10 * kMs + 100 + k);
    lat.push_back(9 * kMs);
  }
  for (int64_t w = 0; w < 10; w++) {
    sent.push_back(w * 10 * kMs + 500);
    lat.push_back(5 * kMs);
  }
  TailSpread t = SpreadOfTail(sent, lat, 2 * kMs, 0, 1000 * kMs);
  EXPECT_EQ(t.window_ms, 10);
  EXPECT_EQ(t.windows, 100u);
  EXPECT_EQ(t.slow, 40u);
  EXPECT_EQ(t.worst_windows, 1u);  // 1% of 100
  EXPECT_EQ(t.slow_in_worst, 30u);
}

TEST(SpreadOfTailTest, SamplesOutsideTheRunAndAtTheThresholdAreNotCounted) {
  std::vector<int64_t> sent{-1, 0, 5 * kMs, 100 * kMs, 100 * kMs - 1};
  std::vector<int64_t> lat{9 * kMs, 2 * kMs, 3 * kMs, 9 * kMs, 4 * kMs};
  TailSpread t = SpreadOfTail(sent, lat, 2 * kMs, 0, 100 * kMs);
  EXPECT_EQ(t.windows, 10u);
  EXPECT_EQ(t.slow, 2u);  // 5 ms (3 ms late) and 100 ms - 1 ns (4 ms late)
  EXPECT_EQ(t.worst_windows, 1u);
  EXPECT_EQ(t.slow_in_worst, 1u);
}

TEST(SpreadOfTailTest, EmptyRun) {
  TailSpread t = SpreadOfTail({}, {}, 0, 5, 5);
  EXPECT_EQ(t.windows, 0u);
  EXPECT_EQ(t.slow, 0u);
}

}  // namespace
}  // namespace torii::bench
