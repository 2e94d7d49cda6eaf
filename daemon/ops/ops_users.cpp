// The users family: create, get, update, verify, delete, list and search
// users (PROTOCOL.md section 2).
#include "ops/ops_common.h"
#include "ops/sql.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

namespace {

// The family's statements (statements.cpp joins every family's).
const StatementDef kStatements[] = {
    {Stmt::kCreateUser, "t_create_user",
     "INSERT INTO users (id, email, password_hash, metadata, name, email_verified_at, tenant) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, coalesce($4::jsonb, '{}'::jsonb), $5, " TS("$6") ", $T) "
     "RETURNING " USER_COLS, 0},
    {Stmt::kGetUser, "t_get_user", "SELECT " USER_COLS " FROM users WHERE id = $1::uuid AND tenant = $T", 0},
    {Stmt::kGetUserByEmail, "t_get_user_by_email", "SELECT " USER_COLS " FROM users WHERE tenant = $T AND lower(email) = lower($1)", 0},
    // $3: whether password_hash is given ($4 its value, NULL clears it);
    // $5 replaces metadata, then $6 is merged into it; $7/$8 and $9/$10 set
    // name and locked_at the way $3/$4 set the hash.
    {Stmt::kUpdateUser, "t_update_user",
     "UPDATE users SET email = coalesce($2, email), "
     "password_hash = CASE WHEN $3::bool THEN $4 ELSE password_hash END, "
     "name = CASE WHEN $7::bool THEN $8 ELSE name END, "
     "locked_at = CASE WHEN $9::bool THEN " TS("$10") " ELSE locked_at END, "
     "email_verified_at = CASE WHEN $11::bool THEN " TS("$12") " ELSE email_verified_at END, "
     "metadata = CASE WHEN $5::jsonb IS NULL AND $6::jsonb IS NULL THEN metadata "
     "ELSE coalesce($5::jsonb, metadata, '{}'::jsonb) || coalesce($6::jsonb, '{}'::jsonb) END "
     "WHERE id = $1::uuid AND tenant = $T RETURNING " USER_COLS, 0},
    {Stmt::kVerifyEmail, "t_verify_email",
     "UPDATE users SET email_verified_at = coalesce(" TS("$2") ", now()) WHERE id = $1::uuid AND tenant = $T RETURNING " USER_COLS, 0},
    {Stmt::kDeleteUser, "t_delete_user", "DELETE FROM users WHERE id = $1::uuid AND tenant = $T", 0},
    // Cursor ($1 micros, $2 id) is the last row of the previous page.
    {Stmt::kListUsers, "t_list_users",
     "SELECT " USER_COLS_NO_HASH " FROM users "
     "WHERE tenant = $T AND ($1::int8 IS NULL OR (created_at, id) > (" TS("$1") ", $2::uuid)) "
     "ORDER BY created_at, id LIMIT $3::int4", 0},
    // Query $1 through torii_search_query (0012_search_parts.sql: the
    // web-search query, or its words' parts as phrases); best match first, id breaking ties so that pages are stable. An empty
    // or all-stopword query matches nothing (PostgreSQL only notices it).
    {Stmt::kSearchUsers, "t_search_users",
     "SELECT " USER_COLS_NO_HASH " FROM users, torii_search_query($1) AS q "
     "WHERE tenant = $T AND search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC, id LIMIT $2::int4 OFFSET $3::int8", 0},
    // get_or_create_user is two statements of one pipeline (one round trip,
    // one implicit transaction). The INSERT waits for a concurrent insert of
    // the same email to commit and then does nothing; the SELECT, a new
    // statement with a new snapshot (READ COMMITTED), sees that row. One
    // statement could not: its snapshot predates the other commit, so a
    // CTE's fallback SELECT would find no row at all. `created` is whether
    // this transaction wrote the row (its xmin is our xid; no trigger fires
    // for a user that already existed, unlike ON CONFLICT DO UPDATE).
    {Stmt::kGetOrCreateUserInsert, "t_get_or_create_user_insert",
     "INSERT INTO users (id, email, name, metadata, tenant) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, coalesce($4::jsonb, '{}'::jsonb), $T) "
     "ON CONFLICT (tenant, (lower(email))) DO NOTHING", 0},
    {Stmt::kGetOrCreateUserSelect, "t_get_or_create_user_select",
     "SELECT " USER_COLS_NO_HASH ", xmin::text::int8 = "
     "coalesce(pg_current_xact_id_if_assigned()::text::int8 % 4294967296, -1) AS created "
     "FROM users WHERE tenant = $T AND lower(email) = lower($1)", 0},
};

Status RenderUserDeleted(const PGresult* r, const Plan&, Packer& pk) {
  if (std::strcmp(PQcmdTuples(const_cast<PGresult*>(r)), "0") == 0) return Error::NotFound("no such user");
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(1);
  return {};
}

Status RenderUserPage(const PGresult* r, const Plan& plan, Packer& pk) {
  int rows = PQntuples(r);
  bool more = rows > plan.limit;
  int n = more ? static_cast<int>(plan.limit) : rows;
  FieldColumns cols(r, UserFields());
  int created = PQfnumber(r, "created_at_us"), id = PQfnumber(r, "id");
  if (!cols.complete() || created < 0 || id < 0) return MissingColumns("user");
  pk.pack_map(2);
  PackStr(pk, "users");
  pk.pack_array(n);
  for (int i = 0; i < n; i++) PackUser(pk, r, i, cols, false);
  PackStr(pk, "next");
  if (more) {
    // The cursor is the last row's (created_at, id); opaque to clients.
    std::string cursor = std::string(PQgetvalue(r, n - 1, created)) + "_" + PQgetvalue(r, n - 1, id);
    PackStr(pk, cursor);
  } else {
    pk.pack_nil();
  }
  return {};
}

constexpr size_t kMaxQueryBytes = 1024;

Status RenderUserSearch(const PGresult* r, const Plan&, Packer& pk) {
  FieldColumns cols(r, UserFields());
  if (!cols.complete()) return MissingColumns("user");
  pk.pack_map(1);
  PackStr(pk, "users");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) PackUser(pk, r, i, cols, false);  // never the hash
  return {};
}

