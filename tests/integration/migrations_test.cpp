// Integration tests of lib/torii/migrations against a real PostgreSQL: a
// private throwaway cluster (torii::EmbeddedPostgres in a temporary folder,
// on a free port, run as `postgres` when the tests run as root) shared by
// this suite, and a fresh database per test.
//
// Covers: a fresh apply creates the schema and records every migration;
// re-applying is a no-op; a recorded migration whose checksum differs, or a
// recorded version this binary does not know, is refused by name and
// nothing changes; three `toriid --migrate` processes started at once
// against one empty database all succeed and each migration runs once.
#include "torii/migrations.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "pg_cluster.h"
#include "torii/embedded_pg.h"
#include "torii/pg.h"

namespace torii {
namespace {

namespace fs = std::filesystem;


// A temporary folder that the postgres account can traverse (short path:
// the Unix socket lives inside it).
std::string MakeTemp(const char* prefix) {
  std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return {};
  fs::permissions(tmpl, fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  return tmpl;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) n++;
  return n;
}

class MigrationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = MakeTemp("torii-migr");
    ASSERT_FALSE(dir_.empty());
    EmbeddedPgOptions opt;
    opt.data_dir = dir_ + "/data";
    opt.port = test::FreePort();
    opt.run_as = "postgres";
    opt.fast_initdb = true;
    opt.settings = {{"fsync", "off"}, {"synchronous_commit", "off"}, {"full_page_writes", "off"}};
    pg_ = new EmbeddedPostgres(opt);
    auto init = pg_->Init();
    ASSERT_TRUE(init.ok()) << init.error().message();
    auto start = pg_->Start();
    ASSERT_TRUE(start.ok()) << start.error().message();
  }
  static void TearDownTestSuite() {
    delete pg_;  // stops the server
    pg_ = nullptr;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void SetUp() override {
    ASSERT_NE(pg_, nullptr);
    static std::atomic<int> n{0};
    dbname_ = "migr_" + std::to_string(getpid()) + "_" + std::to_string(n++);
    auto st = pg_->EnsureDatabase(dbname_);
    ASSERT_TRUE(st.ok()) << st.error().message();
    conninfo_ = pg_->ConnInfo(dbname_);
    auto c = ConnectBlocking(conninfo_);
    ASSERT_TRUE(c.ok()) << c.error().message();
    conn_ = std::move(c.value());
  }

  PGconn* conn() { return conn_.get(); }

  // The first column of the first row, or "(error: ...)".
  std::string Scalar(const std::string& sql) {
    auto r = ExecBlocking(conn(), sql);
    if (!r.ok()) return "(error: " + r.error().message() + ")";
    if (PQntuples(r->get()) == 0) return "(no rows)";
    return PQgetisnull(r->get(), 0, 0) ? "(null)" : PQgetvalue(r->get(), 0, 0);
  }

  // The recorded migrations as "version name checksum" lines.
  std::string Recorded() {
    auto r = ExecBlocking(conn(), "SELECT version, name, checksum FROM torii_schema_migrations ORDER BY version");
    if (!r.ok()) return "(error)";
    std::string out;
    for (int i = 0; i < PQntuples(r->get()); i++) {
      out += std::string(PQgetvalue(r->get(), i, 0)) + " " + PQgetvalue(r->get(), i, 1) + " " +
             PQgetvalue(r->get(), i, 2) + "\n";
    }
    return out;
  }

  static std::string dir_;
  static EmbeddedPostgres* pg_;
  std::string dbname_;
  std::string conninfo_;
  PgConn conn_;
};

std::string MigrationsTest::dir_;
EmbeddedPostgres* MigrationsTest::pg_ = nullptr;

TEST_F(MigrationsTest, FreshApplyCreatesSchemaAndRecordsEachMigration) {
  const auto& all = EmbeddedMigrations();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().version, 1);
  for (size_t i = 1; i < all.size(); i++) EXPECT_LT(all[i - 1].version, all[i].version);

