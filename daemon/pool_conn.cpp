// One pooled libpq connection in pipeline mode, driven by uv_poll on PQsocket.
#include "pool_conn.h"

#include <algorithm>

#include "lookup_batch.h"
#include "pool_job.h"
#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

// A connection that owes results and sends nothing for this long is dead
// (a silent network path); its jobs fail and it is replaced.
constexpr uint64_t kStallMs = 15000;
// PostgreSQL drops a cancel that arrives while the backend is between
// statements (in a pipeline: after one statement ended, before the next
// began). A cancel that brought no progress within this is sent again.
constexpr uint64_t kCancelResendMs = 100;

}  // namespace

const char* StateName(ConnState s) {
  switch (s) {
    case ConnState::kConnecting: return "connecting";
    case ConnState::kPreparing: return "preparing";
    case ConnState::kReady: return "ready";
    case ConnState::kClosing: return "closing";
    case ConnState::kBroken: return "broken";
  }
  return "?";
}

PoolConn::PoolConn(Pool* pool, uint64_t id)
    : pool_(pool),
      id_(id),
      socket_(pool->loop_, this, [](void* o, int status, int events) { static_cast<PoolConn*>(o)->OnPoll(status, events); }),
      connector_(pool->loop_, socket_, "pool: conn", id) {}

uint64_t PoolConn::Now() const { return uv_now(pool_->loop_); }

bool PoolConn::Stalled(uint64_t now, uint64_t after_cancel_ms) const {
  if (inflight_.empty()) return false;
  if (now - last_progress_ > kStallMs) return true;
  return cancel_sent_ && now - std::max(cancel_first_at_, last_progress_) > after_cancel_ms;
}

void PoolConn::ResendCancel(uint64_t now) {
  if (!cancel_sent_ || now - std::max(cancel_sent_at_, last_progress_) < kCancelResendMs) return;
  Job* first = FirstJob();
  if (first != nullptr && (first->abandoned || first->cancel_wanted)) Cancel();
}

void PoolConn::SetState(ConnState to) {
  static constexpr bool kLegal[5][5] = {
      // to: connecting preparing ready closing broken
      {false, true, false, true, true},   // from connecting
      {false, false, true, true, true},   // from preparing
      {false, false, false, true, true},  // from ready
      {false, false, false, false, true}, // from closing
      {false, false, false, false, false},// from broken
  };
  if (!kLegal[static_cast<int>(state_)][static_cast<int>(to)]) {
    TLOG_ERROR("pool: conn %lu: illegal state change %s -> %s", (unsigned long)id_, StateName(state_), StateName(to));
    return;
  }
  TLOG_DEBUG("pool: conn %lu: %s -> %s", (unsigned long)id_, StateName(state_), StateName(to));
  state_ = to;
}

void PoolConn::Connect(const ConnectOptions& options) {
  last_progress_ = Now();
  connector_.Start(options, [this](Result<PGconn*>&& conn) { OnConnected(std::move(conn)); });
}

void PoolConn::OnConnected(Result<PGconn*>&& conn) {
  if (!conn.ok()) {
    pool_->OnConnectFailed(this, conn.error());
    return;
  }
  conn_ = *conn;
  if (PQenterPipelineMode(conn_) != 1) {
    pool_->OnConnectFailed(this, ErrorFromConn(conn_));
    return;
  }
  SetState(ConnState::kPreparing);
  StartPreparing();
}

void PoolConn::Watch(int events) { socket_.Watch(conn_, events); }

