// The schema's own behaviour, at the SQL level, with no daemon: the event
// triggers' NOTIFY payloads (0002), the audit log and its switches (0003),
// row-level security for a plain SQL session as a role granted torii_actor
// (0005), and the migration's refusal without CREATEROLE. Each test runs
// the embedded migrations on a fresh database of the shared cluster and
// LISTENs with a blocking libpq connection.
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg_cluster.h"
#include "sql.h"
#include "torii/migrations.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

using nlohmann::json;

const char* kHash = "$argon2id$v=19$m=65536$SECRET-HASH-VALUE";
const char* kUser1 = "11111111-1111-4111-8111-111111111111";
const char* kUser2 = "22222222-2222-4222-8222-222222222222";


class SchemaSqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = FreshDatabase();
    db_ = Connect(conninfo_);
    auto applied = ApplyMigrations(db_.get());
    ASSERT_TRUE(applied.ok()) << applied.error().ToString();
    ASSERT_GE(applied->current, 5);
    listener_ = Connect(conninfo_);
    Exec(listener_.get(), "LISTEN torii_events");
  }

  // Every payload on torii_events up to a fence NOTIFY sent now from db_:
  // NOTIFYs of one session arrive in commit order, so once the fence is in,
  // everything committed before it is too, and nothing is missed or extra.
  // The payloads since the last call, each checked for its event identity
  // (0009: "eid", from one sequence, so increasing in commit order here,
  // where one connection writes) and returned without it, as re-serialised
  // JSON, so the tests below compare only what the event is about.
  std::vector<std::string> Payloads(int timeout_ms = 10000) {
    auto raw = NotifiedUntilFence(db_.get(), listener_.get(), "torii_events", "fence-" + std::to_string(++fences_),
                                  timeout_ms);
    for (auto& p : raw) {
      json j = json::parse(p);
      EXPECT_TRUE(j.contains("eid") && j["eid"].is_number_unsigned()) << p;
      if (j.contains("eid") && j["eid"].is_number_unsigned()) {
        EXPECT_GT(j["eid"].get<uint64_t>(), last_eid_) << p;
        last_eid_ = j["eid"].get<uint64_t>();
        j.erase("eid");
      }
      // 0014: every payload names its tenant (checked by the tenant tests
      // of tenant_schema_test.cpp); the tests here are about the rest.
      EXPECT_TRUE(j.contains("tenant") && j["tenant"].is_string()) << p;
      j.erase("tenant");
      p = j.dump();
    }
    return raw;
  }
  std::vector<json> Events() {
    std::vector<json> out;
    for (const auto& p : Payloads()) out.push_back(json::parse(p));
    return out;
  }

  void InsertUser(const char* id, const std::string& email) {
    Exec(db_.get(),
         "INSERT INTO users (id, email, password_hash, metadata) VALUES ($1, $2, $3, "
         "'{\"secret_note\": \"METADATA-VALUE\"}')",
         {id, email.c_str(), kHash});
  }
  // A session of `user` whose token digest is `digest_hex`; `expired` puts
  // its expiry in the past.
  void InsertSession(const char* id, const char* user, const std::string& digest_hex, bool expired = false) {
    std::string sql = std::string("INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES ($1, $2, "
                                  "decode($3, 'hex'), now() ") +
                      (expired ? "- interval '1 hour')" : "+ interval '1 hour')");
    Exec(db_.get(), sql, {id, user, digest_hex.c_str()});
  }

  // All of audit_logs as text, to search for secrets.
  std::string AuditText() { return Scalar(db_.get(), "SELECT coalesce(string_agg(a::text, '|'), '') FROM audit_logs a"); }

  std::string conninfo_;
  PgConn db_;
  PgConn listener_;
  int fences_ = 0;
  uint64_t last_eid_ = 0;
};

std::string Digest(char c) { return std::string(64, c); }