  auto report = ApplyMigrations(conn());
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->applied, static_cast<int>(all.size()));
  EXPECT_EQ(report->current, all.back().version);
  ASSERT_EQ(report->names.size(), all.size());
  EXPECT_EQ(report->names.front(), "0001_" + all.front().name);

  for (const char* table : {"users", "sessions", "torii_schema_migrations"}) {
    EXPECT_EQ(Scalar(std::string("SELECT to_regclass('") + table + "') IS NOT NULL"), "t") << table;
  }
  // The RFC's columns and PROTOCOL.md's additions.
  EXPECT_EQ(Scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'sessions' "
                   "AND column_name = 'token_hash' AND data_type = 'bytea' AND is_nullable = 'NO'"),
            "1");
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'users' AND indexdef ILIKE '%UNIQUE%lower(email)%'"),
            "1");
  // The record: version, name, checksum, applied_at.
  EXPECT_EQ(Scalar("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
                   "WHERE table_name = 'torii_schema_migrations'"),
            "applied_at,checksum,name,version");
  std::string want;
  for (const auto& m : all) want += std::to_string(m.version) + " " + m.name + " " + MigrationChecksum(m) + "\n";
  EXPECT_EQ(Recorded(), want);
  EXPECT_EQ(Scalar("SELECT count(*) FROM torii_schema_migrations WHERE applied_at > now() - interval '5 minutes' "
                   "AND applied_at <= now()"),
            std::to_string(all.size()));
  // Checksums are SHA-256 in lower-case hex.
  EXPECT_EQ(MigrationChecksum(all.front()).size(), 64u);
  EXPECT_EQ(MigrationChecksum(Migration{1, "x", "abc"}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(MigrationsTest, ReapplyIsANoOp) {
  auto first = ApplyMigrations(conn());
  ASSERT_TRUE(first.ok()) << first.error().message();
  std::string before = Recorded();
  std::string stamp = Scalar("SELECT max(applied_at)::text FROM torii_schema_migrations");
  auto second = ApplyMigrations(conn());
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(second->applied, 0);
  EXPECT_TRUE(second->names.empty());
  EXPECT_EQ(second->current, EmbeddedMigrations().back().version);
  EXPECT_EQ(Recorded(), before);
  EXPECT_EQ(Scalar("SELECT max(applied_at)::text FROM torii_schema_migrations"), stamp);
}

TEST_F(MigrationsTest, LaterMigrationIsAppliedOnTop) {
  ASSERT_TRUE(ApplyMigrations(conn()).ok());
  auto all = EmbeddedMigrations();
  all.push_back({9001, "test_extra", "CREATE TABLE test_extra (x INTEGER);"});
  auto report = ApplyMigrations(conn(), all);
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_EQ(report->applied, 1);
  EXPECT_EQ(report->current, 9001);
  EXPECT_EQ(report->names, std::vector<std::string>{"9001_test_extra"});
  EXPECT_EQ(Scalar("SELECT to_regclass('test_extra') IS NOT NULL"), "t");
}

// A failing migration is rolled back whole and not recorded.
TEST_F(MigrationsTest, FailedMigrationChangesNothing) {
  ASSERT_TRUE(ApplyMigrations(conn()).ok());
  auto all = EmbeddedMigrations();
  all.push_back({9002, "broken", "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();"});
  std::string before = Recorded();
  auto report = ApplyMigrations(conn(), all);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.error().message().find("9002_broken"), std::string::npos) << report.error().message();
  EXPECT_EQ(Scalar("SELECT to_regclass('half_done') IS NULL"), "t");
  EXPECT_EQ(Recorded(), before);
}

TEST_F(MigrationsTest, EditedMigrationIsRefusedByName) {
  ASSERT_TRUE(ApplyMigrations(conn()).ok());
  auto tamper = ExecBlocking(conn(), "UPDATE torii_schema_migrations SET checksum = 'deadbeef' WHERE version = 1");
  ASSERT_TRUE(tamper.ok()) << tamper.error().message();
  std::string before = Recorded();

  // A new migration is pending too: it must not run either.
  auto all = EmbeddedMigrations();
  all.push_back({9003, "must_not_run", "CREATE TABLE must_not_run (x INTEGER);"});
  auto report = ApplyMigrations(conn(), all);
  ASSERT_FALSE(report.ok());
  const std::string& msg = report.error().message();
  EXPECT_NE(msg.find("0001_" + EmbeddedMigrations().front().name), std::string::npos) << msg;
  EXPECT_NE(msg.find("deadbeef"), std::string::npos) << msg;
  EXPECT_EQ(Recorded(), before);
  EXPECT_EQ(Scalar("SELECT to_regclass('must_not_run') IS NULL"), "t");
  // The advisory lock was released: another session can take it at once.
  EXPECT_EQ(Scalar("SELECT pg_try_advisory_lock(500085975401)"), "t");
}

TEST_F(MigrationsTest, UnknownRecordedVersionIsRefusedByName) {
  ASSERT_TRUE(ApplyMigrations(conn()).ok());
  auto future = ExecBlocking(conn(), "INSERT INTO torii_schema_migrations (version, name, checksum) "
                                     "VALUES (9998, 'from_the_future', 'abc')");
  ASSERT_TRUE(future.ok()) << future.error().message();
  std::string before = Recorded();
  auto all = EmbeddedMigrations();
  all.push_back({9999, "must_not_run", "CREATE TABLE must_not_run (x INTEGER);"});
  auto report = ApplyMigrations(conn(), all);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.error().message().find("9998_from_the_future"), std::string::npos) << report.error().message();
  EXPECT_EQ(Recorded(), before);
  EXPECT_EQ(Scalar("SELECT to_regclass('must_not_run') IS NULL"), "t");
}

