// The /metrics endpoint: request hooks, the loop-thread snapshot, and the
// Collectable that renders both as Prometheus metric families.
#include "metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "torii/log.h"

namespace torii::daemon {

namespace {

// The running Metrics, if any (set and cleared on the loop thread, read by
// the request hooks on the same thread).
Metrics* g_metrics = nullptr;

constexpr uint64_t kSnapshotIntervalMs = 1000;

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

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric Value(MetricType type, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  return m;
}

// A family of one unlabelled sample.
MetricFamily One(const char* name, const char* help, MetricType type, double v) {
  MetricFamily f = Family(name, help, type);
  f.metric.push_back(Value(type, v));
  return f;
}

}  // namespace

RequestMark MetricsRequestStart() { return RequestMark{nullptr, g_metrics != nullptr ? NowNs() : 0}; }

OpMetrics* MetricsOp(const void* key, std::string_view name) {
  return g_metrics != nullptr ? g_metrics->Op(key, name) : nullptr;
}

void MetricsRequestDone(const RequestMark& mark, Code code) {
  if (g_metrics != nullptr && mark.start_ns != 0) g_metrics->Done(mark, code);
}

class Metrics::Collector : public prometheus::Collectable {
 public:
  explicit Collector(Metrics* m) : m_(m) {}
  std::vector<MetricFamily> Collect() const override;

