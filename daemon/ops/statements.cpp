// The statement table: joins the statements each family keeps beside its
// code (ops_<family>.cpp) into one array indexed by Stmt.
#include "ops/statements.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <initializer_list>
#include <span>
#include <string>

#include "ops/ops_common.h"
#include "ops/ops_sessions.h"

namespace torii::daemon {

namespace {

using Table = std::array<const StatementDef*, kStatementCount>;

// `def` with its `$T` replaced by the parameter after its highest `$n`
// (tenant_param set to that parameter's index), kept in `sqls`.
StatementDef WithTenantParam(const StatementDef& def, std::deque<std::string>& sqls) {
  StatementDef out = def;
  std::string sql = def.sql;
  if (sql.find("$T") == std::string::npos) return out;
  int highest = 0;
  for (size_t i = 0; i + 1 < sql.size(); i++) {
    if (sql[i] != '$' || !std::isdigit(static_cast<unsigned char>(sql[i + 1]))) continue;
    highest = std::max(highest, std::atoi(sql.c_str() + i + 1));
  }
  const std::string param = "$" + std::to_string(highest + 1);
  for (size_t at = sql.find("$T"); at != std::string::npos; at = sql.find("$T", at + param.size())) {
    sql.replace(at, 2, param);
  }
  out.tenant_param = highest;
  sqls.push_back(std::move(sql));
  out.sql = sqls.back().c_str();
  return out;
}

// A Stmt defined twice or never is a bug found at the first statement the
// daemon prepares (and by the unit tests): it stops with the Stmt's number.
Table BuildTable() {
  // The statements as prepared; they live as long as the table.
  static std::deque<StatementDef> defs;
  static std::deque<std::string> sqls;
  Table t{};
  for (std::span<const StatementDef> family :
       {ActorStatements(), UserStatements(), SessionStatements(), AuditStatements(), TokenStatements(),
        GuardStatements(), JwtStatements(), OAuthStatements(), PasskeyStatements(), TenantStatements()}) {
    for (const StatementDef& def : family) {
      auto i = static_cast<size_t>(def.id);
      if (i >= t.size() || t[i] != nullptr) {
        std::fprintf(stderr, "toriid: statement %zu defined twice\n", i);
        std::abort();
      }
      defs.push_back(WithTenantParam(def, sqls));
      t[i] = &defs.back();
    }
  }
  for (size_t i = 0; i < t.size(); i++) {
    if (t[i] == nullptr) {
      std::fprintf(stderr, "toriid: statement %zu not defined\n", i);
      std::abort();
    }
  }
  return t;
}

}  // namespace

const StatementDef& Statement(Stmt s) {
  static const Table table = BuildTable();
  return *table[static_cast<size_t>(s)];
}

}  // namespace torii::daemon