TEST_F(SchemaSqlTest, UserEventsCarryIdsEmailsAndChangedColumnsOnly) {
  InsertUser(kUser1, "Quentin.Smith@example.com");
  Exec(db_.get(), "UPDATE users SET email = 'q@example.org', metadata = '{\"x\": \"OTHER-VALUE\"}' WHERE id = $1",
       {kUser1});
  Exec(db_.get(), "UPDATE users SET password_hash = 'ANOTHER-SECRET-HASH' WHERE id = $1", {kUser1});
  Exec(db_.get(), "DELETE FROM users WHERE id = $1", {kUser1});

  auto raw = Payloads();
  ASSERT_EQ(raw.size(), 4u);
  for (const auto& p : raw) {
    EXPECT_EQ(p.find("SECRET-HASH"), std::string::npos) << p;
    EXPECT_EQ(p.find("VALUE"), std::string::npos) << "metadata value in " << p;
    EXPECT_LT(p.size(), 8000u);
  }
  json created = json::parse(raw[0]);
  EXPECT_EQ(created, json({{"f", "user"}, {"k", "created"}, {"id", kUser1}, {"email", "Quentin.Smith@example.com"}}));

  json renamed = json::parse(raw[1]);
  EXPECT_EQ(renamed["k"], "updated");
  EXPECT_EQ(renamed["email"], "q@example.org");
  EXPECT_EQ(renamed["old_email"], "Quentin.Smith@example.com");
  EXPECT_EQ(renamed["changed"], json({"email", "metadata", "updated_at"}));

  json rehashed = json::parse(raw[2]);
  EXPECT_FALSE(rehashed.contains("old_email")) << rehashed;
  EXPECT_EQ(rehashed["changed"], json({"password_hash", "updated_at"}));

  EXPECT_EQ(json::parse(raw[3]), json({{"f", "user"}, {"k", "deleted"}, {"id", kUser1}, {"email", "q@example.org"}}));
}

TEST_F(SchemaSqlTest, SessionEventsAndCascadedDeletesNotifyEachSession) {
  InsertUser(kUser1, "a@example.com");
  const char* s1 = "aaaaaaaa-0000-4000-8000-000000000001";
  const char* s2 = "aaaaaaaa-0000-4000-8000-000000000002";
  const char* s3 = "aaaaaaaa-0000-4000-8000-000000000003";
  InsertSession(s1, kUser1, Digest('a'));
  InsertSession(s2, kUser1, Digest('b'));
  InsertSession(s3, kUser1, Digest('c'));
  Exec(db_.get(), "UPDATE sessions SET expires_at = timestamptz '2100-01-02 03:04:05.123456+00' WHERE id = $1", {s1});
  Exec(db_.get(), "DELETE FROM sessions WHERE id = $1", {s2});
  Exec(db_.get(), "DELETE FROM users WHERE id = $1", {kUser1});  // cascades to s1 and s3

  auto raw = Payloads();
  for (const auto& p : raw) {
    for (char c : {'a', 'b', 'c'}) EXPECT_EQ(p.find(Digest(c).substr(0, 16)), std::string::npos) << p;
  }
  std::vector<json> ev;
  for (const auto& p : raw) ev.push_back(json::parse(p));
  ASSERT_EQ(ev.size(), 9u);  // user created, 3 created, 1 updated, 1 deleted, user deleted + 2 cascaded
  EXPECT_EQ(ev[1], json({{"f", "session"}, {"k", "created"}, {"id", s1}, {"user_id", kUser1}}));
  EXPECT_EQ(ev[4]["k"], "updated");
  EXPECT_EQ(ev[4]["id"], s1);
  EXPECT_EQ(ev[4]["user_id"], kUser1);
  EXPECT_EQ(ev[4]["expires_at"].get<int64_t>(), 4102542245123456LL);
  EXPECT_EQ(ev[4]["changed"], json({"expires_at"}));
  EXPECT_EQ(ev[5], json({{"f", "session"}, {"k", "deleted"}, {"id", s2}, {"user_id", kUser1}}));
  // The user's deletion and its cascade, in whatever order the triggers fire.
  std::set<std::string> cascaded;
  int users_deleted = 0;
  for (size_t i = 6; i < ev.size(); i++) {
    if (ev[i]["f"] == "user") {
      EXPECT_EQ(ev[i], json({{"f", "user"}, {"k", "deleted"}, {"id", kUser1}, {"email", "a@example.com"}}));
      users_deleted++;
    } else {
      EXPECT_EQ(ev[i]["k"], "deleted");
      EXPECT_EQ(ev[i]["user_id"], kUser1);
      cascaded.insert(ev[i]["id"].get<std::string>());
    }
  }
  EXPECT_EQ(users_deleted, 1);
  EXPECT_EQ(cascaded, (std::set<std::string>{s1, s3}));
}

