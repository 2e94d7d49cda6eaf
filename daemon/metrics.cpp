// The /metrics endpoint: the loop-thread snapshot of the counters, and the
// Collectable that renders it and the request counters as Prometheus
// metric families.
#include "metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <limits>

#include "torii/log.h"

namespace torii::daemon {

namespace {

constexpr uint64_t kSnapshotIntervalMs = 1000;

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

// toriid_requests_total and toriid_request_duration_seconds, live from the
// per-operation slots. An (op, code) pair appears once it has been answered
// at least once.
void AppendRequestFamilies(const RequestMetrics& requests, std::vector<MetricFamily>& out) {
  MetricFamily total =
      Family("toriid_requests_total", "requests answered, by operation and reply code", MetricType::Counter);
  MetricFamily duration = Family("toriid_request_duration_seconds",
                                 "time from receipt to reply of a request, by operation", MetricType::Histogram);
  requests.ForEach([&](const OpMetrics& op) {
    for (size_t c = 0; c < kCodeCount; c++) {
      uint64_t n = op.replies[c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      ClientMetric m;
      m.label = {{"code", std::string(CodeName(static_cast<Code>(c)))}, {"op", op.name}};
      m.counter.value = static_cast<double>(n);
      total.metric.push_back(std::move(m));
    }
    ClientMetric h;
    h.label = {{"op", op.name}};
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kDurationBuckets.size(); b++) {
      cumulative += op.buckets[b].load(std::memory_order_relaxed);
      double le = b < kDurationBuckets.size() ? kDurationBuckets[b] : std::numeric_limits<double>::infinity();
      h.histogram.bucket.push_back({cumulative, le});
    }
    if (cumulative == 0) return;
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = static_cast<double>(op.sum_ns.load(std::memory_order_relaxed)) / 1e9;
    duration.metric.push_back(std::move(h));
  });
  out.push_back(std::move(total));
  out.push_back(std::move(duration));
}

}  // namespace

class Metrics::Collector : public prometheus::Collectable {
 public:
  explicit Collector(Metrics* m) : m_(m) {}
  std::vector<MetricFamily> Collect() const override;

 private:
  Metrics* m_;
};

std::vector<MetricFamily> Metrics::Collector::Collect() const {
  std::vector<MetricFamily> out;
  MetricFamily info = Family("toriid_build_info", "toriid's version (always 1)", MetricType::Gauge);
  ClientMetric version;
  version.label = {{"version", TORII_VERSION}};
  version.gauge.value = 1;
  info.metric.push_back(std::move(version));
  out.push_back(std::move(info));
  AppendRequestFamilies(m_->requests_, out);
  std::vector<MetricFamily> counters;
  {
    std::lock_guard<std::mutex> lock(m_->mu_);
    counters = CounterFamilies(m_->snapshot_);
  }
  for (auto& f : counters) out.push_back(std::move(f));
  return out;
}

Metrics::Metrics(uv_loop_t* loop, SnapshotFn snapshot)
    : loop_(loop), snapshot_fn_(std::move(snapshot)), collector_(std::make_shared<Collector>(this)) {}

Result<std::unique_ptr<Metrics>> Metrics::Start(uv_loop_t* loop, const std::string& listen, SnapshotFn snapshot) {
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
  TLOG_INFO("metrics: serving http://%s/metrics", listen.c_str());
  return m;
}

std::unique_ptr<Metrics> Metrics::Offline() { return std::unique_ptr<Metrics>(new Metrics(nullptr, nullptr)); }

Metrics::~Metrics() { Close(); }

void Metrics::Close() {
  exposer_.reset();  // joins the HTTP threads: no Collect() runs after this
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void Metrics::TakeSnapshot() {
  if (!snapshot_fn_) return;
  CounterSnapshot s = snapshot_fn_();
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(s);
}

void Metrics::SetSnapshot(CounterSnapshot s) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(s);
}

std::string Metrics::Render() { return prometheus::TextSerializer().Serialize(collector_->Collect()); }

}  // namespace torii::daemon
