// The audit family: list_audit, newest first, by table or record
// (PROTOCOL.md section 2; the log itself is written by triggers, 0003).
#include "ops/ops_common.h"
#include "ops/sql.h"

#include <cstdlib>

namespace torii::daemon {

namespace {

// The columns of an audit entry, read by name (kAuditFields; seq is the cursor).
#define AUDIT_COLS \
  "id, table_name, record_id, operation, old_data, new_data, actor, " US("created_at") " AS created_at_us, seq"

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    // list_audit, newest first by seq (the order rows were written); $n is the
    // `before` cursor (a seq, exclusive) or NULL. One statement per filter so
    // that each plan uses its own index (0003_audit.sql).
    {Stmt::kListAudit, "t_list_audit",
     "SELECT " AUDIT_COLS " FROM audit_logs WHERE tenant = $T AND ($1::int8 IS NULL OR seq < $1::int8) "
     "ORDER BY seq DESC LIMIT $2::int4", 0},
    {Stmt::kListAuditByTable, "t_list_audit_by_table",
     "SELECT " AUDIT_COLS " FROM audit_logs WHERE tenant = $T AND table_name = $1 AND ($2::int8 IS NULL OR seq < $2::int8) "
     "ORDER BY seq DESC LIMIT $3::int4", 0},
    // $2 optional table filter.
    {Stmt::kListAuditByRecord, "t_list_audit_by_record",
     "SELECT " AUDIT_COLS " FROM audit_logs WHERE tenant = $T AND record_id = $1::uuid AND ($2::text IS NULL OR table_name = $2) "
     "AND ($3::int8 IS NULL OR seq < $3::int8) ORDER BY seq DESC LIMIT $4::int4", 0},
};

// An Audit entry, in reply order.
constexpr Field kAuditFields[] = {
    {"id", "id", PackText},
    {"table", "table_name", PackText},
    {"record_id", "record_id", PackText},
    {"operation", "operation", PackText},
    {"old_data", "old_data", PackJsonb},
    {"new_data", "new_data", PackJsonb},
    {"actor", "actor", PackText},
    {"created_at", "created_at_us", PackMicros},
};

Status RenderAuditPage(const PGresult* r, const Plan& plan, Packer& pk) {
  int rows = PQntuples(r);
  bool more = rows > plan.limit;
  int n = more ? static_cast<int>(plan.limit) : rows;
  FieldColumns cols(r, kAuditFields);
  int seq = PQfnumber(r, "seq");
  if (!cols.complete() || seq < 0) return MissingColumns("audit entry");
  pk.pack_map(2);
  PackStr(pk, "entries");
  pk.pack_array(n);
  for (int i = 0; i < n; i++) cols.Pack(pk, r, i);
  PackStr(pk, "next");
  if (more) {
    // The cursor is the last entry's seq (exclusive bound of the next page);
    // rows written later get larger seqs, so they never shift a page.
    PackStr(pk, PQgetvalue(r, n - 1, seq));
  } else {
    pk.pack_nil();
  }
  return {};
}

Result<Plan> BuildListAudit(const Args& args) {
  if (auto st = args.OnlyKeys({"record_id", "table", "limit", "before"}); !st.ok()) return st.error();
  TRY(record_id, args.Uuid("record_id"));
  TRY(table, args.Str("table"));
  TRY(limit, args.Int("limit"));
  TRY(before, args.Str("before"));
  if (*table) {
    // The audited tables (schema/0003, 0010, 0011).
    static const char* const kTables[] = {"users", "sessions", "oauth_accounts", "passkeys", "secure_tokens"};
    bool known = false;
    for (const char* t : kTables) known |= **table == t;
    if (!known) {
      return Error::InvalidArgument(
          "'table' must be 'users', 'sessions', 'oauth_accounts', 'passkeys' or 'secure_tokens'");
    }
  }
  int64_t n = limit->value_or(100);
  if (n < 1 || n > 1000) return Error::InvalidArgument("'limit' must be 1 to 1000");
  std::optional<std::string> cursor;
  if (*before) {
    const std::string& c = **before;
    char* end = nullptr;
    long long seq = c.empty() || c.size() > 19 ? 0 : std::strtoll(c.c_str(), &end, 10);
    if (c.empty() || c.size() > 19 || end != c.c_str() + c.size() || seq <= 0) {
      return Error::InvalidArgument("'before' is not a cursor from list_audit");
    }
    cursor = std::to_string(seq);
  }
  Plan p;
  if (*record_id) {
    p.cmds.emplace_back(Stmt::kListAuditByRecord);
    p.cmds.back().Add(**record_id).AddOpt(*table);
  } else if (*table) {
    p.cmds.emplace_back(Stmt::kListAuditByTable);
    p.cmds.back().Add(**table);
  } else {
    p.cmds.emplace_back(Stmt::kListAudit);
  }
  p.cmds.back().AddOpt(cursor).Add(std::to_string(n + 1));
  p.limit = n;
  p.render = RenderAuditPage;
  return p;
}

const OpDef kAuditOps[] = {
    {"list_audit", BuildListAudit},
};

}  // namespace

std::span<const StatementDef> AuditStatements() { return kStatements; }

std::span<const OpDef> AuditOps() { return kAuditOps; }

}  // namespace torii::daemon
