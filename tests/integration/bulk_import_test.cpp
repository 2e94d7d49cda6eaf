// The bulk-import switch of schema/0007_bulk_import.sql: with
// torii.bulk_import 'on', row INSERTs by the tables' owner send no NOTIFY and
// write no audit row, while the same switch set by a role granted
// torii_actor (or by the owner acting as torii_actor, as the daemon does for
// requests with an actor) changes nothing; updates and deletes stay
// published; torii_bulk_import_summary() writes one audit row and one
// NOTIFY that a real toriid publishes as torii.resync. Each test runs on a
// fresh database of the shared cluster; NOTIFYs are read by a LISTENing
// libpq connection up to a fence, events by a raw SUB socket.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon_process.h"
#include "event_sub.h"
#include "pg_cluster.h"
#include "sql.h"
#include "torii/migrations.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

using nlohmann::json;

const char* kUser1 = "11111111-1111-4111-8111-111111111111";
const char* kUser2 = "22222222-2222-4222-8222-222222222222";
const char* kUser3 = "33333333-3333-4333-8333-333333333333";


// Inserts a user and one live session of it, in the caller's transaction.
void InsertUserAndSession(PGconn* c, const char* user, char digest_byte) {
  std::string email = std::string("u") + user + "@example.com";
  std::string digest(64, digest_byte);
  Exec(c, "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'SECRET-HASH')", {user, email.c_str()});
  Exec(c,
       "INSERT INTO sessions (id, user_id, token_hash, expires_at) VALUES (gen_random_uuid(), $1, decode($2, 'hex'), "
       "now() + interval '1 hour')",
       {user, digest.c_str()});
}

class BulkImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = FreshDatabase();
    db_ = Connect(conninfo_);
    auto applied = ApplyMigrations(db_.get());
    ASSERT_TRUE(applied.ok()) << applied.error().ToString();
    ASSERT_GE(applied->current, 7);
    listener_ = Connect(conninfo_);
    Exec(listener_.get(), "LISTEN torii_events");
  }

  // Every payload on torii_events up to a fence NOTIFY sent now from db_:
  // NOTIFYs are delivered in commit order, so once the fence is in,
  // everything committed before it is too.
  std::vector<json> Payloads(int timeout_ms = 10000) {
    std::vector<json> out;
    for (const auto& p : NotifiedUntilFence(db_.get(), listener_.get(), "torii_events",
                                            "fence-" + std::to_string(++fences_), timeout_ms)) {
      out.push_back(json::parse(p));
    }
    return out;
  }

  int64_t AuditRows() { return std::stoll(Scalar(db_.get(), "SELECT count(*) FROM audit_logs")); }

  // A LOGIN role granted torii_actor, unique to this process (roles are
  // cluster-wide); dropped in TearDown.
  std::string ServiceRole() {
    role_ = "bulk_svc_" + std::to_string(getpid()) + "_" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
    Exec(db_.get(), "CREATE ROLE " + role_ + " LOGIN");
    Exec(db_.get(), "GRANT torii_actor TO " + role_);
    return role_;
  }
  void TearDown() override {
    if (!role_.empty() && db_) (void)ExecBlocking(db_.get(), "DROP OWNED BY " + role_ + "; DROP ROLE " + role_);
  }

  std::string conninfo_;
  PgConn db_;
  PgConn listener_;
  std::string role_;
  int fences_ = 0;
};

TEST_F(BulkImportTest, OwnerInsertsAreSilentOnlyWithTheSwitch) {
  // Without the switch: one event and one audit row per row.
  InsertUserAndSession(db_.get(), kUser1, 'a');
  auto before = Payloads();
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0]["f"], "user");
  EXPECT_EQ(before[1]["f"], "session");
  ASSERT_EQ(AuditRows(), 2);

  // With it, as the owner: nothing per row.
  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.bulk_import', 'on', true)");
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_bulk_import_allowed()"), "t");
  InsertUserAndSession(db_.get(), kUser2, 'b');
  InsertUserAndSession(db_.get(), kUser3, 'c');
  // Updates and deletes in the same transaction stay published and audited.
  Exec(db_.get(), "UPDATE users SET metadata = '{\"x\": 1}' WHERE id = $1", {kUser1});
  Exec(db_.get(), "DELETE FROM sessions WHERE user_id = $1", {kUser1});
  Exec(db_.get(), "COMMIT");
  auto during = Payloads();
  ASSERT_EQ(during.size(), 2u) << json(during).dump();
  EXPECT_EQ(during[0]["k"], "updated");
  EXPECT_EQ(during[0]["id"], kUser1);
  EXPECT_EQ(during[1]["f"], "session");
  EXPECT_EQ(during[1]["k"], "deleted");
  EXPECT_EQ(AuditRows(), 4);
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE operation = 'INSERT'"), "2");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM users"), "3");

  // The switch is transaction-local: the next transaction is published again.
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_bulk_import_allowed()"), "f");
  Exec(db_.get(), "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'after@example.com')");
  auto after = Payloads();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["email"], "after@example.com");
  EXPECT_EQ(AuditRows(), 5);
}

