// Expired-session cleanup and other pruning, in batches.
#include "janitor.h"

#include <map>
#include <random>
#include <string>

#include "torii/log.h"
#include "torii/values.h"
#include "uv_util.h"

namespace torii::daemon {

namespace {

// pg_advisory_lock key of cleanup passes: "toriij" in ASCII.
constexpr const char* kPassLock = "128022013144938";

// One batch: set torii.cleanup for this statement's transaction (the
// scalar subquery runs before any row is deleted, so the row triggers see
// it), then delete up to $2 expired rows that no one else holds, of every
// tenant (the janitor's connection has torii.tenant '*'); one row per
// tenant with rows deleted: its name and how many.
constexpr const char* kDeleteBatch =
    "WITH quiet AS (SELECT set_config('torii.cleanup', 'on', true) AS v), "
    "doomed AS (SELECT id FROM sessions "
    "  WHERE expires_at < (timestamptz 'epoch' + $1::int8 * interval '1 microsecond') "
    "  ORDER BY expires_at LIMIT $2::int8 FOR UPDATE SKIP LOCKED), "
    "gone AS (DELETE FROM sessions WHERE (SELECT v FROM quiet) = 'on' AND id IN (SELECT id FROM doomed) "
    "RETURNING tenant) "
    "SELECT tenant, count(*) FROM gone GROUP BY tenant";

// One summary (event and audit row, 0014) per tenant: $1 the tenants,
// $3 their counts, as arrays.
constexpr const char* kSummaries =
    "SELECT torii_cleanup_summary(x.n, timestamptz 'epoch' + $2::int8 * interval '1 microsecond', x.t) "
    "FROM unnest($1::text[], $3::int8[]) AS x(t, n)";

// One batch of a cleanup target: $1 its cutoff (microseconds since the
// epoch), $2 the batch size; the rows of `table` whose `key` is picked by
// `where` (a condition on the cutoff), as many as the batch takes, that no one
// else holds. torii.cleanup is set as in kDeleteBatch, for triggers that
// keep quiet about rows deleted because they expired.
#define CLEANUP_CUTOFF "(timestamptz 'epoch' + $1::int8 * interval '1 microsecond')"
#define CLEANUP_BATCH(table, key, where)                                                         \
  "WITH quiet AS (SELECT set_config('torii.cleanup', 'on', true) AS v), "                        \
  "doomed AS (SELECT " key " FROM " table " WHERE " where " LIMIT $2::int8 FOR UPDATE SKIP LOCKED), " \
  "gone AS (DELETE FROM " table " WHERE (SELECT v FROM quiet) = 'on' AND " key                    \
  " IN (SELECT " key " FROM doomed) RETURNING 1) SELECT count(*) FROM gone"

// The expiring tables a pass empties after the sessions, in this order.
// Adding one is one row: the table, its key in
// stats.cleanup.deleted_by_table, one batch (CLEANUP_BATCH), and the option
// (seconds) that moves its cutoff back from the pass's now, or nullptr for
// "expired before now". None sends
// events; secure_tokens' audit trigger skips rows deleted this way.
struct CleanupTarget {
  const char* table;
  const char* stats_key;
  const char* batch_sql;
  uint64_t JanitorOptions::*retention_s = nullptr;
};

const CleanupTarget kCleanupTargets[] = {
    {"secure_tokens", "secure_tokens", CLEANUP_BATCH("secure_tokens", "id", "expires_at < " CLEANUP_CUTOFF)},
    // An OAuth state or passkey challenge nobody took in time (schema/0010).
    {"oauth_states", "oauth_states", CLEANUP_BATCH("oauth_states", "state", "expires_at < " CLEANUP_CUTOFF)},
    {"passkey_challenges", "passkey_challenges",
     CLEANUP_BATCH("passkey_challenges", "challenge_id", "expires_at < " CLEANUP_CUTOFF)},
    {"jwt_revocations", "jwt_revocations", CLEANUP_BATCH("jwt_revocations", "jti", "expires_at < " CLEANUP_CUTOFF)},
    {"jwt_user_cutoffs", "jwt_user_cutoffs", CLEANUP_BATCH("jwt_user_cutoffs", "user_id", "expires_at < " CLEANUP_CUTOFF)},
    // Failures of a locked user stay: they are the lock's record.
    {"login_failures", "login_failures",
     CLEANUP_BATCH("login_failures", "id",
                   "at < " CLEANUP_CUTOFF " AND NOT EXISTS (SELECT 1 FROM users u "
                   "WHERE u.tenant = login_failures.tenant AND lower(u.email) = login_failures.email "
                   "AND u.locked_at IS NOT NULL)"),
     &JanitorOptions::login_failure_retention_s},
};
constexpr size_t kCleanupTargetCount = sizeof(kCleanupTargets) / sizeof(kCleanupTargets[0]);

}  // namespace

struct Janitor::Pass {
  std::vector<Done> waiters;
  uint64_t started_ms = 0;
  int64_t cutoff_us = 0;
  uint64_t deleted = 0;
  std::map<std::string, uint64_t> deleted_by_tenant;  // expired sessions
  uint64_t target_deleted[kCleanupTargetCount] = {};
  uint64_t pruned = 0;
  bool locked = false;
};

Janitor::Janitor(uv_loop_t* loop, ConnectOptions options, JanitorOptions jopt)
    : loop_(loop), conn_options_(std::move(options)), opt_(jopt) {
  conn_options_.application_name = "toriid-janitor";
  stats_.deleted_by_table["sessions"] = 0;
  for (const CleanupTarget& t : kCleanupTargets) stats_.deleted_by_table[t.stats_key] = 0;
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

Janitor::~Janitor() { Close(); }

void Janitor::Start() { ScheduleTick(); }

void Janitor::Close() {
  if (closed_) return;
  closed_ = true;
  uv_timer_stop(&timer_);
  CloseEmbedded(&timer_);
  if (conn_) conn_->Close("daemon stopping");
  conn_.reset();
}

void Janitor::SetOptions(const JanitorOptions& jopt) {
  bool interval_changed = jopt.interval_s != opt_.interval_s;
  opt_ = jopt;
  if (interval_changed) ScheduleTick();
}

void Janitor::ScheduleTick() {
  if (closed_) return;
  uv_timer_stop(&timer_);
  if (opt_.interval_s == 0) return;  // scheduled cleanup off
  // Up to 10% jitter, so that daemons started together do not align.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t base = opt_.interval_s * 1000;
  uint64_t jitter = std::uniform_int_distribution<uint64_t>(0, base / 10)(rng);
  uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<Janitor*>(t->data)->Tick(); }, base - base / 20 + jitter, 0);
}

