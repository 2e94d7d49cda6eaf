// Wiring and lifetime of the daemon's parts.
#include "daemon.h"

#include <unistd.h>

#include <cstdlib>

#include "counters.h"
#include "hot_sessions.h"
#include "janitor.h"
#include "listener.h"
#include "metrics.h"
#include "notify.h"
#include "ops/local_ops.h"
#include "pgconn.h"
#include "pool.h"
#include "publisher.h"
#include "requests.h"
#include "router.h"
#include "security.h"
#include "torii/log.h"
#include "torii/migrations.h"
#include "torii/pg.h"
#include "torii/protected_mode.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

JanitorOptions JanitorOptionsFrom(const Config& c) {
  return {static_cast<uint64_t>(c.cleanup.interval_s), static_cast<uint64_t>(c.cleanup.batch_size),
          static_cast<uint64_t>(c.cleanup.time_budget_ms), static_cast<uint64_t>(c.audit.retention_days),
          static_cast<uint64_t>(c.cleanup.login_failure_retention_s)};
}

}  // namespace

Daemon::Daemon(Config config, std::string config_path)
    : config_(std::move(config)), config_path_(std::move(config_path)), zmq_(1) {
  uv_loop_init(&loop_);
}

Daemon::~Daemon() {
  if (requests_) requests_->set_metrics(nullptr);  // what it points to goes next
  metrics_.reset();  // stops the scrape threads before what they read goes
  requests_.reset();
  router_.reset();
  pool_.reset();
  listener_.reset();
  janitor_.reset();
  publisher_.reset();
  notifier_.reset();
  zap_.reset();
  // Let the close callbacks of everything above run.
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop_) != 0) TLOG_WARN("daemon: loop closed with handles still open");
  zmq_.close();
  if (embedded_) (void)embedded_->Stop(false);
}

Status Daemon::StartDatabase() {
  auto url = config_.DatabaseUrl();
  if (!url.ok()) return url.error();
  if (!url->empty()) {
    conninfo_ = *url;
    TLOG_INFO("daemon: database %s", RedactConninfo(conninfo_).c_str());
    return {};
  }
  EmbeddedPgOptions opt;
  opt.data_dir = config_.database.data_dir.empty() ? EmbeddedPostgres::DefaultDataDir() : config_.database.data_dir;
  opt.run_as = config_.database.embedded_user;
  opt.settings = {{"max_connections", "200"}};
  embedded_ = std::make_unique<EmbeddedPostgres>(opt);
  if (auto st = embedded_->Init(); !st.ok()) return st;
  if (auto st = embedded_->Start(); !st.ok()) return st;
  if (auto st = embedded_->EnsureDatabase("torii"); !st.ok()) return st;
  conninfo_ = embedded_->ConnInfo("torii");
  TLOG_INFO("daemon: embedded database in %s", opt.data_dir.c_str());
  return {};
}

Status Daemon::RunMigrations() {
  // The pool's sslmode applies here too: the migrations must not be the one
  // connection that goes without TLS or without checking the certificate.
  std::vector<std::string> storage;
  std::vector<const char*> keys, vals;
  BuildConnectParams(ConnectOptions{conninfo_, config_.database.ssl_mode, 0, 0, "toriid"}, storage, keys, vals);
  Result<PgConn> conn = PgConn(PQconnectdbParams(keys.data(), vals.data(), 1));
  if (PQstatus(conn->get()) != CONNECTION_OK) conn = ErrorFromConn(conn->get());
  if (!conn.ok()) {
    return Error(conn.error().code(), "cannot connect to the database: " + conn.error().message());
  }
  PQsetNoticeProcessor(conn->get(), [](void*, const char*) {}, nullptr);
  auto report = ApplyMigrations(conn->get());
  if (!report.ok()) return report.error();
  TLOG_INFO("daemon: schema at version %d (%d applied now)", report->current, report->applied);
  // The audit switches live in the database so that triggers (which also
  // see plain-SQL writes) can read them.
  std::string enabled = config_.audit.enabled ? "true" : "false";
  std::string sessions = config_.audit.sessions ? "true" : "false";
  auto configured = ExecParamsBlocking(conn->get(), "SELECT torii_configure_audit($1::bool, $2::bool)",
                                       {enabled.c_str(), sessions.c_str()});
  if (!configured.ok()) return Error(configured.error().code(), "cannot set the audit switches: " + configured.error().message());
  return {};
}

