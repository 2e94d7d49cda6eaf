// The login guard family (PROTOCOL.md section 5, Torii's brute-force
// protection): failed logins per lower-cased email, and the user's lock.
// Failures are recorded whether or not a user has the email, and no reply,
// error or statement path here depends on whether one does. Refused for an
// actor (OpDef::actor_forbidden).
#include "ops/ops_common.h"
#include "ops/sql.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

namespace {

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    // Login guard. record_login_failure is three commands in one
    // transaction: this lock (per lower-cased email, held to commit), the
    // insert, then the count (a new snapshot, taken after the lock, so it
    // sees every failure committed before) with the lock of the user.
    // Two-key form: its key space is apart from the janitor's int8 key.
    {Stmt::kGuardLock, "t_guard_lock", "SELECT pg_advisory_xact_lock(1953460841, hashtext($T || ' ' || lower($1)))", 0},
    {Stmt::kInsertLoginFailure, "t_insert_login_failure",
     "INSERT INTO login_failures (email, ip_address, tenant) VALUES (lower($1), $2, $T)", 0},
    // $2 window seconds, $3 max failures or NULL. A user already locked
    // keeps its locked_at.
    {Stmt::kCountLoginFailures, "t_count_login_failures",
     "WITH n AS (SELECT count(*) AS n FROM login_failures "
     "  WHERE tenant = $T AND email = lower($1) AND at > now() - $2::int8 * interval '1 second'), "
     "locked_user AS (UPDATE users SET locked_at = now() WHERE $3::int8 IS NOT NULL AND (SELECT n FROM n) >= $3::int8 "
     "  AND tenant = $T AND lower(email) = lower($1) AND locked_at IS NULL RETURNING 1) "
     "SELECT n, $3::int8 IS NOT NULL AND n >= $3::int8, (SELECT count(*) FROM locked_user) FROM n", 0},
    // $2 since (micros) or NULL: the last 900 s.
    {Stmt::kLoginFailures, "t_login_failures",
     "SELECT count(*), " US("max(at)") " FROM login_failures "
     "WHERE tenant = $T AND email = lower($1) AND at >= coalesce(" TS("$2") ", now() - interval '900 seconds')", 0},
    {Stmt::kClearLoginFailures, "t_clear_login_failures", "DELETE FROM login_failures WHERE tenant = $T AND email = lower($1)", 0},
    {Stmt::kSetUserLock, "t_set_user_lock",
     "UPDATE users SET locked_at = " TS("$2") " WHERE tenant = $T AND lower(email) = lower($1) "
     "AND locked_at IS DISTINCT FROM " TS("$2"), 0},
    // Always one row, so a missing user looks like an unlocked one.
    {Stmt::kGetUserLock, "t_get_user_lock",
     "SELECT " US("(SELECT locked_at FROM users WHERE tenant = $T AND lower(email) = lower($1))"), 0},
};

constexpr int64_t kDefaultWindowS = 900;

// After kGuardLock and kInsertLoginFailure: the count, whether it reached
// max_failures, and how many users it locked (not in the reply).
Status RenderLoginFailure(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) != 1) return Error::Internal("the failure count returned no row");
  pk.pack_map(2);
  PackStr(pk, "failures");
  pk.pack_uint64(std::strtoull(PQgetvalue(r, 0, 0), nullptr, 10));
  PackStr(pk, "locked");
  if (std::strcmp(PQgetvalue(r, 0, 1), "t") == 0) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  return {};
}

Status RenderLoginFailures(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) != 1) return Error::Internal("the failure count returned no row");
  pk.pack_map(2);
  PackStr(pk, "count");
  pk.pack_uint64(std::strtoull(PQgetvalue(r, 0, 0), nullptr, 10));
  PackStr(pk, "latest_at");
  PackMicros(pk, r, 0, 1);
  return {};
}

Status RenderUserLock(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) != 1) return Error::Internal("the lock lookup returned no row");
  pk.pack_map(1);
  PackStr(pk, "locked_at");
  PackMicros(pk, r, 0, 0);
  return {};
}

// Count and lock in one transaction, under a lock per email held to commit:
// concurrent failures for one email are counted one after another, so of
// eight against a limit of five exactly the 5th to 8th say locked.
Result<Plan> BuildRecordLoginFailure(const Args& args) {
  if (auto st = args.OnlyKeys({"email", "ip_address", "window_s", "max_failures"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  TRY(ip, args.Str("ip_address"));
  TRY(window, args.Int("window_s"));
  TRY(max, args.Int("max_failures"));
  int64_t window_s = window->value_or(kDefaultWindowS);
  if (window_s <= 0) return Error::InvalidArgument("'window_s' must be positive");
  if (window_s > kMaxTtlS) return Error::InvalidArgument("'window_s' is more than 100 years");
  if (*max && **max <= 0) return Error::InvalidArgument("'max_failures' must be positive");
  Plan p;
  p.cmds.emplace_back(Stmt::kGuardLock);
  p.cmds.back().Add(*email);
  p.cmds.emplace_back(Stmt::kInsertLoginFailure);
  p.cmds.back().Add(*email).AddOpt(*ip);
  p.cmds.emplace_back(Stmt::kCountLoginFailures);
  p.cmds.back().Add(*email).Add(std::to_string(window_s)).AddOpt(*max);
  p.main = 2;
  p.render = RenderLoginFailure;
  return p;
}

Result<Plan> BuildLoginFailures(const Args& args) {
  if (auto st = args.OnlyKeys({"email", "since"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  TRY(since, args.Timestamp("since"));
  Plan p;
  p.cmds.emplace_back(Stmt::kLoginFailures);
  p.cmds.back().Add(*email);
  if (*since) {
    p.cmds.back().Add(std::to_string(**since));
  } else {
    p.cmds.back().AddNull();
  }
  p.render = RenderLoginFailures;
  return p;
}

Result<Plan> BuildClearLoginFailures(const Args& args) {
  if (auto st = args.OnlyKeys({"email"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  Plan p;
  p.cmds.emplace_back(Stmt::kClearLoginFailures);
  p.cmds.back().Add(*email);
  p.render = RenderDeletedCount;
  return p;
}

// `locked_at` is required but may be nil (unlock). {} whether or not a user
// has the email.
Result<Plan> BuildSetUserLock(const Args& args) {
  if (auto st = args.OnlyKeys({"email", "locked_at"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  if (!args.Has("locked_at")) return Error::InvalidArgument("missing required argument 'locked_at' (nil unlocks)");
  TRY(at, args.Timestamp("locked_at"));
  Plan p;
  p.cmds.emplace_back(Stmt::kSetUserLock);
  p.cmds.back().Add(*email);
  if (*at) {
    p.cmds.back().Add(std::to_string(**at));
  } else {
    p.cmds.back().AddNull();
  }
  p.render = RenderEmpty;
  return p;
}

Result<Plan> BuildGetUserLock(const Args& args) {
  if (auto st = args.OnlyKeys({"email"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  Plan p;
  p.cmds.emplace_back(Stmt::kGetUserLock);
  p.cmds.back().Add(*email);
  p.render = RenderUserLock;
  return p;
}

const OpDef kGuardOps[] = {
    {"record_login_failure", BuildRecordLoginFailure, true},
    {"login_failures", BuildLoginFailures, true},
    {"clear_login_failures", BuildClearLoginFailures, true},
    {"set_user_lock", BuildSetUserLock, true},
    {"get_user_lock", BuildGetUserLock, true},
};

}  // namespace

std::span<const StatementDef> GuardStatements() { return kStatements; }

std::span<const OpDef> GuardOps() { return kGuardOps; }

}  // namespace torii::daemon
