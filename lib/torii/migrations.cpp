// Migration runner.
#include "torii/migrations.h"

#include <sodium.h>

#include <cstdio>
#include <map>

#include "torii/log.h"
#include "torii/pg.h"

namespace torii {

namespace {

// pg_advisory_lock key: "torii" in ASCII, shared by every toriid.
constexpr const char* kLockKey = "500085975401";

std::string Label(const Migration& m) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d_", m.version);
  return buf + m.name;
}

Result<MigrationReport> ApplyLocked(PGconn* conn, const std::vector<Migration>& all) {
  auto created = ExecBlocking(conn,
                              "CREATE TABLE IF NOT EXISTS torii_schema_migrations ("
                              " version INTEGER PRIMARY KEY,"
                              " name TEXT NOT NULL,"
                              " checksum TEXT NOT NULL,"
                              " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
  if (!created.ok()) return created.error();
  auto rows = ExecBlocking(conn, "SELECT version, name, checksum FROM torii_schema_migrations ORDER BY version");
  if (!rows.ok()) return rows.error();

  std::map<int, const Migration*> known;
  for (const auto& m : all) known[m.version] = &m;

  MigrationReport report;
  std::map<int, bool> recorded;
  PGresult* r = rows->get();
  for (int i = 0; i < PQntuples(r); i++) {
    int version = std::atoi(PQgetvalue(r, i, 0));
    std::string name = PQgetvalue(r, i, 1);
    std::string sum = PQgetvalue(r, i, 2);
    auto it = known.find(version);
    if (it == known.end()) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%04d_", version);
      return Error::Internal("the database has migration " + std::string(buf) + name +
                             " which this toriid does not know: it is older than the schema; upgrade toriid");
    }
    if (MigrationChecksum(*it->second) != sum) {
      return Error::Internal("migration " + Label(*it->second) + " was applied with checksum " + sum +
                             " but this toriid has " + MigrationChecksum(*it->second) +
                             ": an applied migration was edited; restore it or fix the database by hand");
    }
    recorded[version] = true;
    report.current = std::max(report.current, version);
  }

  for (const auto& m : all) {
    if (recorded.count(m.version)) continue;
    std::string label = Label(m);
    auto begin = ExecBlocking(conn, "BEGIN");
    if (!begin.ok()) return begin.error();
    auto run = ExecBlocking(conn, m.sql);
    if (!run.ok()) {
      (void)ExecBlocking(conn, "ROLLBACK");
      return Error(run.error().code(), "migration " + label + " failed: " + run.error().message());
    }
    std::string version = std::to_string(m.version);
    std::string sum = MigrationChecksum(m);
    auto rec = ExecParamsBlocking(conn, "INSERT INTO torii_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                                  {version.c_str(), m.name.c_str(), sum.c_str()});
    if (!rec.ok()) {
      (void)ExecBlocking(conn, "ROLLBACK");
      return rec.error();
    }
    auto commit = ExecBlocking(conn, "COMMIT");
    if (!commit.ok()) return commit.error();
    TLOG_INFO("migrations: applied %s", label.c_str());
    report.applied++;
    report.current = m.version;
    report.names.push_back(label);
  }
  return report;
}

}  // namespace

std::string MigrationChecksum(const Migration& m) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(m.sql.data()), m.sql.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  return hex;
}

Result<MigrationReport> ApplyMigrations(PGconn* conn, const std::vector<Migration>& all) {
  auto lock = ExecBlocking(conn, std::string("SELECT pg_advisory_lock(") + kLockKey + ")");
  if (!lock.ok()) return lock.error();
  auto report = ApplyLocked(conn, all);
  auto unlock = ExecBlocking(conn, std::string("SELECT pg_advisory_unlock(") + kLockKey + ")");
  if (!unlock.ok() && report.ok()) return unlock.error();
  return report;
}

}  // namespace torii
