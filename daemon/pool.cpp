// Pooled libpq connections in pipeline mode, driven by uv_poll on PQsocket.
#include "pool.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "pgconn.h"
#include "torii/log.h"
#include "torii/values.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

constexpr uint64_t kIdleCloseMs = 30000;
// A connection that owes results and sends nothing for this long is dead
// (a silent network path); its jobs fail and it is replaced.
constexpr uint64_t kStallMs = 15000;
// PostgreSQL drops a cancel that arrives while the backend is between
// statements (in a pipeline: after one statement ended, before the next
// began). A cancel that brought no progress within this is sent again.
constexpr uint64_t kCancelResendMs = 100;
constexpr uint64_t kMaintenanceMs = 100;  // pool upkeep tick: cancel resends, stalls, idle closes
// Keys per lookup batch: enough that one statement answers a loop turn's
// lookups on a busy daemon, few enough that one batch stays short.
constexpr size_t kMaxBatch = 64;
constexpr uint32_t kByteaOid = 17;

void PutBe32(std::string& out, uint32_t v) {
  v = htonl(v);
  out.append(reinterpret_cast<const char*>(&v), 4);
}

// n keys (key_at(i) for i < n) as a binary one-dimensional bytea[]
// (array_recv's format), built in one allocation.
template <typename KeyAt>
std::string BatchKeys(size_t n, KeyAt key_at) {
  size_t bytes = 20;
  for (size_t i = 0; i < n; i++) bytes += 4 + key_at(i).size();
  std::string out;
  out.reserve(bytes);
  PutBe32(out, 1);  // dimensions
  PutBe32(out, 0);  // no NULLs
  PutBe32(out, kByteaOid);
  PutBe32(out, static_cast<uint32_t>(n));
  PutBe32(out, 1);  // lower bound
  for (size_t i = 0; i < n; i++) {
    const std::string& k = key_at(i);
    PutBe32(out, static_cast<uint32_t>(k.size()));
    out += k;
  }
  return out;
}

}  // namespace

Job::~Job() {
  for (Job* m : members_) delete m;
}

enum class ConnState {
  kConnecting,  // PQconnectPoll under way; in Pool::conns_, takes no jobs
  kPreparing,   // connected, statements being prepared; takes no jobs
  kReady,       // takes jobs: idle with none in flight, busy with some
  kClosing,     // being closed on purpose (shrink, shutdown); takes no jobs
  kBroken,      // failed; its jobs have been failed; removed once closed
};

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

// One pooled connection. Owned by Pool::conns_.
class PoolConn {
 public:
  PoolConn(Pool* pool, uint64_t id)
      : pool_(pool),
        id_(id),
        socket_(pool->loop_, this, [](void* o, int status, int events) { static_cast<PoolConn*>(o)->OnPoll(status, events); }) {}
  ~PoolConn() { Release(); }

  uint64_t id() const { return id_; }
  ConnState state() const { return state_; }
  size_t inflight() const { return jobs_; }
  uint64_t idle_since() const { return idle_since_; }
  uint64_t last_progress() const { return last_progress_; }
  // libuv refused to watch the socket (PgSocketWatch::error()): the
  // connection hears nothing and must be given up.
  int socket_error() const { return socket_.error(); }
  // Owes results and has been silent too long: kStallMs in any case, or
  // `after_cancel_ms` since a cancel was sent (the server always answers a
  // cancelled statement at once, so silence then means a dead path).
  bool Stalled(uint64_t now, uint64_t after_cancel_ms) const {
    if (inflight_.empty()) return false;
    if (now - last_progress_ > kStallMs) return true;
    return cancel_sent_ && now - std::max(cancel_first_at_, last_progress_) > after_cancel_ms;
  }
  // Sends the cancel again when the job it was meant for still runs, with
  // no progress since the last one (see kCancelResendMs).
  void ResendCancel(uint64_t now) {
    if (!cancel_sent_ || now - std::max(cancel_sent_at_, last_progress_) < kCancelResendMs) return;
    Job* first = FirstJob();
    if (first != nullptr && (first->abandoned_ || first->cancel_wanted_)) Cancel();
  }

