// The pool of non-blocking libpq connections that runs every request's
// statements. Each connection is in pipeline mode, with up to
// server.pipeline_depth jobs in flight; a job is a few commands and one
// Sync, so it is one implicit transaction and a failure aborts only that job.
//
// Owned by the Daemon; every method runs on the loop thread. A job handed to
// Submit() is owned by the pool until its `done` callback has run (exactly
// once, with results or an error). Abandon() detaches a job whose caller no
// longer wants it (deadline passed): it is then freed without a callback.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ops/command.h"
#include "torii/error.h"
#include "torii/pg.h"

namespace torii::daemon {

// A job's outcome on success: one result per command. A member of a lookup
// batch (see Pool::TakeLookups) has no result of its own: it reads row `row`
// (-1: none) of the batch's result `batch`, valid until its `done` returns.
struct JobOutput {
  std::vector<PgResult> results;
  const PGresult* batch = nullptr;
  int row = -1;
};

class Job {
 public:
  // Outcome: on success the results (JobOutput); on failure the error.
  // A command's SQL error fails the whole job with that error.
  using Done = std::function<void(Result<JobOutput>&&)>;

  Job(std::vector<Command> cmds, Done done) : cmds_(std::move(cmds)), done_(std::move(done)) {}
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const std::vector<Command>& commands() const { return cmds_; }
  // A read-only job may share one Sync (one implicit transaction, one round
  // trip) with the other read-only jobs dispatched in the same loop turn.
  // Never for writes (they would commit or roll back together) or actor
  // requests (their role setting would leak into the next job).
  void set_groupable(bool g) { groupable_ = g; }

 private:
  friend class Pool;
  friend class PoolConn;
  std::vector<Command> cmds_;
  Done done_;
  std::vector<PgResult> results_;
  std::unique_ptr<Error> error_;
  size_t cur_ = 0;           // command whose results are being read
  bool got_current_ = false;
  bool abandoned_ = false;
  bool cancel_wanted_ = false;  // deadline passed; cancel it, but still report how it ended
  bool retried_ = false;
  bool groupable_ = false;
  bool aborted_ = false;  // skipped because an earlier job of its group failed
  class PoolConn* conn_ = nullptr;  // set while in flight
  uint64_t queued_at_ms_ = 0;
  // Lookup batches: a carrier runs the batched statement for its members
  // (owned by it until each is answered); a member points to its carrier.
  std::vector<Job*> members_;
  Job* carrier_ = nullptr;
};

struct PoolOptions {
  std::string conninfo;
  int min_connections = 1;
  int max_connections = 8;
  int connect_timeout_ms = 30000;
  std::string ssl_mode = "prefer";
  int tcp_user_timeout_ms = 10000;
  int pipeline_depth = 128;
  size_t max_pending = 10000;
};

struct PoolStats {
  int size = 0;      // connections open or opening
  int idle = 0;      // ready, nothing in flight
  int busy = 0;      // ready, jobs in flight
  size_t waiting = 0;  // jobs queued for a connection
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t broken = 0;
  uint64_t cancels = 0;
  uint64_t batches = 0;   // lookup batches sent
  uint64_t batched = 0;   // lookups answered by them
};

class PoolConn;

class Pool {
 public:
  Pool(uv_loop_t* loop, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Opens min_connections (at least one). `on_ready` runs with an error
  // each time a connection attempt fails before any connection was ready,
  // and once with success when the first one is; then never again.
  void Start(std::function<void(Status)> on_ready);
  // Queues a job. Fails it at once (overloaded, unavailable) when the queue
  // is full or no connection can be made now; returns false then and the
  // `done` callback has already run.
  bool Submit(Job* job);
  // The caller gave up on the job (deadline). Queued: removed and freed.
  // In flight: its results are discarded when they come, and its statement
  // is cancelled when it is the one running.
  void Abandon(Job* job);
  // The caller's deadline passed. Queued: removed and freed, returns false
  // (it never ran). In flight: its statement is cancelled and `done` still
  // runs once the server says how it ended (cancelled, or committed just
  // before the cancel landed); returns true.
  bool CancelJob(Job* job);
  // Fails queued jobs with `error`, lets in-flight ones finish, closes all.
  void Close(const Error& error);

  void SetPipelineDepth(int depth) { opt_.pipeline_depth = depth; }
  void SetMaxPending(size_t n) { opt_.max_pending = n; }
  PoolStats Stats() const;
  // The pool can take work: a connection is ready, or one is being made and
  // the last attempt did not fail.
  bool available() const;

 private:
  friend class PoolConn;
  void Dispatch();
  // Dispatches at the end of this loop turn, so that the jobs of one turn
  // go out together (see Job::set_groupable).
  void Kick();
  void MaybeGrow();
  void OnConnReady(PoolConn* c);
  void OnConnBroken(PoolConn* c, const Error& why);
  void OnConnectFailed(PoolConn* c, const Error& why);
  void ScheduleReconnect();
  void FailJob(Job* job, Error error);
  // Whether `job` may join a lookup batch: one groupable command whose
  // statement has a batched form.
  static bool Batchable(const Job& job);
  // Takes up to kMaxBatch lookups off lookups_: alone when one is waiting,
  // else under a carrier running the batched statement.
  Job* TakeLookups();
  // Answers a carrier's members from its outcome, then frees it.
  void CompleteBatch(Job* carrier, Result<JobOutput>&& out);
  // A member was given up on; the carrier goes too once all of its members are.
  void MemberGone(Job* carrier);
  size_t waiting() const { return pending_.size() + lookups_.size(); }
  void FailAllPending(const Error& error);
  static void OnRetryTimer(uv_timer_t* t);
  static void OnMaintenanceTimer(uv_timer_t* t);

  uv_loop_t* loop_;
  PoolOptions opt_;
  std::vector<std::unique_ptr<PoolConn>> conns_;
  std::deque<Job*> pending_;
  std::deque<Job*> lookups_;  // batchable jobs waiting (see Batchable)
  std::function<void(Status)> on_ready_;
  uv_timer_t retry_timer_;
  uv_timer_t maintenance_timer_;
  uv_idle_t kick_idle_;    // keeps the loop from blocking until kick_check_ ran
  uv_check_t kick_check_;
  int backoff_ms_ = 0;
  bool last_connect_failed_ = false;
  bool closing_ = false;
  uint64_t next_conn_id_ = 1;
  PoolStats counters_;
};

}  // namespace torii::daemon
