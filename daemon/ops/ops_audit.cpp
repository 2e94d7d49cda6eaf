// The audit family: list_audit, newest first, by table or record
// (PROTOCOL.md section 2; the log itself is written by triggers, 0003).
#include "ops/ops_common.h"

#include <cstdlib>

namespace torii::daemon {

namespace {

// Columns of AUDIT_COLS in statements.cpp; the last one (seq) is the cursor.
void PackAudit(Packer& pk, const PGresult* r, int row) {
  pk.pack_map(8);
  PackStr(pk, "id");
  PackText(pk, r, row, 0);
  PackStr(pk, "table");
  PackText(pk, r, row, 1);
  PackStr(pk, "record_id");
  PackText(pk, r, row, 2);
  PackStr(pk, "operation");
  PackText(pk, r, row, 3);
  PackStr(pk, "old_data");
  PackJsonb(pk, r, row, 4);
  PackStr(pk, "new_data");
  PackJsonb(pk, r, row, 5);
  PackStr(pk, "actor");
  PackText(pk, r, row, 6);
  PackStr(pk, "created_at");
  PackMicros(pk, r, row, 7);
}

Status RenderAuditPage(const PGresult* r, const Plan& plan, Packer& pk) {
  int rows = PQntuples(r);
  bool more = rows > plan.limit;
  int n = more ? static_cast<int>(plan.limit) : rows;
  pk.pack_map(2);
  PackStr(pk, "entries");
  pk.pack_array(n);
  for (int i = 0; i < n; i++) PackAudit(pk, r, i);
  PackStr(pk, "next");
  if (more) {
    // The cursor is the last entry's seq (exclusive bound of the next page);
    // rows written later get larger seqs, so they never shift a page.
    PackStr(pk, PQgetvalue(r, n - 1, 8));
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
    {"list_audit", BuildListAudit, true},
};

}  // namespace

std::span<const OpDef> AuditOps() { return kAuditOps; }

}  // namespace torii::daemon
