// Migration 0014 (tenants) at the SQL level, with no daemon: existing rows
// land in the default tenant, uniqueness is per tenant, a SQL role bound to
// one tenant in tenant_roles reads none of another tenant's rows and cannot
// write them even after setting torii.tenant, NOTIFY payloads and audit
// rows carry their tenant. The cluster's test role is a superuser (exempt
// from row-level security), so the isolation tests log in as roles made here.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pg_cluster.h"
#include "sql.h"
#include "torii/migrations.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

using nlohmann::json;

const char* kUserA = "aaaaaaaa-1111-4111-8111-111111111111";
const char* kUserB = "bbbbbbbb-2222-4222-8222-222222222222";
const char* kUserD = "dddddddd-3333-4333-8333-333333333333";

// Every table of Torii's storage (0014's list).
const std::vector<std::string> kTables = {"users",          "sessions",           "oauth_accounts", "oauth_states",
                                          "passkeys",       "passkey_challenges", "secure_tokens",  "login_failures",
                                          "jwt_revocations", "jwt_user_cutoffs",  "audit_logs"};

std::string UniqueRole(const char* prefix) {
  return std::string(prefix) + "_" + std::to_string(getpid()) + "_" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

class TenantSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = FreshDatabase();
    db_ = Connect(conninfo_);
  }
  void TearDown() override {
    for (const auto& r : roles_) {
      PgResult res(PQexec(db_.get(), ("DROP OWNED BY " + r + "; DROP ROLE IF EXISTS " + r).c_str()));
    }
  }
  void Migrate() {
    auto applied = ApplyMigrations(db_.get());
    ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  }
  // Rows of every kind in the current tenant of db_ (torii.tenant).
  void Populate(const char* user, const std::string& tag) {
    PGconn* c = db_.get();
    std::string u = user;
    Exec(c, "INSERT INTO users (id, email) VALUES ($1, 'same@example.com')", {user});
    Exec(c, "INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES (gen_random_uuid(), $1, '\\x0102', "
            "now() + interval '1 hour')",
         {user});
    Exec(c, "INSERT INTO oauth_accounts (user_id, provider, subject) VALUES ($1, 'github', 'sub-1')", {user});
    Exec(c, "INSERT INTO oauth_states (state, verifier, expires_at) VALUES ('state-1', 'v-" + tag +
                "', now() + interval '1 hour')");
    Exec(c, "INSERT INTO passkeys (credential_id, user_id, public_key) VALUES ('\\xc1', $1, '\\x01')", {user});
    Exec(c, "INSERT INTO passkey_challenges (challenge_id, challenge, expires_at) VALUES ('ch-1', '\\x01', "
            "now() + interval '1 hour')");
    Exec(c, "INSERT INTO secure_tokens (user_id, purpose, token_hash, expires_at) VALUES ($1, 'magic_link', "
            "'\\x0102', now() + interval '1 hour')",
         {user});
    Exec(c, "INSERT INTO login_failures (email) VALUES ('same@example.com')");
    Exec(c, "INSERT INTO jwt_revocations (jti, expires_at) VALUES ('jti-1', now() + interval '1 hour')");
    Exec(c, "INSERT INTO jwt_user_cutoffs (user_id, issued_before, expires_at) VALUES ($1, now(), "
            "now() + interval '1 hour')",
         {user});
  }
  // A LOGIN role with every table privilege, bound to `tenant`.
  std::string BoundRole(const std::string& tenant) {
    std::string role = UniqueRole("tn");
    roles_.push_back(role);
    Exec(db_.get(), "CREATE ROLE " + role + " LOGIN");
    Exec(db_.get(), "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role);
    Exec(db_.get(), "INSERT INTO tenant_roles (role_name, tenant) VALUES ($1, $2)", {role.c_str(), tenant.c_str()});
    return role;
  }
  // Per table, the rows of `tenant`, as text, seen by the owner with '*'.
  std::string Snapshot(const std::string& tenant) {
    std::string out;
    for (const auto& t : kTables) {
      out += t + ":" +
             Scalar(db_.get(), "SELECT count(*) || '/' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') "
                               "FROM " + t + " x WHERE tenant = $1",
                    {tenant.c_str()}) +
             " ";
    }
    return out;
  }

  std::string conninfo_;
  PgConn db_;
  std::vector<std::string> roles_;
};