void Janitor::Tick() {
  if (!running_) {
    Begin(false, nullptr);
  }
  ScheduleTick();
}

void Janitor::RunNow(Done done) {
  if (running_) {
    queued_.push_back(std::move(done));
    return;
  }
  Begin(true, std::move(done));
}

void Janitor::StartNextQueued() {
  if (queued_.empty() || running_ || closed_) return;
  // Every waiting caller shares the next pass.
  Done first = std::move(queued_.front());
  queued_.pop_front();
  std::deque<Done> rest;
  rest.swap(queued_);
  Begin(true, [first = std::move(first), rest = std::move(rest)](Result<uint64_t> r) mutable {
    first(r);
    for (auto& d : rest) d(r);
  });
}

void Janitor::EnsureConnected(std::function<void(Status)> then) {
  if (conn_ && conn_->ready()) {
    then({});
    return;
  }
  conn_ = std::make_unique<AsyncConn>(loop_, "janitor", conn_options_);
  auto shared_then = std::make_shared<std::function<void(Status)>>(std::move(then));
  conn_->Connect([shared_then] {
    if (*shared_then) {
      auto cb = std::move(*shared_then);
      *shared_then = nullptr;
      cb({});
    }
  }, [shared_then](const Error& why) {
    if (*shared_then) {
      auto cb = std::move(*shared_then);
      *shared_then = nullptr;
      cb(why);
    }
  });
}

