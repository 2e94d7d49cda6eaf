// The daemon's counters, described once (counters.cpp, kCounters): for each,
// its key in the `stats` reply, its Prometheus name, type and help, and
// where its value comes from. The `stats` operation (msgpack) and /metrics
// (Prometheus text) are both rendered from that one table, so neither can
// have a counter the other lacks; tests/unit/counters_test.cpp checks that
// each one appears in both. Adding a counter is one row (and, when its value
// is new, one field in the module's stats struct that the snapshot copies).
//
// Not in the table: the per-operation request counters and durations
// (request_metrics.h, live, /metrics only) and toriid_build_info.
//
// Owns nothing that lives. A CounterSnapshot is a copy of the loop-thread
// modules' stats taken at one moment (Daemon::Snapshot, on the loop thread);
// the renderers are pure functions of one, safe on any thread that holds
// it (the scrape threads render Metrics' copy under its mutex).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hot_sessions.h"
#include "janitor.h"
#include "listener.h"
#include "pool.h"
#include "publisher.h"
#include "requests.h"

namespace prometheus {
struct MetricFamily;
}

namespace torii::daemon {

// The values every counter reads, copied from the modules at one moment.
struct CounterSnapshot {
  RequestStats requests;
  size_t in_flight = 0;
  uint64_t undeliverable = 0;
  uint64_t uptime_ms = 0;
  PoolStats pool;
  PublisherStats publisher;
  std::map<std::string, uint64_t> seqs;  // last seq published, by event family
  std::string epoch;
  ListenerStats listener;
  JanitorStats janitor;
  HotSessionStats cache;
  bool cache_active = false;
  size_t cache_entries = 0;
  size_t cache_capacity = 0;
  size_t cache_memory_bytes = 0;
  uint64_t cache_generation = 0;
  bool cache_leased = false;        // active and the listener's lease holds
  uint64_t cache_lease_ms = 0;
  int64_t cache_lease_age_us = -1;  // -1: no proof since the cache was activated
  bool plaintext_network = false;   // serving without CURVE beyond loopback (protected mode's opt-in)
};

// How a value reads; this fixes both of its encodings.
enum class Form {
  kCount,         // unsigned integer; Prometheus: as is
  kMillis,        // unsigned milliseconds; Prometheus: seconds
  kMicrosOrNone,  // signed microseconds, -1 for none yet; Prometheus: seconds, or -1
  kTimeOrNil,     // Unix microseconds, 0 for never; stats: a timestamp or nil; Prometheus: seconds (0: never)
  kRatio,         // a float; Prometheus: as is
  kFlag,          // a boolean; Prometheus: 1 or 0
  kByName,        // name -> unsigned count; stats: a map; Prometheus: one sample per name, as a label
  kText,          // a string; stats only (a Prometheus sample is a number)
  kTextOrNil,     // a string, nil when empty; stats only
};

// Prometheus's TYPE: a counter only grows (while the daemon runs), a gauge
// goes up and down.
enum class CounterType { kCounter, kGauge };

// One counter's value as read from a snapshot: the field its Form names.
struct Reading {
  uint64_t count = 0;                        // kCount, kMillis
  int64_t signed_value = 0;                  // kMicrosOrNone, kTimeOrNil
  double ratio = 0;                          // kRatio
  bool flag = false;                         // kFlag
  std::string text;                          // kText, kTextOrNil
  std::map<std::string, uint64_t> by_name;   // kByName
};

struct CounterDef {
  // Its key in the stats map: "key" at the top, or "section.key".
  const char* stats;
  // Its Prometheus family; "family{label=value}" for one sample of a family
  // whose samples are other rows (pool connections by state), and
  // "family{label}" for a kByName map. nullptr only for the text forms.
  const char* metric;
  CounterType type;
  Form form;
  // The family's HELP line (given on the first row of a family only).
  const char* help;
  Reading (*read)(const CounterSnapshot&);
};

// A CounterDef::metric split: "family", "family{label}" (a kByName map) or
// "family{label=value}".
struct MetricName {
  std::string_view family, label, value;
};
MetricName SplitMetric(std::string_view metric);

// Every counter, in the order of the stats map.
std::span<const CounterDef> Counters();

// The `stats` operation's result: a map of the table's top-level keys and
// sections (docs/protocol.md section 7).
std::string PackStats(const CounterSnapshot& s);

// The table's Prometheus families, in order of their first row.
std::vector<prometheus::MetricFamily> CounterFamilies(const CounterSnapshot& s);

}  // namespace torii::daemon
