// SQL of the request path. Timestamps leave as int8 microseconds since the
// epoch and arrive the same way, so no text timestamp is ever parsed.
#include "statements.h"

namespace torii::daemon {

namespace {

#define US(col) "(extract(epoch from " col ") * 1000000)::int8"
#define TS(param) "(timestamptz 'epoch' + " param "::int8 * interval '1 microsecond')"

// Column lists, in the order render functions read them.
#define USER_COLS "id, email, password_hash, " US("email_verified_at") ", metadata, " US("created_at") ", " US("updated_at")
#define USER_COLS_NO_HASH "id, email, NULL::text, " US("email_verified_at") ", metadata, " US("created_at") ", " US("updated_at")
#define SESSION_COLS "id, user_id, " US("expires_at") ", user_agent, ip_address, metadata, " US("created_at")
#define AUDIT_COLS "id, table_name, record_id, operation, old_data, new_data, actor, " US("created_at") ", seq"

const StatementDef kDefs[] = {
    {Stmt::kSetActor, "t_set_actor",
     "SELECT set_config('role', 'torii_actor', true), set_config('torii.user_id', $1, true)", 0},
    {Stmt::kCreateUser, "t_create_user",
     "INSERT INTO users (id, email, password_hash, metadata) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, coalesce($4::jsonb, '{}'::jsonb)) "
     "RETURNING " USER_COLS, 0},
    {Stmt::kGetUser, "t_get_user", "SELECT " USER_COLS " FROM users WHERE id = $1::uuid", 0},
    {Stmt::kGetUserByEmail, "t_get_user_by_email", "SELECT " USER_COLS " FROM users WHERE lower(email) = lower($1)", 0},
    // $3: whether password_hash is given ($4 its value, NULL clears it);
    // $5 replaces metadata, then $6 is merged into it.
    {Stmt::kUpdateUser, "t_update_user",
     "UPDATE users SET email = coalesce($2, email), "
     "password_hash = CASE WHEN $3::bool THEN $4 ELSE password_hash END, "
     "metadata = CASE WHEN $5::jsonb IS NULL AND $6::jsonb IS NULL THEN metadata "
     "ELSE coalesce($5::jsonb, metadata, '{}'::jsonb) || coalesce($6::jsonb, '{}'::jsonb) END "
     "WHERE id = $1::uuid RETURNING " USER_COLS, 0},
    {Stmt::kVerifyEmail, "t_verify_email",
     "UPDATE users SET email_verified_at = coalesce(" TS("$2") ", now()) WHERE id = $1::uuid RETURNING " USER_COLS, 0},
    {Stmt::kDeleteUser, "t_delete_user", "DELETE FROM users WHERE id = $1::uuid", 0},
    // Cursor ($1 micros, $2 id) is the last row of the previous page.
    {Stmt::kListUsers, "t_list_users",
     "SELECT " USER_COLS_NO_HASH " FROM users "
     "WHERE $1::int8 IS NULL OR (created_at, id) > (" TS("$1") ", $2::uuid) "
     "ORDER BY created_at, id LIMIT $3::int4", 0},
    // $3 token digest (binary); expiry from $4 (micros) or now() + $5 seconds.
    {Stmt::kCreateSession, "t_create_session",
     "INSERT INTO sessions (id, user_id, token_hash, expires_at, user_agent, ip_address, metadata) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2::uuid, $3::bytea, "
     "coalesce(" TS("$4") ", now() + $5::int8 * interval '1 second'), $6, $7, coalesce($8::jsonb, '{}'::jsonb)) "
     "RETURNING " SESSION_COLS, 1u << 2},
    {Stmt::kGetSessionByToken, "t_get_session_by_token",
     "SELECT " SESSION_COLS " FROM sessions WHERE token_hash = $1::bytea AND expires_at > now()", 1u << 0,
     Stmt::kGetSessionsByTokens},
    {Stmt::kGetSessionById, "t_get_session_by_id",
     "SELECT " SESSION_COLS " FROM sessions WHERE id = $1::uuid AND expires_at > now()", 0},
    {Stmt::kExtendSessionByToken, "t_extend_session_by_token",
     "UPDATE sessions SET expires_at = coalesce(" TS("$2") ", now() + $3::int8 * interval '1 second') "
     "WHERE token_hash = $1::bytea AND expires_at > now() RETURNING " SESSION_COLS, 1u << 0},
    {Stmt::kExtendSessionById, "t_extend_session_by_id",
     "UPDATE sessions SET expires_at = coalesce(" TS("$2") ", now() + $3::int8 * interval '1 second') "
     "WHERE id = $1::uuid AND expires_at > now() RETURNING " SESSION_COLS, 0},
    // An expired session is deleted too, but reported as not found.
    {Stmt::kDeleteSessionByToken, "t_delete_session_by_token",
     "DELETE FROM sessions WHERE token_hash = $1::bytea RETURNING expires_at > now()", 1u << 0},
    {Stmt::kDeleteSessionById, "t_delete_session_by_id",
     "DELETE FROM sessions WHERE id = $1::uuid RETURNING expires_at > now()", 0},
    {Stmt::kListSessions, "t_list_sessions",
     "SELECT " SESSION_COLS " FROM sessions WHERE user_id = $1::uuid AND expires_at > now() "
     "ORDER BY created_at DESC, id DESC", 0},
    {Stmt::kDeleteUserSessions, "t_delete_user_sessions",
     "DELETE FROM sessions WHERE user_id = $1::uuid AND ($2::uuid IS NULL OR id <> $2::uuid)", 0},
    // Query $1 through torii_search_query (0012_search_parts.sql: the
    // web-search query, or its words' parts as phrases); best match first, id breaking ties so that pages are stable. An empty
    // or all-stopword query matches nothing (PostgreSQL only notices it).
    {Stmt::kSearchUsers, "t_search_users",
     "SELECT " USER_COLS_NO_HASH " FROM users, torii_search_query($1) AS q "
     "WHERE search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC, id LIMIT $2::int4 OFFSET $3::int8", 0},
    // list_audit, newest first by seq (the order rows were written); $n is the
    // `before` cursor (a seq, exclusive) or NULL. One statement per filter so
    // that each plan uses its own index (0003_audit.sql).
    {Stmt::kListAudit, "t_list_audit",
     "SELECT " AUDIT_COLS " FROM audit_logs WHERE ($1::int8 IS NULL OR seq < $1::int8) "
     "ORDER BY seq DESC LIMIT $2::int4", 0},
    {Stmt::kListAuditByTable, "t_list_audit_by_table",
     "SELECT " AUDIT_COLS " FROM audit_logs WHERE table_name = $1 AND ($2::int8 IS NULL OR seq < $2::int8) "
     "ORDER BY seq DESC LIMIT $3::int4", 0},
    // $2 optional table filter.
    {Stmt::kListAuditByRecord, "t_list_audit_by_record",
     "SELECT " AUDIT_COLS " FROM audit_logs WHERE record_id = $1::uuid AND ($2::text IS NULL OR table_name = $2) "
     "AND ($3::int8 IS NULL OR seq < $3::int8) ORDER BY seq DESC LIMIT $4::int4", 0},
    // The batched form of kGetSessionByToken: $1 is a bytea[] of digests;
    // a row per session found, with its digest last (hex text) to tell which
    // lookups it answers. One index probe per key, one statement instead of
    // one per lookup. A single-table scan, which plans in half the time of a
    // join with unnest(); each connection's warm-up runs settle it on the
    // generic plan (PoolConn::StartPreparing).
    {Stmt::kGetSessionsByTokens, "t_get_sessions_by_tokens",
     "SELECT " SESSION_COLS ", token_hash FROM sessions WHERE token_hash = ANY($1::bytea[]) AND expires_at > now()",
     1u << 0},
};

static_assert(sizeof(kDefs) / sizeof(kDefs[0]) == kStatementCount, "one definition per Stmt");

}  // namespace

const StatementDef& Statement(Stmt s) { return kDefs[static_cast<int>(s)]; }

}  // namespace torii::daemon
