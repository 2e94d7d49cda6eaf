// Blocking libpq helpers for start-up, tools and tests.
#include "torii/pg.h"

#include "torii/log.h"

namespace torii {

Error ErrorFromResult(const PGresult* res) {
  if (res == nullptr) return Error::Unavailable("no result from the database");
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char* constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
  if (primary == nullptr) primary = PQresultErrorMessage(res);
  return ErrorFromSqlState(state, primary ? primary : "", constraint);
}

Error ErrorFromConn(const PGconn* conn) {
  std::string m = conn ? PQerrorMessage(conn) : "out of memory";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return Error::Unavailable(m.empty() ? "database connection failed" : m);
}

Result<PgConn> ConnectBlocking(const std::string& conninfo) {
  PgConn conn(PQconnectdb(conninfo.c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) return ErrorFromConn(conn.get());
  // Notices (e.g. "relation already exists, skipping") are not errors.
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);
  return conn;
}

Result<PgResult> ExecBlocking(PGconn* conn, const std::string& sql) {
  PgResult res(PQexec(conn, sql.c_str()));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (!res || PQstatus(conn) == CONNECTION_BAD) return ErrorFromConn(conn);
    return ErrorFromResult(res.get());
  }
  return res;
}

Result<PgResult> ExecParamsBlocking(PGconn* conn, const std::string& sql, const std::vector<const char*>& params) {
  PgResult res(PQexecParams(conn, sql.c_str(), static_cast<int>(params.size()), nullptr, params.data(), nullptr,
                            nullptr, 0));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (!res || PQstatus(conn) == CONNECTION_BAD) return ErrorFromConn(conn);
    return ErrorFromResult(res.get());
  }
  return res;
}

std::string QuoteIdent(PGconn* conn, const std::string& s) {
  char* q = PQescapeIdentifier(conn, s.data(), s.size());
  std::string out = q ? q : "";
  PQfreemem(q);
  return out;
}

std::string QuoteLiteral(PGconn* conn, const std::string& s) {
  char* q = PQescapeLiteral(conn, s.data(), s.size());
  std::string out = q ? q : "";
  PQfreemem(q);
  return out;
}

}  // namespace torii