// The daemon refuses to start on a tampered database and names the migration.
TEST_F(MigrationsTest, ToriidMigrateRefusesEditedMigration) {
  ASSERT_TRUE(ApplyMigrations(conn()).ok());
  ASSERT_TRUE(ExecBlocking(conn(), "UPDATE torii_schema_migrations SET checksum = 'deadbeef' WHERE version = 1").ok());
  std::string config = dir_ + "/" + dbname_ + ".toml";
  std::ofstream(config) << "[database]\nurl = \"" << conninfo_ << "\"\n";
  std::string cmd = std::string(TORIID_BINARY) + " --migrate --config " + config + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find("0001_" + EmbeddedMigrations().front().name), std::string::npos) << out;
}

TEST_F(MigrationsTest, ThreeDaemonsMigrateOneEmptyDatabaseAtOnce) {
  std::string config = dir_ + "/" + dbname_ + ".toml";
  std::ofstream(config) << "[database]\nurl = \"" << conninfo_ << "\"\n";

  // All three are forked first and then released together through a pipe,
  // so that they reach the database at the same moment.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  for (int i = 0; i < 3; i++) {
    std::string log = dir_ + "/" + dbname_ + "." + std::to_string(i) + ".log";
    logs.push_back(log);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char c;
      if (read(go[0], &c, 1) < 0) _exit(99);
      FILE* f = freopen(log.c_str(), "w", stderr);
      if (f == nullptr) _exit(98);
      dup2(STDERR_FILENO, STDOUT_FILENO);
      execl(TORIID_BINARY, TORIID_BINARY, "--migrate", "--config", config.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  close(go[0]);
  close(go[1]);  // EOF releases all three at once

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::string all_logs;
  for (size_t i = 0; i < pids.size(); i++) {
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(pids[i], &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
      usleep(20000);
    }
    if (r == 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], &status, 0);
      ADD_FAILURE() << "toriid --migrate " << i << " did not finish in time";
    }
    std::string log = ReadAll(logs[i]);
    all_logs += log;
    ASSERT_TRUE(WIFEXITED(status)) << log;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "process " << i << ":\n" << log;
  }
  const auto& all = EmbeddedMigrations();
  EXPECT_EQ(Scalar("SELECT count(*) FROM torii_schema_migrations"), std::to_string(all.size()));
  EXPECT_EQ(Scalar("SELECT count(DISTINCT version) FROM torii_schema_migrations"), std::to_string(all.size()));
  // Each migration ran in exactly one of the three processes.
  for (const auto& m : all) {
    char label[32];
    std::snprintf(label, sizeof(label), "%04d_", m.version);
    EXPECT_EQ(Count(all_logs, std::string("migrations: applied ") + label + m.name), 1u)
        << label << m.name << "\n" << all_logs;
  }
}

}  // namespace
}  // namespace torii