Status Daemon::MigrateOnly() {
  if (auto st = StartDatabase(); !st.ok()) return st;
  return RunMigrations();
}

Status Daemon::Start() {
  started_ms_ = uv_now(&loop_);
  // main.cpp refuses first (exit status 2); this keeps any other caller safe.
  ProtectedMode protect = CheckProtectedMode(config_);
  if (!protect.refusal.empty()) return Error::InvalidArgument(protect.refusal);
  plaintext_warning_ = protect.warning;
  plaintext_endpoints_ = protect.plaintext;
  if (!plaintext_warning_.empty()) TLOG_WARN("%s", plaintext_warning_.c_str());
  // CURVE first: a key error stops the start before any server is started,
  // and the ZAP handler must serve before the sockets bind (security.h).
  std::string curve_secret;
  if (!config_.security.curve_secret_key_file.empty()) {
    auto secret = LoadServerSecretKey(config_.security.curve_secret_key_file);
    if (!secret.ok()) return secret.error();
    curve_secret = std::move(*secret);
    zap_ = std::make_unique<ZapHandler>(&loop_, zmq_);
    if (auto st = zap_->Start(config_.security.curve_authorized_keys_dir); !st.ok()) return st;
  } else if (!config_.security.curve_authorized_keys_dir.empty()) {
    return Error::InvalidArgument(
        "security.curve_authorized_keys_dir is set but security.curve_secret_key_file is not: CURVE would be off "
        "and every client admitted");
  }
  if (auto st = StartDatabase(); !st.ok()) return st;
  if (auto st = RunMigrations(); !st.ok()) return st;
  // The loop has not run during the blocking start-up (the embedded server,
  // the migrations): without this, timers started now would count from its
  // stale clock, and a connect timeout shorter than the start-up would fire
  // at once.
  uv_update_time(&loop_);

  PoolOptions po;
  po.conninfo = conninfo_;
  po.min_connections = static_cast<int>(config_.database.min_connections);
  po.max_connections = static_cast<int>(config_.database.max_connections);
  po.connect_timeout_ms = static_cast<int>(config_.database.connect_timeout_ms);
  po.ssl_mode = config_.database.ssl_mode;
  po.tcp_user_timeout_ms = static_cast<int>(config_.database.tcp_user_timeout_ms);
  po.pipeline_depth = static_cast<int>(config_.server.pipeline_depth);
  po.max_pending = static_cast<size_t>(config_.server.max_pending);
  pool_ = std::make_unique<Pool>(&loop_, po);

  router_ = std::make_unique<Router>(&loop_, zmq_, [this](Envelope&& env, zmq::message_t&& body) {
    // A key revoked by a reload loses service at once, also on a connection
    // ZAP admitted before (see security.h).
    if (zap_ && !zap_->Admits(body)) return;
    requests_->OnMessage(std::move(env), std::move(body));
  });
  if (zap_) {
    if (auto st = ApplyCurveServer(router_->socket(), curve_secret); !st.ok()) return st;
  }
  if (auto st = router_->Bind(config_.server.requests, config_.server.max_message_bytes); !st.ok()) return st;

  DecodeLimits limits;
  limits.max_str = limits.max_bin = static_cast<size_t>(config_.server.max_message_bytes);
  requests_ = std::make_unique<Requests>(&loop_, *router_, *pool_, limits);
  requests_->set_default_timeout_ms(static_cast<uint64_t>(config_.server.request_timeout_ms));
  if (zap_) requests_->set_bound_tenant([this](const zmq::message_t& body) { return zap_->BoundTenant(body); });
  hot_ = std::make_unique<HotSessions>(static_cast<size_t>(config_.cache.sessions),
                                      static_cast<uint64_t>(config_.cache.lease_ms) * 1000);
  if (hot_->enabled()) requests_->set_hot_sessions(hot_.get());
  LocalOpHooks hooks;
  hooks.schema_version = static_cast<uint64_t>(EmbeddedMigrations().back().version);
  hooks.stats = [this] { return StatsBody(); };
  hooks.tenants = [this](std::function<void(Result<std::string>)> done) {
    std::vector<Command> cmds;
    cmds.emplace_back(Stmt::kTenantCounts);
    // Every tenant's rows: torii.tenant '*' (0014).
    (void)pool_->Submit(
        std::move(cmds), true,
        [this, done](Result<JobOutput>&& out) {
          if (!out.ok() || out->results.empty()) {
            done(out.ok() ? Error::Internal("no result") : out.error());
            return;
          }
          const PGresult* r = out->results[0].get();
          const auto& requests = requests_->tenant_requests();
          msgpack::sbuffer buf;
          Packer pk(buf);
          pk.pack_map(static_cast<uint32_t>(PQntuples(r)));
          for (int i = 0; i < PQntuples(r); i++) {
            std::string name = PQgetvalue(r, i, 0);
            auto it = requests.find(name);
            PackStr(pk, name);
            pk.pack_map(3);
            PackStr(pk, "users");
            pk.pack_uint64(std::strtoull(PQgetvalue(r, i, 1), nullptr, 10));
            PackStr(pk, "sessions");
            pk.pack_uint64(std::strtoull(PQgetvalue(r, i, 2), nullptr, 10));
            PackStr(pk, "requests");
            pk.pack_uint64(it == requests.end() ? 0 : it->second);
          }
          done(std::string(buf.data(), buf.size()));
        },
        "*");
  };
  hooks.cleanup = [this](std::function<void(Result<uint64_t>)> done) {
    janitor_->RunNow([this, done = std::move(done)](Result<uint64_t> n) {
      hot_->EvictExpired(NowMicros());
      done(std::move(n));
    });
  };
  for (LocalOpDef& op : LocalOps(std::move(hooks))) requests_->AddLocalOp(std::move(op.name), std::move(op.run));

  ConnectOptions co{conninfo_, config_.database.ssl_mode, static_cast<int>(config_.database.connect_timeout_ms),
                    static_cast<int>(config_.database.tcp_user_timeout_ms), "toriid"};
  publisher_ = std::make_unique<Publisher>(&loop_, zmq_, zap_.get());
  if (zap_) {
    if (auto st = ApplyCurveServer(publisher_->socket(), curve_secret); !st.ok()) return st;
  }
  if (auto st = publisher_->Bind(config_.server.events, config_.events.send_hwm); !st.ok()) return st;
  listener_ = std::make_unique<Listener>(&loop_, co, *publisher_, config_.events.heartbeat_ms,
                                         config_.events.probe_interval_ms, config_.events.probe_timeout_ms);
  janitor_ = std::make_unique<Janitor>(&loop_, co, JanitorOptionsFrom(config_));
  notifier_ = std::make_unique<Notifier>(&loop_, [this] { return StatusLine(); });
  if (!config_.metrics.listen.empty()) {
    auto metrics = Metrics::Start(&loop_, config_.metrics.listen, [this] { return Snapshot(); });
    if (!metrics.ok()) return metrics.error();
    metrics_ = std::move(*metrics);
    requests_->set_metrics(metrics_->requests());
  }

  for (auto [sig, handle] : {std::pair{SIGTERM, &sigterm_}, {SIGINT, &sigint_}, {SIGHUP, &sighup_}}) {
    uv_signal_init(&loop_, handle);
    handle->data = this;
    uv_signal_start(handle, [](uv_signal_t* h, int signum) { static_cast<Daemon*>(h->data)->OnSignal(signum); }, sig);
  }
  uv_timer_init(&loop_, &shutdown_timer_);
  shutdown_timer_.data = this;

  pool_->Start([this](Status st) {
    if (!st.ok()) {
      TLOG_WARN("daemon: no database connection yet (%s); retrying", st.error().message().c_str());
      return;
    }
    pool_ready_ = true;
    router_->Start();
    MaybeReady();
  });
  // The cache follows the LISTEN stream: filled only while it flows.
  listener_->set_on_event([this](std::string_view family, std::string_view kind, std::string_view id) {
    hot_->OnEvent({family, kind, id}, NowMicros());
  });
  listener_->set_on_lost([this] { hot_->Deactivate(); });
  // The lease (hot_sessions.h, listener.h): a cached session is served, and
  // heartbeats are sent, only while the listener's probes keep coming back.
  listener_->SetLease(static_cast<uint64_t>(config_.cache.lease_ms));
  listener_->set_on_alive([this](uint64_t sent_mono_us) { hot_->Renew(sent_mono_us); });
  listener_->Start([this] {
    hot_->Activate();
    listening_ = true;
    MaybeReady();
  });
  janitor_->Start();
  return {};
}