TEST_F(SchemaSqlTest, RolledBackChangesNotifyNothingAndEmailLengthIsBounded) {
  Exec(db_.get(), "BEGIN");
  InsertUser(kUser1, "gone@example.com");
  Exec(db_.get(), "ROLLBACK");
  EXPECT_TRUE(Payloads().empty());

  std::string long_email = std::string(243, 'x') + "@example.com";  // 255 bytes
  EXPECT_EQ(FailState(db_.get(), "INSERT INTO users (id, email) VALUES (gen_random_uuid(), '" + long_email + "')"),
            "23514");
  std::string max_email = std::string(242, 'x') + "@example.com";  // 254 bytes: the largest payloads
  InsertUser(kUser1, max_email);
  Exec(db_.get(), "UPDATE users SET email = $2 WHERE id = $1", {kUser1, (std::string(242, 'y') + "@example.com").c_str()});
  auto raw = Payloads();
  ASSERT_EQ(raw.size(), 2u);
  EXPECT_LT(raw[1].size(), 1000u) << "an update with two maximal emails stays far below 8000 bytes";
}

TEST_F(SchemaSqlTest, CleanupIsSilentPerRowAndSummarisedOnce) {
  InsertUser(kUser1, "c@example.com");
  InsertSession("bbbbbbbb-0000-4000-8000-000000000001", kUser1, Digest('1'), true);
  InsertSession("bbbbbbbb-0000-4000-8000-000000000002", kUser1, Digest('2'), true);
  InsertSession("bbbbbbbb-0000-4000-8000-000000000003", kUser1, Digest('3'), true);
  const char* live = "bbbbbbbb-0000-4000-8000-000000000004";
  InsertSession(live, kUser1, Digest('4'));
  (void)Payloads();
  std::string audit_before = Scalar(db_.get(), "SELECT count(*) FROM audit_logs");

  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.cleanup', 'on', true)");
  std::string deleted = Scalar(db_.get(),
                               "WITH d AS (DELETE FROM sessions WHERE expires_at < now() RETURNING 1) "
                               "SELECT count(*) FROM d");
  ASSERT_EQ(deleted, "3");
  Exec(db_.get(), "SELECT torii_cleanup_summary(3, timestamptz '2030-01-01 00:00:00+00')");
  Exec(db_.get(), "COMMIT");

  auto ev = Events();
  ASSERT_EQ(ev.size(), 1u) << "no per-row session.deleted during cleanup";
  EXPECT_EQ(ev[0], json({{"f", "session"}, {"k", "expired"}, {"count", 3}, {"before", 1893456000000000LL}}));
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs"), std::to_string(std::stoi(audit_before) + 1));
  PgResult summary = Exec(db_.get(),
                          "SELECT table_name, record_id, operation, new_data->>'expired_count', new_data->>'before' "
                          "FROM audit_logs ORDER BY seq DESC LIMIT 1");
  EXPECT_STREQ(PQgetvalue(summary.get(), 0, 0), "sessions");
  EXPECT_STREQ(PQgetvalue(summary.get(), 0, 1), "00000000-0000-0000-0000-000000000000");
  EXPECT_STREQ(PQgetvalue(summary.get(), 0, 2), "DELETE");
  EXPECT_STREQ(PQgetvalue(summary.get(), 0, 3), "3");
  EXPECT_STREQ(PQgetvalue(summary.get(), 0, 4), "1893456000000000");

  // Only expired rows are quiet (0006): a live session deleted under the
  // setting is still published and audited, so caches hear of it.
  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.cleanup', 'on', true)");
  Exec(db_.get(), "DELETE FROM sessions WHERE id = $1", {live});
  Exec(db_.get(), "ROLLBACK");
  ev = Events();
  ASSERT_EQ(ev.size(), 0u) << "rolled back";
  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.cleanup', 'on', true)");
  Exec(db_.get(), "DELETE FROM sessions WHERE id = $1", {live});
  Exec(db_.get(), "COMMIT");
  ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["k"], "deleted");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE operation = 'DELETE' AND record_id = '" +
                                  std::string(live) + "'"),
            "1");

  // The setting was transaction-local: an ordinary delete is published again.
  InsertSession(live, kUser1, Digest('5'));
  (void)Payloads();
  Exec(db_.get(), "DELETE FROM sessions WHERE id = $1", {live});
  ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["k"], "deleted");
  EXPECT_EQ(ev[0]["id"], live);
}

