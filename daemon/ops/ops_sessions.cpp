// The sessions family: create, get, extend, delete and list sessions, by
// bearer token or by id (PROTOCOL.md section 2).
#include "ops/ops_common.h"

#include <cstring>

namespace torii::daemon {

namespace {

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
    p.hot = {HotKey::kDigest, DigestParam(*token), true};
    p.cmds.emplace_back(Stmt::kGetSessionByToken);
    p.cmds.back().Add(p.hot.value);
    p.render_row = RenderSessionRow;
  } else {
    TRY(id, args.RequiredUuid("id"));
    p.hot = {HotKey::kId, *id, true};
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
    p.hot = {HotKey::kDigest, DigestParam(*token)};
    p.cmds.emplace_back(Stmt::kExtendSessionByToken);
    p.cmds.back().Add(p.hot.value);
  } else {
    TRY(id, args.RequiredUuid("id"));
    p.hot = {HotKey::kId, *id};
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
    p.hot = {HotKey::kDigest, DigestParam(*token)};
    p.cmds.emplace_back(Stmt::kDeleteSessionByToken);
    p.cmds.back().Add(p.hot.value);
  } else {
    TRY(id, args.RequiredUuid("id"));
    p.hot = {HotKey::kId, *id};
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
  p.hot = {HotKey::kUser, *user_id};
  p.cmds.emplace_back(Stmt::kDeleteUserSessions);
  p.cmds.back().Add(*user_id).AddOpt(*except);
  p.render = RenderDeletedCount;
  return p;
}

const OpDef kSessionOps[] = {
    {"create_session", BuildCreateSession},
    {"get_session", BuildGetSession, true},
    {"extend_session", BuildExtendSession},
    {"delete_session", BuildDeleteSession},
    {"list_sessions", BuildListSessions, true},
    {"delete_user_sessions", BuildDeleteUserSessions},
};

}  // namespace

std::span<const OpDef> SessionOps() { return kSessionOps; }

}  // namespace torii::daemon
