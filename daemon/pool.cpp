// The pool: queues jobs, hands them to its connections, grows, shrinks
// and reconnects, and answers each job once.
#include "pool.h"

#include <algorithm>

#include "lookup_batch.h"
#include "pool_conn.h"
#include "pool_job.h"
#include "torii/log.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

constexpr uint64_t kIdleCloseMs = 30000;
constexpr uint64_t kMaintenanceMs = 100;  // pool upkeep tick: cancel resends, stalls, idle closes

}  // namespace

Pool::Pool(uv_loop_t* loop, PoolOptions options)
    : loop_(loop), opt_(std::move(options)), lookups_(std::make_unique<LookupBatches>()) {
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
  jobs_.clear();
  CloseEmbedded(&retry_timer_);
  CloseEmbedded(&maintenance_timer_);
  CloseEmbedded(&kick_idle_);
  CloseEmbedded(&kick_check_);
}

void Pool::Start(std::function<void(Status)> on_ready) {
  on_ready_ = std::move(on_ready);
  int n = std::max(1, opt_.min_connections);
  for (int i = 0; i < n; i++) AddConn();
  uv_timer_start(&maintenance_timer_, OnMaintenanceTimer, kMaintenanceMs, kMaintenanceMs);
}

bool Pool::available() const {
  for (const auto& c : conns_) {
    if (c->state() == ConnState::kReady) return true;
  }
  return !last_connect_failed_;
}

void Pool::AddConn() {
  conns_.push_back(std::make_unique<PoolConn>(this, next_conn_id_++));
  counters_.connects++;
  ConnectOptions co{opt_.conninfo, opt_.ssl_mode, opt_.connect_timeout_ms, opt_.tcp_user_timeout_ms, "toriid"};
  conns_.back()->Connect(co);
}

size_t Pool::waiting() const { return pending_.size() + lookups_->size(); }