  void Connect();
  bool Send(Job* job);
  // Ends the open group of read-only jobs with a Sync and flushes.
  void CloseGroup();
  void Cancel();
  // Fails every job in flight with `why` and releases the connection.
  void Break(const std::string& why);
  void CloseIdle();
  void Abandoned(Job* job);

 private:
  // The job whose statements run now or next: the first in flight.
  Job* FirstJob() const;
  void SetState(ConnState to);
  void OnPoll(int status, int events);
  void ContinueConnect();
  void StartPreparing();
  void ReadResults();
  void HandleResult(PGresult* r);
  void FinishHead();
  bool Flush();
  void Watch(int events);
  void Release();
  uint64_t Now() const { return uv_now(pool_->loop_); }

  Pool* pool_;
  uint64_t id_;
  ConnState state_ = ConnState::kConnecting;
  PGconn* conn_ = nullptr;
  PgSocketWatch socket_;
  uv_timer_t* connect_timer_ = nullptr;
  std::string host_;  // the host libpq is connecting to (NoteHost)
  // Jobs in flight in send order; a nullptr entry stands for the Sync that
  // ends a group of read-only jobs.
  std::deque<Job*> inflight_;
  size_t jobs_ = 0;  // non-null entries of inflight_
  bool group_open_ = false;
  int prepares_left_ = 0;
  bool cancel_sent_ = false;
  uint64_t cancel_first_at_ = 0;  // the first cancel for the job running now
  uint64_t cancel_sent_at_ = 0;   // the latest cancel
  uint64_t idle_since_ = 0;
  uint64_t last_progress_ = 0;
};

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

void PoolConn::Connect() {
  const PoolOptions& o = pool_->opt_;
  ConnectOptions co{o.conninfo, o.ssl_mode, o.connect_timeout_ms, o.tcp_user_timeout_ms, "toriid"};
  std::vector<std::string> storage;
  std::vector<const char*> keys, vals;
  BuildConnectParams(co, storage, keys, vals);
  conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
  TLOG_DEBUG("pool: conn %lu: connecting", (unsigned long)id_);
  if (conn_ != nullptr) NoteHost(conn_, &host_, "pool: conn", id_);
  last_progress_ = Now();
  if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    pool_->OnConnectFailed(this, ErrorFromConn(conn_));
    return;
  }
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
  connect_timer_ = new uv_timer_t;
  uv_timer_init(pool_->loop_, connect_timer_);
  connect_timer_->data = this;
  uv_timer_start(connect_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<PoolConn*>(t->data);
    SkipTimedOutHost(self->conn_, self->pool_->opt_.conninfo);
    self->pool_->OnConnectFailed(self, Error::Unavailable("connection attempt timed out"));
  }, o.connect_timeout_ms, 0);
  // As if PQconnectPoll had returned PGRES_POLLING_WRITING.
  Watch(UV_WRITABLE);
}

void PoolConn::Watch(int events) { socket_.Watch(conn_, events); }