Result<Plan> BuildCreateUser(const Args& args) {
  if (auto st = args.OnlyKeys({"email", "id", "password_hash", "metadata", "name", "email_verified_at"}); !st.ok()) {
    return st.error();
  }
  TRY(email, args.RequiredEmail("email"));
  TRY(id, args.Uuid("id"));
  TRY(hash, args.Str("password_hash"));
  TRY(meta, args.Metadata("metadata"));
  TRY(name, UserNameArg(args));
  TRY(verified_at, args.Timestamp("email_verified_at"));
  Plan p;
  p.cmds.emplace_back(Stmt::kCreateUser);
  p.cmds.back().AddOpt(*id).Add(*email).AddOpt(*hash).AddOpt(*meta).AddOpt(*name).AddOpt(*verified_at);
  p.render = RenderUser;
  return p;
}

Result<Plan> BuildGetUser(const Args& args) {
  if (auto st = args.OnlyKeys({"id"}); !st.ok()) return st.error();
  TRY(id, args.RequiredUuid("id"));
  Plan p;
  p.cmds.emplace_back(Stmt::kGetUser);
  p.cmds.back().Add(*id);
  p.render = RenderUser;
  return p;
}

Result<Plan> BuildGetUserByEmail(const Args& args) {
  if (auto st = args.OnlyKeys({"email"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  Plan p;
  p.cmds.emplace_back(Stmt::kGetUserByEmail);
  p.cmds.back().Add(*email);
  p.render = RenderUser;
  return p;
}

Result<Plan> BuildUpdateUser(const Args& args) {
  if (auto st = args.OnlyKeys(
          {"id", "email", "password_hash", "metadata", "metadata_merge", "name", "locked_at", "email_verified_at"});
      !st.ok()) {
    return st.error();
  }
  TRY(id, args.RequiredUuid("id"));
  std::optional<std::string> email;
  if (args.Has("email")) {
    TRY(e, args.RequiredEmail("email"));
    email = *e;
  }
  TRY(hash, args.Str("password_hash"));
  bool set_hash = args.Has("password_hash");  // a nil value clears it
  TRY(meta, args.Metadata("metadata"));
  TRY(merge, args.Metadata("metadata_merge"));
  TRY(name, UserNameArg(args));
  bool set_name = args.Has("name");  // nil clears it
  TRY(locked_at, args.Timestamp("locked_at"));
  bool set_lock = args.Has("locked_at");  // nil unlocks
  TRY(verified_at, args.Timestamp("email_verified_at"));
  bool set_verified = args.Has("email_verified_at");  // nil clears it
  if (!email && !set_hash && !*meta && !*merge && !set_name && !set_lock && !set_verified) {
    return Error::InvalidArgument(
        "nothing to update: give email, password_hash, metadata, metadata_merge, name, locked_at or "
        "email_verified_at");
  }
  Plan p;
  p.cmds.emplace_back(Stmt::kUpdateUser);
  p.cmds.back().Add(*id).AddOpt(email).Add(set_hash ? "t" : "f").AddOpt(*hash).AddOpt(*meta).AddOpt(*merge);
  p.cmds.back().Add(set_name ? "t" : "f").AddOpt(*name).Add(set_lock ? "t" : "f").AddOpt(*locked_at);
  p.cmds.back().Add(set_verified ? "t" : "f").AddOpt(*verified_at);
  p.render = RenderUser;
  return p;
}

Result<Plan> BuildVerifyEmail(const Args& args) {
  if (auto st = args.OnlyKeys({"id", "at"}); !st.ok()) return st.error();
  TRY(id, args.RequiredUuid("id"));
  TRY(at, args.Timestamp("at"));
  Plan p;
  p.cmds.emplace_back(Stmt::kVerifyEmail);
  p.cmds.back().Add(*id);
  if (*at) {
    p.cmds.back().Add(std::to_string(**at));
  } else {
    p.cmds.back().AddNull();
  }
  p.render = RenderUser;
  return p;
}

Result<Plan> BuildDeleteUser(const Args& args) {
  if (auto st = args.OnlyKeys({"id"}); !st.ok()) return st.error();
  TRY(id, args.RequiredUuid("id"));
  Plan p;
  p.hot = {HotKey::kUser, *id};  // its sessions go with it (ON DELETE CASCADE)
  p.cmds.emplace_back(Stmt::kDeleteUser);
  p.cmds.back().Add(*id);
  p.render = RenderUserDeleted;
  return p;
}

Result<Plan> BuildListUsers(const Args& args) {
  if (auto st = args.OnlyKeys({"limit", "after"}); !st.ok()) return st.error();
  TRY(limit, args.Int("limit"));
  TRY(after, args.Str("after"));
  int64_t n = limit->value_or(100);
  if (n < 1 || n > 1000) return Error::InvalidArgument("'limit' must be 1 to 1000");
  Plan p;
  p.cmds.emplace_back(Stmt::kListUsers);
  if (*after) {
    const std::string& c = **after;
    size_t sep = c.find('_');
    char* end = nullptr;
    long long micros = sep == std::string::npos ? 0 : std::strtoll(c.c_str(), &end, 10);
    auto id = sep == std::string::npos ? std::nullopt : NormalizeUuid(std::string_view(c).substr(sep + 1));
    if (sep == std::string::npos || end != c.c_str() + sep || !id) {
      return Error::InvalidArgument("'after' is not a cursor from list_users");
    }
    p.cmds.back().Add(std::to_string(micros)).Add(*id);
  } else {
    p.cmds.back().AddNull().AddNull();
  }
  p.cmds.back().Add(std::to_string(n + 1));
  p.limit = n;
  p.render = RenderUserPage;
  return p;
}

Result<Plan> BuildSearchUsers(const Args& args) {
  if (auto st = args.OnlyKeys({"query", "limit", "offset"}); !st.ok()) return st.error();
  TRY(query, args.RequiredStr("query"));
  TRY(limit, args.Int("limit"));
  TRY(offset, args.Int("offset"));
  if (query->size() > kMaxQueryBytes) return Error::InvalidArgument("'query' is longer than 1024 bytes");
  if (HasNul(*query)) return Error::InvalidArgument("'query' holds a NUL byte");
  int64_t n = limit->value_or(20);
  if (n < 1 || n > 100) return Error::InvalidArgument("'limit' must be 1 to 100");
  int64_t skip = offset->value_or(0);
  if (skip < 0) return Error::InvalidArgument("'offset' must not be negative");
  Plan p;
  p.cmds.emplace_back(Stmt::kSearchUsers);
  p.cmds.back().Add(*query).Add(std::to_string(n)).Add(std::to_string(skip));
  p.render = RenderUserSearch;
  return p;
}

// ---- section 5 (issue 19) ----

// {"user", "created"} from kGetOrCreateUserSelect: the User without the
// hash, and `created`. No row: the user is not visible (an actor's
// request for another user's email) or was deleted in between.
Status RenderGetOrCreate(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such user");
  FieldColumns cols(r, UserFields());
  int created = PQfnumber(r, "created");
  if (!cols.complete() || created < 0) return MissingColumns("user");
  pk.pack_map(2);
  PackStr(pk, "user");
  PackUser(pk, r, 0, cols, false);
  PackStr(pk, "created");
  if (std::strcmp(PQgetvalue(r, 0, created), "t") == 0) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  return {};
}

Result<Plan> BuildGetOrCreateUser(const Args& args) {
  if (auto st = args.OnlyKeys({"email", "name", "id", "metadata"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  TRY(id, args.Uuid("id"));
  TRY(meta, args.Metadata("metadata"));
  TRY(name, UserNameArg(args));
  Plan p;
  p.cmds.emplace_back(Stmt::kGetOrCreateUserInsert);
  p.cmds.back().AddOpt(*id).Add(*email).AddOpt(*name).AddOpt(*meta);
  p.cmds.emplace_back(Stmt::kGetOrCreateUserSelect);
  p.cmds.back().Add(*email);
  p.main = 1;
  p.render = RenderGetOrCreate;
  return p;
}

const OpDef kUserOps[] = {
    {"create_user", BuildCreateUser},
    {"get_user", BuildGetUser},
    {"get_user_by_email", BuildGetUserByEmail},
    {"update_user", BuildUpdateUser},
    {"verify_email", BuildVerifyEmail},
    {"delete_user", BuildDeleteUser},
    {"list_users", BuildListUsers},
    {"search_users", BuildSearchUsers},
    {"get_or_create_user", BuildGetOrCreateUser},
};

}  // namespace

std::span<const StatementDef> UserStatements() { return kStatements; }

std::span<const OpDef> UserOps() { return kUserOps; }

}  // namespace torii::daemon
