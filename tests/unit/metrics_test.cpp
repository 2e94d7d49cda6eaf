// Unit tests of daemon/metrics: what a scrape renders from the request
// counters (request_metrics.h) and a snapshot (counters.h), and the cost of
// the per-request hooks (printed; the bound asserted is loose so that a
// loaded or sanitized build does not fail it, the measured number is in
// docs/operations.md).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "metrics.h"

namespace torii::daemon {
namespace {

TEST(Metrics, RendersRequestCountersAndHistogramsByOpAndCode) {
  auto m = Metrics::Offline();
  RequestMetrics& rm = *m->requests();
  int a = 0, b = 0;
  OpMetrics* get = rm.Op(&a, "get_user");
  EXPECT_EQ(rm.Op(&a, "ignored"), get) << "the same key is the same slot";
  OpMetrics* del = rm.Op(&b, "delete_user");
  ASSERT_NE(get, del);
  for (int i = 0; i < 3; i++) {
    RequestMark mark = rm.Start();
    mark.op = get;
    rm.Done(mark, Code::kOk);
  }
  RequestMark nf = rm.Start();
  nf.op = get;
  rm.Done(nf, Code::kNotFound);
  rm.Done(rm.Start(), Code::kUnknownOp);  // no op: "unknown"
  // A mark taken while metrics were off is not counted.
  rm.Done(RequestMark{get, 0}, Code::kOk);

  CounterSnapshot s;
  s.pool.size = 3;
  s.pool.idle = 1;
  s.pool.busy = 1;
  s.seqs = {{"users", 7}, {"sessions", 2}};
  s.listener.listening = true;
  s.listener.queue_usage = 0.25;
  s.listener.timeline = 2;
  s.listener.server_changes = 1;
  s.janitor.failures = 4;
  s.requests.overloaded = 9;
  m->SetSnapshot(s);
  std::string text = m->Render();
  auto has = [&](const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("toriid_requests_total{code=\"ok\",op=\"get_user\"} 3")) << text;
  EXPECT_TRUE(has("toriid_requests_total{code=\"not_found\",op=\"get_user\"} 1")) << text;
  EXPECT_TRUE(has("toriid_requests_total{code=\"unknown_op\",op=\"unknown\"} 1")) << text;
  EXPECT_EQ(text.find("op=\"delete_user\""), std::string::npos) << "no series before the first request";
  EXPECT_TRUE(has("toriid_request_duration_seconds_count{op=\"get_user\"} 4")) << text;
  EXPECT_TRUE(has("toriid_request_duration_seconds_bucket{op=\"get_user\",le=\"+Inf\"} 4")) << text;
  // Each mark above took well under 0.1 ms: all four in the first bucket.
  EXPECT_TRUE(has("toriid_request_duration_seconds_bucket{op=\"get_user\",le=\"0.0001\"} 4")) << text;
  EXPECT_TRUE(has("# TYPE toriid_request_duration_seconds histogram")) << text;
  EXPECT_TRUE(has("# TYPE toriid_requests_total counter")) << text;
  // The snapshot's counters (counters.h).
  EXPECT_TRUE(has("toriid_pool_connections{state=\"connecting\"} 1")) << text;
  EXPECT_TRUE(has("toriid_events_seq{family=\"users\"} 7")) << text;
  EXPECT_TRUE(has("toriid_listener_up 1")) << text;
  EXPECT_TRUE(has("toriid_notify_queue_usage_ratio 0.25")) << text;
  EXPECT_TRUE(has("toriid_listener_timeline 2")) << text;
  EXPECT_TRUE(has("toriid_listener_server_changes_total 1")) << text;
  EXPECT_TRUE(has("toriid_cleanup_failures_total 4")) << text;
  EXPECT_TRUE(has("toriid_overloaded_total 9")) << text;
  EXPECT_TRUE(has(std::string("toriid_build_info{version=\"") + TORII_VERSION + "\"} 1")) << text;
}

// Two at once (two daemons in one process, or a test beside a daemon): each
// counts its own requests.
TEST(Metrics, EachMetricsCountsOnlyItsOwnRequests) {
  auto one = Metrics::Offline();
  auto two = Metrics::Offline();
  int key = 0;
  RequestMark mark = one->requests()->Start();
  mark.op = one->requests()->Op(&key, "ping");
  one->requests()->Done(mark, Code::kOk);
  EXPECT_NE(one->Render().find("toriid_requests_total{code=\"ok\",op=\"ping\"} 1"), std::string::npos);
  EXPECT_EQ(two->Render().find("op=\"ping\""), std::string::npos);
}

// The per-request cost the request path pays: start, resolve the op slot
// by its address among 20 operations, and count the reply.
TEST(Metrics, PerRequestHooksCostWellUnderAMicrosecond) {
  auto m = Metrics::Offline();
  RequestMetrics& rm = *m->requests();
  static int ops[20];
  for (int i = 0; i < 20; i++) rm.Op(&ops[i], "op" + std::to_string(i));
  constexpr int kN = 2000000;
  // CPU time of this thread: on a shared machine the wall clock also counts
  // the time other processes held the core.
  auto cpu_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
  };
  auto t0 = std::chrono::steady_clock::now();
  double c0 = cpu_ns();
  for (int i = 0; i < kN; i++) {
    RequestMark mark = rm.Start();
    mark.op = rm.Op(&ops[i % 20], "");
    rm.Done(mark, i % 7 == 0 ? Code::kNotFound : Code::kOk);
  }
  double ns = (cpu_ns() - c0) / kN;
  double wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kN;
  std::printf("metrics hooks: %.1f ns CPU per request (%.1f ns wall)\n", ns, wall);
  RecordProperty("ns_per_request", std::to_string(ns));
  EXPECT_LT(ns, 3000.0);
  std::string text = m->Render();
  EXPECT_NE(text.find("toriid_request_duration_seconds_count{op=\"op3\"} 100000"), std::string::npos);
}

}  // namespace
}  // namespace torii::daemon
