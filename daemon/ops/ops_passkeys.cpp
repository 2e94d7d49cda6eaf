// The passkeys family: WebAuthn credentials of users, their signature
// counters, and the single-use challenges of registration and login
// ceremonies (PROTOCOL.md section 5).
#include <cstdlib>
#include <cstring>

#include "ops/ops_common.h"
#include "ops/sql.h"

namespace torii::daemon {

namespace {

// The columns of a passkey, read by name (kPasskeyFields).
#define PASSKEY_COLS                                                                          \
  "credential_id, user_id, public_key, name, sign_count, " US("created_at") " AS created_at_us, " \
  US("last_used_at") " AS last_used_at_us, " USER_TORII_ID("passkeys")

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    {Stmt::kAddPasskey, "t_add_passkey",
     "INSERT INTO passkeys (user_id, credential_id, public_key, name, sign_count, tenant) "
     "VALUES ($1::uuid, $2::bytea, $3::bytea, $4, coalesce($5::int8, 0), $T) RETURNING " PASSKEY_COLS,
     (1u << 1) | (1u << 2)},
    {Stmt::kGetPasskey, "t_get_passkey", "SELECT " PASSKEY_COLS " FROM passkeys WHERE tenant = $T AND credential_id = $1::bytea",
     1u << 0},
    {Stmt::kListPasskeys, "t_list_passkeys",
     "SELECT " PASSKEY_COLS " FROM passkeys WHERE tenant = $T AND user_id = $1::uuid ORDER BY created_at, id", 0},
    // The counter rule in the UPDATE's WHERE, so it holds against the latest
    // row even under concurrent uses (READ COMMITTED re-checks it on the row
    // a concurrent update left). A given count of 0 or none keeps the stored
    // one. `updated`: true for the updated row; a row with false is the
    // unchanged passkey whose counter did not increase (conflict).
    {Stmt::kUsePasskey, "t_use_passkey",
     "WITH upd AS (UPDATE passkeys SET last_used_at = now(), "
     "sign_count = CASE WHEN coalesce($2::int8, 0) = 0 THEN sign_count ELSE $2::int8 END "
     "WHERE tenant = $T AND credential_id = $1::bytea "
     "AND NOT (coalesce($2::int8, 0) <> 0 AND sign_count <> 0 AND $2::int8 <= sign_count) "
     "RETURNING " PASSKEY_COLS ") "
     "SELECT *, true AS updated FROM upd UNION ALL "
     "SELECT " PASSKEY_COLS ", false FROM passkeys WHERE tenant = $T AND credential_id = $1::bytea AND NOT EXISTS (SELECT 1 FROM upd)",
     1u << 0},
    {Stmt::kDeletePasskey, "t_delete_passkey", "DELETE FROM passkeys WHERE tenant = $T AND credential_id = $1::bytea", 1u << 0},
    {Stmt::kDeleteUserPasskeys, "t_delete_user_passkeys", "DELETE FROM passkeys WHERE tenant = $T AND user_id = $1::uuid", 0},
    {Stmt::kPutPasskeyChallenge, "t_put_passkey_challenge",
     "INSERT INTO passkey_challenges (challenge_id, challenge, user_id, expires_at, tenant) "
     "VALUES ($1, $2::bytea, $3::uuid, now() + $4::int8 * interval '1 second', $T) "
     "ON CONFLICT (tenant, challenge_id) DO UPDATE SET challenge = EXCLUDED.challenge, user_id = EXCLUDED.user_id, "
     "expires_at = EXCLUDED.expires_at RETURNING " US("expires_at"), 1u << 1},
    {Stmt::kTakePasskeyChallenge, "t_take_passkey_challenge",
     "DELETE FROM passkey_challenges WHERE tenant = $T AND challenge_id = $1 RETURNING challenge, user_id, expires_at > now() AS live", 0},
};

constexpr size_t kMaxCredentialIdBytes = 1023;
constexpr size_t kMaxPublicKeyBytes = 4096;
constexpr size_t kMaxChallengeIdBytes = 255;
constexpr size_t kMaxChallengeBytes = 1024;
constexpr int64_t kMaxSignCount = 4294967295LL;  // WebAuthn's counter is 32 bits

// A Passkey, in reply order.
constexpr Field kPasskeyFields[] = {
    {"credential_id", "credential_id", PackBytea},
    {"user_id", "user_id", PackText},
    {"public_key", "public_key", PackBytea},
    {"name", "name", PackText},
    {"sign_count", "sign_count", PackUint},
    {"created_at", "created_at_us", PackMicros},
    {"last_used_at", "last_used_at_us", PackMicros},
    {"user_torii_id", "user_torii_id", PackText},
};

Status PackPasskey(Packer& pk, const PGresult* r, int row) {
  FieldColumns cols(r, kPasskeyFields);
  if (!cols.complete()) return MissingColumns("passkey");
  cols.Pack(pk, r, row);
  return {};
}

Status RenderPasskey(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such passkey");
  return PackPasskey(pk, r, 0);
}

// kUsePasskey: the updated row (`updated` true), or the unchanged row
// whose counter did not increase (false), or none.
Status RenderUsedPasskey(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such passkey");
  if (!ColumnIsTrue(r, 0, "updated")) {
    return Error::Conflict("the signature counter did not increase; the authenticator may be cloned");
  }
  return PackPasskey(pk, r, 0);
}

Status RenderPasskeys(const PGresult* r, const Plan&, Packer& pk) {
  FieldColumns cols(r, kPasskeyFields);
  if (!cols.complete()) return MissingColumns("passkey");
  pk.pack_map(1);
  PackStr(pk, "passkeys");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) cols.Pack(pk, r, i);
  return {};
}

