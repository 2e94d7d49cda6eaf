// Migration from a Torii (torii-rs 0.2 to 0.5) SQLite database into
// toriid's PostgreSQL schema: `torii migrate --from sqlite:PATH --to URL`.
//
// Contract:
// - Reads the SQLite file read-only in one read transaction (a consistent
//   snapshot even while a Torii server still uses it). The live shape is
//   taken from PRAGMA table_info, never from Torii's migrations table.
// - Applies toriid's embedded migrations to the target when it lacks them
//   (not in a dry run), then copies users and live sessions in ONE
//   transaction: staging tables filled with COPY, checked, then inserted.
//   Either everything is written or nothing is.
// - Refuses before writing any row (Error, code invalid_argument) when
//   emails equal but for case (among the source rows or against users
//   already in the target), when a session id or token would collide with
//   a different row, or when an email is missing or longer than 254 bytes.
//   The message lists every conflicting email.
// - Idempotent: rows already in the target (same id; for sessions also the
//   same token digest) are left alone; a re-run inserts nothing and the
//   report says so.
// - dry_run reads and checks everything and writes nothing (the checks run
//   in a transaction on temporary tables that is rolled back).
// - Tenants (PROTOCOL.md section 6): everything goes into one tenant,
//   options.tenant (the default one when empty), which must exist; the same
//   file may be imported into several tenants (their ids differ).
// - Never puts a password hash, a token or a token digest in a message.
//
// Blocking; for tools and tests. Errors: unavailable when the target cannot
// be reached, invalid_argument for refused data or an unreadable source,
// storage for other database errors, internal when the final verification
// finds counts that do not match (the message names the table).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "torii/error.h"
#include "torii/types.h"
#include "torii/values.h"

namespace torii {

// The UUIDv5 namespace of migrated ids: UUIDv5(URL namespace,
// "urn:torii:sqlite-migrate"). A non-UUID user id X becomes UuidV5(ns, X);
// every session id Y (an integer, or the token itself in 0.2-era
// databases) becomes UuidV5(ns, Y as decimal text).
// It is the namespace of the Torii id rule (types.h, kToriiIdNamespace).
inline constexpr const char* kSqliteMigrateNamespace = kToriiIdNamespace;

// The id a Torii user id gets in toriid: UserIdFromToriiId (types.h), in
// `tenant` (empty: the default tenant).
std::string MigratedUserId(const std::string& torii_id, const std::string& tenant = "");
// The id a Torii session id gets: UuidV5(ns, id as text) in the default
// tenant, UuidV5(ns, tenant + "/" + id) in another (ids are unique across
// tenants, so the same file can be imported into two tenants).
std::string MigratedSessionId(const std::string& session_id, const std::string& tenant = "");

struct SqliteMigrateOptions {
  std::string sqlite_path;  // the file, without the "sqlite:" prefix
  std::string target;       // libpq URI or key=value string
  bool dry_run = false;
  Micros now = 0;           // "migration time"; 0: the clock at the start
  // The tenant the rows go to (empty: the default tenant). It must exist in
  // the target (not_found otherwise: `torii tenant add` creates it); users
  // and session ids get the tenant's ids (MigratedUserId), and every check
  // (emails taken, rows already present, OAuth pairs, credential ids) looks
  // at that tenant's rows only.
  std::string tenant;
};

struct SqliteMigrateReport {
  bool dry_run = false;
  std::string tenant;  // the tenant written to (set once the target is reached)
  // "token column" (torii 0.3+), "token column of SHA-256 hex digests"
  // (torii-rs HEAD: the digest is carried over), "session id is the token"
  // (0.2 era),
  // or "no sessions table".
  std::string session_shape;
  int migrations_pending = 0;  // toriid migrations the target lacked
  int migrations_applied = 0;  // applied by this run (0 in a dry run)

  int64_t users_read = 0;
  int64_t users_mapped_ids = 0;  // non-UUID ids turned into UUIDv5
  int64_t users_new = 0;         // inserted (dry run: would be)
  int64_t users_present = 0;     // already in the target, left alone

  int64_t sessions_read = 0;
  int64_t sessions_expired = 0;   // expired at migration time: not copied
  int64_t sessions_orphaned = 0;  // user not in the source: not copied
  int64_t sessions_no_token = 0;  // NULL or empty token: not copied
  int64_t sessions_new = 0;
  int64_t sessions_present = 0;

  // Section 5 tables (issue 19), when the file has them; `read` is -1 when
  // it has no such table. Skipped: the user is not in the source, or the
  // row is unusable (no provider/subject/credential id, a provider that is
  // not [a-z0-9_.-]{1,64} even lower-cased, values over toriid's limits).
  int64_t oauth_read = -1;
  int64_t oauth_skipped = 0;
  int64_t oauth_new = 0;
  int64_t oauth_present = 0;  // the same (provider, subject) already linked to the same user
  int64_t passkeys_read = -1;
  int64_t passkeys_skipped = 0;
  int64_t passkeys_new = 0;
  int64_t passkeys_present = 0;  // the same credential id already there for the same user
  // failed_login_attempts (torii-rs brute-force protection), when the file
  // has it: into login_failures, per lower-cased email. Rows without an
  // email or a readable time are skipped. A row already in the target (same
  // email, time and address) is not copied again.
  int64_t login_failures_read = 0;
  int64_t login_failures_skipped = 0;
  int64_t login_failures_new = 0;

  // Tables toriid does not hold, with their row counts: not migrated.
  std::vector<std::pair<std::string, int64_t>> not_migrated_tables;
  // "table.column" of columns toriid has no place for.
  std::vector<std::string> not_migrated_columns;
  std::vector<std::string> warnings;

  // Rows of the tenant in the target after the run (dry run: before it; -1
  // when the target has no schema yet).
  int64_t target_users = -1;
  int64_t target_sessions = -1;
  // Every source user and every copied session was found in the target
  // with the expected id (and token digest) before COMMIT.
  bool verified = false;
  double seconds = 0;

  bool NothingToDo() const {
    return users_new == 0 && sessions_new == 0 && oauth_new == 0 && passkeys_new == 0 && login_failures_new == 0 &&
           migrations_applied == 0;
  }
};

Result<SqliteMigrateReport> MigrateFromSqlite(const SqliteMigrateOptions& options);

// A readable multi-line summary of a report, for the CLI.
std::string FormatMigrateReport(const SqliteMigrateReport& report);

}  // namespace torii