void PoolConn::OnPoll(int status, int events) {
  if (state_ == ConnState::kConnecting) {
    ContinueConnect();
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

void PoolConn::ContinueConnect() {
  PostgresPollingStatusType st = PQconnectPoll(conn_);
  NoteHost(conn_, &host_, "pool: conn", id_);
  switch (st) {
    case PGRES_POLLING_READING: socket_.WatchConnecting(conn_, UV_READABLE); return;
    case PGRES_POLLING_WRITING: socket_.WatchConnecting(conn_, UV_WRITABLE); return;
    case PGRES_POLLING_FAILED: pool_->OnConnectFailed(this, ErrorFromConn(conn_)); return;
    case PGRES_POLLING_OK: break;
    default: return;
  }
  CloseAndDelete(connect_timer_);
  connect_timer_ = nullptr;
  if (PQsetnonblocking(conn_, 1) != 0 || PQenterPipelineMode(conn_) != 1) {
    pool_->OnConnectFailed(this, ErrorFromConn(conn_));
    return;
  }
  SetState(ConnState::kPreparing);
  StartPreparing();
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
  std::string zeros = BatchKeys(kMaxBatch, [&zero](size_t) -> const std::string& { return zero; });
  const char* values[1] = {zeros.data()};
  int lengths[1] = {static_cast<int>(zeros.size())};
  int formats[1] = {1};
  for (int i = 0; i < kStatementCount; i++) {
    const StatementDef& def = Statement(static_cast<Stmt>(i));
    if (def.batched == Stmt::kCount) continue;
    for (int run = 0; run < 5; run++) {
      if (PQsendQueryPrepared(conn_, Statement(def.batched).name, 1, values, lengths, formats, 0) != 1) {
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

bool PoolConn::Send(Job* job) {
  if (!job->groupable_ && group_open_) CloseGroup();
  if (state_ != ConnState::kReady) {
    pool_->pending_.push_front(job);
    return false;
  }
  for (const Command& cmd : job->cmds_) {
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
      pool_->pending_.push_front(job);
      Break(std::string("send failed: ") + PQerrorMessage(conn_));
      return false;
    }
  }
  if (jobs_ == 0) last_progress_ = Now();
  job->conn_ = this;
  job->cur_ = 0;
  job->got_current_ = false;
  job->aborted_ = false;
  inflight_.push_back(job);
  jobs_++;
  if (job->groupable_) {
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
  inflight_.push_back(nullptr);
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
        Job* head = inflight_.front();
        if (head != nullptr && head->got_current_) {
          head->cur_++;
          head->got_current_ = false;
          // A grouped job is complete once its own commands are read; the
          // group's Sync comes after the last job.
          if (head->groupable_ && head->cur_ == head->cmds_.size()) FinishHead();
          if (state_ != ConnState::kReady) return;
          continue;
        }
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
  Job* head = inflight_.front();
  if (st == PGRES_PIPELINE_SYNC) {
    PQclear(r);
    if (head == nullptr) {
      // The end of a group of read-only jobs, all already answered.
      inflight_.pop_front();
      if (jobs_ == 0) idle_since_ = Now();
      return;
    }
    FinishHead();
    return;
  }
  if (head == nullptr) {
    PQclear(r);
    Break("results out of step with the pipeline");
    return;
  }
  head->got_current_ = true;
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    head->results_.emplace_back(r);
  } else if (st == PGRES_PIPELINE_ABORTED) {
    PQclear(r);
    if (!head->error_) {
      // Skipped because an earlier command failed: of this job (its error
      // stands), or of an earlier job of its group (it never ran: retry).
      if (head->groupable_ && head->cur_ == 0) head->aborted_ = true;
      head->error_ = std::make_unique<Error>(Error::Storage("statement aborted"));
    }
  } else {
    if (!head->error_) head->error_ = std::make_unique<Error>(ErrorFromResult(r));
    PQclear(r);
  }
}

void PoolConn::FinishHead() {
  Job* job = inflight_.front();
  inflight_.pop_front();
  jobs_--;
  job->conn_ = nullptr;
  // A cancel lands on whatever runs when it arrives; one sent lately may
  // have hit this job instead of the abandoned one it was aimed at.
  bool recent_cancel = cancel_sent_at_ != 0 && Now() - cancel_sent_at_ < 2000;
  cancel_sent_ = false;
  Job* next = FirstJob();
  if (next != nullptr && (next->abandoned_ || next->cancel_wanted_)) Cancel();
  if (jobs_ == 0) idle_since_ = Now();
  if (job->abandoned_) {
    delete job;
  } else if (job->aborted_ && !job->cancel_wanted_) {
    // An earlier job of its group failed, so it never ran: run it again.
    job->aborted_ = false;
    job->error_.reset();
    job->results_.clear();
    job->set_groupable(false);  // alone this time, so it cannot be skipped again
    pool_->pending_.push_front(job);
  } else if (job->error_ && job->error_->code() == Code::kTimeout && recent_cancel && !job->retried_ &&
             !job->cancel_wanted_) {
    // Its transaction rolled back, so running it again is safe.
    job->retried_ = true;
    job->error_.reset();
    job->results_.clear();
    pool_->pending_.push_front(job);
  } else {
    Result<JobOutput> out =
        job->error_ ? Result<JobOutput>(*job->error_) : Result<JobOutput>(JobOutput{std::move(job->results_)});
    if (!job->members_.empty()) {
      pool_->CompleteBatch(job, std::move(out));
    } else {
      auto done = std::move(job->done_);
      delete job;
      done(std::move(out));
    }
  }
  pool_->Kick();
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
  for (Job* j : inflight_) {
    if (j != nullptr) return j;
  }
  return nullptr;
}

void PoolConn::Break(const std::string& why) {
  if (state_ == ConnState::kBroken) return;
  bool was_ready = state_ == ConnState::kReady || state_ == ConnState::kPreparing;
  TLOG_WARN("pool: conn %lu: disconnected (%s), %zu jobs in flight", (unsigned long)id_, why.c_str(),
            inflight_.size());
  SetState(ConnState::kBroken);
  std::deque<Job*> jobs;
  jobs.swap(inflight_);
  Release();
  jobs_ = 0;
  group_open_ = false;
  for (Job* job : jobs) {
    if (job == nullptr) continue;  // a group's Sync
    job->conn_ = nullptr;
    if (job->abandoned_) {
      delete job;
      continue;
    }
    pool_->FailJob(job, Error::Unavailable("database connection lost: " + why));
  }
  if (was_ready) pool_->counters_.broken++;
  pool_->OnConnBroken(this, Error::Unavailable(why));
}

void PoolConn::CloseIdle() {
  SetState(ConnState::kClosing);
  Release();
}

void PoolConn::Release() {
  if (connect_timer_ != nullptr) {
    uv_timer_stop(connect_timer_);
    CloseAndDelete(connect_timer_);
    connect_timer_ = nullptr;
  }
  socket_.Release();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

Pool::Pool(uv_loop_t* loop, PoolOptions options) : loop_(loop), opt_(std::move(options)) {
  uv_timer_init(loop_, &retry_timer_);
  retry_timer_.data = this;
  uv_timer_init(loop_, &maintenance_timer_);
  maintenance_timer_.data = this;
  uv_idle_init(loop_, &kick_idle_);
  kick_idle_.data = this;
  uv_check_init(loop_, &kick_check_);
  kick_check_.data = this;
}

Pool::~Pool() {
  conns_.clear();
  CloseEmbedded(&retry_timer_);
  CloseEmbedded(&maintenance_timer_);
  CloseEmbedded(&kick_idle_);
  CloseEmbedded(&kick_check_);
}

void Pool::Start(std::function<void(Status)> on_ready) {
  on_ready_ = std::move(on_ready);
  int n = std::max(1, opt_.min_connections);
  for (int i = 0; i < n; i++) {
    conns_.push_back(std::make_unique<PoolConn>(this, next_conn_id_++));
    counters_.connects++;
    conns_.back()->Connect();
  }
  uv_timer_start(&maintenance_timer_, OnMaintenanceTimer, kMaintenanceMs, kMaintenanceMs);
}

bool Pool::available() const {
  for (const auto& c : conns_) {
    if (c->state() == ConnState::kReady) return true;
  }
  return !last_connect_failed_;
}

bool Pool::Submit(Job* job) {
  if (closing_) {
    FailJob(job, Error::Unavailable("the daemon is shutting down"));
    return false;
  }
  if (!available()) {
    FailJob(job, Error::Unavailable("the database cannot be reached"));
    return false;
  }
  // Jobs of this turn wait in pending_ until the turn ends; at the bound,
  // hand them to the connections first, so that only jobs no connection can
  // take count as waiting.
  if (waiting() >= opt_.max_pending) Dispatch();
  if (waiting() >= opt_.max_pending) {
    FailJob(job, Error::Overloaded("too many requests waiting for the database; retry later"));
    return false;
  }
  job->queued_at_ms_ = uv_now(loop_);
  (Batchable(*job) ? lookups_ : pending_).push_back(job);
  Kick();
  return true;
}

void Pool::Kick() {
  if (closing_ || uv_is_active(reinterpret_cast<uv_handle_t*>(&kick_check_))) return;
  // The idle handle makes this turn's poll return at once, and the check
  // handle then runs after every callback of the turn has queued its jobs.
  uv_idle_start(&kick_idle_, [](uv_idle_t*) {});
  uv_check_start(&kick_check_, [](uv_check_t* h) {
    auto* self = static_cast<Pool*>(h->data);
    uv_idle_stop(&self->kick_idle_);
    uv_check_stop(&self->kick_check_);
    self->Dispatch();
  });
}

void Pool::Dispatch() {
  while (waiting() > 0) {
    PoolConn* best = nullptr;
    for (auto& c : conns_) {
      if (c->state() != ConnState::kReady) continue;
      if (c->inflight() >= static_cast<size_t>(opt_.pipeline_depth)) continue;
      if (best == nullptr || c->inflight() < best->inflight()) best = c.get();
    }
    if (best == nullptr) break;
    if (best->inflight() > 0) MaybeGrow();
    // Oldest first between the two queues.
    Job* job;
    if (!pending_.empty() && (lookups_.empty() || pending_.front()->queued_at_ms_ <= lookups_.front()->queued_at_ms_)) {
      job = pending_.front();
      pending_.pop_front();
    } else {
      job = TakeLookups();
    }
    if (!best->Send(job)) continue;  // the job went back to the queue
  }
  if (waiting() > 0) MaybeGrow();
  // A failed Sync breaks its connection, and OnConnBroken takes it out of
  // conns_ at once: walk by index, and do not step past the connection that
  // moved into the place of a removed one.
  for (size_t i = 0; i < conns_.size();) {
    PoolConn* c = conns_[i].get();
    c->CloseGroup();
    if (i < conns_.size() && conns_[i].get() == c) i++;
  }
}

bool Pool::Batchable(const Job& job) {
  if (!job.groupable_ || job.cmds_.size() != 1) return false;
  const Command& c = job.cmds_[0];
  return Statement(c.stmt).batched != Stmt::kCount && c.values.size() == 1 && !c.null(0);
}

Job* Pool::TakeLookups() {
  Job* first = lookups_.front();
  lookups_.pop_front();
  if (lookups_.empty()) return first;  // alone: the plain statement is cheaper
  Stmt stmt = first->cmds_[0].stmt;
  std::vector<Job*> members{first};
  while (!lookups_.empty() && members.size() < kMaxBatch && lookups_.front()->cmds_[0].stmt == stmt) {
    members.push_back(lookups_.front());
    lookups_.pop_front();
  }
  std::vector<Command> cmds;
  cmds.emplace_back(Statement(stmt).batched);
  cmds.back().Add(BatchKeys(members.size(), [&members](size_t i) -> const std::string& {
    return members[i]->cmds_[0].values[0];
  }));
  auto* carrier = new Job(std::move(cmds), nullptr);
  carrier->set_groupable(true);
  carrier->queued_at_ms_ = first->queued_at_ms_;
  for (Job* m : members) m->carrier_ = carrier;
  carrier->members_ = std::move(members);
  counters_.batches++;
  counters_.batched += carrier->members_.size();
  return carrier;
}

void Pool::CompleteBatch(Job* carrier, Result<JobOutput>&& out) {
  std::vector<Job*> members = std::move(carrier->members_);
  carrier->members_.clear();
  delete carrier;
  // Row of each member (the row whose key, the last column, is its key), or -1.
  const PGresult* res = out.ok() && !out->results.empty() ? out->results[0].get() : nullptr;
  std::vector<int> row_of(members.size(), -1);
  int cols = res != nullptr ? PQnfields(res) : 0;
  if (res != nullptr && cols > 0) {
    std::string key;
    for (int r = 0; r < PQntuples(res); r++) {
      if (!DecodeByteaHex(std::string_view(PQgetvalue(res, r, cols - 1), PQgetlength(res, r, cols - 1)), &key)) continue;
      for (size_t i = 0; i < members.size(); i++) {
        if (row_of[i] < 0 && members[i]->cmds_[0].values[0] == key) row_of[i] = r;  // a repeated key: each copy
      }
    }
  }
  for (size_t i = 0; i < members.size(); i++) {
    Job* m = members[i];
    m->carrier_ = nullptr;
    if (m->abandoned_) {
      delete m;
      continue;
    }
    if (!out.ok()) {
      FailJob(m, out.error());
      continue;
    }
    if (res == nullptr) {
      FailJob(m, Error::Internal("missing statement result"));
      continue;
    }
    // The member reads its row of the batch's result, which lives until
    // this function returns: no copy of it.
    JobOutput own;
    own.batch = res;
    own.row = row_of[i];
    auto done = std::move(m->done_);
    delete m;
    done(Result<JobOutput>(std::move(own)));
  }
}

void Pool::MemberGone(Job* carrier) {
  bool all_abandoned = true, all_cancelled = true;
  for (Job* m : carrier->members_) {
    all_abandoned = all_abandoned && m->abandoned_;
    all_cancelled = all_cancelled && (m->abandoned_ || m->cancel_wanted_);
  }
  if (all_abandoned) {
    Abandon(carrier);
  } else if (all_cancelled && carrier->conn_ != nullptr && !carrier->cancel_wanted_) {
    CancelJob(carrier);
  }
}

void Pool::MaybeGrow() {
  if (closing_ || last_connect_failed_) return;
  int open = 0;
  for (auto& c : conns_) {
    if (c->state() == ConnState::kConnecting || c->state() == ConnState::kPreparing) return;  // one at a time
    if (c->state() == ConnState::kReady) open++;
  }
  if (open >= opt_.max_connections) return;
  conns_.push_back(std::make_unique<PoolConn>(this, next_conn_id_++));
  counters_.connects++;
  conns_.back()->Connect();
}

void Pool::OnConnReady(PoolConn* c) {
  TLOG_INFO("pool: conn %lu: ready", (unsigned long)c->id());
  backoff_ms_ = 0;
  last_connect_failed_ = false;
  if (on_ready_) {
    auto cb = std::move(on_ready_);
    on_ready_ = nullptr;
    cb({});
  }
  Dispatch();
}

void Pool::OnConnectFailed(PoolConn* c, const Error& why) {
  counters_.connect_failures++;
  last_connect_failed_ = true;
  // Break logs the reason and hands it on to Start's callback.
  c->Break("connect failed: " + why.message());
}

void Pool::OnConnBroken(PoolConn* c, const Error& why) {
  // Remove it after the current callback has unwound.
  for (auto it = conns_.begin(); it != conns_.end(); ++it) {
    if (it->get() == c) {
      auto owned = std::move(*it);
      conns_.erase(it);
      struct Later {
        uv_idle_t idle;
        std::unique_ptr<PoolConn> conn;
      };
      auto* later = new Later{{}, std::move(owned)};
      uv_idle_init(loop_, &later->idle);
      later->idle.data = later;
      uv_idle_start(&later->idle, [](uv_idle_t* h) {
        uv_idle_stop(h);
        auto* l = static_cast<Later*>(h->data);
        l->conn.reset();
        uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) { delete static_cast<Later*>(hh->data); });
      });
      break;
    }
  }
  if (closing_) return;
  if (!available()) FailAllPending(Error::Unavailable("the database cannot be reached: " + why.message()));
  // Kept for the first connection that does get ready: the daemon serves
  // only once it has heard that (it used to hear the first failure alone,
  // and never served when the next attempt succeeded).
  if (on_ready_ && last_connect_failed_) on_ready_(Error::Unavailable(why.message()));
  ScheduleReconnect();
}

void Pool::ScheduleReconnect() {
  if (closing_ || uv_is_active(reinterpret_cast<uv_handle_t*>(&retry_timer_))) return;
  int ready = 0;
  for (auto& c : conns_) ready += c->state() != ConnState::kBroken && c->state() != ConnState::kClosing;
  if (ready >= std::max(1, opt_.min_connections)) return;
  // The first retry after a loss is immediate; failures back off, capped.
  int delay = last_connect_failed_ ? (backoff_ms_ = NextBackoffMs(backoff_ms_))
                                   : 0;
  uv_timer_start(&retry_timer_, OnRetryTimer, delay, 0);
}

void Pool::OnRetryTimer(uv_timer_t* t) {
  auto* self = static_cast<Pool*>(t->data);
  if (self->closing_) return;
  int live = 0;
  for (auto& c : self->conns_) live += c->state() != ConnState::kBroken && c->state() != ConnState::kClosing;
  int want = std::max(1, self->opt_.min_connections);
  for (int i = live; i < want; i++) {
    self->conns_.push_back(std::make_unique<PoolConn>(self, self->next_conn_id_++));
    self->counters_.connects++;
    self->conns_.back()->Connect();
  }
}

void Pool::OnMaintenanceTimer(uv_timer_t* t) {
  auto* self = static_cast<Pool*>(t->data);
  uint64_t now = uv_now(self->loop_);
  uint64_t after_cancel_ms = std::max(1000, self->opt_.tcp_user_timeout_ms);
  int ready = 0;
  for (auto& c : self->conns_) ready += c->state() == ConnState::kReady;
  std::vector<PoolConn*> stalled, deaf;
  for (auto& c : self->conns_) {
    if (c->socket_error() != 0) {
      deaf.push_back(c.get());
      continue;
    }
    if (c->state() != ConnState::kReady) continue;
    if (c->Stalled(now, after_cancel_ms)) {
      stalled.push_back(c.get());
      continue;
    }
    c->ResendCancel(now);
    if (c->inflight() == 0 && ready > self->opt_.min_connections && now - c->idle_since() > kIdleCloseMs) {
      TLOG_INFO("pool: conn %lu: closing, idle", (unsigned long)c->id());
      c->CloseIdle();
      ready--;
    }
  }
  for (PoolConn* c : stalled) c->Break("the server went silent while it owed results");
  for (PoolConn* c : deaf) {
    Error why = Error::Unavailable(std::string("cannot watch its socket: ") + uv_strerror(c->socket_error()));
    // While connecting it counts as a failed attempt: backoff, and Start's
    // callback hears of it.
    if (c->state() == ConnState::kConnecting) self->OnConnectFailed(c, why);
    else c->Break(why.message());
  }
  self->conns_.erase(std::remove_if(self->conns_.begin(), self->conns_.end(),
                                    [](auto& c) { return c->state() == ConnState::kClosing; }),
                     self->conns_.end());
}

void Pool::FailJob(Job* job, Error error) {
  if (!job->members_.empty()) {
    CompleteBatch(job, Result<JobOutput>(std::move(error)));
    return;
  }
  auto done = std::move(job->done_);
  delete job;
  if (done) done(Result<JobOutput>(std::move(error)));
}

void Pool::FailAllPending(const Error& error) {
  std::deque<Job*> jobs;
  jobs.swap(pending_);
  jobs.insert(jobs.end(), lookups_.begin(), lookups_.end());
  lookups_.clear();
  for (Job* j : jobs) FailJob(j, error);
}

void Pool::Abandon(Job* job) {
  if (job->carrier_ != nullptr) {
    job->abandoned_ = true;  // freed with its carrier
    MemberGone(job->carrier_);
    return;
  }
  if (job->conn_ == nullptr) {
    for (auto* q : {&pending_, &lookups_}) {
      auto it = std::find(q->begin(), q->end(), job);
      if (it != q->end()) q->erase(it);
    }
    delete job;
    return;
  }
  job->abandoned_ = true;
  job->conn_->Abandoned(job);
}

bool Pool::CancelJob(Job* job) {
  if (job->carrier_ != nullptr) {
    Job* carrier = job->carrier_;
    if (carrier->conn_ == nullptr) {
      job->abandoned_ = true;  // not sent: it never ran
      MemberGone(carrier);
      return false;
    }
    job->cancel_wanted_ = true;
    MemberGone(carrier);
    return true;
  }
  if (job->conn_ == nullptr) {
    Abandon(job);
    return false;
  }
  job->cancel_wanted_ = true;
  job->conn_->Abandoned(job);
  return true;
}

void Pool::Close(const Error& error) {
  closing_ = true;
  uv_timer_stop(&retry_timer_);
  uv_timer_stop(&maintenance_timer_);
  FailAllPending(error);
}

PoolStats Pool::Stats() const {
  PoolStats s = counters_;
  for (const auto& c : conns_) {
    if (c->state() == ConnState::kBroken || c->state() == ConnState::kClosing) continue;
    s.size++;
    if (c->state() == ConnState::kReady) (c->inflight() == 0 ? s.idle : s.busy)++;
  }
  s.waiting = waiting();
  return s;
}

}  // namespace torii::daemon
