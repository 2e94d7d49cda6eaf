// The database operations of PROTOCOL.md sections 2 and 5: for each, how its
// arguments become statements (a Plan) and how the statement's result becomes
// the reply's `result`. Pure functions over lib/'s codec; no I/O, no state,
// callable from any thread (the daemon calls them on its loop thread).
// Each family of operations lives in its own ops_<family>.cpp (users,
// sessions, audit, ...), on the helpers of ops_common.h; ops.cpp joins them.
// The operations the daemon answers itself are in local_ops.h.
#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ops/command.h"
#include "torii/protocol.h"

namespace torii::daemon {

struct Plan;
// Packs the result value from the main command's result, or returns the
// error to reply with instead (not_found, ...).
using RenderFn = Status (*)(const PGresult* res, const Plan& plan, Packer& pk);
// Packs row `row` of `res` (-1: no row), for a plan whose statement can run
// inside a lookup batch (StatementDef::batched): its answer is one row of
// the batch's result.
using RowRenderFn = Status (*)(const PGresult* res, int row, const Plan& plan, Packer& pk);

// What a request means to the hot-session cache (hot_sessions.h): a lookup
// it may answer (read), or the sessions a write invalidates before its reply.
struct HotKey {
  enum Kind : uint8_t { kNone, kDigest, kId, kUser, kExpired };
  Kind kind = kNone;
  std::string value;  // the token digest (binary), the session id or the user id
  bool read = false;  // get_session: answered from the cache, filled on a miss
};

// The hot-session cache's key for a token digest in `tenant`: the bare
// digest in the default tenant (as before tenants), else the tenant's name,
// a NUL and the digest (never 32 bytes long, so never a default key).
inline std::string HotDigestKey(std::string_view tenant, std::string_view digest) {
  if (tenant == kDefaultTenant) return std::string(digest);
  std::string key;
  key.reserve(tenant.size() + 1 + digest.size());
  key.append(tenant).push_back('\0');
  key.append(digest);
  return key;
}

struct Plan {
  std::vector<Command> cmds;
  size_t main = 0;  // the command whose result is rendered
  RenderFn render = nullptr;
  RowRenderFn render_row = nullptr;  // set when the main statement has a batched form
  std::string token;  // create_session: the new bearer token, returned once
  int64_t limit = 0;  // list ops: the page size, to tell whether more follow
  bool read_only = false;  // writes nothing and runs as the daemon's role
  HotKey hot;
  // The tenant the plan acts in (BuildPlan): every command of a statement
  // with a tenant parameter carries it, and the pool runs the job with
  // torii.tenant set to it.
  std::string tenant{kDefaultTenant};
};

using BuildFn = Result<Plan> (*)(const Args& args);

// A database operation: its name is a row of the protocol's operation table
// (torii/operations.h), which says whether it is read-only.
struct OpDef {
  const char* name;
  BuildFn build;
  bool actor_forbidden = false;  // an `actor` request is refused (forbidden)
  // Acts on every tenant (create_tenant, list_tenants): refused to a client
  // key bound to a tenant.
  bool spans_tenants = false;
};

// nullptr when `name` is not a database operation.
const OpDef* FindDatabaseOp(std::string_view name);
// Every database operation, in no particular order (for tests).
std::vector<const OpDef*> DatabaseOps();
// Builds the plan; with an actor, the statements run under row-level
// security as that user (a set_config command goes first). A read-only
// operation (OperationInfo::read_only) without an actor gets a read-only plan.
// Every statement with a tenant parameter gets `tenant` (a valid name).
Result<Plan> BuildPlan(const OpDef& op, const Args& args, const std::optional<std::string>& actor,
                       std::string_view tenant = kDefaultTenant);

}  // namespace torii::daemon
