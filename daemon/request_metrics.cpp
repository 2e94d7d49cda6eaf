// Per-operation request counters (see request_metrics.h).
#include "request_metrics.h"

#include <chrono>

namespace torii::daemon {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The bucket bounds in nanoseconds, compared against integers per request.
constexpr std::array<int64_t, kDurationBuckets.size()> BoundsNs() {
  std::array<int64_t, kDurationBuckets.size()> out{};
  for (size_t i = 0; i < kDurationBuckets.size(); i++) out[i] = static_cast<int64_t>(kDurationBuckets[i] * 1e9 + 0.5);
  return out;
}
constexpr auto kBoundsNs = BoundsNs();

// Adds to a counter only the loop thread writes: a plain load and store
// (no locked read-modify-write), atomic so that a scrape reads whole values.
inline void Bump(std::atomic<uint64_t>& counter, uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

RequestMetrics::RequestMetrics() {
  auto unknown = std::make_unique<OpMetrics>();
  unknown->name = "unknown";
  unknown_ = unknown.get();
  ops_.push_back(std::move(unknown));
}

RequestMark RequestMetrics::Start() const { return RequestMark{nullptr, NowNs()}; }

OpMetrics* RequestMetrics::Op(const void* key, std::string_view name) {
  auto it = by_key_.find(key);
  if (it != by_key_.end()) return it->second;
  auto op = std::make_unique<OpMetrics>();
  op->name = std::string(name);
  OpMetrics* p = op.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ops_.push_back(std::move(op));
  }
  by_key_.emplace(key, p);
  return p;
}

void RequestMetrics::Done(const RequestMark& mark, Code code) {
  if (mark.start_ns == 0) return;
  int64_t ns = NowNs() - mark.start_ns;
  if (ns < 0) ns = 0;
  OpMetrics* op = mark.op != nullptr ? mark.op : unknown_;
  size_t c = static_cast<size_t>(code);
  size_t b = 0;
  while (b < kBoundsNs.size() && ns > kBoundsNs[b]) b++;
  Bump(op->replies[c < kCodeCount ? c : static_cast<size_t>(Code::kInternal)], 1);
  Bump(op->buckets[b], 1);
  Bump(op->sum_ns, static_cast<uint64_t>(ns));
}

}  // namespace torii::daemon
