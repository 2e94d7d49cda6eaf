// Periodic maintenance: deletes expired sessions, then the other expiring
// tables (the cleanup targets of janitor.cpp: expired secure tokens, JWT
// revocations and user cutoffs past their expires_at, old login failures),
// then old audit rows, in batches, on a timer every
// cleanup.interval_s with up to 10% jitter, and on demand through the
// cleanup_expired_sessions operation.
//
// One pass at a time across every daemon on the database: a pass holds a
// session-level advisory lock on the janitor's own connection; a scheduled
// tick that cannot take it skips. Each batch is its own short transaction
// that sets torii.cleanup, so the triggers write no per-row events or audit
// rows; the pass ends with one summary (a session.expired event through
// NOTIFY and one audit row; the other targets send no events and write no
// per-row audit). Batches go back to the loop in between, so requests keep
// flowing. Each target gets at least one batch per pass, even when the time
// budget is spent. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pgconn.h"

namespace torii::daemon {

struct JanitorOptions {
  uint64_t interval_s = 60;
  uint64_t batch_size = 5000;
  uint64_t time_budget_ms = 30000;
  uint64_t audit_retention_days = 0;
  uint64_t login_failure_retention_s = 604800;
};

struct JanitorStats {
  uint64_t runs = 0;            // passes that ran (held the lock)
  uint64_t skipped = 0;         // ticks that found another daemon's pass running
  uint64_t deleted = 0;         // expired sessions deleted, all passes
  uint64_t audit_pruned = 0;
  int64_t last_run_at_us = 0;
  uint64_t last_duration_ms = 0;
  uint64_t last_deleted = 0;
  // Rows deleted per table, all passes: "sessions" and every cleanup target.
  std::map<std::string, uint64_t> deleted_by_table;
  std::string last_error;
  uint64_t failures = 0;        // passes that ended in an error
};

class Janitor {
 public:
  using Done = std::function<void(Result<uint64_t>)>;

  Janitor(uv_loop_t* loop, ConnectOptions options, JanitorOptions jopt);
  ~Janitor();

  void Start();
  void Close();
  void SetOptions(const JanitorOptions& jopt);
  // Runs a pass now (waiting for another daemon's pass to end) and reports
  // how many expired sessions it deleted.
  void RunNow(Done done);
  // Runs one statement on the maintenance connection (after any pass in
  // progress): for settings the database must know, such as audit switches.
  void Exec(std::string sql, std::vector<std::optional<std::string>> params, std::function<void(Status)> done);
  const JanitorStats& stats() const { return stats_; }

 private:
  struct Pass;
  void ScheduleTick();
  void Tick();
  void Begin(bool wait_for_lock, Done done);
  void EnsureConnected(std::function<void(Status)> then);
  void Batch(std::shared_ptr<Pass> pass);
  void TargetBatch(std::shared_ptr<Pass> pass, size_t target);
  void Prune(std::shared_ptr<Pass> pass);
  void Finish(std::shared_ptr<Pass> pass, Status status);
  void StartNextQueued();

  uv_loop_t* loop_;
  ConnectOptions conn_options_;
  JanitorOptions opt_;
  std::unique_ptr<AsyncConn> conn_;
  uv_timer_t timer_;
  bool running_ = false;
  bool closed_ = false;
  std::deque<Done> queued_;  // RunNow calls waiting for the current pass
  JanitorStats stats_;
};

}  // namespace torii::daemon
