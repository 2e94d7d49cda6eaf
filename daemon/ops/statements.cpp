// The statement table: joins the statements each family keeps beside its
// code (ops_<family>.cpp) into one array indexed by Stmt.
#include "ops/statements.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <span>

#include "ops/ops_common.h"
#include "ops/ops_sessions.h"

namespace torii::daemon {

namespace {

using Table = std::array<const StatementDef*, kStatementCount>;

// A Stmt defined twice or never is a bug found at the first statement the
// daemon prepares (and by the unit tests): it stops with the Stmt's number.
Table BuildTable() {
  Table t{};
  for (std::span<const StatementDef> family :
       {ActorStatements(), UserStatements(), SessionStatements(), AuditStatements(), TokenStatements(),
        GuardStatements(), JwtStatements(), OAuthStatements(), PasskeyStatements()}) {
    for (const StatementDef& def : family) {
      auto i = static_cast<size_t>(def.id);
      if (i >= t.size() || t[i] != nullptr) {
        std::fprintf(stderr, "toriid: statement %zu defined twice\n", i);
        std::abort();
      }
      t[i] = &def;
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
