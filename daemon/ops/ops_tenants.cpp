// The tenants family (PROTOCOL.md section 6, issue 26): the admin
// operations create_tenant and list_tenants, and the statements the request
// path uses to check a tenant exists and the pool to switch a connection's
// tenant (torii.tenant, read by the row-level security of 0014).
#include "ops/ops_common.h"
#include "ops/sql.h"

namespace torii::daemon {

namespace {

const StatementDef kStatements[] = {
    // Session-wide, committed in its own transaction: the connection keeps
    // it until the pool switches again (pool_conn.cpp).
    {Stmt::kSetTenant, "t_set_tenant", "SELECT set_config('torii.tenant', $1, false)", 0},
    {Stmt::kTenantExists, "t_tenant_exists", "SELECT 1 FROM tenants WHERE name = $1", 0},
    {Stmt::kCreateTenant, "t_create_tenant",
     "INSERT INTO tenants (name) VALUES ($1) RETURNING name, " US("created_at") " AS created_at_us", 0},
    {Stmt::kListTenants, "t_list_tenants",
     "SELECT name, " US("created_at") " AS created_at_us FROM tenants ORDER BY name", 0},
    // stats' per-tenant counts: users, and unexpired sessions. Run with
    // torii.tenant '*' (every tenant's rows); index-only scans of the
    // (tenant, ...) indexes.
    {Stmt::kTenantCounts, "t_tenant_counts",
     "SELECT t.name, (SELECT count(*) FROM users u WHERE u.tenant = t.name), "
     "(SELECT count(*) FROM sessions s WHERE s.tenant = t.name AND s.expires_at > now()) "
     "FROM tenants t ORDER BY t.name", 0},
};

constexpr Field kTenantFields[] = {
    {"name", "name", PackText},
    {"created_at", "created_at_us", PackMicros},
};

Status RenderTenant(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::Internal("create_tenant returned no row");
  FieldColumns cols(r, kTenantFields);
  if (!cols.complete()) return MissingColumns("tenant");
  cols.Pack(pk, r, 0);
  return {};
}

Status RenderTenants(const PGresult* r, const Plan&, Packer& pk) {
  FieldColumns cols(r, kTenantFields);
  if (!cols.complete()) return MissingColumns("tenant");
  pk.pack_map(1);
  PackStr(pk, "tenants");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) cols.Pack(pk, r, i);
  return {};
}

Result<Plan> BuildCreateTenant(const Args& args) {
  if (auto st = args.OnlyKeys({"name"}); !st.ok()) return st.error();
  TRY(name, args.RequiredStr("name"));
  if (!IsValidTenantName(*name)) return Error::InvalidArgument("'name' must be 1 to 64 bytes of [a-z0-9_.-]");
  Plan plan;
  Command cmd(Stmt::kCreateTenant);
  cmd.Add(*name);
  plan.cmds.push_back(std::move(cmd));
  plan.render = RenderTenant;
  return plan;
}

Result<Plan> BuildListTenants(const Args& args) {
  if (auto st = args.OnlyKeys({}); !st.ok()) return st.error();
  Plan plan;
  plan.cmds.emplace_back(Stmt::kListTenants);
  plan.render = RenderTenants;
  return plan;
}

// Spanning operations: refused to actors here, to bound keys by the
// request path (requests.cpp).
const OpDef kOps[] = {
    {"create_tenant", BuildCreateTenant, true, true},
    {"list_tenants", BuildListTenants, true, true},
};

}  // namespace

std::span<const StatementDef> TenantStatements() { return kStatements; }
std::span<const OpDef> TenantOps() { return kOps; }

}  // namespace torii::daemon
