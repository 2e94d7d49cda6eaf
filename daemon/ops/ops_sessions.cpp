// The sessions family: create, get, extend, delete and list sessions, by
// bearer token or by id (PROTOCOL.md section 2), with their SQL.
#include "ops/ops_sessions.h"

#include <cstdlib>
#include <cstring>

#include "ops/ops_common.h"
#include "ops/sql.h"

namespace torii::daemon {

namespace {

// The columns of a session, read by name (kSessionFields).
#define SESSION_COLS                                                                                          \
  "id, user_id, " US("expires_at") " AS expires_at_us, user_agent, ip_address, metadata, " US("created_at") \
  " AS created_at_us"

const StatementDef kStatements[] = {
    // $3 token digest (binary); expiry from $4 (micros) or now() + $5 seconds.
    {Stmt::kCreateSession, "t_create_session",
     "INSERT INTO sessions (id, user_id, token_hash, expires_at, user_agent, ip_address, metadata, tenant) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2::uuid, $3::bytea, "
     "coalesce(" TS("$4") ", now() + $5::int8 * interval '1 second'), $6, $7, coalesce($8::jsonb, '{}'::jsonb), $T) "
     "RETURNING " SESSION_COLS, 1u << 2},
    {Stmt::kGetSessionByToken, "t_get_session_by_token",
     "SELECT " SESSION_COLS " FROM sessions WHERE tenant = $T AND token_hash = $1::bytea AND expires_at > now()", 1u << 0,
     Stmt::kGetSessionsByTokens},
    {Stmt::kGetSessionById, "t_get_session_by_id",
     "SELECT " SESSION_COLS " FROM sessions WHERE id = $1::uuid AND tenant = $T AND expires_at > now()", 0},
    {Stmt::kExtendSessionByToken, "t_extend_session_by_token",
     "UPDATE sessions SET expires_at = coalesce(" TS("$2") ", now() + $3::int8 * interval '1 second') "
     "WHERE tenant = $T AND token_hash = $1::bytea AND expires_at > now() RETURNING " SESSION_COLS, 1u << 0},
    {Stmt::kExtendSessionById, "t_extend_session_by_id",
     "UPDATE sessions SET expires_at = coalesce(" TS("$2") ", now() + $3::int8 * interval '1 second') "
     "WHERE id = $1::uuid AND tenant = $T AND expires_at > now() RETURNING " SESSION_COLS, 0},
    // An expired session is deleted too, but reported as not found.
    {Stmt::kDeleteSessionByToken, "t_delete_session_by_token",
     "DELETE FROM sessions WHERE tenant = $T AND token_hash = $1::bytea RETURNING expires_at > now()", 1u << 0},
    {Stmt::kDeleteSessionById, "t_delete_session_by_id",
     "DELETE FROM sessions WHERE id = $1::uuid AND tenant = $T RETURNING expires_at > now()", 0},
    {Stmt::kListSessions, "t_list_sessions",
     "SELECT " SESSION_COLS " FROM sessions WHERE tenant = $T AND user_id = $1::uuid AND expires_at > now() "
     "ORDER BY created_at DESC, id DESC", 0},
    {Stmt::kDeleteUserSessions, "t_delete_user_sessions",
     "DELETE FROM sessions WHERE tenant = $T AND user_id = $1::uuid AND ($2::uuid IS NULL OR id <> $2::uuid)", 0},
    // The batched form of kGetSessionByToken: $1 is a bytea[] of digests;
    // a row per session found, with its digest (hex text, kBatchKeyColumn)
    // to tell which lookups it answers. One index probe per key, one
    // statement instead of one per lookup. A single-table scan, which plans
    // in half the time of a join with unnest(); each connection's warm-up
    // runs settle it on the generic plan (PoolConn::StartPreparing).
    {Stmt::kGetSessionsByTokens, "t_get_sessions_by_tokens",
     "SELECT " SESSION_COLS ", token_hash AS batch_key FROM sessions "
     "WHERE tenant = $T AND token_hash = ANY($1::bytea[]) AND expires_at > now()",
     1u << 0},
    // get_session with include_expired: no expiry condition, and no batched
    // form (the batch's statement filters expired rows), so a lookup that
    // the session cache does not answer runs alone.
    {Stmt::kGetAnySessionByToken, "t_get_any_session_by_token",
     "SELECT " SESSION_COLS " FROM sessions WHERE tenant = $T AND token_hash = $1::bytea", 1u << 0},
    {Stmt::kGetAnySessionById, "t_get_any_session_by_id", "SELECT " SESSION_COLS " FROM sessions WHERE id = $1::uuid AND tenant = $T",
     0},
};

// A Session, in reply order.
constexpr Field kSessionFields[] = {
    {"id", "id", PackText},
    {"user_id", "user_id", PackText},
    {"expires_at", "expires_at_us", PackMicros},
    {"user_agent", "user_agent", PackText},
    {"ip_address", "ip_address", PackText},
    {"metadata", "metadata", PackJsonb},
    {"created_at", "created_at_us", PackMicros},
};

// With the new bearer token (create_session) when `token` is set.
void PackSession(Packer& pk, const PGresult* r, int row, const FieldColumns& cols, const std::string* token) {
  cols.Pack(pk, r, row, token ? 1 : 0);
  if (token) {
    PackStr(pk, "token");
    PackStr(pk, *token);
  }
}

Status RenderSessionRow(const PGresult* r, int row, const Plan& plan, Packer& pk) {
  if (row < 0) return Error::NotFound("no such session, or it has expired");
  FieldColumns cols(r, kSessionFields);
  if (!cols.complete()) return MissingColumns("session");
  PackSession(pk, r, row, cols, plan.token.empty() ? nullptr : &plan.token);
  return {};
}

Status RenderSession(const PGresult* r, const Plan& plan, Packer& pk) {
  return RenderSessionRow(r, PQntuples(r) > 0 ? 0 : -1, plan, pk);
}

Status RenderSessionList(const PGresult* r, const Plan&, Packer& pk) {
  FieldColumns cols(r, kSessionFields);
  if (!cols.complete()) return MissingColumns("session");
  pk.pack_map(1);
  PackStr(pk, "sessions");
  pk.pack_array(PQntuples(r));
  for (int i = 0; i < PQntuples(r); i++) PackSession(pk, r, i, cols, nullptr);
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
  if (auto st = args.OnlyKeys({"token", "id", "include_expired"}); !st.ok()) return st.error();
  TRY(which, OneOf(args, "token", "id"));
  TRY(any, args.Bool("include_expired"));
  Plan p;
  if (any->value_or(false)) {
    // An expired session too. The hot-session cache answers it all the same
    // (it holds, and returns, only unexpired sessions: for those the answer
    // is the same with or without include_expired), and a row read by token
    // fills it unless expired (Requests::FillHot). Torii's provider asks
    // every check this way, so that an expired session is told apart from
    // a missing one in one request. No lookup batch: it has no batched form
    // (the batch's statement filters expired rows), so no render_row.
    if (*which == 0) {
      TRY(token, TokenArg(args));
      p.hot = {HotKey::kDigest, DigestParam(*token), true};
      p.cmds.emplace_back(Stmt::kGetAnySessionByToken);
      p.cmds.back().Add(p.hot.value);
    } else {
      TRY(id, args.RequiredUuid("id"));
      p.hot = {HotKey::kId, *id, true};
      p.cmds.emplace_back(Stmt::kGetAnySessionById);
      p.cmds.back().Add(*id);
    }
    p.render = RenderSession;
    return p;
  }
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
    {"get_session", BuildGetSession},
    {"extend_session", BuildExtendSession},
    {"delete_session", BuildDeleteSession},
    {"list_sessions", BuildListSessions},
    {"delete_user_sessions", BuildDeleteUserSessions},
};

}  // namespace

std::optional<SessionRow> ReadSessionRow(const PGresult* r, int row) {
  if (r == nullptr || row < 0 || row >= PQntuples(r)) return std::nullopt;
  int id = PQfnumber(r, "id"), user_id = PQfnumber(r, "user_id"), expires = PQfnumber(r, "expires_at_us");
  if (id < 0 || user_id < 0 || expires < 0) return std::nullopt;
  if (PQgetisnull(r, row, id) || PQgetisnull(r, row, user_id) || PQgetisnull(r, row, expires)) return std::nullopt;
  SessionRow s;
  s.id = std::string_view(PQgetvalue(r, row, id), PQgetlength(r, row, id));
  s.user_id = std::string_view(PQgetvalue(r, row, user_id), PQgetlength(r, row, user_id));
  s.expires_at_us = std::strtoll(PQgetvalue(r, row, expires), nullptr, 10);
  return s;
}

std::span<const StatementDef> SessionStatements() { return kStatements; }

std::span<const OpDef> SessionOps() { return kSessionOps; }

}  // namespace torii::daemon