void PoolConn::OnPoll(int status, int events) {
  if (state_ == ConnState::kConnecting) {
    connector_.OnSocket();
    return;
  }
  if (state_ == ConnState::kBroken || state_ == ConnState::kClosing) return;
  if (status < 0) {
    Break(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  if (events & UV_WRITABLE) {
    if (!Flush()) return;
  }
  if (events & UV_READABLE) ReadResults();
}

void PoolConn::StartPreparing() {
  for (int i = 0; i < kStatementCount; i++) {
    const StatementDef& def = Statement(static_cast<Stmt>(i));
    if (PQsendPrepare(conn_, def.name, def.sql, 0, nullptr) != 1) {
      Break("cannot send statements");
      return;
    }
  }
  // PostgreSQL plans a prepared statement anew for its first five runs,
  // then keeps a generic plan only if that is estimated no dearer than the
  // runs so far. For a batched lookup the generic plan is the right one for
  // any number of keys (an index probe per key), but it is costed as for
  // 10 keys, so small first batches would keep it planning every batch
  // anew, which costs more than the lookups. Five runs over kMaxBatch keys
  // that match nothing (all-zero digests) settle it on the generic plan.
  const std::string zero(32, '\0');
  std::string zeros = BatchKeys(LookupBatches::kMaxBatch, [&zero](size_t) -> const std::string& { return zero; });
  const char* values[2] = {zeros.data(), "default"};
  int lengths[2] = {static_cast<int>(zeros.size()), 7};
  int formats[2] = {1, 0};
  for (int i = 0; i < kStatementCount; i++) {
    const StatementDef& def = Statement(static_cast<Stmt>(i));
    if (def.batched == Stmt::kCount) continue;
    const int n = Statement(def.batched).tenant_param >= 0 ? 2 : 1;
    for (int run = 0; run < 5; run++) {
      if (PQsendQueryPrepared(conn_, Statement(def.batched).name, n, values, lengths, formats, 0) != 1) {
        Break("cannot send statements");
        return;
      }
    }
  }
  prepares_left_ = kStatementCount;
  if (PQpipelineSync(conn_) != 1) {
    Break("cannot send statements");
    return;
  }
  Watch(UV_READABLE);
  Flush();
}

bool PoolConn::Flush() {
  int r = PQflush(conn_);
  if (r < 0) {
    Break("write failed");
    return false;
  }
  Watch(r == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
  return true;
}

void PoolConn::SwitchTenant(Job* job) {
  pool_->Requeue(job);
  // The open group's Sync first: the switch is not part of its transaction.
  if (group_open_) CloseGroup();
  if (state_ != ConnState::kReady) return;
  const char* values[1] = {job->tenant.c_str()};
  int lengths[1] = {static_cast<int>(job->tenant.size())};
  int formats[1] = {0};
  if (PQsendQueryPrepared(conn_, Statement(Stmt::kSetTenant).name, 1, values, lengths, formats, 0) != 1 ||
      PQpipelineSync(conn_) != 1) {
    Break(std::string("send failed: ") + PQerrorMessage(conn_));
    return;
  }
  if (inflight_.empty()) last_progress_ = Now();
  InFlight f;
  f.tenant_switch = true;
  inflight_.push_back(std::move(f));
  tenant_ = job->tenant;
  switching_ = true;
  Flush();
}

bool PoolConn::Send(Job* job) {
  if (!job->groupable && group_open_) CloseGroup();
  if (state_ != ConnState::kReady) {
    pool_->Requeue(job);
    return false;
  }
  if (job->tenant != tenant_) {
    SwitchTenant(job);
    return false;
  }
  for (const Command& cmd : job->cmds) {
    const StatementDef& def = Statement(cmd.stmt);
    size_t n = cmd.values.size();
    const char* values[Command::kMaxParams];
    int lengths[Command::kMaxParams];
    int formats[Command::kMaxParams];
    if (n > Command::kMaxParams) {
      pool_->FailJob(job, Error::Internal("too many parameters"));
      return true;
    }
    for (size_t i = 0; i < n; i++) {
      values[i] = cmd.null(i) ? nullptr : cmd.values[i].data();
      lengths[i] = static_cast<int>(cmd.values[i].size());
      formats[i] = (def.binary_params >> i) & 1;
    }
    if (PQsendQueryPrepared(conn_, def.name, static_cast<int>(n), values, lengths, formats, 0) != 1) {
      // The pipeline is in an unknown state now: give the job back and fail the connection.
      pool_->Requeue(job);
      Break(std::string("send failed: ") + PQerrorMessage(conn_));
      return false;
    }
  }
  if (jobs_ == 0) last_progress_ = Now();
  job->conn = this;
  inflight_.push_back(InFlight{job, 0, false, {}});
  jobs_++;
  if (job->groupable) {
    // The Sync (and the flush) come in CloseGroup at the end of the turn.
    group_open_ = true;
    return true;
  }
  if (PQpipelineSync(conn_) != 1) {
    Break("send failed");
    return false;
  }
  return Flush();
}

void PoolConn::CloseGroup() {
  if (!group_open_ || state_ != ConnState::kReady) return;
  group_open_ = false;
  if (PQpipelineSync(conn_) != 1) {
    Break("send failed");
    return;
  }
  inflight_.push_back(InFlight{});
  Flush();
}

void PoolConn::ReadResults() {
  if (PQconsumeInput(conn_) != 1) {
    Break(std::string("read failed: ") + PQerrorMessage(conn_));
    return;
  }
  last_progress_ = Now();
  for (;;) {
    if (state_ != ConnState::kPreparing && inflight_.empty()) break;
    if (PQisBusy(conn_)) break;
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) {
      // End of one command's results.
      if (state_ == ConnState::kReady && !inflight_.empty()) {
        InFlight& head = inflight_.front();
        if (head.job != nullptr && head.got_current) {
          head.cur++;
          head.got_current = false;
          // A grouped job is complete once its own commands are read; the
          // group's Sync comes after the last job.
          if (head.job->groupable && head.cur == head.job->cmds.size()) FinishHead();
          if (state_ != ConnState::kReady) return;
          continue;
        }
        if (head.tenant_switch) continue;  // its Sync follows
      }
      if (state_ == ConnState::kPreparing) continue;
      break;
    }
    HandleResult(r);
    if (state_ == ConnState::kBroken || state_ == ConnState::kClosing) return;
  }
  if (PQstatus(conn_) == CONNECTION_BAD) Break("connection lost");
}

void PoolConn::HandleResult(PGresult* r) {
  ExecStatusType st = PQresultStatus(r);
  if (state_ == ConnState::kPreparing) {
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      if (prepares_left_ != 0) {
        Break("statement preparation did not complete");
        return;
      }
      SetState(ConnState::kReady);
      idle_since_ = Now();
      pool_->OnConnReady(this);
      return;
    }
    if (st == PGRES_COMMAND_OK) {
      prepares_left_--;
      PQclear(r);
      return;
    }
    if (st == PGRES_TUPLES_OK) {  // a plan warm-up run (StartPreparing)
      PQclear(r);
      return;
    }
    Error e = ErrorFromResult(r);
    PQclear(r);
    Break("preparing statements failed (is the schema migrated?): " + e.message());
    return;
  }
  if (inflight_.empty()) {
    PQclear(r);
    return;
  }
  InFlight& head = inflight_.front();
  if (st == PGRES_PIPELINE_SYNC) {
    PQclear(r);
    if (head.tenant_switch) {
      // Confirmed, or failed (tenant_ is cleared then): jobs may go again.
      inflight_.pop_front();
      switching_ = false;
      if (jobs_ == 0) idle_since_ = Now();
      pool_->Kick();
      return;
    }
    if (head.job == nullptr) {
      // The end of a group of read-only jobs, all already answered.
      inflight_.pop_front();
      if (jobs_ == 0) idle_since_ = Now();
      return;
    }
    FinishHead();
    return;
  }
  if (head.job == nullptr && head.tenant_switch) {
    if (st != PGRES_TUPLES_OK) {
      // Rolled back (a cancel aimed at another job may hit it): the jobs
      // sent behind it run in the tenant the connection had, and find
      // nothing of theirs (their statements name their tenant too); the
      // next job switches again.
      Error e = ErrorFromResult(r);
      TLOG_WARN("pool: conn %lu: switching tenant failed: %s", (unsigned long)id_, e.message().c_str());
      tenant_.clear();
    }
    PQclear(r);
    return;
  }
  if (head.job == nullptr) {
    PQclear(r);
    Break("results out of step with the pipeline");
    return;
  }
  head.got_current = true;
  JobEnd& end = head.end;
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    end.results.emplace_back(r);
  } else if (st == PGRES_PIPELINE_ABORTED) {
    PQclear(r);
    if (!end.error) {
      // Skipped because an earlier command failed: of this job (its error
      // stands), or of an earlier job of its group (it never ran: retry).
      if (head.job->groupable && head.cur == 0) end.aborted = true;
      end.error = std::make_unique<Error>(Error::Storage("statement aborted"));
    }
  } else {
    if (!end.error) end.error = std::make_unique<Error>(ErrorFromResult(r));
    PQclear(r);
  }
}

