// SQL of the request path. Timestamps leave as int8 microseconds since the
// epoch and arrive the same way, so no text timestamp is ever parsed.
#include "statements.h"

namespace torii::daemon {

namespace {

#define US(col) "(extract(epoch from " col ") * 1000000)::int8"
#define TS(param) "(timestamptz 'epoch' + " param "::int8 * interval '1 microsecond')"

// Column lists, in the order render functions read them.
#define USER_COLS \
  "id, email, password_hash, " US("email_verified_at") ", metadata, " US("created_at") ", " US("updated_at") \
  ", name, " US("locked_at")
#define USER_COLS_NO_HASH \
  "id, email, NULL::text, " US("email_verified_at") ", metadata, " US("created_at") ", " US("updated_at") \
  ", name, " US("locked_at")
#define SESSION_COLS "id, user_id, " US("expires_at") ", user_agent, ip_address, metadata, " US("created_at")
#define TOKEN_COLS "id, user_id, purpose, " US("expires_at") ", " US("used_at") ", " US("created_at")
#define AUDIT_COLS "id, table_name, record_id, operation, old_data, new_data, actor, " US("created_at") ", seq"
#define OAUTH_COLS "user_id, provider, subject, " US("created_at") ", " US("updated_at")
#define PASSKEY_COLS "credential_id, user_id, public_key, name, sign_count, " US("created_at") ", " US("last_used_at")

const StatementDef kDefs[] = {
    {Stmt::kSetActor, "t_set_actor",
     "SELECT set_config('role', 'torii_actor', true), set_config('torii.user_id', $1, true)", 0},
    {Stmt::kCreateUser, "t_create_user",
     "INSERT INTO users (id, email, password_hash, metadata, name, email_verified_at) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, coalesce($4::jsonb, '{}'::jsonb), $5, " TS("$6") ") "
     "RETURNING " USER_COLS, 0},
    {Stmt::kGetUser, "t_get_user", "SELECT " USER_COLS " FROM users WHERE id = $1::uuid", 0},
    {Stmt::kGetUserByEmail, "t_get_user_by_email", "SELECT " USER_COLS " FROM users WHERE lower(email) = lower($1)", 0},
    // $3: whether password_hash is given ($4 its value, NULL clears it);
    // $5 replaces metadata, then $6 is merged into it; $7/$8 and $9/$10 set
    // name and locked_at the way $3/$4 set the hash, and $11/$12
    // email_verified_at.
    {Stmt::kUpdateUser, "t_update_user",
     "UPDATE users SET email = coalesce($2, email), "
     "password_hash = CASE WHEN $3::bool THEN $4 ELSE password_hash END, "
     "name = CASE WHEN $7::bool THEN $8 ELSE name END, "
     "locked_at = CASE WHEN $9::bool THEN " TS("$10") " ELSE locked_at END, "
     "email_verified_at = CASE WHEN $11::bool THEN " TS("$12") " ELSE email_verified_at END, "
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
    // Secure tokens: $n token digest (binary). check and use take the same
    // path for an unknown, used, expired or wrong-purpose token: one index
    // probe on token_hash, then the other conditions.
    {Stmt::kCreateToken, "t_create_token",
     "INSERT INTO secure_tokens (user_id, purpose, token_hash, expires_at) "
     "VALUES ($1::uuid, $2, $3::bytea, now() + $4::int8 * interval '1 second') RETURNING " TOKEN_COLS, 1u << 2},
    {Stmt::kCheckToken, "t_check_token",
     "SELECT " TOKEN_COLS " FROM secure_tokens WHERE token_hash = $1::bytea AND purpose = $2 "
     "AND used_at IS NULL AND expires_at > now()", 1u << 0},
    // One statement: of concurrent calls, the first to lock the row sets
    // used_at; the others re-check used_at IS NULL on the new version and
    // update nothing.
    {Stmt::kUseToken, "t_use_token",
     "UPDATE secure_tokens SET used_at = now() WHERE token_hash = $1::bytea AND purpose = $2 "
     "AND used_at IS NULL AND expires_at > now() RETURNING " TOKEN_COLS, 1u << 0},
    {Stmt::kDeleteUserTokens, "t_delete_user_tokens",
     "DELETE FROM secure_tokens WHERE user_id = $1::uuid AND ($2::text IS NULL OR purpose = $2)", 0},
    // Login guard. record_login_failure is three commands in one
    // transaction: this lock (per lower-cased email, held to commit), the
    // insert, then the count (a new snapshot, taken after the lock, so it
    // sees every failure committed before) with the lock of the user.
    // Two-key form: its key space is apart from the janitor's int8 key.
    {Stmt::kGuardLock, "t_guard_lock", "SELECT pg_advisory_xact_lock(1953460841, hashtext(lower($1)))", 0},
    {Stmt::kInsertLoginFailure, "t_insert_login_failure",
     "INSERT INTO login_failures (email, ip_address) VALUES (lower($1), $2)", 0},
    // $2 window seconds, $3 max failures or NULL. A user already locked
    // keeps its locked_at.
    {Stmt::kCountLoginFailures, "t_count_login_failures",
     "WITH n AS (SELECT count(*) AS n FROM login_failures "
     "  WHERE email = lower($1) AND at > now() - $2::int8 * interval '1 second'), "
     "locked_user AS (UPDATE users SET locked_at = now() WHERE $3::int8 IS NOT NULL AND (SELECT n FROM n) >= $3::int8 "
     "  AND lower(email) = lower($1) AND locked_at IS NULL RETURNING 1) "
     "SELECT n, $3::int8 IS NOT NULL AND n >= $3::int8, (SELECT count(*) FROM locked_user) FROM n", 0},
    // $2 since (micros) or NULL: the last 900 s.
    {Stmt::kLoginFailures, "t_login_failures",
     "SELECT count(*), " US("max(at)") " FROM login_failures "
     "WHERE email = lower($1) AND at >= coalesce(" TS("$2") ", now() - interval '900 seconds')", 0},
    {Stmt::kClearLoginFailures, "t_clear_login_failures", "DELETE FROM login_failures WHERE email = lower($1)", 0},
    {Stmt::kSetUserLock, "t_set_user_lock",
     "UPDATE users SET locked_at = " TS("$2") " WHERE lower(email) = lower($1) "
     "AND locked_at IS DISTINCT FROM " TS("$2"), 0},
    // Always one row, so a missing user looks like an unlocked one.
    {Stmt::kGetUserLock, "t_get_user_lock",
     "SELECT " US("(SELECT locked_at FROM users WHERE lower(email) = lower($1))"), 0},
    // JWT deny-list. Revoking again never shortens: expires_at only grows,
    // a user_id is only filled in; an unchanged row is not updated (no event).
    {Stmt::kRevokeJwt, "t_revoke_jwt",
     "INSERT INTO jwt_revocations AS r (jti, user_id, expires_at) VALUES ($1, $2::uuid, " TS("$3") ") "
     "ON CONFLICT (jti) DO UPDATE SET expires_at = greatest(r.expires_at, excluded.expires_at), "
     "user_id = coalesce(r.user_id, excluded.user_id) "
     "WHERE r.expires_at < excluded.expires_at OR (r.user_id IS NULL AND excluded.user_id IS NOT NULL)", 0},
    // $2 issued_before (micros) or NULL: now; $3 expires_at (micros) or NULL:
    // issued_before + 30 days. A cutoff never moves back.
    {Stmt::kRevokeUserJwts, "t_revoke_user_jwts",
     "INSERT INTO jwt_user_cutoffs AS c (user_id, issued_before, expires_at) "
     "SELECT $1::uuid, b, coalesce(" TS("$3") ", b + interval '30 days') FROM (SELECT coalesce(" TS("$2") ", now()) AS b) AS t "
     "ON CONFLICT (user_id) DO UPDATE SET issued_before = greatest(c.issued_before, excluded.issued_before), "
     "expires_at = greatest(c.expires_at, excluded.expires_at), updated_at = now() "
     "WHERE c.issued_before < excluded.issued_before OR c.expires_at < excluded.expires_at", 0},
    // $2 user_id, $3 issued_at (micros); a user_id without issued_at is
    // revoked by any cutoff of that user (the JWT cannot show it is newer).
    {Stmt::kIsJwtRevoked, "t_is_jwt_revoked",
     "SELECT EXISTS (SELECT 1 FROM jwt_revocations WHERE jti = $1 AND expires_at > now()) "
     "OR ($2::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM jwt_user_cutoffs WHERE user_id = $2::uuid "
     "AND expires_at > now() AND ($3::int8 IS NULL OR " TS("$3") " < issued_before)))", 0},
    // One page of the unexpired deny-list: jtis in jti order, then user
    // cutoffs in user_id order. $1 cursor kind (NULL: start; 0 after jti $2;
    // 1 after user $3), $4 limit (one more row is read to tell whether more
    // follow). Columns: kind, jti or user_id, expires_at or issued_before.
    {Stmt::kListJwtRevocations, "t_list_jwt_revocations",
     "(SELECT 0 AS kind, jti COLLATE \"C\" AS k, " US("expires_at") " FROM jwt_revocations WHERE expires_at > now() "
     "  AND ($1::int4 IS NULL OR ($1::int4 = 0 AND jti > $2::text COLLATE \"C\")) ORDER BY jti LIMIT $4::int4) "
     "UNION ALL "
     "(SELECT 1, user_id::text COLLATE \"C\", " US("issued_before") " FROM jwt_user_cutoffs WHERE expires_at > now() "
     "  AND ($1::int4 IS NULL OR $1::int4 = 0 OR user_id > $3::uuid) ORDER BY user_id LIMIT $4::int4) "
     "ORDER BY kind, k LIMIT $4::int4", 0},
    // ---- Section 5, accounts (issue 19) ----
    // get_or_create_user is two statements of one pipeline (one round trip,
    // one implicit transaction). The INSERT waits for a concurrent insert of
    // the same email to commit and then does nothing; the SELECT, a new
    // statement with a new snapshot (READ COMMITTED), sees that row. One
    // statement could not: its snapshot predates the other commit, so a
    // CTE's fallback SELECT would find no row at all. `created` is whether
    // this transaction wrote the row (its xmin is our xid; no trigger fires
    // for a user that already existed, unlike ON CONFLICT DO UPDATE).
    {Stmt::kGetOrCreateUserInsert, "t_get_or_create_user_insert",
     "INSERT INTO users (id, email, name, metadata) "
     "VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, coalesce($4::jsonb, '{}'::jsonb)) "
     "ON CONFLICT ((lower(email))) DO NOTHING", 0},
    {Stmt::kGetOrCreateUserSelect, "t_get_or_create_user_select",
     "SELECT " USER_COLS_NO_HASH ", xmin::text::int8 = "
     "coalesce(pg_current_xact_id_if_assigned()::text::int8 % 4294967296, -1) "
     "FROM users WHERE lower(email) = lower($1)", 0},
    // link_oauth_account, the same way: the SELECT tells an existing link of
    // this user (idempotent) from one of another user (duplicate).
    {Stmt::kLinkOAuthInsert, "t_link_oauth_insert",
     "INSERT INTO oauth_accounts (user_id, provider, subject) VALUES ($1::uuid, $2, $3) "
     "ON CONFLICT (provider, subject) DO NOTHING", 0},
    {Stmt::kLinkOAuthSelect, "t_link_oauth_select",
     "SELECT " OAUTH_COLS ", user_id = $3::uuid FROM oauth_accounts WHERE provider = $1 AND subject = $2", 0},
    {Stmt::kGetOAuthAccount, "t_get_oauth_account",
     "SELECT " OAUTH_COLS " FROM oauth_accounts WHERE provider = $1 AND subject = $2", 0},
    {Stmt::kGetUserByOAuth, "t_get_user_by_oauth",
     "SELECT " USER_COLS_NO_HASH " FROM users "
     "WHERE id = (SELECT user_id FROM oauth_accounts WHERE provider = $1 AND subject = $2)", 0},
    {Stmt::kListOAuthAccounts, "t_list_oauth_accounts",
     "SELECT " OAUTH_COLS " FROM oauth_accounts WHERE user_id = $1::uuid ORDER BY created_at, id", 0},
    {Stmt::kUnlinkOAuthAccount, "t_unlink_oauth_account",
     "DELETE FROM oauth_accounts WHERE user_id = $1::uuid AND provider = $2 AND ($3::text IS NULL OR subject = $3)",
     0},
    {Stmt::kPutOAuthState, "t_put_oauth_state",
     "INSERT INTO oauth_states (state, verifier, expires_at) VALUES ($1, $2, now() + $3::int8 * interval '1 second') "
     "ON CONFLICT (state) DO UPDATE SET verifier = EXCLUDED.verifier, expires_at = EXCLUDED.expires_at "
     "RETURNING " US("expires_at"), 0},
    // Single use: the row goes in the statement that reads it; an expired
    // row goes too, reported as not found.
    {Stmt::kTakeOAuthState, "t_take_oauth_state",
     "DELETE FROM oauth_states WHERE state = $1 RETURNING verifier, expires_at > now()", 0},
    {Stmt::kAddPasskey, "t_add_passkey",
     "INSERT INTO passkeys (user_id, credential_id, public_key, name, sign_count) "
     "VALUES ($1::uuid, $2::bytea, $3::bytea, $4, coalesce($5::int8, 0)) RETURNING " PASSKEY_COLS,
     (1u << 1) | (1u << 2)},
    {Stmt::kGetPasskey, "t_get_passkey", "SELECT " PASSKEY_COLS " FROM passkeys WHERE credential_id = $1::bytea",
     1u << 0},
    {Stmt::kListPasskeys, "t_list_passkeys",
     "SELECT " PASSKEY_COLS " FROM passkeys WHERE user_id = $1::uuid ORDER BY created_at, id", 0},
    // The counter rule in the UPDATE's WHERE, so it holds against the latest
    // row even under concurrent uses (READ COMMITTED re-checks it on the row
    // a concurrent update left). A given count of 0 or none keeps the stored
    // one. Last column: true for the updated row; a row with false is the
    // unchanged passkey whose counter did not increase (conflict).
    {Stmt::kUsePasskey, "t_use_passkey",
     "WITH upd AS (UPDATE passkeys SET last_used_at = now(), "
     "sign_count = CASE WHEN coalesce($2::int8, 0) = 0 THEN sign_count ELSE $2::int8 END "
     "WHERE credential_id = $1::bytea "
     "AND NOT (coalesce($2::int8, 0) <> 0 AND sign_count <> 0 AND $2::int8 <= sign_count) "
     "RETURNING " PASSKEY_COLS ") "
     "SELECT *, true FROM upd UNION ALL "
     "SELECT " PASSKEY_COLS ", false FROM passkeys WHERE credential_id = $1::bytea AND NOT EXISTS (SELECT 1 FROM upd)",
     1u << 0},
    {Stmt::kDeletePasskey, "t_delete_passkey", "DELETE FROM passkeys WHERE credential_id = $1::bytea", 1u << 0},
    {Stmt::kDeleteUserPasskeys, "t_delete_user_passkeys", "DELETE FROM passkeys WHERE user_id = $1::uuid", 0},
    {Stmt::kPutPasskeyChallenge, "t_put_passkey_challenge",
     "INSERT INTO passkey_challenges (challenge_id, challenge, user_id, expires_at) "
     "VALUES ($1, $2::bytea, $3::uuid, now() + $4::int8 * interval '1 second') "
     "ON CONFLICT (challenge_id) DO UPDATE SET challenge = EXCLUDED.challenge, user_id = EXCLUDED.user_id, "
     "expires_at = EXCLUDED.expires_at RETURNING " US("expires_at"), 1u << 1},
    {Stmt::kTakePasskeyChallenge, "t_take_passkey_challenge",
     "DELETE FROM passkey_challenges WHERE challenge_id = $1 RETURNING challenge, user_id, expires_at > now()", 0},
};

static_assert(sizeof(kDefs) / sizeof(kDefs[0]) == kStatementCount, "one definition per Stmt");

}  // namespace

const StatementDef& Statement(Stmt s) { return kDefs[static_cast<int>(s)]; }

}  // namespace torii::daemon
