// The OAuth family: accounts linked to users, and the PKCE verifiers kept
// under an authorization request's CSRF state (PROTOCOL.md section 5).
#include <cstring>

#include "ops/ops_common.h"
#include "ops/sql.h"

namespace torii::daemon {

namespace {

// The columns of an OAuth account, read by name (kOAuthFields).
#define OAUTH_COLS                                                                                         \
  "user_id, provider, subject, " US("created_at") " AS created_at_us, " US("updated_at") " AS updated_at_us, " \
  USER_TORII_ID("oauth_accounts")

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    // link_oauth_account, the same way: the SELECT tells an existing link of
    // this user (idempotent) from one of another user (duplicate).
    {Stmt::kLinkOAuthInsert, "t_link_oauth_insert",
     "INSERT INTO oauth_accounts (user_id, provider, subject, tenant) VALUES ($1::uuid, $2, $3, $T) "
     "ON CONFLICT (tenant, provider, subject) DO NOTHING", 0},
    {Stmt::kLinkOAuthSelect, "t_link_oauth_select",
     "SELECT " OAUTH_COLS ", user_id = $3::uuid AS own FROM oauth_accounts WHERE tenant = $T AND provider = $1 AND subject = $2", 0},
    {Stmt::kGetOAuthAccount, "t_get_oauth_account",
     "SELECT " OAUTH_COLS " FROM oauth_accounts WHERE tenant = $T AND provider = $1 AND subject = $2", 0},
    {Stmt::kGetUserByOAuth, "t_get_user_by_oauth",
     "SELECT " USER_COLS_NO_HASH " FROM users "
     "WHERE tenant = $T AND id = (SELECT user_id FROM oauth_accounts WHERE tenant = $T AND provider = $1 AND subject = $2)", 0},
    {Stmt::kListOAuthAccounts, "t_list_oauth_accounts",
     "SELECT " OAUTH_COLS " FROM oauth_accounts WHERE tenant = $T AND user_id = $1::uuid ORDER BY created_at, id", 0},
    {Stmt::kUnlinkOAuthAccount, "t_unlink_oauth_account",
     "DELETE FROM oauth_accounts WHERE tenant = $T AND user_id = $1::uuid AND provider = $2 AND ($3::text IS NULL OR subject = $3)",
     0},
    {Stmt::kPutOAuthState, "t_put_oauth_state",
     "INSERT INTO oauth_states (state, verifier, expires_at, tenant) VALUES ($1, $2, now() + $3::int8 * interval '1 second', $T) "
     "ON CONFLICT (tenant, state) DO UPDATE SET verifier = EXCLUDED.verifier, expires_at = EXCLUDED.expires_at "
     "RETURNING " US("expires_at"), 0},
    // Single use: the row goes in the statement that reads it; an expired
    // row goes too, reported as not found.
    {Stmt::kTakeOAuthState, "t_take_oauth_state",
     "DELETE FROM oauth_states WHERE tenant = $T AND state = $1 RETURNING verifier, expires_at > now() AS live", 0},
};

constexpr size_t kMaxProviderBytes = 64;
constexpr size_t kMaxSubjectBytes = 255;
constexpr size_t kMaxStateBytes = 255;

// An OAuthAccount, in reply order.
constexpr Field kOAuthFields[] = {
    {"user_id", "user_id", PackText},
    {"provider", "provider", PackText},
    {"subject", "subject", PackText},
    {"created_at", "created_at_us", PackMicros},
    {"updated_at", "updated_at_us", PackMicros},
    {"user_torii_id", "user_torii_id", PackText},
};

Status PackOAuthAccount(Packer& pk, const PGresult* r, int row) {
  FieldColumns cols(r, kOAuthFields);
  if (!cols.complete()) return MissingColumns("OAuth account");
  cols.Pack(pk, r, row);
  return {};
}

Status RenderOAuthAccount(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such OAuth account");
  return PackOAuthAccount(pk, r, 0);
}

// kLinkOAuthSelect: the pair's row, and `own`, whether it is the requested
// user's. None: the pair is linked to a user the actor cannot see.
Status RenderLinked(const PGresult* r, const Plan&, Packer& pk) {
  if (!ColumnIsTrue(r, 0, "own")) return Error::Duplicate("this provider account is linked to another user");
  return PackOAuthAccount(pk, r, 0);
}

Status RenderOAuthAccounts(const PGresult* r, const Plan&, Packer& pk) {
  FieldColumns cols(r, kOAuthFields);
  if (!cols.complete()) return MissingColumns("OAuth account");
  pk.pack_map(1);
  PackStr(pk, "accounts");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) cols.Pack(pk, r, i);
  return {};
}

// DELETE ... RETURNING verifier, expires_at > now() AS live.
Status RenderTakenState(const PGresult* r, const Plan&, Packer& pk) {
  if (!ColumnIsTrue(r, 0, "live")) return Error::NotFound("no such OAuth state, or it has expired or was taken");
  int verifier = PQfnumber(r, "verifier");
  if (verifier < 0) return MissingColumns("OAuth state");
  pk.pack_map(1);
  PackStr(pk, "verifier");
  PackText(pk, r, 0, verifier);
  return {};
}