TEST_F(TenantSchemaTest, ExistingRowsLandInTheDefaultTenant) {
  std::vector<Migration> before;
  for (const auto& m : EmbeddedMigrations()) {
    if (m.version < 14) before.push_back(m);
  }
  ASSERT_LT(before.size(), EmbeddedMigrations().size()) << "0014 is the tenants migration";
  ASSERT_EQ(EmbeddedMigrations()[before.size()].version, 14) << "0014 is the tenants migration";
  auto applied = ApplyMigrations(db_.get(), before);
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  Populate(kUserD, "d");
  Migrate();
  EXPECT_EQ(Scalar(db_.get(), "SELECT string_agg(name, ',') FROM tenants"), "default");
  for (const auto& t : kTables) {
    EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM " + t + " WHERE tenant <> 'default'"), "0") << t;
    EXPECT_NE(Scalar(db_.get(), "SELECT count(*) FROM " + t), "0") << t;
  }
  // A role bound to default sees them all.
  Exec(db_.get(), "SELECT set_config('torii.tenant', '*', false)");
  std::string role = BoundRole("default");
  PgConn c = Connect(conninfo_ + " user=" + role);
  EXPECT_EQ(Scalar(c.get(), "SELECT email FROM users"), "same@example.com");
  EXPECT_EQ(Scalar(c.get(), "SELECT count(*) FROM sessions"), "1");
}

TEST_F(TenantSchemaTest, UniquenessIsPerTenant) {
  Migrate();
  Exec(db_.get(), "INSERT INTO tenants (name) VALUES ('a'), ('b')");
  Exec(db_.get(), "SET torii.tenant = 'a'");
  Populate(kUserA, "a");
  Exec(db_.get(), "SET torii.tenant = 'b'");
  // The same email, (provider, subject), credential id, digests, state,
  // challenge id and jti in another tenant.
  Populate(kUserB, "b");
  EXPECT_EQ(FailState(db_.get(), "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'SAME@example.com')"),
            "23505");
  Exec(db_.get(), "SET torii.tenant = '*'");
  EXPECT_EQ(Scalar(db_.get(), "SELECT string_agg(tenant, ',' ORDER BY tenant) FROM users"), "a,b");
  // A session cannot belong to a user of another tenant.
  EXPECT_EQ(FailState(db_.get(), std::string("INSERT INTO sessions (id, user_id, token_hash, expires_at, tenant) "
                                             "VALUES (gen_random_uuid(), '") +
                                     kUserA + "', '\\x09', now() + interval '1 hour', 'b')"),
            "23503");
  EXPECT_EQ(FailState(db_.get(), "INSERT INTO oauth_states (state, verifier, expires_at, tenant) "
                                 "VALUES ('s', 'v', now(), 'nope')"),
            "23503")
      << "an unregistered tenant";
}

TEST_F(TenantSchemaTest, BoundRoleReadsAndWritesNoRowOfAnotherTenant) {
  Migrate();
  Exec(db_.get(), "INSERT INTO tenants (name) VALUES ('a'), ('b')");
  Exec(db_.get(), "SET torii.tenant = 'a'");
  Populate(kUserA, "a");
  Exec(db_.get(), "SET torii.tenant = 'b'");
  Populate(kUserB, "b");
  Exec(db_.get(), "SET torii.tenant = '*'");
  const std::string b_before = Snapshot("b");

  std::string role = BoundRole("a");
  {
    PgConn conn = Connect(conninfo_ + " user=" + role);
    PGconn* c = conn.get();
    for (int attempt = 0; attempt < 3; attempt++) {
      // As itself, then after naming b, then after asking for every tenant.
      if (attempt == 1) Exec(c, "SET torii.tenant = 'b'");
      if (attempt == 2) Exec(c, "SELECT set_config('torii.tenant', '*', false)");
      EXPECT_EQ(Scalar(c, "SELECT torii_current_tenant()"), "a");
      for (const auto& t : kTables) {
        EXPECT_EQ(Scalar(c, "SELECT count(*) FROM " + t + " WHERE tenant = 'b'"), "0") << t << " attempt " << attempt;
        EXPECT_EQ(Scalar(c, "SELECT count(*) FROM " + t + " WHERE tenant <> 'a'"), "0") << t;
        EXPECT_NE(Scalar(c, "SELECT count(*) FROM " + t), "0") << t << ": its own rows are visible";
        EXPECT_EQ(Scalar(c, "WITH d AS (DELETE FROM " + t + " WHERE tenant = 'b' RETURNING 1) SELECT count(*) FROM d"),
                  "0")
            << t;
        EXPECT_EQ(Scalar(c, "WITH u AS (UPDATE " + t + " SET tenant = tenant WHERE tenant = 'b' RETURNING 1) "
                            "SELECT count(*) FROM u"),
                  "0")
            << t;
      }
      // Writing a row into b, or moving its own row there.
      EXPECT_EQ(FailState(c, "INSERT INTO users (id, email, tenant) VALUES (gen_random_uuid(), 'n@example.com', 'b')"),
                "42501");
      EXPECT_EQ(FailState(c, "INSERT INTO oauth_states (state, verifier, expires_at, tenant) "
                             "VALUES ('x', 'v', now(), 'b')"),
                "42501");
      EXPECT_EQ(FailState(c, "INSERT INTO login_failures (email, tenant) VALUES ('z@example.com', 'b')"), "42501");
      EXPECT_EQ(FailState(c, "UPDATE jwt_revocations SET tenant = 'b'"), "42501");
    }
    // Its own tenant works, and a row it adds without naming a tenant is a's.
    Exec(c, "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'new@example.com')");
    EXPECT_EQ(Scalar(c, "SELECT tenant FROM users WHERE email = 'new@example.com'"), "a");
    EXPECT_EQ(Scalar(c, "SELECT count(*) FROM audit_logs WHERE tenant = 'a' AND table_name = 'users'"), "2");
  }
  EXPECT_EQ(Snapshot("b"), b_before);
}