void PoolConn::FinishHead() {
  InFlight head = std::move(inflight_.front());
  inflight_.pop_front();
  jobs_--;
  head.job->conn = nullptr;
  // A cancel lands on whatever runs when it arrives; one sent lately may
  // have hit this job instead of the abandoned one it was aimed at.
  head.end.recent_cancel = cancel_sent_at_ != 0 && Now() - cancel_sent_at_ < 2000;
  cancel_sent_ = false;
  Job* next = FirstJob();
  if (next != nullptr && (next->abandoned || next->cancel_wanted)) Cancel();
  if (jobs_ == 0) idle_since_ = Now();
  pool_->OnJobEnd(head.job, std::move(head.end));
}

void PoolConn::Cancel() {
  PGcancel* c = PQgetCancel(conn_);
  if (c == nullptr) return;
  if (!cancel_sent_) cancel_first_at_ = Now();
  cancel_sent_ = true;
  cancel_sent_at_ = Now();
  pool_->counters_.cancels++;
  // PQcancel blocks (it opens a connection): run it on libuv's thread pool.
  struct Work {
    uv_work_t req;
    PGcancel* cancel;
  };
  auto* w = new Work{{}, c};
  w->req.data = w;
  uv_queue_work(
      pool_->loop_, &w->req,
      [](uv_work_t* req) {
        auto* w = static_cast<Work*>(req->data);
        char err[256];
        PQcancel(w->cancel, err, sizeof(err));
      },
      [](uv_work_t* req, int) {
        auto* w = static_cast<Work*>(req->data);
        PQfreeCancel(w->cancel);
        delete w;
      });
}

