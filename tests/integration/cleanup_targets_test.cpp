// The cleanup targets besides sessions (issue 15): expired secure tokens,
// JWT revocations and user cutoffs past their expires_at, login failures
// older than cleanup.login_failure_retention_s except those of locked users.
// Exact counts per table with a batch size that splits the work, nothing
// live deleted, no per-row audit or event, stats.cleanup.deleted_by_table.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <thread>

#include "event_sub.h"
#include "request_fixture.h"
#include "torii/pg.h"

namespace torii::test {
namespace {

int64_t Count(PGconn* c, const std::string& sql) { return std::atoll(Scalar(c, sql).c_str()); }

class CleanupTargetsTest : public RequestTest {
 protected:
  DaemonOptions Options() override {
    DaemonOptions o;
    o.settings["cleanup.interval_s"] = "0";  // passes only on demand
    o.settings["cleanup.batch_size"] = "7";
    o.settings["cleanup.login_failure_retention_s"] = "3600";
    o.settings["events.heartbeat_ms"] = "100";
    return o;
  }
};

TEST_F(CleanupTargetsTest, DeletesExpiredRowsOfEveryTableInBatches) {
  PgConn c = Connect(daemon().database_url());
  Exec(c.get(), "INSERT INTO users (id, email) VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'a@example.com'), "
                "('aaaaaaaa-0000-4000-8000-000000000002', 'Locked@example.com')");
  Exec(c.get(), "UPDATE users SET locked_at = now() WHERE email = 'Locked@example.com'");
  // 23 expired tokens (some used), 4 live.
  Exec(c.get(), "INSERT INTO secure_tokens (user_id, purpose, token_hash, expires_at, used_at) "
                "SELECT 'aaaaaaaa-0000-4000-8000-000000000001', 'magic_link', sha256(i::text::bytea), "
                "now() - i * interval '1 second', CASE WHEN i % 2 = 0 THEN now() END FROM generate_series(1, 23) i");
  Exec(c.get(), "INSERT INTO secure_tokens (user_id, purpose, token_hash, expires_at) "
                "SELECT 'aaaaaaaa-0000-4000-8000-000000000001', 'password_reset', sha256(('live' || i)::text::bytea), "
                "now() + interval '1 hour' FROM generate_series(1, 4) i");
  // 15 expired revocations, 3 live; 9 expired cutoffs, 2 live.
  Exec(c.get(), "INSERT INTO jwt_revocations (jti, expires_at) SELECT 'old' || i, now() - interval '1 minute' "
                "FROM generate_series(1, 15) i");
  Exec(c.get(), "INSERT INTO jwt_revocations (jti, expires_at) SELECT 'new' || i, now() + interval '1 hour' "
                "FROM generate_series(1, 3) i");
  Exec(c.get(), "INSERT INTO jwt_user_cutoffs (user_id, issued_before, expires_at) "
                "SELECT gen_random_uuid(), now() - interval '2 days', now() - interval '1 day' FROM generate_series(1, 9)");
  Exec(c.get(), "INSERT INTO jwt_user_cutoffs (user_id, issued_before, expires_at) "
                "SELECT gen_random_uuid(), now(), now() + interval '1 day' FROM generate_series(1, 2)");
  // OAuth states: 12 expired, 2 live; passkey challenges: 8 expired, 3 live.
  Exec(c.get(), "INSERT INTO oauth_states (state, verifier, expires_at) SELECT 'old' || i, 'VERIFIER-' || i, "
                "now() - interval '1 second' FROM generate_series(1, 12) i");
  Exec(c.get(), "INSERT INTO oauth_states (state, verifier, expires_at) SELECT 'new' || i, 'VERIFIER-' || i, "
                "now() + interval '1 hour' FROM generate_series(1, 2) i");
  Exec(c.get(), "INSERT INTO passkey_challenges (challenge_id, challenge, expires_at) SELECT 'old' || i, "
                "convert_to('CHALLENGE-' || i, 'UTF8'), now() - interval '1 second' FROM generate_series(1, 8) i");
  Exec(c.get(), "INSERT INTO passkey_challenges (challenge_id, challenge, expires_at) SELECT 'new' || i, "
                "convert_to('CHALLENGE-' || i, 'UTF8'), now() + interval '1 hour' FROM generate_series(1, 3) i");
  // Login failures: 30 old of someone (go), 5 old of the locked user (stay),
  // 6 recent (stay).
  Exec(c.get(), "INSERT INTO login_failures (email, at) SELECT 'x' || (i % 4) || '@example.com', "
                "now() - interval '2 hours' FROM generate_series(1, 30) i");
  Exec(c.get(), "INSERT INTO login_failures (email, at) SELECT 'locked@example.com', now() - interval '2 hours' "
                "FROM generate_series(1, 5)");
  Exec(c.get(), "INSERT INTO login_failures (email, at) SELECT 'a@example.com', now() - interval '10 minutes' "
                "FROM generate_series(1, 6)");
  int64_t audit_before = Count(c.get(), "SELECT count(*) FROM audit_logs WHERE table_name = 'secure_tokens'");
  EXPECT_EQ(audit_before, 27);

  EventSub sub(daemon().event_endpoint(), {""});
  ASSERT_FALSE(sub.WaitForTopic("torii.heartbeat", 5000).topic.empty());
  Reply r = Call("cleanup_expired_sessions");
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(r.result()["deleted"].u64(), 0u);  // sessions only

  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM secure_tokens"), 4);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM secure_tokens WHERE expires_at < now()"), 0);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM oauth_states"), 2);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM oauth_states WHERE state LIKE 'new%'"), 2);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM passkey_challenges"), 3);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM passkey_challenges WHERE challenge_id LIKE 'new%'"), 3);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM jwt_revocations"), 3);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM jwt_user_cutoffs"), 2);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM login_failures"), 11);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM login_failures WHERE email = 'locked@example.com'"), 5);
  // No per-row audit for the expired tokens.
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM audit_logs WHERE table_name = 'secure_tokens'"), audit_before);

  Reply st = Call("stats");
  ASSERT_TRUE(st.ok()) << st.ToString();
  Value by = st.result()["cleanup"]["deleted_by_table"];
  EXPECT_EQ(by["secure_tokens"].u64(), 23u);
  EXPECT_EQ(by["oauth_states"].u64(), 12u);
  EXPECT_EQ(by["passkey_challenges"].u64(), 8u);
  EXPECT_EQ(by["jwt_revocations"].u64(), 15u);
  EXPECT_EQ(by["jwt_user_cutoffs"].u64(), 9u);
  EXPECT_EQ(by["login_failures"].u64(), 30u);
  EXPECT_EQ(by["sessions"].u64(), 0u);

  // No event for any of it (heartbeats only).
  std::vector<Event> seen;
  sub.WaitFor([](const Event&) { return false; }, 500, &seen);
  for (const auto& e : seen) EXPECT_EQ(e.topic, "torii.heartbeat");

  // A second pass finds nothing; a deleted token of a live row is audited.
  ASSERT_TRUE(Call("cleanup_expired_sessions").ok());
  st = Call("stats");
  EXPECT_EQ(st.result()["cleanup"]["deleted_by_table"]["secure_tokens"].u64(), 23u);
  // Once the user is unlocked, its old failures go at the next pass.
  Exec(c.get(), "UPDATE users SET locked_at = NULL WHERE email = 'Locked@example.com'");
  ASSERT_TRUE(Call("cleanup_expired_sessions").ok());
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM login_failures"), 6);
  EXPECT_EQ(Call("stats").result()["cleanup"]["deleted_by_table"]["login_failures"].u64(), 35u);
}