TEST_F(TenantSchemaTest, UnboundRoleActsInTheTenantItSets) {
  Migrate();
  Exec(db_.get(), "INSERT INTO tenants (name) VALUES ('a'), ('b')");
  Exec(db_.get(), "SET torii.tenant = 'a'");
  Populate(kUserA, "a");
  Exec(db_.get(), "SET torii.tenant = 'b'");
  Populate(kUserB, "b");
  std::string role = UniqueRole("tu");
  roles_.push_back(role);
  Exec(db_.get(), "CREATE ROLE " + role + " LOGIN");
  Exec(db_.get(), "GRANT SELECT ON oauth_states, login_failures TO " + role);
  PgConn conn = Connect(conninfo_ + " user=" + role);
  PGconn* c = conn.get();
  EXPECT_EQ(Scalar(c, "SELECT count(*) FROM oauth_states"), "0") << "no setting: the default tenant";
  Exec(c, "SET torii.tenant = 'b'");
  EXPECT_EQ(Scalar(c, "SELECT verifier FROM oauth_states"), "v-b");
  Exec(c, "SET torii.tenant = '*'");
  EXPECT_EQ(Scalar(c, "SELECT count(*) FROM login_failures"), "2");
}

TEST_F(TenantSchemaTest, PayloadsAndAuditRowsCarryTheTenant) {
  Migrate();
  Exec(db_.get(), "INSERT INTO tenants (name) VALUES ('a')");
  PgConn listener = Connect(conninfo_);
  Exec(listener.get(), "LISTEN torii_events");
  Exec(db_.get(), "SET torii.tenant = 'a'");
  Populate(kUserA, "a");
  Exec(db_.get(), "DELETE FROM users");
  Exec(db_.get(), "RESET torii.tenant");
  Exec(db_.get(), "INSERT INTO users (id, email) VALUES ($1, 'd@example.com')", {kUserD});
  Exec(db_.get(), "SELECT torii_resync('test')");
  auto raw = NotifiedUntilFence(db_.get(), listener.get(), "torii_events", "fence");
  std::vector<std::string> seen;
  for (const auto& p : raw) {
    json j = json::parse(p);
    ASSERT_TRUE(j.contains("tenant")) << p;
    seen.push_back(j["f"].get<std::string>() + "." + j["k"].get<std::string>() + "@" + j["tenant"].get<std::string>());
  }
  std::vector<std::string> want = {"user.created@a",   "session.created@a", "oauth.linked@a",  "passkey.added@a",
                                   "jwt.revoked@a",    "jwt.user_revoked@a", "session.deleted@a", "oauth.unlinked@a",
                                   "passkey.deleted@a", "user.deleted@a",    "user.created@default", "torii.resync@*"};
  std::vector<std::string> sorted_seen = seen, sorted_want = want;
  std::sort(sorted_seen.begin(), sorted_seen.end());
  std::sort(sorted_want.begin(), sorted_want.end());
  EXPECT_EQ(sorted_seen, sorted_want);
  Exec(db_.get(), "SET torii.tenant = '*'");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE tenant = 'a'"), "10");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE tenant <> 'a' AND record_id <> $1", {kUserD}), "0");
  EXPECT_EQ(Scalar(db_.get(), "SELECT tenant FROM audit_logs WHERE record_id = $1", {kUserD}), "default");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE new_data ? 'tenant' OR old_data ? 'tenant'"), "0")
      << "row images read as before 0014";
}

}  // namespace
}  // namespace torii::test
