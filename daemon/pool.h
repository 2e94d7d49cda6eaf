// The pool of non-blocking libpq connections that runs every request's
// statements. Each connection (PoolConn, pool_conn.h) is in pipeline mode,
// with up to server.pipeline_depth jobs in flight; a job is a few commands
// and one Sync, so it is one implicit transaction and a failure aborts only
// that job. Single-key lookups of one loop turn go out batched
// (lookup_batch.h).
//
// Owned by the Daemon; every method runs on the loop thread. The pool owns
// its connections and every job submitted (pool_job.h) until the job's
// `done` callback has run (exactly once, with results or an error) or the
// caller has given it up; the caller holds only the JobId, which may be
// passed to Abandon or CancelJob after the job ended (nothing happens then).
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ops/command.h"
#include "torii/error.h"
#include "torii/pg.h"

namespace torii::daemon {

class LookupBatches;

// A job's outcome on success: one result per command. A member of a lookup
// batch (see Pool::TakeLookups) has no result of its own: it reads row `row`
// (-1: none) of the batch's result `batch`, valid until its `done` returns.
struct JobOutput {
  std::vector<PgResult> results;
  const PGresult* batch = nullptr;
  int row = -1;
};

// Identifies a submitted job to its caller; 0 is never a job.
using JobId = uint64_t;
// A job's outcome: on success the results (JobOutput); on failure the
// error. A command's SQL error fails the whole job with that error.
using JobDone = std::function<void(Result<JobOutput>&&)>;

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

struct Job;
class PoolConn;
struct JobEnd;

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
  // Queues a job of `cmds`. A groupable (read-only) job may share one Sync
  // (one implicit transaction, one round trip) with the other groupable
  // jobs dispatched in the same loop turn: never for writes (they would
  // commit or roll back together) or actor requests (their role setting
  // would leak into the next job). Fails it at once (overloaded,
  // unavailable) when the queue is full or no connection can be made now:
  // `done` has then already run, and the result is 0. The job runs with
  // torii.tenant set to `tenant` (row-level security, 0014): a connection
  // is switched, in a transaction of its own, only when it was last set to
  // another tenant, so a deployment that names none never switches.
  [[nodiscard]] JobId Submit(std::vector<Command> cmds, bool groupable, JobDone done,
                             std::string tenant = "default");
  // The caller gave up on the job (deadline). Queued: removed and freed.
  // In flight: its results are discarded when they come, and its statement
  // is cancelled when it is the one running. `done` never runs.
  void Abandon(JobId id);
  // The caller's deadline passed. Queued: removed and freed, returns false
  // (it never ran; `done` will not run). In flight: its statement is
  // cancelled and `done` still runs once the server says how it ended
  // (cancelled, or committed just before the cancel landed); returns true.
  bool CancelJob(JobId id);
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
  // go out together (see Submit's groupable).
  void Kick();
  void MaybeGrow();
  void AddConn();
  void OnConnReady(PoolConn* c);
  void OnConnBroken(PoolConn* c, const Error& why);
  void OnConnectFailed(PoolConn* c, const Error& why);
  void ScheduleReconnect();
  // A job came back from a connection unsent: first in line again.
  void Requeue(Job* job) { pending_.push_front(job); }
  // A connection read a job to its end: answer it, or run it again.
  void OnJobEnd(Job* job, JobEnd&& end);
  // Answers the job (a carrier: its members) and frees it; an abandoned
  // job is only freed.
  void Complete(Job* job, Result<JobOutput>&& out);
  void FailJob(Job* job, Error error);
  // The only place a job is deleted: it is in no queue and on no connection.
  void Free(Job* job);
  void Abandon(Job* job);
  bool CancelJob(Job* job);
  // Takes the next lookup off lookups_: alone, or a batch under a carrier.
  Job* TakeLookups();
  // Answers a carrier's members from its outcome, then frees it.
  void CompleteBatch(Job* carrier, Result<JobOutput>&& out);
  // A member was given up on; the carrier goes too once all of its members are.
  void MemberGone(Job* carrier);
  size_t waiting() const;
  void FailAllPending(const Error& error);
  static void OnRetryTimer(uv_timer_t* t);
  static void OnMaintenanceTimer(uv_timer_t* t);

  uv_loop_t* loop_;
  PoolOptions opt_;
  std::vector<std::unique_ptr<PoolConn>> conns_;
  // Every job, from Submit until it is answered or given up. The queues
  // below, the connections and the carriers only point into it.
  std::unordered_map<JobId, std::unique_ptr<Job>> jobs_;
  JobId next_job_id_ = 1;
  std::deque<Job*> pending_;
  std::unique_ptr<LookupBatches> lookups_;  // batchable jobs waiting
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