void PoolConn::Abandoned(Job* job) {
  if (job == FirstJob() && !cancel_sent_) Cancel();
}

Job* PoolConn::FirstJob() const {
  // Skips the Syncs of groups whose jobs are all answered already.
  for (const InFlight& f : inflight_) {
    if (f.job != nullptr) return f.job;
  }
  return nullptr;
}

void PoolConn::Break(const std::string& why) {
  if (state_ == ConnState::kBroken) return;
  bool was_ready = state_ == ConnState::kReady || state_ == ConnState::kPreparing;
  TLOG_WARN("pool: conn %lu: disconnected (%s), %zu jobs in flight", (unsigned long)id_, why.c_str(),
            inflight_.size());
  SetState(ConnState::kBroken);
  std::deque<InFlight> jobs;
  jobs.swap(inflight_);
  Release();
  jobs_ = 0;
  group_open_ = false;
  for (InFlight& f : jobs) {
    if (f.job == nullptr) continue;  // a group's Sync
    f.job->conn = nullptr;
    pool_->FailJob(f.job, Error::Unavailable("database connection lost: " + why));
  }
  if (was_ready) pool_->counters_.broken++;
  pool_->OnConnBroken(this, Error::Unavailable(why));
}

void PoolConn::CloseIdle() {
  SetState(ConnState::kClosing);
  Release();
}

void PoolConn::Release() {
  connector_.Cancel();
  socket_.Release();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

}  // namespace torii::daemon
