// The JWT deny-list family (PROTOCOL.md section 5): single JWTs revoked by
// jti until their exp, and per-user cutoffs ("every JWT of this user issued
// before then"). Services hold the list in memory from the jwt.* events
// (torii::JwtDenyList); these operations write it, answer single checks and
// page through it for a service starting up. Refused for an actor
// (OpDef::actor_forbidden).
#include "ops/ops_common.h"
#include "ops/sql.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

namespace {

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    // JWT deny-list. Revoking again never shortens: expires_at only grows,
    // a user_id is only filled in; an unchanged row is not updated (no event).
    {Stmt::kRevokeJwt, "t_revoke_jwt",
     "INSERT INTO jwt_revocations AS r (jti, user_id, expires_at, tenant) VALUES ($1, $2::uuid, " TS("$3") ", $T) "
     "ON CONFLICT (tenant, jti) DO UPDATE SET expires_at = greatest(r.expires_at, excluded.expires_at), "
     "user_id = coalesce(r.user_id, excluded.user_id) "
     "WHERE r.expires_at < excluded.expires_at OR (r.user_id IS NULL AND excluded.user_id IS NOT NULL)", 0},
    // $2 issued_before (micros) or NULL: now; $3 expires_at (micros) or NULL:
    // issued_before + 30 days. A cutoff never moves back.
    {Stmt::kRevokeUserJwts, "t_revoke_user_jwts",
     "INSERT INTO jwt_user_cutoffs AS c (user_id, issued_before, expires_at, tenant) "
     "SELECT $1::uuid, b, coalesce(" TS("$3") ", b + interval '30 days'), $T FROM (SELECT coalesce(" TS("$2") ", now()) AS b) AS t "
     "ON CONFLICT (tenant, user_id) DO UPDATE SET issued_before = greatest(c.issued_before, excluded.issued_before), "
     "expires_at = greatest(c.expires_at, excluded.expires_at), updated_at = now() "
     "WHERE c.issued_before < excluded.issued_before OR c.expires_at < excluded.expires_at", 0},
    // $2 user_id, $3 issued_at (micros); a user_id without issued_at is
    // revoked by any cutoff of that user (the JWT cannot show it is newer).
    {Stmt::kIsJwtRevoked, "t_is_jwt_revoked",
     "SELECT EXISTS (SELECT 1 FROM jwt_revocations WHERE tenant = $T AND jti = $1 AND expires_at > now()) "
     "OR ($2::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM jwt_user_cutoffs WHERE tenant = $T AND user_id = $2::uuid "
     "AND expires_at > now() AND ($3::int8 IS NULL OR " TS("$3") " < issued_before)))", 0},
    // One page of the unexpired deny-list: jtis in jti order, then user
    // cutoffs in user_id order. $1 cursor kind (NULL: start; 0 after jti $2;
    // 1 after user $3), $4 limit (one more row is read to tell whether more
    // follow). Columns: kind, jti or user_id, expires_at or issued_before.
    {Stmt::kListJwtRevocations, "t_list_jwt_revocations",
     "(SELECT 0 AS kind, jti COLLATE \"C\" AS k, " US("expires_at") " FROM jwt_revocations WHERE tenant = $T AND expires_at > now() "
     "  AND ($1::int4 IS NULL OR ($1::int4 = 0 AND jti > $2::text COLLATE \"C\")) ORDER BY jti LIMIT $4::int4) "
     "UNION ALL "
     "(SELECT 1, user_id::text COLLATE \"C\", " US("issued_before") " FROM jwt_user_cutoffs WHERE tenant = $T AND expires_at > now() "
     "  AND ($1::int4 IS NULL OR $1::int4 = 0 OR user_id > $3::uuid) ORDER BY user_id LIMIT $4::int4) "
     "ORDER BY kind, k LIMIT $4::int4", 0},
};

constexpr size_t kMaxJtiBytes = 255;
constexpr int64_t kDefaultPage = 1000;
constexpr int64_t kMaxPage = 1000;

Result<std::string> JtiArg(const Args& args) {
  auto jti = args.RequiredStr("jti");
  if (!jti.ok()) return jti;
  if (jti->empty() || jti->size() > kMaxJtiBytes) return Error::InvalidArgument("'jti' must be 1 to 255 bytes");
  return jti;
}

void AddMicros(Command& c, const std::optional<Micros>& v) {
  if (v) {
    c.Add(std::to_string(*v));
  } else {
    c.AddNull();
  }
}

bool IsUuidText(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

Status RenderRevoked(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) != 1) return Error::Internal("the revocation check returned no row");
  pk.pack_map(1);
  PackStr(pk, "revoked");
  if (std::strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  return {};
}