// `provider`: 1 to 64 bytes of [a-z0-9_.-].
Result<std::optional<std::string_view>> ProviderArg(const Args& args) {
  auto p = SizedStrArg(args, "provider", 1, kMaxProviderBytes, true);
  if (!p.ok()) return p;
  for (char c : **p) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return Error::InvalidArgument("'provider' may hold only a-z, 0-9, '_', '.' and '-'");
  }
  return p;
}

Result<Plan> BuildLinkOAuthAccount(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "provider", "subject"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(provider, ProviderArg(args));
  TRY(subject, SizedStrArg(args, "subject", 1, kMaxSubjectBytes, true));
  Plan p;
  p.cmds.emplace_back(Stmt::kLinkOAuthInsert);
  p.cmds.back().Add(*user_id).Add(std::string(**provider)).Add(std::string(**subject));
  p.cmds.emplace_back(Stmt::kLinkOAuthSelect);
  p.cmds.back().Add(std::string(**provider)).Add(std::string(**subject)).Add(*user_id);
  p.main = 1;
  p.render = RenderLinked;
  return p;
}

Result<Plan> BuildProviderSubject(const Args& args, Stmt stmt, RenderFn render) {
  if (auto st = args.OnlyKeys({"provider", "subject"}); !st.ok()) return st.error();
  TRY(provider, ProviderArg(args));
  TRY(subject, SizedStrArg(args, "subject", 1, kMaxSubjectBytes, true));
  Plan p;
  p.cmds.emplace_back(stmt);
  p.cmds.back().Add(std::string(**provider)).Add(std::string(**subject));
  p.render = render;
  return p;
}

Result<Plan> BuildGetOAuthAccount(const Args& args) {
  return BuildProviderSubject(args, Stmt::kGetOAuthAccount, RenderOAuthAccount);
}

Result<Plan> BuildGetUserByOAuth(const Args& args) {
  return BuildProviderSubject(args, Stmt::kGetUserByOAuth, RenderUserNoHash);
}

Result<Plan> BuildListOAuthAccounts(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  Plan p;
  p.cmds.emplace_back(Stmt::kListOAuthAccounts);
  p.cmds.back().Add(*user_id);
  p.render = RenderOAuthAccounts;
  return p;
}

Result<Plan> BuildUnlinkOAuthAccount(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "provider", "subject"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(provider, ProviderArg(args));
  TRY(subject, SizedStrArg(args, "subject", 1, kMaxSubjectBytes, false));
  Plan p;
  p.cmds.emplace_back(Stmt::kUnlinkOAuthAccount);
  p.cmds.back().Add(*user_id).Add(std::string(**provider));
  if (*subject) {
    p.cmds.back().Add(std::string(**subject));
  } else {
    p.cmds.back().AddNull();
  }
  p.render = RenderDeletedCount;
  return p;
}

Result<Plan> BuildPutOAuthState(const Args& args) {
  if (auto st = args.OnlyKeys({"state", "verifier", "ttl_s"}); !st.ok()) return st.error();
  TRY(state, SizedStrArg(args, "state", 1, kMaxStateBytes, true));
  TRY(verifier, SizedStrArg(args, "verifier", 1, 255, true));
  TRY(ttl, TtlArg(args));
  Plan p;
  p.cmds.emplace_back(Stmt::kPutOAuthState);
  p.cmds.back().Add(std::string(**state)).Add(std::string(**verifier)).Add(std::to_string(*ttl));
  p.render = RenderExpiresAt;
  return p;
}

Result<Plan> BuildTakeOAuthState(const Args& args) {
  if (auto st = args.OnlyKeys({"state"}); !st.ok()) return st.error();
  TRY(state, SizedStrArg(args, "state", 1, kMaxStateBytes, true));
  Plan p;
  p.cmds.emplace_back(Stmt::kTakeOAuthState);
  p.cmds.back().Add(std::string(**state));
  p.render = RenderTakenState;
  return p;
}

// The state operations hold client secrets outside any user's rows: an
// actor request to them is forbidden (PROTOCOL.md section 5).
const OpDef kOAuthOps[] = {
    {"link_oauth_account", BuildLinkOAuthAccount},
    {"get_oauth_account", BuildGetOAuthAccount},
    {"get_user_by_oauth", BuildGetUserByOAuth},
    {"list_oauth_accounts", BuildListOAuthAccounts},
    {"unlink_oauth_account", BuildUnlinkOAuthAccount},
    {"put_oauth_state", BuildPutOAuthState, true},
    {"take_oauth_state", BuildTakeOAuthState, true},
};

}  // namespace

std::span<const StatementDef> OAuthStatements() { return kStatements; }

std::span<const OpDef> OAuthOps() { return kOAuthOps; }

}  // namespace torii::daemon