JobId Pool::Submit(std::vector<Command> cmds, bool groupable, JobDone done, std::string tenant) {
  const JobId id = next_job_id_++;
  Job* job = jobs_.emplace(id, std::make_unique<Job>(id, std::move(cmds), groupable, std::move(done))).first->second.get();
  job->tenant = std::move(tenant);
  if (closing_) {
    FailJob(job, Error::Unavailable("the daemon is shutting down"));
    return 0;
  }
  if (!available()) {
    FailJob(job, Error::Unavailable("the database cannot be reached"));
    return 0;
  }
  // Jobs of this turn wait in pending_ until the turn ends; at the bound,
  // hand them to the connections first, so that only jobs no connection can
  // take count as waiting.
  if (waiting() >= opt_.max_pending) Dispatch();
  if (waiting() >= opt_.max_pending) {
    FailJob(job, Error::Overloaded("too many requests waiting for the database; retry later"));
    return 0;
  }
  job->queued_at_ms = uv_now(loop_);
  if (LookupBatches::Batchable(*job)) {
    lookups_->Push(job);
  } else {
    pending_.push_back(job);
  }
  Kick();
  return id;
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
  auto has_room = [this](const PoolConn& c) {
    return c.accepting() && c.inflight() < static_cast<size_t>(opt_.pipeline_depth);
  };
  // Jobs whose tenant a connection is switching to: they wait for it
  // rather than switch another connection too, and go back to the front of
  // the queue, in their order, after this pass.
  std::vector<Job*> deferred;
  while (waiting() > 0) {
    if (std::none_of(conns_.begin(), conns_.end(), [&](const auto& c) { return has_room(*c); })) break;
    // Oldest first between the two queues.
    Job* job;
    if (!pending_.empty() && (lookups_->empty() || pending_.front()->queued_at_ms <= lookups_->front_queued_at())) {
      job = pending_.front();
      pending_.pop_front();
    } else {
      job = TakeLookups();
    }
    // The least busy connection already in the job's tenant, else the least
    // busy one (which switches first: PoolConn::SwitchTenant).
    PoolConn* best = nullptr;
    bool best_same = false;
    for (auto& c : conns_) {
      if (!has_room(*c)) continue;
      const bool same = c->tenant() == job->tenant;
      if (best == nullptr || (same && !best_same) || (same == best_same && c->inflight() < best->inflight())) {
        best = c.get();
        best_same = same;
      }
    }
    if (!best_same && std::any_of(conns_.begin(), conns_.end(), [&](const auto& c) {
          return c->switching() && c->tenant() == job->tenant;
        })) {
      deferred.push_back(job);
      continue;
    }
    if (best->inflight() > 0) MaybeGrow();
    if (!best->Send(job)) continue;  // the job went back to the queue
  }
  for (auto it = deferred.rbegin(); it != deferred.rend(); ++it) Requeue(*it);
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

Job* Pool::TakeLookups() {
  std::vector<Job*> members = lookups_->TakeNext();
  if (members.size() == 1) return members[0];
  std::vector<Command> cmds;
  cmds.push_back(LookupBatches::BatchCommand(members));
  const JobId id = next_job_id_++;
  Job* carrier = jobs_.emplace(id, std::make_unique<Job>(id, std::move(cmds), true, nullptr)).first->second.get();
  carrier->queued_at_ms = members[0]->queued_at_ms;
  carrier->tenant = members[0]->tenant;
  for (Job* m : members) m->carrier = carrier;
  carrier->members = std::move(members);
  counters_.batches++;
  counters_.batched += carrier->members.size();
  return carrier;
}

void Pool::CompleteBatch(Job* carrier, Result<JobOutput>&& out) {
  std::vector<Job*> members = std::move(carrier->members);
  carrier->members.clear();
  Free(carrier);
  const PGresult* res = out.ok() && !out->results.empty() ? out->results[0].get() : nullptr;
  std::vector<int> row_of = LookupBatches::MatchRows(res, members);
  for (size_t i = 0; i < members.size(); i++) {
    Job* m = members[i];
    m->carrier = nullptr;
    if (!out.ok()) {
      FailJob(m, out.error());
    } else if (res == nullptr) {
      FailJob(m, Error::Internal("missing statement result"));
    } else {
      // The member reads its row of the batch's result, which lives until
      // this function returns: no copy of it.
      JobOutput own;
      own.batch = res;
      own.row = row_of[i];
      Complete(m, Result<JobOutput>(std::move(own)));
    }
  }
}

void Pool::MemberGone(Job* carrier) {
  switch (LookupBatches::OnMemberGone(*carrier)) {
    case LookupBatches::AfterGone::kAbandon: Abandon(carrier); break;
    case LookupBatches::AfterGone::kCancel: CancelJob(carrier); break;
    case LookupBatches::AfterGone::kKeep: break;
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
  AddConn();
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
  for (int i = live; i < want; i++) self->AddConn();
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
    if (c->inflight() == 0 && c->accepting() && ready > self->opt_.min_connections &&
        now - c->idle_since() > kIdleCloseMs) {
      TLOG_INFO("pool: conn %lu: closing, idle", (unsigned long)c->id());
      c->CloseIdle();
      ready--;
    }
  }
  for (PoolConn* c : stalled) c->Break("the server went silent while it owed results");
  for (PoolConn* c : deaf) c->Break(std::string("cannot watch its socket: ") + uv_strerror(c->socket_error()));
  self->conns_.erase(std::remove_if(self->conns_.begin(), self->conns_.end(),
                                    [](auto& c) { return c->state() == ConnState::kClosing; }),
                     self->conns_.end());
}

void Pool::OnJobEnd(Job* job, JobEnd&& end) {
  if (job->abandoned) {
    Free(job);
  } else if (end.aborted && !job->cancel_wanted) {
    // An earlier job of its group failed, so it never ran: run it again,
    // alone this time, so that it cannot be skipped again.
    job->groupable = false;
    Requeue(job);
  } else if (end.error && end.error->code() == Code::kTimeout && end.recent_cancel && !job->retried &&
             !job->cancel_wanted) {
    // A cancel aimed at another job hit it; its transaction rolled back,
    // so running it again is safe.
    job->retried = true;
    Requeue(job);
  } else {
    Complete(job, end.error ? Result<JobOutput>(*end.error) : Result<JobOutput>(JobOutput{std::move(end.results)}));
  }
  Kick();
}

void Pool::Complete(Job* job, Result<JobOutput>&& out) {
  if (job->abandoned) {
    Free(job);
    return;
  }
  if (!job->members.empty()) {
    CompleteBatch(job, std::move(out));
    return;
  }
  JobDone done = std::move(job->done);
  Free(job);
  if (done) done(std::move(out));
}

void Pool::FailJob(Job* job, Error error) { Complete(job, Result<JobOutput>(std::move(error))); }

void Pool::Free(Job* job) {
  for (Job* m : job->members) jobs_.erase(m->id);  // all abandoned (CompleteBatch takes them out first)
  jobs_.erase(job->id);
}

void Pool::FailAllPending(const Error& error) {
  std::deque<Job*> jobs;
  jobs.swap(pending_);
  std::deque<Job*> lookups = lookups_->TakeAll();
  jobs.insert(jobs.end(), lookups.begin(), lookups.end());
  for (Job* j : jobs) FailJob(j, error);
}

void Pool::Abandon(JobId id) {
  if (auto it = jobs_.find(id); it != jobs_.end()) Abandon(it->second.get());
}

bool Pool::CancelJob(JobId id) {
  auto it = jobs_.find(id);
  return it != jobs_.end() && CancelJob(it->second.get());
}

void Pool::Abandon(Job* job) {
  if (job->carrier != nullptr) {
    job->abandoned = true;  // freed with its carrier
    MemberGone(job->carrier);
    return;
  }
  if (job->conn == nullptr) {
    if (!lookups_->Remove(job)) {
      if (auto it = std::find(pending_.begin(), pending_.end(), job); it != pending_.end()) pending_.erase(it);
    }
    Free(job);
    return;
  }
  job->abandoned = true;
  job->conn->Abandoned(job);
}

bool Pool::CancelJob(Job* job) {
  if (job->carrier != nullptr) {
    Job* carrier = job->carrier;
    if (carrier->conn == nullptr) {
      job->abandoned = true;  // not sent: it never ran
      MemberGone(carrier);
      return false;
    }
    job->cancel_wanted = true;
    MemberGone(carrier);
    return true;
  }
  if (job->conn == nullptr) {
    Abandon(job);
    return false;
  }
  job->cancel_wanted = true;
  job->conn->Abandoned(job);
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