void Daemon::MaybeReady() {
  if (ready_ || !pool_ready_ || !listening_ || stopping_) return;
  ready_ = true;
  TLOG_INFO("daemon: ready in %lu ms", (unsigned long)(uv_now(&loop_) - started_ms_));
  notifier_->Ready();
}

std::string Daemon::StatusLine() {
  PoolStats ps = pool_ ? pool_->Stats() : PoolStats{};
  uint64_t now = uv_now(&loop_);
  uint64_t reqs = requests_ ? requests_->stats().requests : 0;
  double rate = now > status_at_ms_ && status_at_ms_ != 0 ? (reqs - status_requests_) * 1000.0 / (now - status_at_ms_) : 0;
  status_requests_ = reqs;
  status_at_ms_ = now;
  char line[160];
  std::snprintf(line, sizeof(line), "%d connections (%d busy), %.0f requests/s, events %s", ps.size, ps.busy, rate,
                listener_ && listener_->stats().listening ? "flowing" : "paused");
  return line;
}

int Daemon::Run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

void Daemon::OnSignal(int signum) {
  if (signum == SIGHUP) {
    Reload();
    return;
  }
  if (stopping_) {
    TLOG_WARN("daemon: second stop signal; answering what is left with errors");
    requests_->FailAll(Error::Unavailable("the daemon is shutting down"));
    FinishShutdown();
    return;
  }
  TLOG_INFO("daemon: %s received; finishing %zu requests in flight", signum == SIGTERM ? "SIGTERM" : "SIGINT",
            requests_->in_flight());
  BeginShutdown();
}

