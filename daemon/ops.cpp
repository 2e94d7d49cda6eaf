// Database operations: argument rules, statements, result shapes.
#include "ops.h"

#include <cstdlib>
#include <cstring>

namespace torii::daemon {

namespace {

constexpr int64_t kMaxTtlS = 100LL * 366 * 24 * 3600;
constexpr size_t kMaxTokenBytes = 1024;

// A text column: nil when NULL.
void PackText(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  PackStr(pk, std::string_view(PQgetvalue(r, row, col), PQgetlength(r, row, col)));
}

// An int8 microseconds column as a timestamp: nil when NULL.
void PackMicros(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  PackTimestamp(pk, std::strtoll(PQgetvalue(r, row, col), nullptr, 10));
}

void PackJsonb(Packer& pk, const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) {
    pk.pack_nil();
    return;
  }
  PackJsonText(pk, std::string_view(PQgetvalue(r, row, col), PQgetlength(r, row, col)));
}

// Columns of USER_COLS in statements.cpp.
void PackUser(Packer& pk, const PGresult* r, int row, bool with_hash) {
  pk.pack_map(with_hash ? 7 : 6);
  PackStr(pk, "id");
  PackText(pk, r, row, 0);
  PackStr(pk, "email");
  PackText(pk, r, row, 1);
  if (with_hash) {
    PackStr(pk, "password_hash");
    PackText(pk, r, row, 2);
  }
  PackStr(pk, "email_verified_at");
  PackMicros(pk, r, row, 3);
  PackStr(pk, "metadata");
  PackJsonb(pk, r, row, 4);
  PackStr(pk, "created_at");
  PackMicros(pk, r, row, 5);
  PackStr(pk, "updated_at");
  PackMicros(pk, r, row, 6);
}

// Columns of SESSION_COLS in statements.cpp.
void PackSession(Packer& pk, const PGresult* r, int row, const std::string* token) {
  pk.pack_map(token ? 8 : 7);
  PackStr(pk, "id");
  PackText(pk, r, row, 0);
  PackStr(pk, "user_id");
  PackText(pk, r, row, 1);
  PackStr(pk, "expires_at");
  PackMicros(pk, r, row, 2);
  PackStr(pk, "user_agent");
  PackText(pk, r, row, 3);
  PackStr(pk, "ip_address");
  PackText(pk, r, row, 4);
  PackStr(pk, "metadata");
  PackJsonb(pk, r, row, 5);
  PackStr(pk, "created_at");
  PackMicros(pk, r, row, 6);
  if (token) {
    PackStr(pk, "token");
    PackStr(pk, *token);
  }
}

Status RenderUser(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0) return Error::NotFound("no such user");
  PackUser(pk, r, 0, true);
  return {};
}

Status RenderSessionRow(const PGresult* r, int row, const Plan& plan, Packer& pk) {
  if (row < 0) return Error::NotFound("no such session, or it has expired");
  PackSession(pk, r, row, plan.token.empty() ? nullptr : &plan.token);
  return {};
}

Status RenderSession(const PGresult* r, const Plan& plan, Packer& pk) {
  return RenderSessionRow(r, PQntuples(r) > 0 ? 0 : -1, plan, pk);
}

Status RenderSessionList(const PGresult* r, const Plan&, Packer& pk) {
  pk.pack_map(1);
  PackStr(pk, "sessions");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) PackSession(pk, r, i, nullptr);
  return {};
}

Status RenderUserDeleted(const PGresult* r, const Plan&, Packer& pk) {
  if (std::strcmp(PQcmdTuples(const_cast<PGresult*>(r)), "0") == 0) return Error::NotFound("no such user");
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(1);
  return {};
}

// DELETE ... RETURNING expires_at > now(): an expired row is gone but was
// already invisible, so it is not found.
Status RenderSessionDeleted(const PGresult* r, const Plan&, Packer& pk) {
  if (PQntuples(r) == 0 || std::strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
    return Error::NotFound("no such session, or it has expired");
  }
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(1);
  return {};
}