// Rows of kListJwtRevocations: kind (0 jti, 1 user), key, micros. The
// cursor is the last row's kind letter and key ("j<jti>" or "u<uuid>");
// opaque to clients.
Status RenderRevocationPage(const PGresult* r, const Plan& plan, Packer& pk) {
  int rows = PQntuples(r);
  bool more = rows > plan.limit;
  int n = more ? static_cast<int>(plan.limit) : rows;
  int jtis = 0;
  while (jtis < n && std::strcmp(PQgetvalue(r, jtis, 0), "0") == 0) jtis++;
  pk.pack_map(3);
  PackStr(pk, "jtis");
  pk.pack_array(jtis);
  for (int i = 0; i < jtis; i++) {
    pk.pack_map(2);
    PackStr(pk, "jti");
    PackText(pk, r, i, 1);
    PackStr(pk, "expires_at");
    PackMicros(pk, r, i, 2);
  }
  PackStr(pk, "users");
  pk.pack_array(n - jtis);
  for (int i = jtis; i < n; i++) {
    pk.pack_map(2);
    PackStr(pk, "user_id");
    PackText(pk, r, i, 1);
    PackStr(pk, "issued_before");
    PackMicros(pk, r, i, 2);
  }
  PackStr(pk, "next");
  if (more && n > 0) {
    std::string cursor = (std::strcmp(PQgetvalue(r, n - 1, 0), "0") == 0 ? "j" : "u");
    cursor.append(PQgetvalue(r, n - 1, 1), PQgetlength(r, n - 1, 1));
    PackStr(pk, cursor);
  } else {
    pk.pack_nil();
  }
  return {};
}

Result<Plan> BuildRevokeJwt(const Args& args) {
  if (auto st = args.OnlyKeys({"jti", "expires_at", "user_id"}); !st.ok()) return st.error();
  TRY(jti, JtiArg(args));
  TRY(exp, args.Timestamp("expires_at"));
  if (!*exp) return Error::InvalidArgument("missing required argument 'expires_at'");
  TRY(user_id, args.Uuid("user_id"));
  Plan p;
  p.cmds.emplace_back(Stmt::kRevokeJwt);
  p.cmds.back().Add(*jti).AddOpt(*user_id).Add(std::to_string(**exp));
  p.render = RenderEmpty;
  return p;
}

// Besides PROTOCOL.md's `issued_before`, an optional `expires_at`: when no
// JWT issued before the cutoff can be valid any more, so the cleanup may drop
// it (default issued_before + 30 days; docs/protocol.md).
Result<Plan> BuildRevokeUserJwts(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "issued_before", "expires_at"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(before, args.Timestamp("issued_before"));
  TRY(exp, args.Timestamp("expires_at"));
  if (*exp && **exp <= (*before ? **before : NowMicros())) {
    return Error::InvalidArgument("'expires_at' must be after 'issued_before'");
  }
  Plan p;
  p.cmds.emplace_back(Stmt::kRevokeUserJwts);
  p.cmds.back().Add(*user_id);
  AddMicros(p.cmds.back(), *before);
  AddMicros(p.cmds.back(), *exp);
  p.render = RenderEmpty;
  return p;
}

Result<Plan> BuildIsJwtRevoked(const Args& args) {
  if (auto st = args.OnlyKeys({"jti", "user_id", "issued_at"}); !st.ok()) return st.error();
  TRY(jti, JtiArg(args));
  TRY(user_id, args.Uuid("user_id"));
  TRY(issued, args.Timestamp("issued_at"));
  if (*issued && !*user_id) return Error::InvalidArgument("'issued_at' needs 'user_id'");
  Plan p;
  p.cmds.emplace_back(Stmt::kIsJwtRevoked);
  p.cmds.back().Add(*jti).AddOpt(*user_id);
  AddMicros(p.cmds.back(), *issued);
  p.render = RenderRevoked;
  return p;
}

Result<Plan> BuildListJwtRevocations(const Args& args) {
  if (auto st = args.OnlyKeys({"after", "limit"}); !st.ok()) return st.error();
  TRY(after, args.Str("after"));
  TRY(limit, args.Int("limit"));
  int64_t n = limit->value_or(kDefaultPage);
  if (n < 1 || n > kMaxPage) return Error::InvalidArgument("'limit' must be 1 to 1000");
  Plan p;
  p.limit = n;
  p.cmds.emplace_back(Stmt::kListJwtRevocations);
  Command& c = p.cmds.back();
  if (!*after) {
    c.AddNull().AddNull().AddNull();
  } else {
    const std::string& cur = **after;
    std::string_view key = std::string_view(cur).substr(cur.empty() ? 0 : 1);
    if (!cur.empty() && cur[0] == 'j' && !key.empty() && key.size() <= kMaxJtiBytes) {
      c.Add("0").Add(std::string(key)).AddNull();
    } else if (!cur.empty() && cur[0] == 'u' && IsUuidText(key)) {
      c.Add("1").AddNull().Add(std::string(key));
    } else {
      return Error::InvalidArgument("'after' is not a cursor of list_jwt_revocations");
    }
  }
  c.Add(std::to_string(n + 1));
  p.render = RenderRevocationPage;
  return p;
}

const OpDef kJwtOps[] = {
    {"revoke_jwt", BuildRevokeJwt, true},
    {"revoke_user_jwts", BuildRevokeUserJwts, true},
    {"is_jwt_revoked", BuildIsJwtRevoked, true},
    {"list_jwt_revocations", BuildListJwtRevocations, true},
};

}  // namespace

std::span<const StatementDef> JwtStatements() { return kStatements; }

std::span<const OpDef> JwtOps() { return kJwtOps; }

}  // namespace torii::daemon