// torii.cleanup set by anyone hides only expired tokens from the audit.
TEST_F(CleanupTargetsTest, QuietDeleteCoversExpiredTokensOnly) {
  PgConn c = Connect(daemon().database_url());
  Exec(c.get(), "INSERT INTO users (id, email) VALUES ('aaaaaaaa-0000-4000-8000-000000000003', 'q@example.com')");
  Exec(c.get(), "INSERT INTO secure_tokens (user_id, purpose, token_hash, expires_at) VALUES "
                "('aaaaaaaa-0000-4000-8000-000000000003', 'magic_link', sha256('a'), now() + interval '1 hour'), "
                "('aaaaaaaa-0000-4000-8000-000000000003', 'magic_link', sha256('b'), now() - interval '1 hour')");
  int64_t before = Count(c.get(), "SELECT count(*) FROM audit_logs WHERE table_name = 'secure_tokens'");
  Exec(c.get(), "BEGIN; SELECT set_config('torii.cleanup', 'on', true); DELETE FROM secure_tokens; COMMIT");
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM audit_logs WHERE table_name = 'secure_tokens' "
                           "AND operation = 'DELETE'"),
            1);
  EXPECT_EQ(Count(c.get(), "SELECT count(*) FROM audit_logs WHERE table_name = 'secure_tokens'"), before + 1);
}

}  // namespace
}  // namespace torii::test
