// Deterministic benchmark data set and latency summaries (see common.h).
#include "common.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string_view>

namespace torii::bench {

void ReadReplyFields(const msgpack::object& reply, uint64_t* id, bool* ok, std::string* code) {
  if (reply.type != msgpack::type::MAP) return;
  for (uint32_t k = 0; k < reply.via.map.size; k++) {
    const auto& kv = reply.via.map.ptr[k];
    if (kv.key.type != msgpack::type::STR) continue;
    std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
    if (key == "id" && kv.val.type == msgpack::type::POSITIVE_INTEGER) *id = kv.val.via.u64;
    if (key == "ok" && kv.val.type == msgpack::type::BOOLEAN) *ok = kv.val.via.boolean;
    if (key == "error" && kv.val.type == msgpack::type::MAP) {
      for (uint32_t e = 0; e < kv.val.via.map.size; e++) {
        const auto& ekv = kv.val.via.map.ptr[e];
        if (ekv.key.type == msgpack::type::STR && ekv.val.type == msgpack::type::STR &&
            std::string_view(ekv.key.via.str.ptr, ekv.key.via.str.size) == "code") {
          code->assign(ekv.val.via.str.ptr, ekv.val.via.str.size);
        }
      }
    }
  }
}

namespace {
std::string IdWithPrefix(const char* prefix, uint64_t i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s-0000-4000-8000-%012llx", prefix, (unsigned long long)i);
  return buf;
}
}  // namespace

std::string BenchUserId(uint64_t i) { return IdWithPrefix("00000000", i); }
std::string BenchSessionId(uint64_t j) { return IdWithPrefix("00000001", j); }
std::string BenchEmail(uint64_t i) { return "user" + std::to_string(i) + "@bench.example"; }

std::string BenchToken(uint64_t j) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "tb%041llu", (unsigned long long)j);
  return buf;
}

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

LatencySummary Summarize(std::vector<int64_t>& s) {
  LatencySummary r;
  r.count = s.size();
  if (s.empty()) return r;
  std::sort(s.begin(), s.end());
  // Nearest-rank percentile: the smallest sample with at least q of all
  // samples at or below it.
  auto at = [&](double q) {
    size_t rank = size_t(q * double(s.size()) + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > s.size()) rank = s.size();
    return double(s[rank - 1]) / 1000.0;
  };
  double sum = 0;
  for (int64_t v : s) sum += double(v);
  r.mean_us = sum / double(s.size()) / 1000.0;
  r.p50_us = at(0.50);
  r.p90_us = at(0.90);
  r.p99_us = at(0.99);
  r.p999_us = at(0.999);
  r.max_us = double(s.back()) / 1000.0;
  return r;
}

nlohmann::json LatencySummary::ToJson() const {
  return {{"count", count}, {"mean_us", mean_us}, {"p50_us", p50_us}, {"p90_us", p90_us},
          {"p99_us", p99_us}, {"p999_us", p999_us}, {"max_us", max_us}};
}

TailSpread SpreadOfTail(const std::vector<int64_t>& sent_ns, const std::vector<int64_t>& latency_ns,
                        int64_t threshold_ns, int64_t begin_ns, int64_t end_ns, int window_ms) {
  TailSpread t;
  t.window_ms = window_ms;
  const int64_t w = int64_t(window_ms) * 1000000;
  if (end_ns <= begin_ns || w <= 0) return t;
  t.windows = uint64_t((end_ns - begin_ns + w - 1) / w);
  std::vector<uint64_t> per(t.windows, 0);
  for (size_t i = 0; i < sent_ns.size() && i < latency_ns.size(); i++) {
    if (latency_ns[i] <= threshold_ns || sent_ns[i] < begin_ns || sent_ns[i] >= end_ns) continue;
    per[size_t((sent_ns[i] - begin_ns) / w)]++;
    t.slow++;
  }
  t.worst_windows = std::max<uint64_t>(1, t.windows / 100);
  std::partial_sort(per.begin(), per.begin() + std::ptrdiff_t(t.worst_windows), per.end(), std::greater<>());
  for (uint64_t i = 0; i < t.worst_windows; i++) t.slow_in_worst += per[i];
  return t;
}

nlohmann::json TailSpread::ToJson() const {
  return {{"window_ms", window_ms},
          {"windows", windows},
          {"slow", slow},
          {"worst_windows", worst_windows},
          {"slow_in_worst", slow_in_worst}};
}

}  // namespace torii::bench
