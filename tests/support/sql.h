// Blocking SQL helpers for tests that check the database directly. Each
// throws std::runtime_error (a test failure with the reason) on an error.
#pragma once

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>

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

// Every payload on `channel` that `listener` (already LISTENing) receives
// up to a fence NOTIFY that `sender` sends now. NOTIFYs are delivered in
// commit order, so once the fence is in, everything committed before it is
// too: nothing is missed or extra. `fence` must be unique per call.
inline std::vector<std::string> NotifiedUntilFence(PGconn* sender, PGconn* listener, const std::string& channel,
                                                   const std::string& fence, int timeout_ms = 10000) {
  Exec(sender, "SELECT pg_notify($1, $2)", {channel.c_str(), fence.c_str()});
  std::vector<std::string> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (PQconsumeInput(listener) != 1) throw std::runtime_error("listener connection broke");
    while (PGnotify* n = PQnotifies(listener)) {
      std::string payload = n->extra;
      PQfreemem(n);
      if (payload == fence) return out;
      out.push_back(payload);
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("fence notification did not arrive");
    pollfd p{PQsocket(listener), POLLIN, 0};
    poll(&p, 1, static_cast<int>(left.count()));
  }
}

}  // namespace torii::test
