// The operation table: joins the families (ops_<family>.cpp) into one
// lookup by name, and wraps a plan for row-level security.
#include "ops/ops.h"

#include <unordered_map>

#include "ops/ops_common.h"

namespace torii::daemon {

namespace {

using OpIndex = std::unordered_map<std::string_view, const OpDef*>;

OpIndex BuildIndex() {
  OpIndex index;
  for (auto family : {UserOps(), SessionOps(), AuditOps(), OAuthOps(), PasskeyOps(), TokenOps(), GuardOps(),
                      JwtOps()}) {
    for (const OpDef& op : family) index.emplace(op.name, &op);
  }
  return index;
}

}  // namespace

const OpDef* FindDatabaseOp(std::string_view name) {
  static const OpIndex index = BuildIndex();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

Result<Plan> BuildPlan(const OpDef& op, const Args& args, const std::optional<std::string>& actor) {
  if (actor && op.actor_forbidden) {
    return Error::Forbidden(std::string("'") + op.name + "' is not available to requests with an actor");
  }
  auto plan = op.build(args);
  if (!plan.ok()) return plan;
  plan->read_only = op.read_only && !actor;
  if (!actor) return plan;
  Command set_actor(Stmt::kSetActor);
  set_actor.Add(*actor);
  plan->cmds.insert(plan->cmds.begin(), std::move(set_actor));
  plan->main++;
  return plan;
}

}  // namespace torii::daemon