TEST_F(BulkImportTest, ARoleGrantedToriiActorCannotSilenceEvents) {
  std::string role = ServiceRole();
  {
    PgConn svc = Connect(conninfo_ + " user=" + role);
    PGconn* c = svc.get();
    Exec(c, "BEGIN");
    Exec(c, "SELECT set_config('torii.bulk_import', 'on', true), set_config('torii.user_id', $1, true)", {kUser1});
    EXPECT_EQ(Scalar(c, "SELECT torii_bulk_import_allowed()"), "f");
    InsertUserAndSession(c, kUser1, 'a');
    Exec(c, "COMMIT");
    // Nor may it write the summary (a resync for everyone, an audit row).
    EXPECT_EQ(FailState(c, "SELECT torii_bulk_import_summary(1, 1)"), "42501");

    // Nor can it substitute a check of its own through search_path (the
    // notify triggers run with the writer's search_path).
    Exec(db_.get(), "GRANT CREATE ON DATABASE " + Scalar(db_.get(), "SELECT quote_ident(current_database())") +
                        " TO " + role);
    Exec(c, "CREATE SCHEMA shadow");
    Exec(c, "CREATE FUNCTION shadow.torii_bulk_import_allowed() RETURNS boolean LANGUAGE sql AS 'SELECT true'");
    Exec(c, "SET search_path = shadow, public");
    Exec(c, "BEGIN");
    Exec(c, "SELECT set_config('torii.bulk_import', 'on', true), set_config('torii.user_id', $1, true)", {kUser2});
    EXPECT_EQ(Scalar(c, "SELECT torii_bulk_import_allowed()"), "t") << "the shadow is in place";
    InsertUserAndSession(c, kUser2, 'b');
    Exec(c, "COMMIT");
  }
  auto events = Payloads();
  ASSERT_EQ(events.size(), 4u) << json(events).dump();
  EXPECT_EQ(events[0]["k"], "created");
  EXPECT_EQ(events[0]["id"], kUser1);
  EXPECT_EQ(events[1]["f"], "session");
  EXPECT_EQ(events[2]["id"], kUser2);
  EXPECT_EQ(events[3]["f"], "session");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE operation = 'INSERT' AND actor = $1", {kUser1}),
            "2");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE operation = 'INSERT' AND actor = $1", {kUser2}),
            "2");
}

TEST_F(BulkImportTest, TheOwnerActingAsToriiActorCannotSilenceEvents) {
  // What the daemon does for a request with an actor: the owner's
  // connection switches to torii_actor for one transaction. current_user
  // is then torii_actor, and inside the SECURITY DEFINER audit trigger it
  // would be the owner again; neither may count as the owner.
  Exec(db_.get(), "BEGIN");
  Exec(db_.get(),
       "SELECT set_config('torii.bulk_import', 'on', true), set_config('role', 'torii_actor', true), "
       "set_config('torii.user_id', $1, true)",
       {kUser2});
  EXPECT_EQ(Scalar(db_.get(), "SELECT torii_bulk_import_allowed()"), "f");
  InsertUserAndSession(db_.get(), kUser2, 'b');
  Exec(db_.get(), "COMMIT");
  EXPECT_EQ(Payloads().size(), 2u);
  EXPECT_EQ(AuditRows(), 2);
}