 private:
  Metrics* m_;
};

std::vector<MetricFamily> Metrics::Collector::Collect() const {
  std::lock_guard<std::mutex> lock(m_->mu_);
  const MetricsSnapshot& s = m_->snapshot_;
  std::vector<MetricFamily> out;
  const auto C = MetricType::Counter;
  const auto G = MetricType::Gauge;

  MetricFamily info = Family("toriid_build_info", "toriid's version (always 1)", G);
  info.metric.push_back(Value(G, 1, {{"version", TORII_VERSION}}));
  out.push_back(std::move(info));
  out.push_back(One("toriid_uptime_seconds", "seconds since toriid started", G, s.uptime_s));
  out.push_back(One("toriid_plaintext_network",
                    "1 while a requests or events endpoint is reachable beyond loopback without CURVE "
                    "(security.allow_plaintext_network), else 0",
                    G, s.plaintext_network ? 1 : 0));

  // Requests, live from the per-operation slots. A (op, code) pair appears
  // once it has been answered at least once.
  MetricFamily total = Family("toriid_requests_total", "requests answered, by operation and reply code", C);
  MetricFamily duration = Family("toriid_request_duration_seconds",
                                 "time from receipt to reply of a request, by operation", MetricType::Histogram);
  for (const auto& op : m_->ops_) {
    for (size_t c = 0; c < kCodeCount; c++) {
      uint64_t n = op->replies[c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      total.metric.push_back(Value(C, static_cast<double>(n), {{"code", std::string(CodeName(static_cast<Code>(c)))},
                                                                {"op", op->name}}));
    }
    ClientMetric h;
    h.label = {{"op", op->name}};
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kDurationBuckets.size(); b++) {
      cumulative += op->buckets[b].load(std::memory_order_relaxed);
      double le = b < kDurationBuckets.size() ? kDurationBuckets[b] : std::numeric_limits<double>::infinity();
      h.histogram.bucket.push_back({cumulative, le});
    }
    if (cumulative == 0) continue;
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = static_cast<double>(op->sum_ns.load(std::memory_order_relaxed)) / 1e9;
    duration.metric.push_back(std::move(h));
  }
  out.push_back(std::move(total));
  out.push_back(std::move(duration));
  out.push_back(One("toriid_requests_in_flight", "requests received and not yet answered", G,
                    static_cast<double>(s.in_flight)));
  out.push_back(One("toriid_request_timeouts_total", "requests answered with timeout (their deadline passed)", C,
                    static_cast<double>(s.requests.timeouts)));
  out.push_back(One("toriid_overloaded_total",
                    "requests refused with overloaded (server.max_pending requests were already waiting)", C,
                    static_cast<double>(s.requests.overloaded)));
  out.push_back(One("toriid_replies_undeliverable_total", "replies whose client had gone", C,
                    static_cast<double>(s.undeliverable)));

  MetricFamily conns = Family("toriid_pool_connections", "pooled database connections by state", G);
  conns.metric.push_back(Value(G, s.pool.idle, {{"state", "idle"}}));
  conns.metric.push_back(Value(G, s.pool.busy, {{"state", "busy"}}));
  conns.metric.push_back(Value(G, s.pool.size - s.pool.idle - s.pool.busy, {{"state", "connecting"}}));
  out.push_back(std::move(conns));
  out.push_back(One("toriid_pool_waiting", "requests queued for a database connection", G,
                    static_cast<double>(s.pool.waiting)));
  out.push_back(One("toriid_pool_connects_total", "database connections opened", C, s.pool.connects));
  out.push_back(One("toriid_pool_connect_failures_total", "database connection attempts that failed", C,
                    s.pool.connect_failures));
  out.push_back(One("toriid_pool_broken_total", "pooled connections lost while in use", C, s.pool.broken));
  out.push_back(One("toriid_pool_cancels_total", "statements cancelled at their request's deadline", C,
                    s.pool.cancels));
  out.push_back(One("toriid_pool_lookup_batches_total", "lookup batches sent", C, s.pool.batches));
  out.push_back(One("toriid_pool_batched_lookups_total", "lookups answered through batches", C, s.pool.batched));

  out.push_back(One("toriid_events_published_total", "events published on the PUB sockets", C,
                    s.publisher.published));
  out.push_back(One("toriid_events_dropped_total", "events the PUB socket refused", C, s.publisher.dropped));
  out.push_back(One("toriid_events_received_total", "notifications received on torii_events", C,
                    s.listener.received));
  out.push_back(One("toriid_events_malformed_total", "notifications that were not a known event", C,
                    s.listener.malformed));
  MetricFamily seq = Family("toriid_events_seq", "last seq published, by event family", G);
  for (const auto& [family, n] : s.seqs) seq.metric.push_back(Value(G, static_cast<double>(n), {{"family", family}}));
  out.push_back(std::move(seq));

  out.push_back(One("toriid_listener_up", "1 while the LISTEN connection is up and events flow, else 0", G,
                    s.listener.listening ? 1 : 0));
  out.push_back(One("toriid_listener_reconnects_total", "times the LISTEN connection was opened again", C,
                    s.listener.reconnects));
  out.push_back(One("toriid_listener_probe_failures_total", "self-notify probes not heard back in time", C,
                    s.listener.probe_failures));
  out.push_back(One("toriid_listener_lease_lapses_total",
                    "times no probe came back within cache.lease_ms (cache bypassed, heartbeats paused)", C,
                    s.listener.lease_lapses));
  out.push_back(One("toriid_listener_probe_rtt_seconds", "round trip of the last self-notify probe (-1: none yet)",
                    G, s.listener.last_probe_rtt_us < 0 ? -1 : s.listener.last_probe_rtt_us / 1e6));
  out.push_back(One("toriid_notify_queue_usage_ratio",
                    "PostgreSQL's NOTIFY queue in use, 0 to 1 (pg_notification_queue_usage)", G,
                    s.listener.queue_usage));

  out.push_back(One("toriid_cleanup_runs_total", "expired-session cleanup passes run", C, s.janitor.runs));
  out.push_back(One("toriid_cleanup_skipped_total", "cleanup ticks skipped: another daemon's pass was running", C,
                    s.janitor.skipped));
  out.push_back(One("toriid_cleanup_failures_total", "cleanup passes that failed", C, s.janitor.failures));
  out.push_back(One("toriid_cleanup_deleted_sessions_total", "expired sessions deleted by cleanup", C,
                    s.janitor.deleted));
  MetricFamily by_table = Family("toriid_cleanup_deleted_total", "rows deleted by cleanup, by table", C);
  for (const auto& [table, n] : s.janitor.deleted_by_table) {
    by_table.metric.push_back(Value(C, static_cast<double>(n), {{"table", table}}));
  }
  out.push_back(std::move(by_table));
  out.push_back(One("toriid_cleanup_audit_pruned_total", "audit rows deleted by audit.retention_days", C,
                    s.janitor.audit_pruned));
  out.push_back(One("toriid_cleanup_last_run_timestamp_seconds",
                    "Unix time the last cleanup pass started (0: none yet)", G, s.janitor.last_run_at_us / 1e6));
  out.push_back(One("toriid_cleanup_last_duration_seconds", "duration of the last cleanup pass", G,
                    s.janitor.last_duration_ms / 1e3));
  out.push_back(One("toriid_cache_active", "1 while the session cache serves (LISTEN in place), else 0", G,
                    s.cache_active ? 1 : 0));
  out.push_back(One("toriid_cache_leased",
                    "1 while the listener's last probe is younger than [cache] lease_ms (cached sessions served), else 0",
                    G, s.cache_leased ? 1 : 0));
  out.push_back(One("toriid_cache_lease_seconds", "[cache] lease_ms, in seconds", G, s.cache_lease_ms / 1e3));
  out.push_back(One("toriid_cache_entries", "sessions in the cache", G, static_cast<double>(s.cache_entries)));
  out.push_back(One("toriid_cache_capacity", "the cache's bound, [cache] sessions", G,
                    static_cast<double>(s.cache_capacity)));
  out.push_back(One("toriid_cache_memory_bytes", "estimated memory of the cache's entries and indexes", G,
                    static_cast<double>(s.cache_memory_bytes)));
  MetricFamily lookups = Family("toriid_cache_lookups_total", "get_session lookups by what the cache did", C);
  lookups.metric.push_back(Value(C, static_cast<double>(s.cache.hits), {{"result", "hit"}}));
  lookups.metric.push_back(Value(C, static_cast<double>(s.cache.misses), {{"result", "miss"}}));
  lookups.metric.push_back(Value(C, static_cast<double>(s.cache.bypassed), {{"result", "bypassed"}}));
  lookups.metric.push_back(Value(C, static_cast<double>(s.cache.lease_lapsed), {{"result", "lease_lapsed"}}));
  out.push_back(std::move(lookups));
  out.push_back(One("toriid_cache_evictions_total", "entries removed by an invalidation or expiry", C,
                    static_cast<double>(s.cache.evictions)));
  out.push_back(One("toriid_cache_capacity_evictions_total", "least recently used entries removed past the bound", C,
                    static_cast<double>(s.cache.capacity_evictions)));
  out.push_back(One("toriid_cache_stale_drops_total", "loads not cached: invalidated while in flight", C,
                    static_cast<double>(s.cache.stale_drops)));
  out.push_back(One("toriid_cache_resets_total", "whole-cache invalidations (listener lost, resync)", C,
                    static_cast<double>(s.cache.resets)));

  return out;
}

Metrics::Metrics(uv_loop_t* loop, SnapshotFn snapshot) : loop_(loop), snapshot_fn_(std::move(snapshot)) {
  auto unknown = std::make_unique<OpMetrics>();
  unknown->name = "unknown";
  unknown_ = unknown.get();
  ops_.push_back(std::move(unknown));
  collector_ = std::make_shared<Collector>(this);
}

Result<std::unique_ptr<Metrics>> Metrics::Start(uv_loop_t* loop, const std::string& listen, SnapshotFn snapshot) {
  if (g_metrics != nullptr) return Error::Internal("metrics: already running");
  std::unique_ptr<Metrics> m(new Metrics(loop, std::move(snapshot)));
  try {
    // One HTTP thread: scrapes are rare and each is one Collect().
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
    m->exposer_->RegisterCollectable(m->collector_);
    auto ports = m->exposer_->GetListeningPorts();
    m->port_ = ports.empty() ? 0 : ports.front();
  } catch (const std::exception& e) {
    return Error::InvalidArgument("metrics.listen: cannot serve on " + listen + ": " + e.what());
  }
  m->TakeSnapshot();
  m->timer_ = new uv_timer_t;
  uv_timer_init(loop, m->timer_);
  m->timer_->data = m.get();
  uv_timer_start(
      m->timer_, [](uv_timer_t* t) { static_cast<Metrics*>(t->data)->TakeSnapshot(); }, kSnapshotIntervalMs,
      kSnapshotIntervalMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(m->timer_));  // never what keeps the loop running
  g_metrics = m.get();
  TLOG_INFO("metrics: serving http://%s/metrics", listen.c_str());
  return m;
}

std::unique_ptr<Metrics> Metrics::Offline() {
  std::unique_ptr<Metrics> m(new Metrics(nullptr, nullptr));
  if (g_metrics == nullptr) g_metrics = m.get();
  return m;
}

Metrics::~Metrics() { Close(); }

void Metrics::Close() {
  if (g_metrics == this) g_metrics = nullptr;
  exposer_.reset();  // joins the HTTP threads: no Collect() runs after this
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void Metrics::TakeSnapshot() {
  if (!snapshot_fn_) return;
  MetricsSnapshot s = snapshot_fn_();
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(s);
}

void Metrics::SetSnapshot(MetricsSnapshot s) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(s);
}

std::string Metrics::Render() { return prometheus::TextSerializer().Serialize(collector_->Collect()); }

OpMetrics* Metrics::Op(const void* key, std::string_view name) {
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

void Metrics::Done(const RequestMark& mark, Code code) {
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
