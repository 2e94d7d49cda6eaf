// Shared by the benchmark tools: the deterministic data set (ids, emails and
// session tokens derived from an index, so the loader and the load
// generator agree without a file), clocks and latency summaries.
//
// Data set contract (docs/BENCHMARKS.md relies on it):
// - user i (0 <= i < users): id 00000000-0000-4000-8000-<i as 12 hex>,
//   email user<i>@bench.example.
// - session j: id 00000001-0000-4000-8000-<j as 12 hex>, user j % users,
//   token "tb" + j zero-padded to 41 decimal digits (43 characters, like a
//   real token), token_hash SHA-256 of those 43 characters. Sessions
//   0..live-1 expire in 30 days; live..live+expired-1 expired a day ago.
//   pgbench rebuilds the same token in SQL from the index alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace torii::bench {

std::string BenchUserId(uint64_t i);
std::string BenchEmail(uint64_t i);
std::string BenchSessionId(uint64_t j);
std::string BenchToken(uint64_t j);

// The fields the benchmarks read of a reply map: "id", "ok" and the error's
// "code". A field the reply lacks (or that has another type) is left as it is.
void ReadReplyFields(const msgpack::object& reply, uint64_t* id, bool* ok, std::string* code);

// CLOCK_MONOTONIC in nanoseconds.
int64_t MonoNs();

// Percentiles over all samples (nanoseconds). Sorts `samples`.
struct LatencySummary {
  uint64_t count = 0;
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  nlohmann::json ToJson() const;
};
LatencySummary Summarize(std::vector<int64_t>& samples);

// Where the slow samples sit in time. The run [begin_ns, end_ns) is cut into
// windows of window_ms by intended send time; the samples slower than
// threshold_ns are counted per window. A tail spread over the whole run is
// queueing; a tail packed into a few windows is stalls (something took the
// cores away for milliseconds).
struct TailSpread {
  int window_ms = 10;
  uint64_t windows = 0;        // windows in the run
  uint64_t slow = 0;           // samples slower than the threshold
  uint64_t worst_windows = 0;  // the 1% of windows (at least one) holding the most slow samples
  uint64_t slow_in_worst = 0;  // slow samples sent within those
  nlohmann::json ToJson() const;
};
TailSpread SpreadOfTail(const std::vector<int64_t>& sent_ns, const std::vector<int64_t>& latency_ns,
                        int64_t threshold_ns, int64_t begin_ns, int64_t end_ns, int window_ms = 10);

}  // namespace torii::bench