TEST_F(SchemaSqlTest, AuditRowsForEveryChangeKindWithActorAndNoSecrets) {
  InsertUser(kUser1, "audit@example.com");
  // As an actor (what the daemon does for a request with `actor`).
  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.user_id', $1, true)", {kUser1});
  Exec(db_.get(), "UPDATE users SET password_hash = 'SECOND-SECRET-HASH' WHERE id = $1", {kUser1});
  InsertSession("cccccccc-0000-4000-8000-000000000001", kUser1, Digest('e'));
  Exec(db_.get(), "COMMIT");
  Exec(db_.get(), "UPDATE users SET metadata = '{\"k\": 1}' WHERE id = $1", {kUser1});
  Exec(db_.get(), "UPDATE sessions SET expires_at = expires_at + interval '1 day'");
  Exec(db_.get(), "DELETE FROM users WHERE id = $1", {kUser1});

  PgResult r = Exec(db_.get(),
                    "SELECT table_name, operation, coalesce(actor::text, ''), "
                    "coalesce(new_data->>'password_hash_changed', ''), record_id::text, "
                    "old_data IS NULL, new_data IS NULL FROM audit_logs ORDER BY seq");
  struct Row {
    std::string table, op, actor, hash_changed, record;
    bool old_null, new_null;
  };
  std::vector<Row> rows;
  for (int i = 0; i < PQntuples(r.get()); i++) {
    rows.push_back({PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1), PQgetvalue(r.get(), i, 2),
                    PQgetvalue(r.get(), i, 3), PQgetvalue(r.get(), i, 4),
                    std::string(PQgetvalue(r.get(), i, 5)) == "t", std::string(PQgetvalue(r.get(), i, 6)) == "t"});
  }
  ASSERT_EQ(rows.size(), 7u);
  auto expect = [&](size_t i, const char* table, const char* op, const std::string& actor, const char* changed,
                    bool old_null, bool new_null) {
    SCOPED_TRACE(i);
    EXPECT_EQ(rows[i].table, table);
    EXPECT_EQ(rows[i].op, op);
    EXPECT_EQ(rows[i].actor, actor);
    EXPECT_EQ(rows[i].hash_changed, changed);
    EXPECT_EQ(rows[i].old_null, old_null);
    EXPECT_EQ(rows[i].new_null, new_null);
  };
  expect(0, "users", "INSERT", "", "", true, false);
  expect(1, "users", "UPDATE", kUser1, "true", false, false);
  expect(2, "sessions", "INSERT", kUser1, "", true, false);
  expect(3, "users", "UPDATE", "", "false", false, false);
  expect(4, "sessions", "UPDATE", "", "", false, false);
  expect(5, "users", "DELETE", "", "", false, true);
  expect(6, "sessions", "DELETE", "", "", false, true);  // cascaded
  EXPECT_EQ(rows[6].record, "cccccccc-0000-4000-8000-000000000001");

  std::string text = AuditText();
  EXPECT_EQ(text.find("SECRET-HASH"), std::string::npos);
  EXPECT_EQ(text.find("argon2"), std::string::npos);
  EXPECT_EQ(text.find("password_hash\""), std::string::npos) << "only password_hash_set / _changed";
  EXPECT_EQ(text.find("token_hash"), std::string::npos);
  EXPECT_EQ(text.find(Digest('e').substr(0, 16)), std::string::npos);
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE new_data ? 'search_vector' OR old_data ? 'search_vector'"),
            "0");
}

