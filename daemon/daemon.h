// The daemon: wires config, the embedded PostgreSQL, migrations, the pool,
// the ROUTER request path and (later modules) events and cleanup onto one
// libuv loop, and owns their lifetimes. Signals are loop events: SIGTERM and
// SIGINT drain and stop, SIGHUP reloads.
//
// Start() blocks for the start-up work (embedded server, migrations), which
// is the only place blocking libpq calls are made. Run() returns the exit
// status once the loop has stopped and every handle is closed.
//
// Owns the loop, the ZeroMQ context and every part (the members below).
// One thread: the caller of Start(), Run() and the destructor, which is the
// loop thread; every callback the parts make runs on it (Metrics' scrape
// threads read only its own copies, metrics.h).
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "torii/config.h"
#include "torii/embedded_pg.h"
#include "torii/error.h"
#include "torii/protected_mode.h"

namespace torii::daemon {

class Pool;
class Router;
class Requests;
class Publisher;
class Listener;
class Janitor;
class Notifier;
class ZapHandler;
class HotSessions;
class Metrics;
struct CounterSnapshot;

class Daemon {
 public:
  Daemon(Config config, std::string config_path);
  ~Daemon();

  // Embedded server (when no URL), migrations, sockets, pool. Blocking.
  Status Start();
  // Runs the loop until shutdown; returns the process exit status.
  int Run();
  // Applies migrations and returns (toriid --migrate).
  Status MigrateOnly();

 private:
  Status StartDatabase();
  Status RunMigrations();
  void OnSignal(int signum);
  void BeginShutdown();
  void FinishShutdown();
  void Reload();
  void MaybeReady();
  void ConfigureAudit();
  std::string StatsBody();
  // stats' `tenants` (docs/protocol.md section 7): the last per-tenant
  // counts and this daemon's requests per tenant; RefreshTenantCounts asks
  // the database for new counts when the last are older than 10 s.
  void RefreshTenantCounts();
  std::string PackTenants();
  std::string StatusLine();
  CounterSnapshot Snapshot();

  Config config_;
  std::string config_path_;
  std::string conninfo_;
  std::unique_ptr<EmbeddedPostgres> embedded_;
  uv_loop_t loop_;
  zmq::context_t zmq_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<Requests> requests_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> tenant_counts_;  // name -> users, live sessions
  uint64_t tenant_counts_at_ms_ = 0;
  bool tenant_counts_running_ = false;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Janitor> janitor_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<ZapHandler> zap_;  // set when CURVE is on
  std::unique_ptr<HotSessions> hot_;
  std::unique_ptr<Metrics> metrics_;  // set when metrics.listen is
  uv_signal_t sigterm_, sigint_, sighup_;
  uv_timer_t shutdown_timer_;
  bool stopping_ = false;
  bool ready_ = false;
  bool pool_ready_ = false;
  bool listening_ = false;
  uint64_t status_requests_ = 0;
  uint64_t status_at_ms_ = 0;
  int exit_code_ = 0;
  uint64_t started_ms_ = 0;
  // Set while serving plaintext beyond loopback by opt-in (protected mode,
  // torii/protected_mode.h): the WARN line repeated at each reload.
  std::string plaintext_warning_;
  // The endpoints found at start to reach beyond loopback without CURVE
  // (protected mode); a reload that keeps endpoints and CURVE judges them
  // again rather than resolving host names on the loop.
  std::vector<PlaintextEndpoint> plaintext_endpoints_;
};

}  // namespace torii::daemon