Status RenderPasskeyDeleted(const PGresult* r, const Plan&, Packer& pk) {
  if (CmdTuples(r) == 0) return Error::NotFound("no such passkey");
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(1);
  return {};
}

// DELETE ... RETURNING challenge, user_id, expires_at > now() AS live.
Status RenderTakenChallenge(const PGresult* r, const Plan&, Packer& pk) {
  if (!ColumnIsTrue(r, 0, "live")) {
    return Error::NotFound("no such passkey challenge, or it has expired or was taken");
  }
  int challenge = PQfnumber(r, "challenge"), user_id = PQfnumber(r, "user_id");
  if (challenge < 0 || user_id < 0) return MissingColumns("passkey challenge");
  pk.pack_map(2);
  PackStr(pk, "challenge");
  PackBytea(pk, r, 0, challenge);
  PackStr(pk, "user_id");
  PackText(pk, r, 0, user_id);
  return {};
}

Result<std::optional<int64_t>> SignCountArg(const Args& args) {
  auto n = args.Int("sign_count");
  if (!n.ok()) return n;
  if (*n && (**n < 0 || **n > kMaxSignCount)) {
    return Error::InvalidArgument("'sign_count' must be 0 to 4294967295");
  }
  return n;
}

Result<Plan> BuildAddPasskey(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "credential_id", "public_key", "name", "sign_count"}); !st.ok()) {
    return st.error();
  }
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(cred, BinArg(args, "credential_id", 1, kMaxCredentialIdBytes, true));
  TRY(key, BinArg(args, "public_key", 1, kMaxPublicKeyBytes, true));
  TRY(name, SizedStrArg(args, "name", 0, 255, false));
  TRY(count, SignCountArg(args));
  Plan p;
  p.cmds.emplace_back(Stmt::kAddPasskey);
  Command& c = p.cmds.back();
  c.Add(*user_id).Add(std::string(**cred)).Add(std::string(**key));
  if (*name) {
    c.Add(std::string(**name));
  } else {
    c.AddNull();
  }
  c.AddOpt(*count);
  p.render = RenderPasskey;
  return p;
}