TEST_F(SchemaSqlTest, AuditActorIsTheSettingWhenItIsAUuidElseNull) {
  InsertUser(kUser1, "actor@example.com");
  // Each value of torii.user_id, and the actor the audit row must record.
  const std::pair<std::string, std::string> cases[] = {
      {kUser1, kUser1},
      {"CCCCCCCC-0000-4000-8000-000000000001", "cccccccc-0000-4000-8000-000000000001"},
      {"cccccccc000040008000000000000002", "cccccccc-0000-4000-8000-000000000002"},
      {"not-a-uuid", ""},
      {"cccccccc-0000-4000-8000-00000000000", ""},     // a digit short
      {"cccccccc-0000-4000-8000-0000000000001", ""},   // a digit long
      {"{cccccccc-0000-4000-8000-000000000001}", ""},  // braces: not the form the daemon sends
      {"", ""},
  };
  int n = 0;
  for (const auto& [setting, want] : cases) {
    SCOPED_TRACE(setting);
    Exec(db_.get(), "BEGIN");
    Exec(db_.get(), "SELECT set_config('torii.user_id', $1, true)", {setting.c_str()});
    // The write itself never fails because of the setting.
    std::string meta = "{\"n\": " + std::to_string(++n) + "}";
    Exec(db_.get(), "UPDATE users SET metadata = $2::jsonb WHERE id = $1", {kUser1, meta.c_str()});
    Exec(db_.get(), "COMMIT");
    EXPECT_EQ(Scalar(db_.get(), "SELECT coalesce(actor::text, '') FROM audit_logs ORDER BY seq DESC LIMIT 1"), want);
  }
}

TEST_F(SchemaSqlTest, AuditSwitchesAndRetention) {
  Exec(db_.get(), "SELECT torii_configure_audit(false, true)");
  InsertUser(kUser1, "off@example.com");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs"), "0");

  Exec(db_.get(), "SELECT torii_configure_audit(true, false)");
  InsertUser(kUser2, "on@example.com");
  InsertSession("dddddddd-0000-4000-8000-000000000001", kUser2, Digest('d'));
  Exec(db_.get(), "SELECT torii_cleanup_summary(5, now())");
  EXPECT_EQ(Scalar(db_.get(), "SELECT string_agg(table_name || ':' || operation, ',') FROM audit_logs"), "users:INSERT");

  Exec(db_.get(), "SELECT torii_configure_audit(true, true)");
  for (int i = 0; i < 4; i++) Exec(db_.get(), "UPDATE users SET metadata = '{}' WHERE id = $1", {kUser2});
  ASSERT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs"), "5");
  Exec(db_.get(), "UPDATE audit_logs SET created_at = now() - interval '10 days' WHERE seq IN "
                  "(SELECT seq FROM audit_logs ORDER BY seq LIMIT 3)");
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_prune_audit(0, 100)"), "0") << "0 days keeps everything";
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_prune_audit(7, 2)"), "2");
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_prune_audit(7, 2)"), "1");
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_prune_audit(7, 2)"), "0");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs"), "2");
}

