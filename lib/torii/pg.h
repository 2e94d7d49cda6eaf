// RAII owners for libpq handles, and the blocking helpers used only before
// the event loop starts (migrations, the embedded server, tests, tools).
// After start-up the daemon talks to PostgreSQL only through its pool and
// listener, never through these blocking calls.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "torii/error.h"

namespace torii {

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// The Error for a failed result (SQLSTATE mapped by ErrorFromSqlState).
Error ErrorFromResult(const PGresult* res);
// The Error for a connection that failed or broke: unavailable.
Error ErrorFromConn(const PGconn* conn);

// Blocking connect; `conninfo` is a URI or key=value string. Errors are
// unavailable and never echo a password.
Result<PgConn> ConnectBlocking(const std::string& conninfo);
// Blocking query with no parameters (may hold several statements).
Result<PgResult> ExecBlocking(PGconn* conn, const std::string& sql);
// Blocking query with text parameters (nullptr for NULL).
Result<PgResult> ExecParamsBlocking(PGconn* conn, const std::string& sql, const std::vector<const char*>& params);

// Quotes a string as a SQL identifier or literal for the connection.
std::string QuoteIdent(PGconn* conn, const std::string& s);
std::string QuoteLiteral(PGconn* conn, const std::string& s);

}  // namespace torii
