// Plan building in daemon/ops (ops.h), without a database: each row is a
// request's arguments and the outcome BuildPlan must give, an error code or
// the statements it plans. The argument rules that the integration tests
// reach through the daemon (request_ops_test's CreateUserErrors, ...) are
// checked here one row at a time.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "ops/statements.h"
#include "wire.h"

namespace torii::daemon {
namespace {

using test::V;

constexpr const char* kUuid = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f";

struct Case {
  const char* op;
  std::optional<V> args;  // nullopt: no args at all (nil)
  const char* want;       // an error code, or "ok"
  std::vector<Stmt> stmts = {};  // for "ok": the plan's statements, in order
};

Result<Plan> Build(const Case& c, const std::optional<std::string>& actor = std::nullopt) {
  const OpDef* op = FindDatabaseOp(c.op);
  if (op == nullptr) return Error::UnknownOp(c.op);
  std::string bytes = c.args ? c.args->Encode() : V().Encode();
  msgpack::object_handle h = msgpack::unpack(bytes.data(), bytes.size());
  return BuildPlan(*op, Args(h.get()), actor);  // a plan keeps no view into the arguments
}

std::string Describe(const Case& c) {
  return std::string(c.op) + " " + (c.args ? test::Value::Decode(c.args->Encode()).ToString() : "(no args)");
}

void Check(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(Describe(c));
    auto plan = Build(c);
    if (std::string(c.want) != "ok") {
      EXPECT_FALSE(plan.ok()) << "planned, but wanted " << c.want;
      if (!plan.ok()) {
        EXPECT_EQ(CodeName(plan.error().code()), c.want) << plan.error().message();
      }
      continue;
    }
    EXPECT_TRUE(plan.ok()) << plan.error().message();
    if (!plan.ok()) continue;
    std::vector<Stmt> got;
    for (const Command& cmd : plan->cmds) got.push_back(cmd.stmt);
    EXPECT_EQ(got, c.stmts);
    EXPECT_LT(plan->main, plan->cmds.size());
    EXPECT_TRUE(plan->render != nullptr);
  }
}

// request_ops_test's CreateUserErrors and EmailRules, without the daemon
// (the duplicate cases need the database and stay there).
TEST(OpsPlanTest, CreateUser) {
  std::string local(64, 'a');
  std::string e254 = local + "@" + std::string(254 - 64 - 1 - 4, 'b') + ".com";
  Check({
      {"create_user", V::Map({}), "invalid_argument"},
      {"create_user", std::nullopt, "invalid_argument"},
      {"create_user", V::Map({{"email", nullptr}}), "invalid_argument"},
      {"create_user", V::Map({{"email", 5}}), "bad_request"},
      {"create_user", V::Map({{"email", "a@b"}, {"password_hash", 5}}), "bad_request"},
      {"create_user", V::Map({{"email", "a@b"}, {"metadata", "x"}}), "bad_request"},
      {"create_user", V::Map({{"email", "a@b"}, {"nickname", "x"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "a@b"}, {"id", "not-a-uuid"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "a@b"}, {"name", std::string(256, 'n')}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "a@b"}, {"metadata", V::Map({{"k", V::Bin("x")}})}}), "invalid_argument"},
      {"create_user", V::Map({{"email", e254}}), "ok", {Stmt::kCreateUser}},
      {"create_user", V::Map({{"email", "c" + e254}}), "invalid_argument"},
      {"create_user", V::Map({{"email", ""}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "plain"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "@example.com"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "user@"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "a@b@c"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", "two words@example.com"}}), "invalid_argument"},
      {"create_user", V::Map({{"email", std::string("a\0b@c", 5)}}), "invalid_argument"},
      {"create_user",
       V::Map({{"email", "a@b"}, {"id", kUuid}, {"password_hash", "h"}, {"metadata", V::Map({{"k", 1}})},
               {"name", "N"}}),
       "ok",
       {Stmt::kCreateUser}},
  });
}

TEST(OpsPlanTest, Sessions) {
  Check({
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", 60}}), "ok", {Stmt::kCreateSession}},
      {"create_session", V::Map({{"user_id", kUuid}}), "invalid_argument"},  // no expiry
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", 60}, {"expires_at", V::Timestamp(1)}}),
       "invalid_argument"},
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", 0}}), "invalid_argument"},
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", -5}}), "invalid_argument"},
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", int64_t{100} * 366 * 24 * 3600 + 1}}),
       "invalid_argument"},
      {"create_session", V::Map({{"user_id", kUuid}, {"expires_at", V::Timestamp(1000)}}), "invalid_argument"},
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", "60"}}), "bad_request"},
      {"create_session", V::Map({{"ttl_s", 60}}), "invalid_argument"},
      {"create_session", V::Map({{"user_id", kUuid}, {"ttl_s", 60}, {"token", "t"}}), "invalid_argument"},
      {"get_session", V::Map({{"token", "secret"}}), "ok", {Stmt::kGetSessionByToken}},
      {"get_session", V::Map({{"id", kUuid}}), "ok", {Stmt::kGetSessionById}},
      {"get_session", V::Map({}), "invalid_argument"},
      {"get_session", V::Map({{"token", "secret"}, {"id", kUuid}}), "invalid_argument"},
      {"get_session", V::Map({{"token", ""}}), "invalid_argument"},
      {"get_session", V::Map({{"token", std::string(1025, 't')}}), "invalid_argument"},
      {"get_session", V::Map({{"token", std::string(1024, 't')}}), "ok", {Stmt::kGetSessionByToken}},
      {"get_session", V::Map({{"token", 5}}), "bad_request"},
      {"get_session", V::Map({{"token", "secret"}, {"include_expired", true}}), "ok", {Stmt::kGetAnySessionByToken}},
      {"get_session", V::Map({{"id", kUuid}, {"include_expired", true}}), "ok", {Stmt::kGetAnySessionById}},
      {"get_session", V::Map({{"token", "secret"}, {"include_expired", false}}), "ok", {Stmt::kGetSessionByToken}},
      {"get_session", V::Map({{"id", kUuid}, {"include_expired", V()}}), "ok", {Stmt::kGetSessionById}},
      {"get_session", V::Map({{"token", "secret"}, {"include_expired", "yes"}}), "bad_request"},
      {"get_session", V::Map({{"token", "secret"}, {"include_expired", 1}}), "bad_request"},
      {"get_session", V::Map({{"include_expired", true}}), "invalid_argument"},
      {"get_session", V::Map({{"token", ""}, {"include_expired", true}}), "invalid_argument"},
      {"extend_session", V::Map({{"id", kUuid}, {"ttl_s", 5}}), "ok", {Stmt::kExtendSessionById}},
      {"extend_session", V::Map({{"token", "s"}, {"ttl_s", 5}}), "ok", {Stmt::kExtendSessionByToken}},
      {"extend_session", V::Map({{"id", kUuid}}), "invalid_argument"},
      {"delete_session", V::Map({{"id", kUuid}}), "ok", {Stmt::kDeleteSessionById}},
      {"delete_session", V::Map({{"token", "s"}}), "ok", {Stmt::kDeleteSessionByToken}},
      {"list_sessions", V::Map({{"user_id", "nope"}}), "invalid_argument"},
      {"list_sessions", V::Map({{"user_id", kUuid}}), "ok", {Stmt::kListSessions}},
      {"delete_user_sessions", V::Map({{"user_id", kUuid}, {"except", kUuid}}), "ok", {Stmt::kDeleteUserSessions}},
      {"delete_user_sessions", V::Map({{"user_id", kUuid}, {"except", "x"}}), "invalid_argument"},
  });
}

// include_expired never touches the hot-session cache (no hot key: not read,
// not filled) and never joins a lookup batch (no row renderer, and its
// statement has no batched form).
// include_expired: read from the session cache like a plain lookup (an
// entry is an unexpired session, the same answer either way), never batched
// (the batch's statement filters expired rows).
TEST(OpsPlanTest, GetSessionIncludingExpiredReadsTheCacheButNeverBatches) {
  for (const char* key : {"token", "id"}) {
    SCOPED_TRACE(key);
    V value = std::string(key) == "token" ? V("secret") : V(kUuid);
    auto plain = Build({"get_session", V::Map({{key, value}}), "ok"});
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(plain->hot.read);
    auto any = Build({"get_session", V::Map({{key, value}, {"include_expired", true}}), "ok"});
    ASSERT_TRUE(any.ok()) << any.error().message();
    EXPECT_EQ(any->hot.kind, plain->hot.kind);
    EXPECT_EQ(any->hot.value, plain->hot.value);
    EXPECT_TRUE(any->hot.read);
    EXPECT_TRUE(any->render_row == nullptr);
    EXPECT_TRUE(any->read_only);
    ASSERT_EQ(any->cmds.size(), 1u);
    EXPECT_EQ(Statement(any->cmds[0].stmt).batched, Stmt::kCount);
  }
  EXPECT_NE(Statement(Stmt::kGetSessionByToken).batched, Stmt::kCount);  // the plain lookup does batch
}

TEST(OpsPlanTest, ListLimits) {
  Check({
      {"list_users", V::Map({}), "ok", {Stmt::kListUsers}},
      {"list_users", V::Map({{"limit", 1000}}), "ok", {Stmt::kListUsers}},
      {"list_users", V::Map({{"limit", 1001}}), "invalid_argument"},
      {"list_users", V::Map({{"limit", 0}}), "invalid_argument"},
      {"search_users", V::Map({{"query", "x"}, {"limit", 100}}), "ok", {Stmt::kSearchUsers}},
      {"search_users", V::Map({{"query", "x"}, {"limit", 101}}), "invalid_argument"},
      {"search_users", V::Map({{"limit", 5}}), "invalid_argument"},
      {"list_audit", V::Map({{"limit", 1001}}), "invalid_argument"},
      {"list_jwt_revocations", V::Map({{"limit", 0}}), "invalid_argument"},
  });
}

TEST(OpsPlanTest, TokensGuardJwtAndAccounts) {
  Check({
      {"create_token", V::Map({{"user_id", kUuid}, {"purpose", "password_reset"}, {"ttl_s", 60}}), "ok", {Stmt::kCreateToken}},
      {"create_token", V::Map({{"user_id", kUuid}, {"purpose", "password_reset"}}), "invalid_argument"},
      {"check_token", V::Map({{"token", "t"}, {"purpose", "password_reset"}}), "ok", {Stmt::kCheckToken}},
      {"use_token", V::Map({{"token", ""}, {"purpose", "password_reset"}}), "invalid_argument"},
      {"record_login_failure", V::Map({{"email", "a@b"}}), "ok",
       {Stmt::kGuardLock, Stmt::kInsertLoginFailure, Stmt::kCountLoginFailures}},
      {"revoke_jwt", V::Map({{"jti", std::string(256, 'j')}, {"expires_at", V::Timestamp(1)}}), "invalid_argument"},
      {"put_oauth_state", V::Map({{"state", "s"}, {"verifier", "v"}, {"ttl_s", 60}}), "ok", {Stmt::kPutOAuthState}},
      {"put_oauth_state", V::Map({{"state", ""}, {"verifier", "v"}, {"ttl_s", 60}}), "invalid_argument"},
      {"put_oauth_state", V::Map({{"state", "s"}, {"verifier", "v"}}), "invalid_argument"},
      {"get_or_create_user", V::Map({{"email", "a@b"}}), "ok",
       {Stmt::kGetOrCreateUserInsert, Stmt::kGetOrCreateUserSelect}},
      {"add_passkey", V::Map({{"user_id", kUuid}, {"credential_id", V::Bin("c")}, {"public_key", 5}}),
       "bad_request"},
  });
}

TEST(OpsPlanTest, ReadOnlyFollowsTheProtocolTableAndAnActorComesFirst) {
  Case get{"get_user", V::Map({{"id", kUuid}}), "ok"};
  auto plain = Build(get);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->read_only);
  EXPECT_EQ(plain->main, 0u);

  auto as_actor = Build(get, std::string(kUuid));
  ASSERT_TRUE(as_actor.ok());
  EXPECT_FALSE(as_actor->read_only) << "an actor's role setting must not leak into a shared Sync";
  ASSERT_EQ(as_actor->cmds.size(), 2u);
  EXPECT_EQ(as_actor->cmds[0].stmt, Stmt::kSetActor);
  EXPECT_EQ(as_actor->main, 1u);

  auto write = Build({"delete_user", V::Map({{"id", kUuid}}), "ok"});
  ASSERT_TRUE(write.ok());
  EXPECT_FALSE(write->read_only);

  auto refused = Build({"revoke_jwt", V::Map({{"jti", "j"}, {"expires_at", V::Timestamp(1)}}), "ok"}, kUuid);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), Code::kForbidden);
}

}  // namespace
}  // namespace torii::daemon
