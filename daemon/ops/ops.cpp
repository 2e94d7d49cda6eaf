// The operation table: joins the families (ops_<family>.cpp) into one
// lookup by name, and wraps a plan for row-level security.
#include "ops/ops.h"

#include <unordered_map>

#include "ops/ops_common.h"
#include "torii/operations.h"

namespace torii::daemon {

namespace {

// The statement that makes the rest of a plan run as an actor.
const StatementDef kStatements[] = {
    {Stmt::kSetActor, "t_set_actor",
     "SELECT set_config('role', 'torii_actor', true), set_config('torii.user_id', $1, true)", 0},
};

struct Entry {
  const OpDef* def;
  bool read_only;  // from the protocol's table
};
using OpIndex = std::unordered_map<std::string_view, Entry>;

// An operation missing from the protocol's table is a bug that the unit
// tests (ops_table_test) report by name; here it is simply never read-only.
OpIndex BuildIndex() {
  OpIndex index;
  for (auto family : {UserOps(), SessionOps(), AuditOps(), OAuthOps(), PasskeyOps(), TokenOps(), GuardOps(),
                      JwtOps(), TenantOps()}) {
    for (const OpDef& op : family) {
      const OperationInfo* info = FindOperation(op.name);
      index.emplace(op.name, Entry{&op, info != nullptr && info->read_only});
    }
  }
  return index;
}

const OpIndex& Index() {
  static const OpIndex index = BuildIndex();
  return index;
}

}  // namespace

std::span<const StatementDef> ActorStatements() { return kStatements; }

const OpDef* FindDatabaseOp(std::string_view name) {
  auto it = Index().find(name);
  return it == Index().end() ? nullptr : it->second.def;
}

std::vector<const OpDef*> DatabaseOps() {
  std::vector<const OpDef*> all;
  for (const auto& [name, entry] : Index()) all.push_back(entry.def);
  return all;
}

Result<Plan> BuildPlan(const OpDef& op, const Args& args, const std::optional<std::string>& actor,
                       std::string_view tenant) {
  if (actor && op.actor_forbidden) {
    return Error::Forbidden(std::string("'") + op.name + "' is not available to requests with an actor");
  }
  auto plan = op.build(args);
  if (!plan.ok()) return plan;
  for (Command& cmd : plan->cmds) {
    int param = Statement(cmd.stmt).tenant_param;
    if (param < 0) continue;
    if (cmd.values.size() != static_cast<size_t>(param)) {
      return Error::Internal(std::string("'") + op.name + "': a statement's parameters do not match its tenant's place");
    }
    cmd.Add(std::string(tenant));
  }
  if (tenant != kDefaultTenant) {
    plan->tenant = std::string(tenant);
    // The hot-session cache keys a named tenant's digests apart (a default
    // tenant's key is the bare 32-byte digest, as before tenants).
    if (plan->hot.kind == HotKey::kDigest) plan->hot.value = HotDigestKey(tenant, plan->hot.value);
  }
  auto it = Index().find(op.name);
  plan->read_only = it != Index().end() && it->second.read_only && !actor;
  if (!actor) return plan;
  Command set_actor(Stmt::kSetActor);
  set_actor.Add(*actor);
  plan->cmds.insert(plan->cmds.begin(), std::move(set_actor));
  plan->main++;
  return plan;
}

}  // namespace torii::daemon
