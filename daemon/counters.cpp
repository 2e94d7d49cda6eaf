// The table of counters and its two renderings: the `stats` map (msgpack)
// and the Prometheus families (see counters.h).
#include "counters.h"

#include <prometheus/metric_family.h>

#include <algorithm>
#include <string_view>
#include <utility>

#include "torii/protocol.h"

namespace torii::daemon {

namespace {

using S = CounterSnapshot;
constexpr auto C = CounterType::kCounter;
constexpr auto G = CounterType::kGauge;

Reading Count(uint64_t v) {
  Reading r;
  r.count = v;
  return r;
}
Reading Signed(int64_t v) {
  Reading r;
  r.signed_value = v;
  return r;
}
Reading Ratio(double v) {
  Reading r;
  r.ratio = v;
  return r;
}
Reading Flag(bool v) {
  Reading r;
  r.flag = v;
  return r;
}
Reading Text(std::string v) {
  Reading r;
  r.text = std::move(v);
  return r;
}
Reading ByName(std::map<std::string, uint64_t> v) {
  Reading r;
  r.by_name = std::move(v);
  return r;
}

// Each counter once, in the order of the stats map (docs/protocol.md
// section 7 lists the keys, docs/operations.md the metrics). Keys added
// after a section's first release go at its end.
constexpr CounterDef kCounters[] = {
    {"requests", "toriid_requests_received_total", C, Form::kCount,
     "requests received (toriid_requests_total counts the answers by operation and code)",
     [](const S& s) { return Count(s.requests.requests); }},
    {"errors", "toriid_request_errors_total", C, Form::kCount, "requests answered with an error (any code but ok)",
     [](const S& s) { return Count(s.requests.errors); }},
    {"timeouts", "toriid_request_timeouts_total", C, Form::kCount,
     "requests answered with timeout (their deadline passed)", [](const S& s) { return Count(s.requests.timeouts); }},
    {"overloaded", "toriid_overloaded_total", C, Form::kCount,
     "requests refused with overloaded (server.max_pending requests were already waiting)",
     [](const S& s) { return Count(s.requests.overloaded); }},
    {"undeliverable", "toriid_replies_undeliverable_total", C, Form::kCount, "replies whose client had gone",
     [](const S& s) { return Count(s.undeliverable); }},
    {"uptime_ms", "toriid_uptime_seconds", G, Form::kMillis, "seconds since toriid started",
     [](const S& s) { return Count(s.uptime_ms); }},
    {"in_flight", "toriid_requests_in_flight", G, Form::kCount, "requests received and not yet answered",
     [](const S& s) { return Count(s.in_flight); }},
    {"plaintext_network", "toriid_plaintext_network", G, Form::kFlag,
     "1 while toriid serves without CURVE on an endpoint reachable beyond loopback "
     "(security.allow_plaintext_network), else 0",
     [](const S& s) { return Flag(s.plaintext_network); }},

    {"pool.size", "toriid_pool_size", G, Form::kCount, "pooled database connections, open or opening",
     [](const S& s) { return Count(static_cast<uint64_t>(s.pool.size)); }},
    {"pool.idle", "toriid_pool_connections{state=idle}", G, Form::kCount, "pooled database connections by state",
     [](const S& s) { return Count(static_cast<uint64_t>(s.pool.idle)); }},
    {"pool.busy", "toriid_pool_connections{state=busy}", G, Form::kCount, "",
     [](const S& s) { return Count(static_cast<uint64_t>(s.pool.busy)); }},
    {"pool.waiting", "toriid_pool_waiting", G, Form::kCount, "requests queued for a database connection",
     [](const S& s) { return Count(s.pool.waiting); }},
    {"pool.connects", "toriid_pool_connects_total", C, Form::kCount, "database connections opened",
     [](const S& s) { return Count(s.pool.connects); }},
    {"pool.connect_failures", "toriid_pool_connect_failures_total", C, Form::kCount,
     "database connection attempts that failed", [](const S& s) { return Count(s.pool.connect_failures); }},
    {"pool.broken", "toriid_pool_broken_total", C, Form::kCount, "pooled connections lost while in use",
     [](const S& s) { return Count(s.pool.broken); }},
    {"pool.cancels", "toriid_pool_cancels_total", C, Form::kCount, "statements cancelled at their request's deadline",
     [](const S& s) { return Count(s.pool.cancels); }},
    {"pool.lookup_batches", "toriid_pool_lookup_batches_total", C, Form::kCount, "lookup batches sent",
     [](const S& s) { return Count(s.pool.batches); }},
    {"pool.batched_lookups", "toriid_pool_batched_lookups_total", C, Form::kCount, "lookups answered through batches",
     [](const S& s) { return Count(s.pool.batched); }},
    {"pool.connecting", "toriid_pool_connections{state=connecting}", G, Form::kCount, "",
     [](const S& s) { return Count(static_cast<uint64_t>(std::max(0, s.pool.size - s.pool.idle - s.pool.busy))); }},

    {"events.seq", "toriid_events_seq{family}", G, Form::kByName, "last seq published, by event family",
     [](const S& s) { return ByName(s.seqs); }},
    {"events.epoch", nullptr, G, Form::kText, "", [](const S& s) { return Text(s.epoch); }},
    {"events.published", "toriid_events_published_total", C, Form::kCount, "events published on the PUB sockets",
     [](const S& s) { return Count(s.publisher.published); }},
    {"events.received", "toriid_events_received_total", C, Form::kCount, "notifications received on torii_events",
     [](const S& s) { return Count(s.listener.received); }},
    {"events.malformed", "toriid_events_malformed_total", C, Form::kCount,
     "notifications that were not a known event", [](const S& s) { return Count(s.listener.malformed); }},
    {"events.listening", "toriid_listener_up", G, Form::kFlag,
     "1 while the LISTEN connection is up and events flow, else 0",
     [](const S& s) { return Flag(s.listener.listening); }},
    {"events.reconnects", "toriid_listener_reconnects_total", C, Form::kCount,
     "times the LISTEN connection was opened again", [](const S& s) { return Count(s.listener.reconnects); }},
    {"events.probe_failures", "toriid_listener_probe_failures_total", C, Form::kCount,
     "self-notify probes not heard back in time", [](const S& s) { return Count(s.listener.probe_failures); }},
    {"events.probes_out", "toriid_listener_probes_out", G, Form::kCount,
     "self-notify probes sent and not heard back yet", [](const S& s) { return Count(s.listener.probes_out); }},
    {"events.last_probe_rtt_us", "toriid_listener_probe_rtt_seconds", G, Form::kMicrosOrNone,
     "round trip of the last self-notify probe (-1: none yet)",
     [](const S& s) { return Signed(s.listener.last_probe_rtt_us); }},
    {"events.queue_usage", "toriid_notify_queue_usage_ratio", G, Form::kRatio,
     "PostgreSQL's NOTIFY queue in use, 0 to 1 (pg_notification_queue_usage)",
     [](const S& s) { return Ratio(s.listener.queue_usage); }},
    {"events.timeline", "toriid_listener_timeline", G, Form::kCount,
     "timeline of the server the LISTEN connection is on (0 until known)",
     [](const S& s) { return Count(s.listener.timeline); }},
    {"events.server_changes", "toriid_listener_server_changes_total", C, Form::kCount,
     "reconnects of the LISTEN connection that found a promoted or another server (a failover)",
     [](const S& s) { return Count(s.listener.server_changes); }},
    {"events.dropped", "toriid_events_dropped_total", C, Form::kCount, "events the PUB socket refused",
     [](const S& s) { return Count(s.publisher.dropped); }},
    {"events.lease_lapses", "toriid_listener_lease_lapses_total", C, Form::kCount,
     "times no probe came back within cache.lease_ms (cache bypassed, heartbeats paused)",
     [](const S& s) { return Count(s.listener.lease_lapses); }},

    {"cache.active", "toriid_cache_active", G, Form::kFlag,
     "1 while the session cache serves (LISTEN in place), else 0", [](const S& s) { return Flag(s.cache_active); }},
    {"cache.capacity", "toriid_cache_capacity", G, Form::kCount, "the cache's bound, [cache] sessions",
     [](const S& s) { return Count(s.cache_capacity); }},
    {"cache.entries", "toriid_cache_entries", G, Form::kCount, "sessions in the cache",
     [](const S& s) { return Count(s.cache_entries); }},
    {"cache.memory_bytes", "toriid_cache_memory_bytes", G, Form::kCount,
     "estimated memory of the cache's entries and indexes", [](const S& s) { return Count(s.cache_memory_bytes); }},
    {"cache.hits", "toriid_cache_lookups_total{result=hit}", C, Form::kCount,
     "get_session lookups by what the cache did", [](const S& s) { return Count(s.cache.hits); }},
    {"cache.misses", "toriid_cache_lookups_total{result=miss}", C, Form::kCount, "",
     [](const S& s) { return Count(s.cache.misses); }},
    {"cache.bypassed", "toriid_cache_lookups_total{result=bypassed}", C, Form::kCount, "",
     [](const S& s) { return Count(s.cache.bypassed); }},
    {"cache.inserts", "toriid_cache_inserts_total", C, Form::kCount, "sessions put in the cache",
     [](const S& s) { return Count(s.cache.inserts); }},
    {"cache.evictions", "toriid_cache_evictions_total", C, Form::kCount, "entries removed by an invalidation or expiry",
     [](const S& s) { return Count(s.cache.evictions); }},
    {"cache.capacity_evictions", "toriid_cache_capacity_evictions_total", C, Form::kCount,
     "least recently used entries removed past the bound",
     [](const S& s) { return Count(s.cache.capacity_evictions); }},
    {"cache.stale_drops", "toriid_cache_stale_drops_total", C, Form::kCount,
     "loads not cached: invalidated while in flight", [](const S& s) { return Count(s.cache.stale_drops); }},
    {"cache.invalidations", "toriid_cache_invalidations_total", C, Form::kCount,
     "invalidations of one token, session or user (this daemon's writes and others' events)",
     [](const S& s) { return Count(s.cache.invalidations); }},
    {"cache.resets", "toriid_cache_resets_total", C, Form::kCount, "whole-cache invalidations (listener lost, resync)",
     [](const S& s) { return Count(s.cache.resets); }},
    {"cache.generation", "toriid_cache_generation", G, Form::kCount,
     "the cache's generation, one more at each invalidation", [](const S& s) { return Count(s.cache_generation); }},
    {"cache.leased", "toriid_cache_leased", G, Form::kFlag,
     "1 while the listener's last probe is younger than [cache] lease_ms (cached sessions served), else 0",
     [](const S& s) { return Flag(s.cache_leased); }},
    {"cache.lease_ms", "toriid_cache_lease_seconds", G, Form::kMillis, "[cache] lease_ms, in seconds",
     [](const S& s) { return Count(s.cache_lease_ms); }},
    {"cache.lease_age_us", "toriid_cache_lease_age_seconds", G, Form::kMicrosOrNone,
     "time since the last probe that proved the listener alive was sent (-1: none since the cache was activated)",
     [](const S& s) { return Signed(s.cache_lease_age_us); }},
    {"cache.lease_lapsed", "toriid_cache_lookups_total{result=lease_lapsed}", C, Form::kCount, "",
     [](const S& s) { return Count(s.cache.lease_lapsed); }},

    {"cleanup.runs", "toriid_cleanup_runs_total", C, Form::kCount, "expired-session cleanup passes run",
     [](const S& s) { return Count(s.janitor.runs); }},
    {"cleanup.deleted_by_table", "toriid_cleanup_deleted_total{table}", C, Form::kByName,
     "rows deleted by cleanup, by table", [](const S& s) { return ByName(s.janitor.deleted_by_table); }},
    {"cleanup.deleted", "toriid_cleanup_deleted_sessions_total", C, Form::kCount,
     "expired sessions deleted by cleanup", [](const S& s) { return Count(s.janitor.deleted); }},
    {"cleanup.skipped", "toriid_cleanup_skipped_total", C, Form::kCount,
     "cleanup ticks skipped: another daemon's pass was running", [](const S& s) { return Count(s.janitor.skipped); }},
    {"cleanup.audit_pruned", "toriid_cleanup_audit_pruned_total", C, Form::kCount,
     "audit rows deleted by audit.retention_days", [](const S& s) { return Count(s.janitor.audit_pruned); }},
    {"cleanup.last_run_at", "toriid_cleanup_last_run_timestamp_seconds", G, Form::kTimeOrNil,
     "Unix time the last cleanup pass started (0: none yet)",
     [](const S& s) { return Signed(s.janitor.last_run_at_us); }},
    {"cleanup.last_duration_ms", "toriid_cleanup_last_duration_seconds", G, Form::kMillis,
     "duration of the last cleanup pass", [](const S& s) { return Count(s.janitor.last_duration_ms); }},
    {"cleanup.last_deleted", "toriid_cleanup_last_deleted", G, Form::kCount,
     "expired sessions deleted by the last cleanup pass", [](const S& s) { return Count(s.janitor.last_deleted); }},
    {"cleanup.last_error", nullptr, G, Form::kTextOrNil, "", [](const S& s) { return Text(s.janitor.last_error); }},
    {"cleanup.failures", "toriid_cleanup_failures_total", C, Form::kCount, "cleanup passes that failed",
     [](const S& s) { return Count(s.janitor.failures); }},
};

void PackReading(Packer& pk, Form form, const Reading& r) {
  switch (form) {
    case Form::kCount:
    case Form::kMillis: pk.pack_uint64(r.count); break;
    case Form::kMicrosOrNone: pk.pack_int64(r.signed_value); break;
    case Form::kTimeOrNil: r.signed_value != 0 ? PackTimestamp(pk, r.signed_value) : (void)pk.pack_nil(); break;
    case Form::kRatio: pk.pack_double(r.ratio); break;
    case Form::kFlag: r.flag ? pk.pack_true() : pk.pack_false(); break;
    case Form::kByName:
      pk.pack_map(static_cast<uint32_t>(r.by_name.size()));
      for (const auto& [name, n] : r.by_name) {
        PackStr(pk, name);
        pk.pack_uint64(n);
      }
      break;
    case Form::kText: PackStr(pk, r.text); break;
    case Form::kTextOrNil: r.text.empty() ? (void)pk.pack_nil() : PackStr(pk, r.text); break;
  }
}

double SampleValue(Form form, const Reading& r) {
  switch (form) {
    case Form::kCount: return static_cast<double>(r.count);
    case Form::kMillis: return static_cast<double>(r.count) / 1e3;
    case Form::kMicrosOrNone: return r.signed_value < 0 ? -1 : static_cast<double>(r.signed_value) / 1e6;
    case Form::kTimeOrNil: return static_cast<double>(r.signed_value) / 1e6;
    case Form::kRatio: return r.ratio;
    case Form::kFlag: return r.flag ? 1 : 0;
    case Form::kByName:
    case Form::kText:
    case Form::kTextOrNil: break;
  }
  return 0;
}

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric Sample(CounterType type, double v, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == CounterType::kCounter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  return m;
}

}  // namespace

MetricName SplitMetric(std::string_view metric) {
  MetricName n{metric, {}, {}};
  size_t brace = metric.find('{');
  if (brace == std::string_view::npos) return n;
  n.family = metric.substr(0, brace);
  std::string_view inside = metric.substr(brace + 1, metric.size() - brace - 2);
  size_t eq = inside.find('=');
  n.label = inside.substr(0, eq);
  if (eq != std::string_view::npos) n.value = inside.substr(eq + 1);
  return n;
}

std::span<const CounterDef> Counters() { return kCounters; }

std::string PackStats(const CounterSnapshot& s) {
  // The top level in order of first appearance: a key of its own, or a
  // section whose rows follow in table order.
  struct Node {
    std::string_view key;
    const CounterDef* leaf = nullptr;
    std::vector<std::pair<std::string_view, const CounterDef*>> section;
  };
  std::vector<Node> top;
  for (const CounterDef& d : kCounters) {
    std::string_view path = d.stats;
    size_t dot = path.find('.');
    if (dot == std::string_view::npos) {
      top.push_back(Node{path, &d, {}});
      continue;
    }
    std::string_view name = path.substr(0, dot);
    auto it = std::find_if(top.begin(), top.end(), [&](const Node& n) { return n.leaf == nullptr && n.key == name; });
    if (it == top.end()) it = top.insert(top.end(), Node{name, nullptr, {}});
    it->section.emplace_back(path.substr(dot + 1), &d);
  }
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(static_cast<uint32_t>(top.size()));
  for (const Node& n : top) {
    PackStr(pk, n.key);
    if (n.leaf != nullptr) {
      PackReading(pk, n.leaf->form, n.leaf->read(s));
      continue;
    }
    pk.pack_map(static_cast<uint32_t>(n.section.size()));
    for (const auto& [key, d] : n.section) {
      PackStr(pk, key);
      PackReading(pk, d->form, d->read(s));
    }
  }
  return std::string(buf.data(), buf.size());
}

std::vector<MetricFamily> CounterFamilies(const CounterSnapshot& s) {
  std::vector<MetricFamily> out;
  for (const CounterDef& d : kCounters) {
    if (d.metric == nullptr) continue;
    MetricName n = SplitMetric(d.metric);
    auto f = std::find_if(out.begin(), out.end(), [&](const MetricFamily& m) { return m.name == n.family; });
    if (f == out.end()) {
      MetricFamily fresh;
      fresh.name = std::string(n.family);
      fresh.help = d.help;
      fresh.type = d.type == CounterType::kCounter ? MetricType::Counter : MetricType::Gauge;
      f = out.insert(out.end(), std::move(fresh));
    }
    Reading r = d.read(s);
    if (d.form == Form::kByName) {
      for (const auto& [name, count] : r.by_name) {
        f->metric.push_back(Sample(d.type, static_cast<double>(count), {{std::string(n.label), name}}));
      }
    } else if (n.label.empty()) {
      f->metric.push_back(Sample(d.type, SampleValue(d.form, r), {}));
    } else {
      f->metric.push_back(Sample(d.type, SampleValue(d.form, r), {{std::string(n.label), std::string(n.value)}}));
    }
  }
  return out;
}

}  // namespace torii::daemon
