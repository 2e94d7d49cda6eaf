// The per-operation request counters behind /metrics: replies by code and a
// duration histogram for each operation, in slots found by the operation's
// address. Owned by Metrics; Requests holds a pointer to it (nullptr while
// metrics are off, and then the request path does nothing for them).
//
// Threads: the loop thread alone writes (Start, Op, Done); the exposer's
// threads read through ForEach. Counters are relaxed atomics written by one
// thread (a load and a store, no locked instruction), so a reader sees whole
// values; the list of slots grows under a mutex that ForEach also takes.
// Per request: two clock reads, one pointer-keyed lookup and three counter
// updates (docs/operations.md has the measured cost).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "torii/error.h"

namespace torii::daemon {

// Upper bounds of the request duration histogram, in seconds (le).
inline constexpr std::array<double, 14> kDurationBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};
inline constexpr size_t kCodeCount = static_cast<size_t>(Code::kInternal) + 1;

// One operation's request counters (or "unknown" for requests that named
// no operation or could not be decoded). Never moves once made.
struct OpMetrics {
  std::string name;
  std::array<std::atomic<uint64_t>, kCodeCount> replies{};                   // by reply code
  std::array<std::atomic<uint64_t>, kDurationBuckets.size() + 1> buckets{};  // not cumulative; last: +Inf
  std::atomic<uint64_t> sum_ns{0};
};

// What a request carries from receipt to its reply.
struct RequestMark {
  OpMetrics* op = nullptr;  // nullptr: counted as "unknown"
  int64_t start_ns = 0;     // 0: not counted (metrics were off when it arrived)
};

class RequestMetrics {
 public:
  RequestMetrics();
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  // A request arrives (loop thread).
  RequestMark Start() const;
  // The slot of the operation at `key` (its OpDef or local handler, whose
  // address is stable); `name` is read only the first time (loop thread).
  OpMetrics* Op(const void* key, std::string_view name);
  // A request is answered with `code` (loop thread).
  void Done(const RequestMark& mark, Code code);

  // Calls `f(const OpMetrics&)` for every slot, "unknown" first (any thread).
  template <typename F>
  void ForEach(F&& f) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& op : ops_) f(*op);
  }

 private:
  std::unordered_map<const void*, OpMetrics*> by_key_;  // loop thread only
  OpMetrics* unknown_ = nullptr;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<OpMetrics>> ops_;  // appended under mu_
};

}  // namespace torii::daemon
