// The Prometheus scrape endpoint ([metrics] listen): owns the prometheus-cpp
// pull Exposer (its own HTTP threads) and one Collectable that turns the
// daemon's counters into the text format on each scrape.
//
// Threads: the loop thread updates; the exposer's threads only read.
// - Per request, the request path calls the three hooks below (loop thread).
//   They touch relaxed atomics of a per-operation slot resolved by the
//   operation's address (a pointer-keyed table, no string hashing), so one
//   request costs two clock reads and three atomic adds (docs/operations.md
//   has the measured cost). While no Metrics runs, the hooks do nothing.
// - Everything else (pool, events, listener, cleanup) is plain loop-thread
//   state: a loop timer copies it every second into a snapshot under a
//   mutex, which scrapes read. Those values are up to a second old.
// Start() and the destructor run on the loop thread; the destructor stops
// the exposer (joins its threads) before anything it reads goes away.
#pragma once

#include <uv.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hot_sessions.h"
#include "janitor.h"
#include "listener.h"
#include "pool.h"
#include "publisher.h"
#include "requests.h"
#include "torii/error.h"

namespace prometheus {
class Exposer;
}

namespace torii::daemon {

// Upper bounds of the request duration histogram, in seconds (le).
inline constexpr std::array<double, 14> kDurationBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};
inline constexpr size_t kCodeCount = static_cast<size_t>(Code::kInternal) + 1;

// One operation's request counters (or "unknown" for requests that named
// no operation or could not be decoded). Never moves once made.
struct OpMetrics {
  std::string name;
  std::array<std::atomic<uint64_t>, kCodeCount> replies{};        // by reply code
  std::array<std::atomic<uint64_t>, kDurationBuckets.size() + 1> buckets{};  // not cumulative; last: +Inf
  std::atomic<uint64_t> sum_ns{0};
};

// What a request carries from receipt to its reply.
struct RequestMark {
  OpMetrics* op = nullptr;  // nullptr: counted as "unknown"
  int64_t start_ns = 0;     // 0: metrics off when the request arrived
};

// Request-path hooks (loop thread).
RequestMark MetricsRequestStart();
// The slot of the operation at `key` (its OpDef or local handler, whose
// address is stable); `name` is read only the first time.
OpMetrics* MetricsOp(const void* key, std::string_view name);
void MetricsRequestDone(const RequestMark& mark, Code code);

// The loop-thread state a scrape reports besides the request counters.
struct MetricsSnapshot {
  RequestStats requests;
  size_t in_flight = 0;
  uint64_t undeliverable = 0;
  PoolStats pool;
  PublisherStats publisher;
  std::map<std::string, uint64_t> seqs;
  ListenerStats listener;
  JanitorStats janitor;
  HotSessionStats cache;
  bool cache_active = false;
  bool cache_leased = false;     // active and the listener's lease holds
  uint64_t cache_lease_ms = 0;
  size_t cache_entries = 0;
  size_t cache_capacity = 0;
  size_t cache_memory_bytes = 0;
  double uptime_s = 0;
  bool plaintext_network = false;  // serving without CURVE beyond loopback (protected mode's opt-in)
};

class Metrics {
 public:
  using SnapshotFn = std::function<MetricsSnapshot()>;

  // Binds `listen` (HOST:PORT) and serves /metrics; `snapshot` runs on the
  // loop thread, now and every second. Fails (port in use, bad address)
  // without leaving anything running. Only one Metrics may run at a time.
  static Result<std::unique_ptr<Metrics>> Start(uv_loop_t* loop, const std::string& listen, SnapshotFn snapshot);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Stops serving and closes the timer (the handle is freed by the loop).
  void Close();
  // The port bound (useful when `listen` asked for port 0).
  int port() const { return port_; }

  // A Metrics whose hooks are live but which serves nothing (no exposer,
  // no timer): for tests and the micro-benchmark, with the two below.
  static std::unique_ptr<Metrics> Offline();
  void SetSnapshot(MetricsSnapshot s);
  // The text format a scrape gets now.
  std::string Render();

  // The loop-thread side of the hooks above.
  OpMetrics* Op(const void* key, std::string_view name);
  void Done(const RequestMark& mark, Code code);

  class Collector;

 private:
  Metrics(uv_loop_t* loop, SnapshotFn snapshot);
  void TakeSnapshot();

  uv_loop_t* loop_;
  SnapshotFn snapshot_fn_;
  uv_timer_t* timer_ = nullptr;
  std::unordered_map<const void*, OpMetrics*> by_key_;  // loop thread only
  OpMetrics* unknown_ = nullptr;

  // Shared with the exposer's threads.
  std::mutex mu_;
  std::vector<std::unique_ptr<OpMetrics>> ops_;  // appended under mu_
  MetricsSnapshot snapshot_;                     // under mu_

  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace torii::daemon
