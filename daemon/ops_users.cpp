// The users family: create, get, update, verify, delete, list and search
// users (PROTOCOL.md section 2).
#include "ops_common.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

namespace {

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
  pk.pack_map(2);
  PackStr(pk, "users");
  pk.pack_array(n);
  for (int i = 0; i < n; i++) PackUser(pk, r, i, false);
  PackStr(pk, "next");
  if (more) {
    // The cursor is the last row's (created_at, id); opaque to clients.
    std::string cursor = std::string(PQgetvalue(r, n - 1, 5)) + "_" + PQgetvalue(r, n - 1, 0);
    PackStr(pk, cursor);
  } else {
    pk.pack_nil();
  }
  return {};
}

constexpr size_t kMaxQueryBytes = 1024;

Status RenderUserSearch(const PGresult* r, const Plan&, Packer& pk) {
  pk.pack_map(1);
  PackStr(pk, "users");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) PackUser(pk, r, i, false);  // never the hash
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
// hash, then `created` last. No row: the user is not visible (an actor's
// request for another user's email) or was deleted in between.
Status RenderGetOrCreate(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such user");
  pk.pack_map(2);
  PackStr(pk, "user");
  PackUser(pk, r, 0, false);
  PackStr(pk, "created");
  if (std::strcmp(PQgetvalue(r, 0, 9), "t") == 0) {
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
    {"get_user", BuildGetUser, true},
    {"get_user_by_email", BuildGetUserByEmail, true},
    {"update_user", BuildUpdateUser},
    {"verify_email", BuildVerifyEmail},
    {"delete_user", BuildDeleteUser},
    {"list_users", BuildListUsers, true},
    {"search_users", BuildSearchUsers, true},
    {"get_or_create_user", BuildGetOrCreateUser},
};

}  // namespace

std::span<const OpDef> UserOps() { return kUserOps; }

}  // namespace torii::daemon
