// The Prometheus scrape endpoint ([metrics] listen): owns the prometheus-cpp
// pull Exposer (its own HTTP threads), the per-operation request counters
// (RequestMetrics, which the daemon hands to Requests), and a copy of the
// counters of counters.h, and turns both into the text format on each scrape.
//
// Threads: the loop thread writes; the exposer's threads only read.
// - The request counters are live: the request path updates them on the
//   loop thread (request_metrics.h) and a scrape reads them as they are.
// - Everything else (the table of counters.h) is plain loop-thread state: a
//   loop timer copies it every second into a snapshot under a mutex, which
//   scrapes read. Those values are up to a second old.
// Start() and the destructor run on the loop thread; the destructor stops
// the exposer (joins its threads) before anything it reads goes away.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "counters.h"
#include "request_metrics.h"
#include "torii/error.h"

namespace prometheus {
class Exposer;
}

namespace torii::daemon {

class Metrics {
 public:
  using SnapshotFn = std::function<CounterSnapshot()>;

  // Binds `listen` (HOST:PORT) and serves /metrics; `snapshot` runs on the
  // loop thread, now and every second. Fails (port in use, bad address)
  // without leaving anything running.
  static Result<std::unique_ptr<Metrics>> Start(uv_loop_t* loop, const std::string& listen, SnapshotFn snapshot);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Stops serving and closes the timer (the handle is freed by the loop).
  void Close();
  // The port bound (useful when `listen` asked for port 0).
  int port() const { return port_; }
  // The per-operation request counters, for Requests::set_metrics.
  RequestMetrics* requests() { return &requests_; }

  // A Metrics which serves nothing (no exposer, no timer): for tests and
  // the micro-benchmark, with the two below.
  static std::unique_ptr<Metrics> Offline();
  void SetSnapshot(CounterSnapshot s);
  // The text format a scrape gets now.
  std::string Render();

  class Collector;

 private:
  Metrics(uv_loop_t* loop, SnapshotFn snapshot);
  void TakeSnapshot();

  uv_loop_t* loop_;
  SnapshotFn snapshot_fn_;
  uv_timer_t* timer_ = nullptr;
  RequestMetrics requests_;

  // Shared with the exposer's threads.
  std::mutex mu_;
  CounterSnapshot snapshot_;  // under mu_

  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace torii::daemon
