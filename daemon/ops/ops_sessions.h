// The sessions family (ops_sessions.cpp): its statements return a session's
// columns, read by name. What the request path needs of a session
// row to key the hot-session cache is ReadSessionRow; the renderers stay in
// the family. Pure; any thread (the daemon calls it on its loop thread).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ops/statements.h"

namespace torii::daemon {

// The keys of row `row` of a session statement's result: views into the
// result, valid while it lives. nullopt when `row` < 0 or a key column is
// missing or NULL.
struct SessionRow {
  std::string_view id;
  std::string_view user_id;
  int64_t expires_at_us = 0;
};
std::optional<SessionRow> ReadSessionRow(const PGresult* r, int row);

// The family's statements (statements.cpp joins every family's).
std::span<const StatementDef> SessionStatements();

}  // namespace torii::daemon
