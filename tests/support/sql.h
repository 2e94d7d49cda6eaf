// Blocking SQL helpers for tests that check the database directly. Each
// throws std::runtime_error (a test failure with the reason) on an error.
#pragma once

#include <libpq-fe.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "torii/pg.h"

namespace torii::test {

inline PgConn Connect(const std::string& conninfo) {
  auto c = ConnectBlocking(conninfo);
  if (!c.ok()) throw std::runtime_error("connect: " + c.error().ToString());
  return std::move(c.value());
}

inline PgResult Exec(PGconn* c, const std::string& sql, const std::vector<const char*>& params = {}) {
  auto r = params.empty() ? ExecBlocking(c, sql) : ExecParamsBlocking(c, sql, params);
  if (!r.ok()) throw std::runtime_error(sql + ": " + r.error().ToString());
  return std::move(r.value());
}

// The single value of a one-row result; "<null>" for NULL.
inline std::string Scalar(PGconn* c, const std::string& sql, const std::vector<const char*>& params = {}) {
  PgResult r = Exec(c, sql, params);
  if (PQntuples(r.get()) != 1) throw std::runtime_error(sql + ": expected one row");
  return PQgetisnull(r.get(), 0, 0) ? "<null>" : PQgetvalue(r.get(), 0, 0);
}

// The SQLSTATE of a statement that must fail ("" if it succeeded).
inline std::string FailState(PGconn* c, const std::string& sql) {
  PgResult r(PQexec(c, sql.c_str()));
  if (PQresultStatus(r.get()) == PGRES_COMMAND_OK || PQresultStatus(r.get()) == PGRES_TUPLES_OK) return "";
  const char* s = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  return s ? s : "?";
}

}  // namespace torii::test