Result<Plan> BuildByCredential(const Args& args, Stmt stmt, RenderFn render) {
  if (auto st = args.OnlyKeys({"credential_id"}); !st.ok()) return st.error();
  TRY(cred, BinArg(args, "credential_id", 1, kMaxCredentialIdBytes, true));
  Plan p;
  p.cmds.emplace_back(stmt);
  p.cmds.back().Add(std::string(**cred));
  p.render = render;
  return p;
}

Result<Plan> BuildGetPasskey(const Args& args) { return BuildByCredential(args, Stmt::kGetPasskey, RenderPasskey); }

Result<Plan> BuildDeletePasskey(const Args& args) {
  return BuildByCredential(args, Stmt::kDeletePasskey, RenderPasskeyDeleted);
}

Result<Plan> BuildUsePasskey(const Args& args) {
  if (auto st = args.OnlyKeys({"credential_id", "sign_count"}); !st.ok()) return st.error();
  TRY(cred, BinArg(args, "credential_id", 1, kMaxCredentialIdBytes, true));
  TRY(count, SignCountArg(args));
  Plan p;
  p.cmds.emplace_back(Stmt::kUsePasskey);
  p.cmds.back().Add(std::string(**cred)).AddOpt(*count);
  p.render = RenderUsedPasskey;
  return p;
}

Result<Plan> BuildUserPasskeys(const Args& args, Stmt stmt, RenderFn render) {
  if (auto st = args.OnlyKeys({"user_id"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  Plan p;
  p.cmds.emplace_back(stmt);
  p.cmds.back().Add(*user_id);
  p.render = render;
  return p;
}

Result<Plan> BuildListPasskeys(const Args& args) {
  return BuildUserPasskeys(args, Stmt::kListPasskeys, RenderPasskeys);
}

Result<Plan> BuildDeleteUserPasskeys(const Args& args) {
  return BuildUserPasskeys(args, Stmt::kDeleteUserPasskeys, RenderDeletedCount);
}

Result<Plan> BuildPutPasskeyChallenge(const Args& args) {
  if (auto st = args.OnlyKeys({"challenge_id", "challenge", "ttl_s", "user_id"}); !st.ok()) return st.error();
  TRY(id, SizedStrArg(args, "challenge_id", 1, kMaxChallengeIdBytes, true));
  TRY(challenge, BinArg(args, "challenge", 1, kMaxChallengeBytes, true, true));
  TRY(ttl, TtlArg(args));
  TRY(user_id, args.Uuid("user_id"));
  Plan p;
  p.cmds.emplace_back(Stmt::kPutPasskeyChallenge);
  p.cmds.back().Add(std::string(**id)).Add(std::string(**challenge)).AddOpt(*user_id).Add(std::to_string(*ttl));
  p.render = RenderExpiresAt;
  return p;
}

Result<Plan> BuildTakePasskeyChallenge(const Args& args) {
  if (auto st = args.OnlyKeys({"challenge_id"}); !st.ok()) return st.error();
  TRY(id, SizedStrArg(args, "challenge_id", 1, kMaxChallengeIdBytes, true));
  Plan p;
  p.cmds.emplace_back(Stmt::kTakePasskeyChallenge);
  p.cmds.back().Add(std::string(**id));
  p.render = RenderTakenChallenge;
  return p;
}

// The challenge operations hold client secrets outside any user's rows:
// an actor request to them is forbidden (PROTOCOL.md section 5).
const OpDef kPasskeyOps[] = {
    {"add_passkey", BuildAddPasskey},
    {"get_passkey", BuildGetPasskey},
    {"list_passkeys", BuildListPasskeys},
    {"use_passkey", BuildUsePasskey},
    {"delete_passkey", BuildDeletePasskey},
    {"delete_user_passkeys", BuildDeleteUserPasskeys},
    {"put_passkey_challenge", BuildPutPasskeyChallenge, true},
    {"take_passkey_challenge", BuildTakePasskeyChallenge, true},
};

}  // namespace

std::span<const StatementDef> PasskeyStatements() { return kStatements; }

std::span<const OpDef> PasskeyOps() { return kPasskeyOps; }

}  // namespace torii::daemon
