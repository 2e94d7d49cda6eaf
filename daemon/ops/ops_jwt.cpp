// The JWT deny-list family (PROTOCOL.md section 5): single JWTs revoked by
// jti until their exp, and per-user cutoffs ("every JWT of this user issued
// before then"). Services hold the list in memory from the jwt.* events
// (torii::JwtDenyList); these operations write it, answer single checks and
// page through it for a service starting up. Refused for an actor
// (OpDef::actor_forbidden).
#include "ops/ops_common.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

namespace {

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
    {"revoke_jwt", BuildRevokeJwt, false, true},
    {"revoke_user_jwts", BuildRevokeUserJwts, false, true},
    {"is_jwt_revoked", BuildIsJwtRevoked, true, true},
    {"list_jwt_revocations", BuildListJwtRevocations, true, true},
};

}  // namespace

std::span<const OpDef> JwtOps() { return kJwtOps; }

}  // namespace torii::daemon
