// Schema migrations: the schema/NNNN_name.sql files embedded at build time,
// applied in order under a PostgreSQL advisory lock so that several daemons
// may start at once against one database, each in its own transaction, and
// recorded in torii_schema_migrations (version, name, checksum, applied_at).
#pragma once

#include <libpq-fe.h>

#include <string>
#include <vector>

#include "torii/error.h"

namespace torii {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// The migrations this binary was built with, by ascending version.
const std::vector<Migration>& EmbeddedMigrations();

// Lower-case hex SHA-256 of a migration's SQL text.
std::string MigrationChecksum(const Migration& m);

struct MigrationReport {
  int applied = 0;        // migrations run by this call
  int current = 0;        // highest version now recorded
  std::vector<std::string> names;  // "0002_events" for each one applied
};

// Applies what `conn`'s database lacks; blocking, for start-up and tools.
// Refuses (and changes nothing) when a recorded migration's checksum
// differs from the embedded one or a recorded version is unknown here.
Result<MigrationReport> ApplyMigrations(PGconn* conn, const std::vector<Migration>& all = EmbeddedMigrations());

}  // namespace torii
