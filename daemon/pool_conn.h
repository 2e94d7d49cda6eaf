// One pooled connection: connects (PgConnector), prepares every statement,
// then runs jobs in pipeline mode, up to server.pipeline_depth at a time,
// reading each job's results as they come and telling the pool how each
// job ended (Pool::OnJobEnd). Cancels, stall detection and the connection's
// state machine live here; which job goes where is the pool's business.
//
// Owned by Pool::conns_; it holds plain pointers to the jobs in flight on it
// (owned by Pool::jobs_, pool_job.h) and hands each back to the pool when
// it ends or the connection breaks. Loop thread only.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "connector.h"
#include "pool.h"

namespace torii::daemon {

struct Job;

// Every change goes through PoolConn::SetState, which refuses an illegal one.
enum class ConnState {
  kConnecting,  // PgConnector under way; in Pool::conns_, takes no jobs
  kPreparing,   // connected, statements being prepared; in conns_, takes no jobs
  kReady,       // in conns_, takes jobs: idle with none in flight, busy with some
  kClosing,     // being closed on purpose (shrink, shutdown); leaves conns_ on the next tick
  kBroken,      // failed, its jobs handed back; out of conns_, freed on the next turn
};
const char* StateName(ConnState s);

// How a job's run on a connection ended, for Pool::OnJobEnd.
struct JobEnd {
  std::vector<PgResult> results;  // one per command, when no error
  std::unique_ptr<Error> error;   // the first error of its commands
  bool aborted = false;           // skipped because an earlier job of its group failed
  bool recent_cancel = false;     // a cancel was sent lately, and may have hit it
};

class PoolConn {
 public:
  PoolConn(Pool* pool, uint64_t id);
  ~PoolConn() { Release(); }
  PoolConn(const PoolConn&) = delete;
  PoolConn& operator=(const PoolConn&) = delete;

  uint64_t id() const { return id_; }
  ConnState state() const { return state_; }
  size_t inflight() const { return jobs_; }
  // Ready, and not waiting for a switch of torii.tenant to be confirmed
  // (see SwitchTenant): may be sent jobs.
  bool accepting() const { return state_ == ConnState::kReady && !switching_; }
  // The tenant its next job runs in without a switch (empty: unknown);
  // while switching(), the one it is switching to.
  const std::string& tenant() const { return tenant_; }
  bool switching() const { return switching_; }
  uint64_t idle_since() const { return idle_since_; }
  // libuv refused to watch the socket of a ready connection
  // (PgSocketWatch::error()): it hears nothing and must be given up. (While
  // connecting, PgConnector fails the attempt by itself.)
  int socket_error() const { return state_ == ConnState::kConnecting ? 0 : socket_.error(); }
  // Owes results and has been silent too long: kStallMs in any case, or
  // `after_cancel_ms` since a cancel was sent (the server always answers a
  // cancelled statement at once, so silence then means a dead path).
  bool Stalled(uint64_t now, uint64_t after_cancel_ms) const;
  // Sends the cancel again when the job it was meant for still runs, with
  // no progress since the last one (see kCancelResendMs).
  void ResendCancel(uint64_t now);

  void Connect(const ConnectOptions& options);
  // Sends the job; false when it went back to the pool's queue instead.
  bool Send(Job* job);
  // Ends the open group of read-only jobs with a Sync and flushes.
  void CloseGroup();
  // The job's caller gave up or its deadline passed: cancel it if it runs now.
  void Abandoned(Job* job);
  // Fails every job in flight with `why` and releases the connection.
  void Break(const std::string& why);
  void CloseIdle();

 private:
  // A job in flight and what has been read of its results. job == nullptr
  // stands for the Sync that ends a group of read-only jobs, or, with
  // tenant_switch, for a switch of torii.tenant and its own Sync.
  struct InFlight {
    Job* job = nullptr;
    size_t cur = 0;  // command whose results are being read
    bool got_current = false;
    JobEnd end;
    bool tenant_switch = false;
  };

  void OnConnected(Result<PGconn*>&& conn);
  // The job whose statements run now or next: the first in flight.
  Job* FirstJob() const;
  void SetState(ConnState to);
  void OnPoll(int status, int events);
  void StartPreparing();
  void ReadResults();
  void HandleResult(PGresult* r);
  void FinishHead();
  // Sets torii.tenant to `job`'s tenant, in a transaction of its own (so
  // that no job's failure rolls it back), and sends nothing more until its
  // result says it took: a cancel aimed at an earlier job can land on it,
  // and a job sent behind a switch that failed would run in the tenant the
  // connection had (with the policies in force, finding nothing). The job
  // goes back to the front of the pool's queue either way.
  void SwitchTenant(Job* job);
  void Cancel();
  bool Flush();
  void Watch(int events);
  void Release();
  uint64_t Now() const;

  Pool* pool_;
  uint64_t id_;
  ConnState state_ = ConnState::kConnecting;
  PGconn* conn_ = nullptr;  // once connected
  PgSocketWatch socket_;
  PgConnector connector_;
  std::deque<InFlight> inflight_;  // in send order
  size_t jobs_ = 0;                // entries of inflight_ with a job
  bool group_open_ = false;
  // What torii.tenant is set to on this connection as far as what was sent
  // goes (a new connection has none: the default tenant); empty when a
  // switch failed, so that the next job switches again.
  std::string tenant_ = "default";
  bool switching_ = false;  // a switch is sent, its result not read yet
  int prepares_left_ = 0;
  bool cancel_sent_ = false;
  uint64_t cancel_first_at_ = 0;  // the first cancel for the job running now
  uint64_t cancel_sent_at_ = 0;   // the latest cancel
  uint64_t idle_since_ = 0;
  uint64_t last_progress_ = 0;
};

}  // namespace torii::daemon