void Daemon::BeginShutdown() {
  stopping_ = true;
  notifier_->Stopping();
  router_->StopReceiving();
  // Every request has a deadline, so waiting for in_flight == 0 ends; the
  // cap covers requests that asked for very long deadlines.
  uint64_t cap = static_cast<uint64_t>(config_.server.request_timeout_ms) + 1000;
  shutdown_timer_.data = this;
  uv_timer_start(&shutdown_timer_, [](uv_timer_t* t) {
    auto* d = static_cast<Daemon*>(t->data);
    d->requests_->FailAll(Error::Timeout("the daemon stopped before the request completed"));
    d->FinishShutdown();
  }, cap, 0);
  requests_->WhenIdle([this] { FinishShutdown(); });
}

void Daemon::FinishShutdown() {
  uv_timer_stop(&shutdown_timer_);
  CloseEmbedded(&shutdown_timer_);
  CloseEmbedded(&sigterm_);
  CloseEmbedded(&sigint_);
  CloseEmbedded(&sighup_);
  requests_->Close();
  pool_->Close(Error::Unavailable("the daemon is shutting down"));
  pool_.reset();
  router_->Close();
  listener_->Close();
  janitor_->Close();
  publisher_->Close();
  notifier_->Close();
  if (zap_) zap_->Close();
  if (metrics_) metrics_->Close();
  TLOG_INFO("daemon: stopped");
}