void Janitor::Exec(std::string sql, std::vector<std::optional<std::string>> params, std::function<void(Status)> done) {
  EnsureConnected([this, sql = std::move(sql), params = std::move(params), done = std::move(done)](Status st) mutable {
    if (!st.ok() || closed_) {
      done(st.ok() ? Status(Error::Unavailable("stopping")) : st);
      return;
    }
    conn_->Query(std::move(sql), std::move(params), [done = std::move(done)](Result<PgResult>&& r) {
      done(r.ok() ? Status() : Status(r.error()));
    });
  });
}

void Janitor::Begin(bool wait_for_lock, Done done) {
  running_ = true;
  auto pass = std::make_shared<Pass>();
  if (done) pass->waiters.push_back(std::move(done));
  pass->started_ms = uv_now(loop_);
  EnsureConnected([this, pass, wait_for_lock](Status st) {
    if (closed_) return;
    if (!st.ok()) {
      Finish(pass, st);
      return;
    }
    std::string sql = wait_for_lock
                          ? std::string("SELECT true, (extract(epoch from now()) * 1000000)::int8, "
                                        "set_config('torii.tenant', '*', false) FROM pg_advisory_lock(") +
                                kPassLock + ")"
                          : std::string("SELECT pg_try_advisory_lock(") + kPassLock +
                                "), (extract(epoch from now()) * 1000000)::int8, set_config('torii.tenant', '*', false)";
    conn_->Query(sql, {}, [this, pass](Result<PgResult>&& r) {
      if (!r.ok()) {
        Finish(pass, r.error());
        return;
      }
      if (std::string(PQgetvalue(r->get(), 0, 0)) != "t") {
        stats_.skipped++;
        TLOG_DEBUG("janitor: another daemon is cleaning; skipping this tick");
        Finish(pass, {});
        return;
      }
      pass->locked = true;
      pass->cutoff_us = std::strtoll(PQgetvalue(r->get(), 0, 1), nullptr, 10);
      stats_.runs++;
      stats_.last_run_at_us = NowMicros();
      TLOG_INFO("janitor: pass started (cutoff %lld)", (long long)pass->cutoff_us);
      Batch(pass);
    });
  });
}

void Janitor::Batch(std::shared_ptr<Pass> pass) {
  conn_->Query(kDeleteBatch, {std::to_string(pass->cutoff_us), std::to_string(opt_.batch_size)},
               [this, pass](Result<PgResult>&& r) {
                 if (!r.ok()) {
                   Finish(pass, r.error());
                   return;
                 }
                 uint64_t n = 0;
                 for (int row = 0; row < PQntuples(r->get()); row++) {
                   uint64_t k = std::strtoull(PQgetvalue(r->get(), row, 1), nullptr, 10);
                   pass->deleted_by_tenant[PQgetvalue(r->get(), row, 0)] += k;
                   n += k;
                 }
                 pass->deleted += n;
                 bool more = n == opt_.batch_size;
                 bool over_budget = uv_now(loop_) - pass->started_ms > opt_.time_budget_ms;
                 if (more && !over_budget) {
                   Batch(pass);  // the next batch is a new callback turn: requests run in between
                   return;
                 }
                 if (more) TLOG_INFO("janitor: time budget spent; the rest waits for the next pass");
                 if (pass->deleted == 0) {
                   TargetBatch(pass, 0);
                   return;
                 }
                 // Tenant names are [a-z0-9_.-]: array literals need no quoting.
                 std::string tenants = "{", counts = "{";
                 for (const auto& [tenant, count] : pass->deleted_by_tenant) {
                   if (tenants.size() > 1) {
                     tenants += ',';
                     counts += ',';
                   }
                   tenants += tenant;
                   counts += std::to_string(count);
                 }
                 tenants += '}';
                 counts += '}';
                 conn_->Query(kSummaries, {tenants, std::to_string(pass->cutoff_us), counts},
                              [this, pass](Result<PgResult>&& s) {
                                if (!s.ok()) {
                                  Finish(pass, s.error());
                                  return;
                                }
                                TargetBatch(pass, 0);
                              });
               });
}

