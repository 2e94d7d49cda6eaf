// torii migrate carries torii-rs's failed_login_attempts (email, ip_address,
// attempted_at in Unix seconds) into login_failures (issue 15): lower-cased
// emails, times to the microsecond, rows without email or time skipped, a
// re-run copies nothing again, and a file without the table is fine.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

#include "pg_cluster.h"
#include "torii/pg.h"
#include "torii/sqlite_migrate.h"

namespace torii {
namespace {

constexpr int64_t kNowS = 1735689600;  // 2025-01-01T00:00:00Z

struct Files {
  std::string dir = test::MakeTempDir("torii-mig-guard");
  std::string db = test::FreshDatabase();
  std::string path = dir + "/torii.db";
  ~Files() { test::RemoveTree(dir); }
};

void SqliteExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

std::string Query(PGconn* c, const std::string& sql) {
  auto r = ExecBlocking(c, sql);
  if (!r.ok()) throw std::runtime_error(r.error().ToString() + " in " + sql);
  if (PQntuples(r->get()) == 0 || PQgetisnull(r->get(), 0, 0)) return "<null>";
  return PQgetvalue(r->get(), 0, 0);
}

const char* kSchema =
    "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT NOT NULL UNIQUE, email_verified_at INTEGER,"
    " password_hash TEXT, created_at INTEGER, updated_at INTEGER, locked_at INTEGER);"
    "CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,"
    " user_agent TEXT, ip_address TEXT, expires_at INTEGER NOT NULL, created_at INTEGER, updated_at INTEGER);";

TEST(SqliteMigrateGuard, FailedLoginAttemptsBecomeLoginFailures) {
  Files fx;
  SqliteExec(fx.path, std::string(kSchema) +
                          "CREATE TABLE failed_login_attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL,"
                          " ip_address TEXT, attempted_at INTEGER NOT NULL);"
                          "INSERT INTO users (id, email) VALUES ('usr_a', 'a@example.com');"
                          "INSERT INTO failed_login_attempts (email, ip_address, attempted_at) VALUES"
                          " ('Ann@Example.com', '10.0.0.1', 1700000000), ('ann@example.com', NULL, 1700000100),"
                          " ('nobody@example.com', '10.0.0.2', 1700000200), ('', NULL, 1700000300),"
                          " ('x@example.com', NULL, 'garbage');");
  auto r = MigrateFromSqlite({fx.path, fx.db, false, kNowS * 1000000, ""});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->login_failures_read, 5);
  EXPECT_EQ(r->login_failures_skipped, 2);
  EXPECT_EQ(r->login_failures_new, 3);
  for (const auto& [t, n] : r->not_migrated_tables) EXPECT_NE(t, "failed_login_attempts");
  EXPECT_NE(FormatMigrateReport(*r).find("login failures: 5 read"), std::string::npos) << FormatMigrateReport(*r);

  auto conn = ConnectBlocking(fx.db);
  ASSERT_TRUE(conn.ok());
  PGconn* c = conn->get();
  EXPECT_EQ(Query(c, "SELECT count(*) FROM login_failures WHERE email = 'ann@example.com'"), "2");
  EXPECT_EQ(Query(c, "SELECT ip_address FROM login_failures WHERE email = 'nobody@example.com'"), "10.0.0.2");
  EXPECT_EQ(Query(c, "SELECT (extract(epoch from min(at)))::int8 FROM login_failures"), "1700000000");
  EXPECT_EQ(Query(c, "SELECT count(*) FROM login_failures"), "3");

  // Again: nothing new.
  auto again = MigrateFromSqlite({fx.path, fx.db, false, kNowS * 1000000, ""});
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again->login_failures_new, 0);
  EXPECT_TRUE(again->NothingToDo());
  EXPECT_EQ(Query(c, "SELECT count(*) FROM login_failures"), "3");
}

TEST(SqliteMigrateGuard, AFileWithoutTheTableIsFine) {
  Files fx;
  SqliteExec(fx.path, std::string(kSchema) + "INSERT INTO users (id, email) VALUES ('usr_a', 'a@example.com');");
  auto r = MigrateFromSqlite({fx.path, fx.db, false, kNowS * 1000000, ""});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->login_failures_read, 0);
  EXPECT_EQ(r->users_new, 1);
  EXPECT_EQ(FormatMigrateReport(*r).find("login failures"), std::string::npos);
}

}  // namespace
}  // namespace torii