Status RenderDeletedCount(const PGresult* r, const Plan&, Packer& pk) {
  pk.pack_map(1);
  PackStr(pk, "deleted");
  pk.pack_uint64(std::strtoull(PQcmdTuples(const_cast<PGresult*>(r)), nullptr, 10));
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

// One of two alternative arguments, exactly one present.
Result<int> OneOf(const Args& args, const char* a, const char* b) {
  bool has_a = args.Find(a) && args.Find(a)->type != msgpack::type::NIL;
  bool has_b = args.Find(b) && args.Find(b)->type != msgpack::type::NIL;
  if (has_a && has_b) return Error::InvalidArgument(std::string("give '") + a + "' or '" + b + "', not both");
  if (!has_a && !has_b) return Error::InvalidArgument(std::string("missing required argument '") + a + "' or '" + b + "'");
  return has_a ? 0 : 1;
}

std::string DigestParam(std::string_view token) {
  auto d = TokenDigest(token);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// A view into the request: it is only hashed, before the request goes.
Result<std::string_view> TokenArg(const Args& args) {
  auto token = args.RequiredStrView("token");
  if (!token.ok()) return token;
  if (token->empty() || token->size() > kMaxTokenBytes) {
    return Error::InvalidArgument("'token' must be 1 to 1024 bytes");
  }
  return token;
}

// Adds the expiry parameters ($micros, $ttl) from `expires_at` or `ttl_s`.
Status AddExpiry(const Args& args, Command& cmd) {
  auto which = OneOf(args, "expires_at", "ttl_s");
  if (!which.ok()) return which.error();
  if (*which == 0) {
    auto at = args.Timestamp("expires_at");
    if (!at.ok()) return at.error();
    if (**at <= NowMicros()) return Error::InvalidArgument("'expires_at' is in the past");
    cmd.Add(std::to_string(**at)).AddNull();
  } else {
    auto ttl = args.Int("ttl_s");
    if (!ttl.ok()) return ttl.error();
    if (**ttl <= 0) return Error::InvalidArgument("'ttl_s' must be positive");
    if (**ttl > kMaxTtlS) return Error::InvalidArgument("'ttl_s' is more than 100 years");
    cmd.AddNull().Add(std::to_string(**ttl));
  }
  return {};
}

#define TRY(var, expr)             \
  auto var = (expr);               \
  if (!var.ok()) return var.error()

Result<Plan> BuildCreateUser(const Args& args) {
  if (auto st = args.OnlyKeys({"email", "id", "password_hash", "metadata"}); !st.ok()) return st.error();
  TRY(email, args.RequiredEmail("email"));
  TRY(id, args.Uuid("id"));
  TRY(hash, args.Str("password_hash"));
  TRY(meta, args.Metadata("metadata"));
  Plan p;
  p.cmds.emplace_back(Stmt::kCreateUser);
  p.cmds.back().AddOpt(*id).Add(*email).AddOpt(*hash).AddOpt(*meta);
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
  if (auto st = args.OnlyKeys({"id", "email", "password_hash", "metadata", "metadata_merge"}); !st.ok()) {
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
  if (!email && !set_hash && !*meta && !*merge) {
    return Error::InvalidArgument("nothing to update: give email, password_hash, metadata or metadata_merge");
  }
  Plan p;
  p.cmds.emplace_back(Stmt::kUpdateUser);
  p.cmds.back().Add(*id).AddOpt(email).Add(set_hash ? "t" : "f").AddOpt(*hash).AddOpt(*meta).AddOpt(*merge);
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

Result<Plan> BuildCreateSession(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "expires_at", "ttl_s", "id", "user_agent", "ip_address", "metadata"});
      !st.ok()) {
    return st.error();
  }
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(id, args.Uuid("id"));
  TRY(agent, args.Str("user_agent"));
  TRY(ip, args.Str("ip_address"));
  TRY(meta, args.Metadata("metadata"));
  Plan p;
  p.token = NewSessionToken();
  p.cmds.emplace_back(Stmt::kCreateSession);
  Command& c = p.cmds.back();
  c.AddOpt(*id).Add(*user_id).Add(DigestParam(p.token));
  if (auto st = AddExpiry(args, c); !st.ok()) return st.error();
  c.AddOpt(*agent).AddOpt(*ip).AddOpt(*meta);
  p.render = RenderSession;
  return p;
}

Result<Plan> BuildGetSession(const Args& args) {
  if (auto st = args.OnlyKeys({"token", "id"}); !st.ok()) return st.error();
  TRY(which, OneOf(args, "token", "id"));
  Plan p;
  if (*which == 0) {
    TRY(token, TokenArg(args));
    p.cmds.emplace_back(Stmt::kGetSessionByToken);
    p.cmds.back().Add(DigestParam(*token));
    p.render_row = RenderSessionRow;
  } else {
    TRY(id, args.RequiredUuid("id"));
    p.cmds.emplace_back(Stmt::kGetSessionById);
    p.cmds.back().Add(*id);
  }
  p.render = RenderSession;
  return p;
}

Result<Plan> BuildExtendSession(const Args& args) {
  if (auto st = args.OnlyKeys({"token", "id", "expires_at", "ttl_s"}); !st.ok()) return st.error();
  TRY(which, OneOf(args, "token", "id"));
  Plan p;
  if (*which == 0) {
    TRY(token, TokenArg(args));
    p.cmds.emplace_back(Stmt::kExtendSessionByToken);
    p.cmds.back().Add(DigestParam(*token));
  } else {
    TRY(id, args.RequiredUuid("id"));
    p.cmds.emplace_back(Stmt::kExtendSessionById);
    p.cmds.back().Add(*id);
  }
  if (auto st = AddExpiry(args, p.cmds.back()); !st.ok()) return st.error();
  p.render = RenderSession;
  return p;
}

Result<Plan> BuildDeleteSession(const Args& args) {
  if (auto st = args.OnlyKeys({"token", "id"}); !st.ok()) return st.error();
  TRY(which, OneOf(args, "token", "id"));
  Plan p;
  if (*which == 0) {
    TRY(token, TokenArg(args));
    p.cmds.emplace_back(Stmt::kDeleteSessionByToken);
    p.cmds.back().Add(DigestParam(*token));
  } else {
    TRY(id, args.RequiredUuid("id"));
    p.cmds.emplace_back(Stmt::kDeleteSessionById);
    p.cmds.back().Add(*id);
  }
  p.render = RenderSessionDeleted;
  return p;
}

Result<Plan> BuildListSessions(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  Plan p;
  p.cmds.emplace_back(Stmt::kListSessions);
  p.cmds.back().Add(*user_id);
  p.render = RenderSessionList;
  return p;
}

Result<Plan> BuildDeleteUserSessions(const Args& args) {
  if (auto st = args.OnlyKeys({"user_id", "except"}); !st.ok()) return st.error();
  TRY(user_id, args.RequiredUuid("user_id"));
  TRY(except, args.Uuid("except"));
  Plan p;
  p.cmds.emplace_back(Stmt::kDeleteUserSessions);
  p.cmds.back().Add(*user_id).AddOpt(*except);
  p.render = RenderDeletedCount;
  return p;
}

// --- search_users and list_audit (migrations 0003 and 0004) ---

constexpr size_t kMaxQueryBytes = 1024;

Status RenderUserSearch(const PGresult* r, const Plan&, Packer& pk) {
  pk.pack_map(1);
  PackStr(pk, "users");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) PackUser(pk, r, i, false);  // never the hash
  return {};
}