void Daemon::Reload() {
  if (config_path_.empty()) {
    TLOG_INFO("daemon: SIGHUP: no config file to reload");
    return;
  }
  notifier_->Reloading();
  auto next = Config::Load(config_path_);
  if (!next.ok()) {
    TLOG_ERROR("daemon: reload refused, keeping the running config: %s", next.error().message().c_str());
    notifier_->Ready();
    return;
  }
  // Endpoints and CURVE need a restart, but a file the next start would
  // refuse is refused now, while the running config can still be kept.
  // Host names were resolved at start; only a file with other endpoints or
  // another CURVE setting is resolved again (which may ask DNS).
  bool same_reach = next->server.requests == config_.server.requests && next->server.events == config_.server.events &&
                    next->security.curve_secret_key_file == config_.security.curve_secret_key_file;
  ProtectedMode protect =
      same_reach ? JudgeProtectedMode(*next, plaintext_endpoints_) : CheckProtectedMode(*next);
  if (const std::string& refusal = protect.refusal; !refusal.empty()) {
    TLOG_ERROR("daemon: reload refused, keeping the running config: %s", refusal.c_str());
    notifier_->Ready();
    return;
  }
  std::vector<std::string> changed = config_.Diff(*next);
  std::vector<std::string> need_restart = config_.ApplyReloadable(*next);
  for (const auto& k : changed) {
    bool restart = std::find(need_restart.begin(), need_restart.end(), k) != need_restart.end();
    TLOG_INFO("daemon: reload: %s %s", k.c_str(), restart ? "changed, takes effect after a restart" : "changed");
  }
  LogLevel level;
  if (ParseLogLevel(config_.log.level, &level)) SetLogLevel(level);
  requests_->set_default_timeout_ms(static_cast<uint64_t>(config_.server.request_timeout_ms));
  pool_->SetPipelineDepth(static_cast<int>(config_.server.pipeline_depth));
  pool_->SetMaxPending(static_cast<size_t>(config_.server.max_pending));
  listener_->SetTimings(config_.events.heartbeat_ms, config_.events.probe_interval_ms, config_.events.probe_timeout_ms);
  hot_->set_lease_us(static_cast<uint64_t>(config_.cache.lease_ms) * 1000);
  listener_->SetLease(static_cast<uint64_t>(config_.cache.lease_ms));
  janitor_->SetOptions(JanitorOptionsFrom(config_));
  ConfigureAudit();
  // A folder that cannot be read keeps the keys in force: the daemon goes on
  // serving whom it served, and says that this part of the reload failed.
  Status curve = zap_ ? zap_->Reload(config_.security.curve_authorized_keys_dir) : Status{};
  if (!curve.ok()) {
    TLOG_ERROR("daemon: reload: CURVE keys not reloaded, keeping the %zu authorized keys in force: %s",
               zap_->key_count(), curve.error().message().c_str());
  }
  TLOG_INFO("daemon: reloaded %s (%zu keys changed%s)", config_path_.c_str(), changed.size(),
            curve.ok() ? "" : "; the CURVE keys were not");
  if (!plaintext_warning_.empty()) TLOG_WARN("%s", plaintext_warning_.c_str());
  notifier_->Ready();
}

void Daemon::ConfigureAudit() {
  janitor_->Exec("SELECT torii_configure_audit($1::bool, $2::bool)",
                 {config_.audit.enabled ? "true" : "false", config_.audit.sessions ? "true" : "false"}, [](Status st) {
                   if (!st.ok()) TLOG_WARN("daemon: cannot set the audit switches: %s", st.error().message().c_str());
                 });
}

CounterSnapshot Daemon::Snapshot() {
  CounterSnapshot s;
  s.requests = requests_->stats();
  s.in_flight = requests_->in_flight();
  s.undeliverable = router_->stats().undeliverable;
  s.uptime_ms = uv_now(&loop_) - started_ms_;
  s.pool = pool_ ? pool_->Stats() : PoolStats{};
  s.publisher = publisher_->stats();
  s.seqs = publisher_->seqs();
  s.epoch = publisher_->epoch();
  s.listener = listener_->stats();
  s.janitor = janitor_->stats();
  s.cache = hot_->stats();
  s.cache_active = hot_->active();
  s.cache_leased = hot_->Leased(uv_hrtime() / 1000);
  s.cache_lease_ms = hot_->lease_us() / 1000;
  s.cache_entries = hot_->size();
  s.cache_capacity = hot_->capacity();
  s.cache_memory_bytes = hot_->memory_bytes();
  s.cache_generation = hot_->generation();
  s.cache_lease_age_us = hot_->LeaseAgeUs(uv_hrtime() / 1000);
  s.plaintext_network = !plaintext_warning_.empty();
  return s;
}

std::string Daemon::StatsBody() { return PackStats(Snapshot()); }

}  // namespace torii::daemon
