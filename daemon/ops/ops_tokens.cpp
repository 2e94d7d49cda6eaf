// The secure tokens family (PROTOCOL.md section 5): single-use tokens for
// magic links, password resets and email verification. The token is made
// like a session token, returned once by create_token, and stored only as
// its SHA-256 digest. An unknown, used, expired or wrong-purpose token is
// not_found alike, through the same statement.
#include "ops/ops_common.h"
#include "ops/sql.h"

namespace torii::daemon {

namespace {

// The columns of a secure token, read by name (kTokenFields).
#define TOKEN_COLS                                                                                     \
  "id, user_id, purpose, " US("expires_at") " AS expires_at_us, " US("used_at") " AS used_at_us, " \
  US("created_at") " AS created_at_us, " USER_TORII_ID("secure_tokens")

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    // Secure tokens: $n token digest (binary). check and use take the same
    // path for an unknown, used, expired or wrong-purpose token: one index
    // probe on token_hash, then the other conditions.
    {Stmt::kCreateToken, "t_create_token",
     "INSERT INTO secure_tokens (user_id, purpose, token_hash, expires_at, tenant) "
     "VALUES ($1::uuid, $2, $3::bytea, now() + $4::int8 * interval '1 second', $T) RETURNING " TOKEN_COLS, 1u << 2},
    {Stmt::kCheckToken, "t_check_token",
     "SELECT " TOKEN_COLS " FROM secure_tokens WHERE tenant = $T AND token_hash = $1::bytea AND purpose = $2 "
     "AND used_at IS NULL AND expires_at > now()", 1u << 0},
    // One statement: of concurrent calls, the first to lock the row sets
    // used_at; the others re-check used_at IS NULL on the new version and
    // update nothing.
    {Stmt::kUseToken, "t_use_token",
     "UPDATE secure_tokens SET used_at = now() WHERE tenant = $T AND token_hash = $1::bytea AND purpose = $2 "
     "AND used_at IS NULL AND expires_at > now() RETURNING " TOKEN_COLS, 1u << 0},
    {Stmt::kDeleteUserTokens, "t_delete_user_tokens",
     "DELETE FROM secure_tokens WHERE tenant = $T AND user_id = $1::uuid AND ($2::text IS NULL OR purpose = $2)", 0},
};

Result<std::string> PurposeArg(const Args& args, bool required) {
  auto p = args.Str("purpose");
  if (!p.ok()) return p.error();
  if (!*p) {
    if (required) return Error::InvalidArgument("missing required argument 'purpose'");
    return std::string();
  }
  const std::string& s = **p;
  if (s != "magic_link" && s != "password_reset" && s != "email_verification") {
    return Error::InvalidArgument("'purpose' must be magic_link, password_reset or email_verification");
  }
  return s;
}

// A SecureToken, in reply order.
constexpr Field kTokenFields[] = {
    {"id", "id", PackText},
    {"user_id", "user_id", PackText},
    {"purpose", "purpose", PackText},
    {"expires_at", "expires_at_us", PackMicros},
    {"used_at", "used_at_us", PackMicros},
    {"created_at", "created_at_us", PackMicros},
    {"user_torii_id", "user_torii_id", PackText},
};

Status RenderToken(const PGresult* r, const Plan& plan, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such token, or it is used, expired or for another purpose");
  FieldColumns cols(r, kTokenFields);
  if (!cols.complete()) return MissingColumns("secure token");
  cols.Pack(pk, r, 0, plan.token.empty() ? 0 : 1);
  if (!plan.token.empty()) {
    PackStr(pk, "token");
    PackStr(pk, plan.token);
  }
  return {};
}

Result<Plan> BuildCreateToken(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "purpose", "ttl_s"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(purpose, PurposeArg(args, true));
  TRY(ttl, args.Int("ttl_s"));
  if (!*ttl) return Error::InvalidArgument("missing required argument 'ttl_s'");
  if (**ttl <= 0) return Error::InvalidArgument("'ttl_s' must be positive");
  if (**ttl > kMaxTtlS) return Error::InvalidArgument("'ttl_s' is more than 100 years");
  Plan p;
  p.token = NewSessionToken();
  p.cmds.emplace_back(Stmt::kCreateToken);
  p.cmds.back().Add(*user_id).Add(*purpose).Add(DigestParam(p.token)).Add(std::to_string(**ttl));
  p.render = RenderToken;
  return p;
}

// check_token and use_token: `token` and `purpose`, both required.
Result<Plan> BuildTokenLookup(const Args& args, Stmt stmt) {
  if (auto st = args.OnlyKeys({"token", "purpose"}); !st.ok()) return st.error();
  TRY(token, TokenArg(args));
  TRY(purpose, PurposeArg(args, true));
  Plan p;
  p.cmds.emplace_back(stmt);
  p.cmds.back().Add(DigestParam(*token)).Add(*purpose);
  p.render = RenderToken;
  return p;
}

Result<Plan> BuildCheckToken(const Args& args) { return BuildTokenLookup(args, Stmt::kCheckToken); }
Result<Plan> BuildUseToken(const Args& args) { return BuildTokenLookup(args, Stmt::kUseToken); }

Result<Plan> BuildDeleteUserTokens(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "purpose"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(purpose, PurposeArg(args, false));
  Plan p;
  p.cmds.emplace_back(Stmt::kDeleteUserTokens);
  p.cmds.back().Add(*user_id);
  if (purpose->empty()) {
    p.cmds.back().AddNull();
  } else {
    p.cmds.back().Add(*purpose);
  }
  p.render = RenderDeletedCount;
  return p;
}

const OpDef kTokenOps[] = {
    {"create_token", BuildCreateToken},
    {"check_token", BuildCheckToken},
    {"use_token", BuildUseToken},
    {"delete_user_tokens", BuildDeleteUserTokens},
};

}  // namespace

std::span<const StatementDef> TokenStatements() { return kStatements; }

std::span<const OpDef> TokenOps() { return kTokenOps; }

}  // namespace torii::daemon