void Janitor::TargetBatch(std::shared_ptr<Pass> pass, size_t target) {
  if (target >= kCleanupTargetCount) {
    Prune(pass);
    return;
  }
  const CleanupTarget& t = kCleanupTargets[target];
  int64_t cutoff = pass->cutoff_us;
  if (t.retention_s != nullptr) cutoff -= static_cast<int64_t>(opt_.*t.retention_s) * 1000000;
  conn_->Query(t.batch_sql, {std::to_string(cutoff), std::to_string(opt_.batch_size)},
               [this, pass, target](Result<PgResult>&& r) {
                 if (!r.ok()) {
                   Finish(pass, r.error());
                   return;
                 }
                 uint64_t n = std::strtoull(PQgetvalue(r->get(), 0, 0), nullptr, 10);
                 pass->target_deleted[target] += n;
                 stats_.deleted_by_table[kCleanupTargets[target].stats_key] += n;
                 bool more = n == opt_.batch_size;
                 if (more && uv_now(loop_) - pass->started_ms <= opt_.time_budget_ms) {
                   TargetBatch(pass, target);
                   return;
                 }
                 if (more) {
                   TLOG_INFO("janitor: time budget spent; the rest of %s waits for the next pass",
                             kCleanupTargets[target].table);
                 }
                 TargetBatch(pass, target + 1);
               });
}

void Janitor::Prune(std::shared_ptr<Pass> pass) {
  if (opt_.audit_retention_days == 0) {
    Finish(pass, {});
    return;
  }
  conn_->Query("SELECT torii_prune_audit($1::int4, $2::int4)",
               {std::to_string(opt_.audit_retention_days), std::to_string(opt_.batch_size)},
               [this, pass](Result<PgResult>&& r) {
                 if (!r.ok()) {
                   Finish(pass, r.error());
                   return;
                 }
                 uint64_t n = std::strtoull(PQgetvalue(r->get(), 0, 0), nullptr, 10);
                 pass->pruned += n;
                 stats_.audit_pruned += n;
                 if (n == opt_.batch_size && uv_now(loop_) - pass->started_ms <= opt_.time_budget_ms) {
                   Prune(pass);
                   return;
                 }
                 Finish(pass, {});
               });
}

void Janitor::Finish(std::shared_ptr<Pass> pass, Status status) {
  uint64_t took = uv_now(loop_) - pass->started_ms;
  if (pass->locked) {
    stats_.deleted += pass->deleted;
    stats_.deleted_by_table["sessions"] += pass->deleted;
    stats_.last_deleted = pass->deleted;
    stats_.last_duration_ms = took;
    if (status.ok()) stats_.last_error.clear();
    std::string others;
    for (size_t i = 0; i < kCleanupTargetCount; i++) {
      others += ", " + std::to_string(pass->target_deleted[i]) + " " + kCleanupTargets[i].stats_key;
    }
    TLOG_INFO("janitor: pass finished: %lu expired sessions deleted%s, %lu audit rows pruned, in %lu ms",
              (unsigned long)pass->deleted, others.c_str(), (unsigned long)pass->pruned, (unsigned long)took);
    if (conn_ && conn_->ready()) {
      conn_->Query(std::string("SELECT pg_advisory_unlock(") + kPassLock + ")", {}, [](Result<PgResult>&&) {});
    }
  }
  if (!status.ok()) {
    stats_.last_error = status.error().message();
    stats_.failures++;
    TLOG_WARN("janitor: pass failed: %s", status.error().message().c_str());
  }
  running_ = false;
  for (auto& w : pass->waiters) {
    if (status.ok()) {
      w(pass->deleted);
    } else {
      w(status.error());
    }
  }
  StartNextQueued();
}

}  // namespace torii::daemon