// Columns of AUDIT_COLS in statements.cpp; the last one (seq) is the cursor.
void PackAudit(Packer& pk, const PGresult* r, int row) {
  pk.pack_map(8);
  PackStr(pk, "id");
  PackText(pk, r, row, 0);
  PackStr(pk, "table");
  PackText(pk, r, row, 1);
  PackStr(pk, "record_id");
  PackText(pk, r, row, 2);
  PackStr(pk, "operation");
  PackText(pk, r, row, 3);
  PackStr(pk, "old_data");
  PackJsonb(pk, r, row, 4);
  PackStr(pk, "new_data");
  PackJsonb(pk, r, row, 5);
  PackStr(pk, "actor");
  PackText(pk, r, row, 6);
  PackStr(pk, "created_at");
  PackMicros(pk, r, row, 7);
}

Status RenderAuditPage(const PGresult* r, const Plan& plan, Packer& pk) {
  int rows = PQntuples(r);
  bool more = rows > plan.limit;
  int n = more ? static_cast<int>(plan.limit) : rows;
  pk.pack_map(2);
  PackStr(pk, "entries");
  pk.pack_array(n);
  for (int i = 0; i < n; i++) PackAudit(pk, r, i);
  PackStr(pk, "next");
  if (more) {
    // The cursor is the last entry's seq (exclusive bound of the next page);
    // rows written later get larger seqs, so they never shift a page.
    PackStr(pk, PQgetvalue(r, n - 1, 8));
  } else {
    pk.pack_nil();
  }
  return {};
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

Result<Plan> BuildListAudit(const Args& args) {
  if (auto st = args.OnlyKeys({"record_id", "table", "limit", "before"}); !st.ok()) return st.error();
  TRY(record_id, args.Uuid("record_id"));
  TRY(table, args.Str("table"));
  TRY(limit, args.Int("limit"));
  TRY(before, args.Str("before"));
  if (*table && **table != "users" && **table != "sessions") {
    return Error::InvalidArgument("'table' must be 'users' or 'sessions'");
  }
  int64_t n = limit->value_or(100);
  if (n < 1 || n > 1000) return Error::InvalidArgument("'limit' must be 1 to 1000");
  std::optional<std::string> cursor;
  if (*before) {
    const std::string& c = **before;
    char* end = nullptr;
    long long seq = c.empty() || c.size() > 19 ? 0 : std::strtoll(c.c_str(), &end, 10);
    if (c.empty() || c.size() > 19 || end != c.c_str() + c.size() || seq <= 0) {
      return Error::InvalidArgument("'before' is not a cursor from list_audit");
    }
    cursor = std::to_string(seq);
  }
  Plan p;
  if (*record_id) {
    p.cmds.emplace_back(Stmt::kListAuditByRecord);
    p.cmds.back().Add(**record_id).AddOpt(*table);
  } else if (*table) {
    p.cmds.emplace_back(Stmt::kListAuditByTable);
    p.cmds.back().Add(**table);
  } else {
    p.cmds.emplace_back(Stmt::kListAudit);
  }
  p.cmds.back().AddOpt(cursor).Add(std::to_string(n + 1));
  p.limit = n;
  p.render = RenderAuditPage;
  return p;
}

const OpDef kOps[] = {
    {"create_user", BuildCreateUser},
    {"get_user", BuildGetUser, true},
    {"get_user_by_email", BuildGetUserByEmail, true},
    {"update_user", BuildUpdateUser},
    {"verify_email", BuildVerifyEmail},
    {"delete_user", BuildDeleteUser},
    {"list_users", BuildListUsers, true},
    {"create_session", BuildCreateSession},
    {"get_session", BuildGetSession, true},
    {"extend_session", BuildExtendSession},
    {"delete_session", BuildDeleteSession},
    {"list_sessions", BuildListSessions, true},
    {"delete_user_sessions", BuildDeleteUserSessions},
    {"search_users", BuildSearchUsers, true},
    {"list_audit", BuildListAudit, true},
};

}  // namespace

const OpDef* FindDatabaseOp(std::string_view name) {
  for (const auto& op : kOps) {
    if (name == op.name) return &op;
  }
  return nullptr;
}

Result<Plan> BuildPlan(const OpDef& op, const Args& args, const std::optional<std::string>& actor) {
  auto plan = op.build(args);
  if (!plan.ok()) return plan;
  plan->read_only = op.read_only && !actor;
  if (!actor) return plan;
  Command set_actor(Stmt::kSetActor);
  set_actor.Add(*actor);
  plan->cmds.insert(plan->cmds.begin(), std::move(set_actor));
  plan->main++;
  return plan;
}

}  // namespace torii::daemon