TEST_F(SchemaSqlTest, SqlSessionOfRoleGrantedToriiActorSeesOnlyItsRows) {
  InsertUser(kUser1, "one@example.com");
  InsertUser(kUser2, "two@example.com");
  InsertSession("eeeeeeee-0000-4000-8000-000000000001", kUser1, Digest('1'));
  InsertSession("eeeeeeee-0000-4000-8000-000000000002", kUser2, Digest('2'));

  // Roles are cluster-wide: a name unique to this test process.
  std::string role = "svc_" + std::to_string(getpid()) + "_" +
                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
  Exec(db_.get(), "CREATE ROLE " + role + " LOGIN");
  Exec(db_.get(), "GRANT torii_actor TO " + role);
  {
    PgConn svc = Connect(conninfo_ + " user=" + role);
    PGconn* c = svc.get();
    EXPECT_EQ(Scalar(c, "SELECT count(*) FROM users"), "0") << "no torii.user_id: nothing visible";
    Exec(c, "SELECT set_config('torii.user_id', $1, false)", {kUser1});
    EXPECT_EQ(Scalar(c, "SELECT string_agg(email, ',') FROM users"), "one@example.com");
    EXPECT_EQ(Scalar(c, "SELECT string_agg(id::text, ',') FROM sessions"), "eeeeeeee-0000-4000-8000-000000000001");
    EXPECT_EQ(Scalar(c, "WITH u AS (UPDATE users SET email = 'x@example.com' WHERE id = '" + std::string(kUser2) +
                            "' RETURNING 1) SELECT count(*) FROM u"),
              "0");
    EXPECT_EQ(Scalar(c, "WITH d AS (DELETE FROM sessions WHERE user_id = '" + std::string(kUser2) +
                            "' RETURNING 1) SELECT count(*) FROM d"),
              "0");
    EXPECT_EQ(FailState(c, "INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES (gen_random_uuid(), '" +
                               std::string(kUser2) + "', '\\x01', now() + interval '1 hour')"),
              "42501");
    EXPECT_EQ(FailState(c, "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'new@example.com')"), "42501");
    EXPECT_EQ(FailState(c, "UPDATE users SET id = '" + std::string(kUser2) + "' WHERE id = '" + kUser1 + "'"),
              "42501")
        << "WITH CHECK: a row cannot be moved to another user";
    EXPECT_EQ(FailState(c, "SELECT count(*) FROM audit_logs"), "42501");
    EXPECT_EQ(FailState(c, "DELETE FROM audit_logs"), "42501");
    EXPECT_EQ(FailState(c, "SELECT torii_configure_audit(false, false)"), "42501");
    // Its own writes work, and are audited with it as the actor.
    Exec(c, "UPDATE users SET metadata = '{\"a\": 1}' WHERE id = $1", {kUser1});
  }
  Exec(db_.get(), "DROP ROLE " + role);
  EXPECT_EQ(Scalar(db_.get(), "SELECT actor::text FROM audit_logs ORDER BY seq DESC LIMIT 1"), kUser1);
  // The owner (the daemon's login role) is not subject to RLS and nothing changed.
  EXPECT_EQ(Scalar(db_.get(), "SELECT string_agg(email, ',' ORDER BY email) FROM users"), "one@example.com,two@example.com");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM sessions"), "2");
}

// A private cluster: torii_actor must not exist yet, and roles are shared
// by every database of a cluster.
TEST(SchemaMigrationTest, WithoutCreateRoleTheMigrationNamesTheSqlToRun) {
  PgCluster cluster;
  PgConn admin = Connect(cluster.ConnInfo("postgres"));
  Exec(admin.get(), "CREATE ROLE limited LOGIN");
  Exec(admin.get(), "CREATE DATABASE lim OWNER limited");
  {
    PgConn db = Connect(cluster.ConnInfo("lim") + " user=limited");
    auto applied = ApplyMigrations(db.get());
    ASSERT_FALSE(applied.ok());
    EXPECT_NE(applied.error().message().find("0005_rls"), std::string::npos) << applied.error().message();
    EXPECT_NE(applied.error().message().find("CREATE ROLE torii_actor NOLOGIN; GRANT torii_actor TO limited;"),
              std::string::npos)
        << applied.error().message();
    EXPECT_EQ(Scalar(db.get(), "SELECT max(version) FROM torii_schema_migrations"), "4");
  }
  Exec(admin.get(), "CREATE ROLE torii_actor NOLOGIN; GRANT torii_actor TO limited;");
  PgConn db = Connect(cluster.ConnInfo("lim") + " user=limited");
  auto applied = ApplyMigrations(db.get());
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  EXPECT_EQ(applied->current, EmbeddedMigrations().back().version);
  Exec(db.get(), "INSERT INTO users (id, email) VALUES ($1, 'l@example.com')", {kUser1});
  // The limited owner can switch to torii_actor for one transaction.
  Exec(db.get(), "BEGIN");
  Exec(db.get(), "SELECT set_config('role', 'torii_actor', true), set_config('torii.user_id', $1, true)", {kUser2});
  EXPECT_EQ(Scalar(db.get(), "SELECT count(*) FROM users"), "0");
  Exec(db.get(), "COMMIT");
  EXPECT_EQ(Scalar(db.get(), "SELECT current_user"), "limited");
}

}  // namespace
}  // namespace torii::test