TEST_F(BulkImportTest, SummaryWritesOneAuditRowAndOneResyncAtCommitOnly) {
  // Rolled back: the summary's NOTIFY and audit row go with the rows.
  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.bulk_import', 'on', true)");
  InsertUserAndSession(db_.get(), kUser1, 'a');
  Exec(db_.get(), "SELECT torii_bulk_import_summary(1, 1)");
  Exec(db_.get(), "ROLLBACK");
  EXPECT_TRUE(Payloads().empty());
  EXPECT_EQ(AuditRows(), 0);

  Exec(db_.get(), "BEGIN");
  Exec(db_.get(), "SELECT set_config('torii.bulk_import', 'on', true)");
  InsertUserAndSession(db_.get(), kUser1, 'a');
  InsertUserAndSession(db_.get(), kUser2, 'b');
  Exec(db_.get(), "SELECT torii_bulk_import_summary(2, 2)");
  Exec(db_.get(), "COMMIT");
  auto events = Payloads();
  ASSERT_EQ(events.size(), 1u) << json(events).dump();
  EXPECT_EQ(events[0]["f"], "torii");
  EXPECT_EQ(events[0]["k"], "resync");
  EXPECT_EQ(events[0]["users"], 2);
  EXPECT_EQ(events[0]["sessions"], 2);
  EXPECT_EQ(events[0]["reason"], "a bulk import wrote 2 user(s) and 2 session(s) without per-row events");
  ASSERT_EQ(AuditRows(), 1);
  EXPECT_EQ(Scalar(db_.get(), "SELECT table_name || ' ' || operation || ' ' || record_id FROM audit_logs"),
            "users INSERT 00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(Scalar(db_.get(), "SELECT new_data::text FROM audit_logs"),
            "{\"users\": 2, \"sessions\": 2, \"bulk_import\": true}");
  EXPECT_EQ(Scalar(db_.get(), "SELECT count(*) FROM audit_logs WHERE new_data::text LIKE '%SECRET%'"), "0");

  EXPECT_EQ(FailState(db_.get(), "SELECT torii_bulk_import_summary(-1, 0)"), "22023");
  // Audit off: the event still goes out, no row is written.
  Exec(db_.get(), "SELECT torii_configure_audit(false, false)");
  Exec(db_.get(), "SELECT torii_bulk_import_summary(0, 0)");
  EXPECT_EQ(Payloads().size(), 1u);
  EXPECT_EQ(AuditRows(), 1);
}

// Through a real daemon: the summary's NOTIFY becomes torii.resync with a
// reason naming the bulk import, and the silenced rows publish nothing.
TEST(BulkImportDaemonTest, SummaryIsPublishedAsResync) {
  DaemonOptions o;
  o.settings["events.heartbeat_ms"] = "100";
  o.settings["cleanup.interval_s"] = "0";
  DaemonProcess d(o);
  // torii. last: the first heartbeat proves the other subscriptions are in.
  EventSub sub(d.event_endpoint(), {"user.", "session.", "torii."});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty()) << "no heartbeat";

  PgConn db = Connect(d.database_url());
  Exec(db.get(), "BEGIN");
  Exec(db.get(), "SELECT set_config('torii.bulk_import', 'on', true)");
  InsertUserAndSession(db.get(), kUser1, 'a');
  InsertUserAndSession(db.get(), kUser2, 'b');
  InsertUserAndSession(db.get(), kUser3, 'c');
  Exec(db.get(), "SELECT torii_bulk_import_summary(3, 3)");
  Exec(db.get(), "COMMIT");

  std::vector<Event> seen;
  Event e = sub.WaitForTopic("torii.resync", 10000, &seen);
  ASSERT_FALSE(e.topic.empty()) << "no torii.resync after the bulk import";
  EXPECT_EQ(e.body["reason"].str(), "a bulk import wrote 3 user(s) and 3 session(s) without per-row events");
  // A plain write afterwards is published as usual, and nothing of the
  // import came before it.
  Exec(db.get(), "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'later@example.com')");
  Event later = sub.WaitForTopic("user.created", 10000, &seen);
  ASSERT_FALSE(later.topic.empty());
  EXPECT_EQ(later.body["email"].str(), "later@example.com");
  for (const auto& s : seen) {
    EXPECT_TRUE(s.topic.rfind("torii.", 0) == 0 || &s == &seen.back()) << "unexpected " << s.topic;
  }

  // Any session may NOTIFY: a forged resync carrying text is published
  // with the daemon's own sentence, never the forged text.
  Exec(db.get(),
       "SELECT pg_notify('torii_events', '{\"f\":\"torii\",\"k\":\"resync\",\"reason\":\"FORGED alice@example.com\"}')");
  Event forged = sub.WaitForTopic("torii.resync", 10000);
  ASSERT_FALSE(forged.topic.empty());
  EXPECT_EQ(forged.body["reason"].str(), "a bulk import wrote ? user(s) and ? session(s) without per-row events");
  EXPECT_EQ(forged.raw.find("FORGED"), std::string::npos);
  EXPECT_EQ(d.log().find("FORGED"), std::string::npos);
}

}  // namespace
}  // namespace torii::test
