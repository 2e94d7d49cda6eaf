// Torii SQLite -> toriid PostgreSQL migration. See sqlite_migrate.h for the
// contract; the comments here say why things are done the way they are.
//
// Shape of the work: the SQLite file is read once into two buffers already
// in COPY text format (users, live sessions), so a run that must stage the
// data twice (a validation pass before applying migrations, then the real
// pass) does not read SQLite twice. Every check runs in PostgreSQL on
// temporary staging tables, so emails are compared with the target's own
// lower(), exactly as its unique index on lower(email) will compare them.
// The inserts run in bulk-import mode (schema/0007_bulk_import.sql): no
// per-row NOTIFY or audit row, one summary audit row and one torii.resync
// event instead, when the target role may act as the tables' owner.
#include "torii/sqlite_migrate.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "torii/log.h"
#include "torii/migrations.h"
#include "torii/pg.h"
#include "torii/tenant.h"

namespace torii {

std::string MigratedUserId(const std::string& torii_id, const std::string& tenant) {
  return UserIdFromToriiId(torii_id, tenant);
}

std::string MigratedSessionId(const std::string& session_id, const std::string& tenant) {
  if (tenant.empty() || tenant == kDefaultTenant) return UuidV5(kSqliteMigrateNamespace, session_id);
  return UuidV5(kSqliteMigrateNamespace, tenant + "/" + session_id);
}

namespace {

// ---- SQLite access --------------------------------------------------------

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;
using SqliteStmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

Error SqliteError(sqlite3* db, const std::string& what) {
  return Error::InvalidArgument("sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

Result<SqliteStmt> Prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) return SqliteError(db, "prepare");
  return SqliteStmt(s);
}

std::string QuoteSqliteIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

// Lower-cased column names of a table, in table order; empty when the
// table does not exist.
Result<std::vector<std::string>> Columns(sqlite3* db, const std::string& table) {
  auto st = Prepare(db, "PRAGMA table_info(" + QuoteSqliteIdent(table) + ")");
  if (!st.ok()) return st.error();
  std::vector<std::string> cols;
  int rc;
  while ((rc = sqlite3_step(st->get())) == SQLITE_ROW) {
    std::string name = reinterpret_cast<const char*>(sqlite3_column_text(st->get(), 1));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    cols.push_back(std::move(name));
  }
  if (rc != SQLITE_DONE) return SqliteError(db, "table_info(" + table + ")");
  return cols;
}

bool Has(const std::vector<std::string>& cols, const char* name) {
  return std::find(cols.begin(), cols.end(), name) != cols.end();
}

// A timestamp column as Unix seconds, whatever Torii stored: INTEGER is the
// documented form; REAL, digit-only TEXT and date TEXT are accepted because
// SQLite's typing is loose and old rows were altered in place. Anything
// unreadable is NULL (and so becomes the migration time).
std::string SecondsExpr(const std::vector<std::string>& cols, const char* name) {
  if (!Has(cols, name)) return "NULL";
  std::string c = QuoteSqliteIdent(name);
  return "CASE WHEN typeof(" + c + ") IN ('integer','real') THEN CAST(" + c + " AS INTEGER)" +
         " WHEN typeof(" + c + ") = 'text' AND " + c + " <> '' AND " + c + " NOT GLOB '*[^0-9]*' THEN CAST(" + c +
         " AS INTEGER)" + " WHEN typeof(" + c + ") = 'text' THEN CAST(strftime('%s', " + c + ") AS INTEGER) END";
}

std::string TextExpr(const std::vector<std::string>& cols, const char* name) {
  return Has(cols, name) ? QuoteSqliteIdent(name) : "NULL";
}

// Text of a column, or nullopt for NULL. Integers come back as decimal text.
std::optional<std::string> ColText(sqlite3_stmt* s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return std::nullopt;
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(s, i)));
}

// Year 9999 at most: beyond that the value is garbage and PostgreSQL's
// interval arithmetic would overflow.
constexpr int64_t kMaxSeconds = 253402300799;

std::optional<int64_t> ColSeconds(sqlite3_stmt* s, int i, int64_t* unreadable) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return std::nullopt;
  int64_t v = sqlite3_column_int64(s, i);
  if (v < -kMaxSeconds || v > kMaxSeconds) {
    (*unreadable)++;
    return std::nullopt;
  }
  return v;
}

// ---- COPY text format -----------------------------------------------------

void AppendCopyText(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out.push_back(c);
    }
  }
}
void AppendCopyOpt(std::string& out, const std::optional<std::string>& v) {
  if (v) AppendCopyText(out, *v);
  else out += "\\N";
}
void AppendCopyInt(std::string& out, std::optional<int64_t> v) {
  if (v) out += std::to_string(*v);
  else out += "\\N";
}
void AppendCopyBytea(std::string& out, const void* data, size_t len) {
  out += "\\\\x";  // bytea's \x prefix, its backslash escaped for COPY
  AppendHex(out, data, len);
}

std::string JsonText(const nlohmann::json& j) {
  // Replace invalid UTF-8 rather than throw: a mangled display name is
  // better than a refused migration.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// 64 lower-case hex characters (checked by the caller) as 32 bytes.
std::array<uint8_t, 32> HexDigest(const std::string& hex) {
  std::array<uint8_t, 32> out{};
  std::string bytes;
  if (HexDecode(hex, &bytes)) std::copy_n(bytes.begin(), std::min(bytes.size(), out.size()), out.begin());
  return out;
}

// ---- Reading the source ---------------------------------------------------

// The migrated tables, in the order they are staged and inserted (a
// session, an OAuth account and a passkey need their user first). Each is
// described once, in kTables below.
enum Table { kUsers, kSessions, kOAuth, kPasskeys, kLoginFailures, kTableCount };

// The rows read for one table, in COPY text format for its staging table.
struct Staged {
  std::string copy;
  int64_t rows = 0;
};

struct Source {
  std::string tenant;  // the ids' tenant (UserIdFromToriiId); empty: the default one
  std::array<Staged, kTableCount> tables;
  Staged& operator[](Table t) { return tables[t]; }
  const Staged& operator[](Table t) const { return tables[t]; }
};

// ---- The migrated tables, described once ----------------------------------
//
// Each row says how a table is staged, counted in the target, inserted and
// verified; the steps of MigrateFromSqlite loop over this table. The checks
// that refuse data (Check below) are per table by nature and stay there.
// Timestamps travel as int8 microseconds so that no text date format or
// time zone setting is involved. "{t:A}" in the SQL keeps target rows (alias
// A) to the tenant migrated into (TenantSql below); lookups by id are not
// kept to it: ids are unique across tenants.
struct MigratedTable {
  const char* source;   // the SQLite table it is read from
  const char* name;     // in messages: the target table
  const char* staging;  // TEMP staging table, dropped at the end of the transaction
  const char* columns;  // the staging table's columns, in COPY order
  // Staged in the validation pass that runs before toriid's migrations are
  // applied: only the users matter then, a target without toriid's schema
  // holds nothing else to collide with.
  bool before_schema;
  // The target table(s) whose existence the counts below need (they come
  // with migrations: 0010 for accounts).
  const char* needs;
  // Staged rows already in the target (nullptr: not counted, and not
  // reported in a dry run).
  const char* present_sql;
  const char* insert_sql;  // the staged rows not yet in the target, into it
  // Staged rows found in the target after the inserts: must be all of them.
  // nullptr: not verified.
  const char* verify_sql;
  // Every staged row not present is one new row: inserted must equal staged
  // minus present (not so for OAuth accounts, where a repeated pair of the
  // same user is inserted once).
  bool exact;
  bool bulk;  // silenced by bulk-import mode (schema/0007) and counted in its summary
  const char* inserted_step;  // progress line after the insert
  int64_t SqliteMigrateReport::*present;  // nullptr when present_sql is
  int64_t SqliteMigrateReport::*inserted;
};

constexpr MigratedTable kTables[kTableCount] = {
    {"users", "users", "torii_import_users",
     "id uuid NOT NULL, torii_id text NOT NULL, email text NOT NULL, password_hash text, email_verified_us int8, "
     "metadata jsonb NOT NULL, created_us int8 NOT NULL, updated_us int8 NOT NULL, name text, locked_us int8",
     true, "public.users",
     "SELECT count(*) FROM torii_import_users s JOIN public.users u ON u.id = s.id{t:u}",
     "INSERT INTO public.users (id, email, password_hash, email_verified_at, metadata, "
     "created_at, updated_at, name, locked_at) "
     "SELECT s.id, s.email, s.password_hash, "
     "timestamptz 'epoch' + s.email_verified_us * interval '1 microsecond', s.metadata, "
     "timestamptz 'epoch' + s.created_us * interval '1 microsecond', "
     "timestamptz 'epoch' + s.updated_us * interval '1 microsecond', s.name, "
     "timestamptz 'epoch' + s.locked_us * interval '1 microsecond' "
     "FROM torii_import_users s "
     "WHERE NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = s.id)",
     // every source user is in the target tenant under its id
     "SELECT count(*) FROM torii_import_users s JOIN public.users u ON u.id = s.id{t:u}",
     true, true, "inserted users", &SqliteMigrateReport::users_present, &SqliteMigrateReport::users_new},
    {"sessions", "sessions", "torii_import_sessions",
     "id uuid NOT NULL, user_id uuid NOT NULL, token_hash bytea NOT NULL, expires_us int8 NOT NULL, "
     "user_agent text, ip_address text, created_us int8 NOT NULL, metadata jsonb NOT NULL",
     false, "public.sessions",
     "SELECT count(*) FROM torii_import_sessions s JOIN public.sessions t ON t.id = s.id{t:t}",
     "INSERT INTO public.sessions (id, user_id, token_hash, expires_at, user_agent, ip_address, "
     "created_at, metadata) "
     "SELECT s.id, s.user_id, s.token_hash, "
     "timestamptz 'epoch' + s.expires_us * interval '1 microsecond', s.user_agent, "
     "s.ip_address, timestamptz 'epoch' + s.created_us * interval '1 microsecond', s.metadata "
     "FROM torii_import_sessions s "
     "WHERE NOT EXISTS (SELECT 1 FROM public.sessions t WHERE t.id = s.id)",
     // every copied session under its id with its token's digest
     "SELECT count(*) FROM torii_import_sessions s JOIN public.sessions t "
     "ON t.id = s.id AND t.token_hash = s.token_hash{t:t}",
     true, true, "inserted sessions", &SqliteMigrateReport::sessions_present, &SqliteMigrateReport::sessions_new},
    // OAuth accounts and passkeys (section 5), per row published and
    // audited by their own triggers (the bulk-import switch covers users
    // and sessions only). A pair or credential already there (for the same
    // user: the checks refused any other) is left alone.
    {"oauth_accounts", "oauth_accounts", "torii_import_oauth",
     "user_id uuid NOT NULL, provider text NOT NULL, subject text NOT NULL, created_us int8 NOT NULL, "
     "updated_us int8 NOT NULL",
     false, "public.oauth_accounts",
     "SELECT count(*) FROM (SELECT DISTINCT s.provider, s.subject FROM torii_import_oauth s "
     "JOIN public.oauth_accounts t ON t.provider = s.provider AND t.subject = s.subject{t:t}) d",
     "INSERT INTO public.oauth_accounts (user_id, provider, subject, created_at, updated_at) "
     "SELECT DISTINCT ON (s.provider, s.subject) s.user_id, s.provider, s.subject, "
     "timestamptz 'epoch' + s.created_us * interval '1 microsecond', "
     "timestamptz 'epoch' + s.updated_us * interval '1 microsecond' "
     "FROM torii_import_oauth s WHERE NOT EXISTS (SELECT 1 FROM public.oauth_accounts t "
     "WHERE t.provider = s.provider AND t.subject = s.subject{t:t}) "
     "ORDER BY s.provider, s.subject, s.created_us",
     "SELECT count(*) FROM torii_import_oauth s WHERE EXISTS (SELECT 1 FROM public.oauth_accounts t "
     "WHERE t.provider = s.provider AND t.subject = s.subject AND t.user_id = s.user_id{t:t})",
     false, false, "inserted OAuth accounts", &SqliteMigrateReport::oauth_present, &SqliteMigrateReport::oauth_new},
    {"passkeys", "passkeys", "torii_import_passkeys",
     "user_id uuid NOT NULL, credential_id bytea NOT NULL, public_key bytea NOT NULL, name text, "
     "created_us int8 NOT NULL, last_used_us int8",
     false, "public.passkeys",
     "SELECT count(*) FROM torii_import_passkeys s JOIN public.passkeys t ON t.credential_id = s.credential_id{t:t}",
     "INSERT INTO public.passkeys (user_id, credential_id, public_key, name, created_at, last_used_at) "
     "SELECT s.user_id, s.credential_id, s.public_key, s.name, "
     "timestamptz 'epoch' + s.created_us * interval '1 microsecond', "
     "timestamptz 'epoch' + s.last_used_us * interval '1 microsecond' "
     "FROM torii_import_passkeys s WHERE NOT EXISTS (SELECT 1 FROM public.passkeys t "
     "WHERE t.credential_id = s.credential_id{t:t})",
     "SELECT count(*) FROM torii_import_passkeys s JOIN public.passkeys t "
     "ON t.credential_id = s.credential_id AND t.user_id = s.user_id{t:t}",
     false, false, "inserted passkeys", &SqliteMigrateReport::passkeys_present, &SqliteMigrateReport::passkeys_new},
    // Failed login attempts (migration 0011), per lower-cased email; those
    // already there (same email, time and address) are not copied again.
    // Not counted in a dry run, and not verified: they are a rate limit's
    // memory, not data anyone logs in with.
    {"failed_login_attempts", "login_failures", "torii_import_login_failures", "email text NOT NULL, ip_address text, at_us int8 NOT NULL",
     false, "public.login_failures", nullptr,
     "INSERT INTO public.login_failures (email, ip_address, at) "
     "SELECT lower(s.email), s.ip_address, timestamptz 'epoch' + s.at_us * interval '1 microsecond' "
     "FROM torii_import_login_failures s WHERE NOT EXISTS (SELECT 1 FROM public.login_failures f "
     "WHERE f.email = lower(s.email) AND f.at = timestamptz 'epoch' + s.at_us * interval '1 microsecond' "
     "AND f.ip_address IS NOT DISTINCT FROM s.ip_address{t:f})",
     nullptr, false, false, "inserted login failures", nullptr, &SqliteMigrateReport::login_failures_new},
};

const std::set<std::string> kUserColumns = {"id",         "name",       "email",    "email_verified_at",
                                            "password_hash", "created_at", "updated_at", "locked_at"};
const std::set<std::string> kSessionColumns = {"id",         "token",      "user_id",   "user_agent",
                                               "ip_address", "expires_at", "created_at", "updated_at"};

Status ReadUsers(sqlite3* db, Micros now, Source* src, std::unordered_set<std::string>* ids,
                 SqliteMigrateReport* rep) {
  auto cols = Columns(db, "users");
  if (!cols.ok()) return cols.error();
  if (cols->empty()) return Error::InvalidArgument("sqlite: no users table: not a Torii database");
  if (!Has(*cols, "id") || !Has(*cols, "email"))
    return Error::InvalidArgument("sqlite: users has no id or email column: not a Torii database");
  for (const auto& c : *cols)
    if (!kUserColumns.count(c)) rep->not_migrated_columns.push_back("users." + c);

  auto st = Prepare(db, "SELECT id, email, " + TextExpr(*cols, "name") + ", " + TextExpr(*cols, "password_hash") +
                            ", " + SecondsExpr(*cols, "email_verified_at") + ", " + SecondsExpr(*cols, "created_at") +
                            ", " + SecondsExpr(*cols, "updated_at") + ", " + SecondsExpr(*cols, "locked_at") +
                            " FROM users");
  if (!st.ok()) return st.error();
  sqlite3_stmt* s = st->get();
  std::vector<std::string> bad;  // rows toriid cannot hold, by Torii id
  int64_t unreadable = 0, null_times = 0, invalid_emails = 0, long_names = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rep->users_read++;
    auto orig = ColText(s, 0);
    auto email = ColText(s, 1);
    if (!orig || orig->empty()) {
      bad.push_back("a user row with no id");
      continue;
    }
    if (!email || email->empty()) {
      bad.push_back("user " + *orig + " has no email");
      continue;
    }
    if (email->size() > 254) {
      bad.push_back("user " + *orig + " has an email longer than 254 bytes");
      continue;
    }
    // toriid would refuse such an address in a request, but the row is
    // still a user who may log in by id: copy it and say so.
    if (!ValidEmail(*email) && ++invalid_emails <= 5)
      rep->warnings.push_back("user " + *orig + ": email '" + *email + "' is not a valid address");
    std::string id = MigratedUserId(*orig, src->tenant);
    nlohmann::json meta = nlohmann::json::object();
    if (id != NormalizeUuid(*orig).value_or("")) {
      rep->users_mapped_ids++;
      meta["torii_id"] = *orig;
    }
    // name and locked_at have their columns (schema/0009); a name longer
    // than users.name's 255 bytes stays in metadata.name.
    std::optional<std::string> name = ColText(s, 2);
    if (name && name->size() > 255) {
      meta["name"] = *name;
      name.reset();
      long_names++;
    }
    auto verified = ColSeconds(s, 4, &unreadable);
    auto created = ColSeconds(s, 5, &unreadable);
    auto updated = ColSeconds(s, 6, &unreadable);
    auto locked = ColSeconds(s, 7, &unreadable);
    if (!created || !updated) null_times++;
    Micros created_us = created ? *created * 1000000 : now;
    Micros updated_us = updated ? *updated * 1000000 : now;
    ids->insert(id);

    std::string& out = (*src)[kUsers].copy;
    (*src)[kUsers].rows++;
    out += id;
    out.push_back('\t');
    AppendCopyText(out, *orig);
    out.push_back('\t');
    AppendCopyText(out, *email);
    out.push_back('\t');
    AppendCopyOpt(out, ColText(s, 3));
    out.push_back('\t');
    AppendCopyInt(out, verified ? std::optional<int64_t>(*verified * 1000000) : std::nullopt);
    out.push_back('\t');
    AppendCopyText(out, JsonText(meta));
    out.push_back('\t');
    AppendCopyInt(out, created_us);
    out.push_back('\t');
    AppendCopyInt(out, updated_us);
    out.push_back('\t');
    AppendCopyOpt(out, name);
    out.push_back('\t');
    AppendCopyInt(out, locked ? std::optional<int64_t>(*locked * 1000000) : std::nullopt);
    out.push_back('\n');
  }
  if (rc != SQLITE_DONE) return SqliteError(db, "reading users");
  if (long_names > 0)
    rep->warnings.push_back(std::to_string(long_names) +
                            " user name(s) longer than 255 bytes: kept in metadata.name instead of name");
  if (!bad.empty()) {
    std::string m = "refusing to migrate, nothing was written: " + std::to_string(bad.size()) +
                    " user row(s) toriid cannot hold:";
    for (const auto& b : bad) m += "\n  " + b;
    return Error::InvalidArgument(m);
  }
  if (invalid_emails > 5)
    rep->warnings.push_back(std::to_string(invalid_emails) + " user(s) in all have an invalid email address");
  if (null_times > 0)
    rep->warnings.push_back(std::to_string(null_times) + " user(s) had a NULL created_at/updated_at: set to the migration time");
  if (unreadable > 0)
    rep->warnings.push_back(std::to_string(unreadable) + " user timestamp(s) out of range: treated as NULL");
  return {};
}

Status ReadSessions(sqlite3* db, Micros now, const std::unordered_set<std::string>& user_ids, Source* src,
                    SqliteMigrateReport* rep) {
  auto cols = Columns(db, "sessions");
  if (!cols.ok()) return cols.error();
  if (cols->empty()) {
    rep->session_shape = "no sessions table";
    return {};
  }
  if (!Has(*cols, "id") || !Has(*cols, "user_id") || !Has(*cols, "expires_at"))
    return Error::InvalidArgument("sqlite: sessions lacks id, user_id or expires_at: not a Torii database");
  for (const auto& c : *cols)
    if (!kSessionColumns.count(c)) rep->not_migrated_columns.push_back("sessions." + c);
  // 0.3+ keeps the opaque token in its own column; in 0.2-era databases the
  // session id itself is the bearer token.
  bool token_column = Has(*cols, "token");
  rep->session_shape = token_column ? "token column" : "session id is the token";
  // torii-rs HEAD stores the lower-case hex SHA-256 of the token instead of
  // the token: when every non-empty token is 64 lower-case hex characters,
  // the column holds digests, carried over as they are (hashing them again
  // would make every session unusable). A raw token is 43 base64url
  // characters, so no raw-token database matches.
  bool stored_digests = false;
  if (token_column) {
    auto shape = Prepare(db,
                         "SELECT count(*), coalesce(sum(typeof(token) = 'text' AND length(token) = 64 "
                         "AND token NOT GLOB '*[^0-9a-f]*'), 0) FROM sessions WHERE token IS NOT NULL AND token <> ''");
    if (!shape.ok()) return shape.error();
    if (sqlite3_step(shape->get()) != SQLITE_ROW) return SqliteError(db, "reading sessions");
    int64_t tokens = sqlite3_column_int64(shape->get(), 0);
    int64_t digests = sqlite3_column_int64(shape->get(), 1);
    stored_digests = tokens > 0 && digests == tokens;
    if (stored_digests) rep->session_shape = "token column of SHA-256 hex digests";
  }

  auto st = Prepare(db, "SELECT id, " + std::string(token_column ? "token" : "id") + ", user_id, " +
                            TextExpr(*cols, "user_agent") + ", " + TextExpr(*cols, "ip_address") + ", " +
                            SecondsExpr(*cols, "expires_at") + ", " + SecondsExpr(*cols, "created_at") +
                            " FROM sessions");
  if (!st.ok()) return st.error();
  sqlite3_stmt* s = st->get();
  int64_t unreadable = 0, duplicates = 0;
  const std::string empty_meta = "{}";
  // Duplicate ids or tokens would break the target's uniqueness; caught
  // here, counted only, because naming one would name a token.
  std::unordered_set<std::string> seen_ids, seen_digests;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rep->sessions_read++;
    auto orig = ColText(s, 0);
    auto token = ColText(s, 1);
    auto user = ColText(s, 2);
    // A NULL expiry, like every NULL timestamp, is the migration time: the
    // session counts as expired.
    auto expires = ColSeconds(s, 5, &unreadable);
    if (!expires || *expires * 1000000 <= now) {
      rep->sessions_expired++;
      continue;
    }
    if (!orig || !token || token->empty()) {
      rep->sessions_no_token++;
      continue;
    }
    std::string user_id = user ? MigratedUserId(*user, src->tenant) : std::string();
    if (!user || !user_ids.count(user_id)) {
      rep->sessions_orphaned++;
      continue;
    }
    auto created = ColSeconds(s, 6, &unreadable);
    std::string sid = MigratedSessionId(*orig, src->tenant);
    std::array<uint8_t, 32> digest = stored_digests ? HexDigest(*token) : TokenDigest(*token);
    if (!seen_ids.insert(sid).second ||
        !seen_digests.insert(std::string(reinterpret_cast<const char*>(digest.data()), digest.size())).second)
      duplicates++;
    std::string& out = (*src)[kSessions].copy;
    out += sid;
    out.push_back('\t');
    out += user_id;
    out.push_back('\t');
    AppendCopyBytea(out, digest.data(), digest.size());
    out.push_back('\t');
    AppendCopyInt(out, *expires * 1000000);
    out.push_back('\t');
    AppendCopyOpt(out, ColText(s, 3));
    out.push_back('\t');
    AppendCopyOpt(out, ColText(s, 4));
    out.push_back('\t');
    AppendCopyInt(out, created ? *created * 1000000 : now);
    out.push_back('\t');
    // The old integer id is kept for tracing; a 0.2-era id is the bearer
    // token itself and must not be stored in the clear.
    if (token_column) {
      nlohmann::json meta = {{"torii_id", *orig}};
      AppendCopyText(out, JsonText(meta));
    } else {
      out += empty_meta;
    }
    out.push_back('\n');
    (*src)[kSessions].rows++;
  }
  if (rc != SQLITE_DONE) return SqliteError(db, "reading sessions");
  if (duplicates > 0)
    return Error::InvalidArgument("refusing to migrate, nothing was written:\n  " + std::to_string(duplicates) +
                                  " live session(s) repeat the id or token of another");
  if (unreadable > 0)
    rep->warnings.push_back(std::to_string(unreadable) + " session timestamp(s) out of range: treated as NULL");
  return {};
}

// torii-rs failed_login_attempts (id, email, ip_address, attempted_at in
// Unix seconds) into the login failures' staged rows; nothing when the table is
// absent.
Status ReadLoginFailures(sqlite3* db, Source* src, SqliteMigrateReport* rep) {
  auto cols = Columns(db, "failed_login_attempts");
  if (!cols.ok()) return cols.error();
  if (cols->empty()) return {};
  if (!Has(*cols, "email") || !Has(*cols, "attempted_at")) {
    rep->not_migrated_tables.emplace_back("failed_login_attempts (no email or attempted_at column)", 0);
    return {};
  }
  for (const auto& c : *cols)
    if (c != "id" && c != "email" && c != "ip_address" && c != "attempted_at")
      rep->not_migrated_columns.push_back("failed_login_attempts." + c);
  auto st = Prepare(db, "SELECT email, " + TextExpr(*cols, "ip_address") + ", " + SecondsExpr(*cols, "attempted_at") +
                            " FROM failed_login_attempts");
  if (!st.ok()) return st.error();
  sqlite3_stmt* s = st->get();
  int64_t unreadable = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rep->login_failures_read++;
    auto email = ColText(s, 0);
    auto ip = ColText(s, 1);
    auto at = ColSeconds(s, 2, &unreadable);
    if (!email || email->empty() || !at) {
      rep->login_failures_skipped++;
      continue;
    }
    std::string& out = (*src)[kLoginFailures].copy;
    AppendCopyText(out, *email);
    out += '\t';
    AppendCopyOpt(out, ip);
    out += '\t';
    AppendCopyInt(out, *at * 1000000);
    out += '\n';
    (*src)[kLoginFailures].rows++;
  }
  if (rc != SQLITE_DONE) return SqliteError(db, "reading failed_login_attempts");
  return {};
}

const std::set<std::string> kOAuthColumns = {"id", "user_id", "provider", "subject", "created_at", "updated_at"};
const std::set<std::string> kPasskeyColumns = {"id",         "user_id",    "credential_id", "public_key", "data_json",
                                               "name",       "created_at", "updated_at",    "last_used_at"};

bool ValidProvider(const std::string& p) {
  if (p.empty() || p.size() > 64) return false;
  for (char c : p) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

// Bytes of a column whatever its storage class (a BLOB as is, TEXT as its
// UTF-8 bytes); nullopt for NULL.
std::optional<std::string> ColBytes(sqlite3_stmt* s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return std::nullopt;
  const void* p = sqlite3_column_blob(s, i);
  return std::string(p ? static_cast<const char*>(p) : "", static_cast<size_t>(sqlite3_column_bytes(s, i)));
}

// oauth_accounts: torii-rs 0.5's SQLite table (INTEGER id and unix-second
// times) and HEAD's SeaORM one (uuid id, timestamp text) have the same
// columns that matter: user_id, provider, subject, created_at, updated_at.
Status ReadOAuthAccounts(sqlite3* db, Micros now, const std::unordered_set<std::string>& user_ids, Source* src,
                         SqliteMigrateReport* rep) {
  auto cols = Columns(db, "oauth_accounts");
  if (!cols.ok()) return cols.error();
  if (cols->empty()) return {};
  if (!Has(*cols, "user_id") || !Has(*cols, "provider") || !Has(*cols, "subject"))
    return Error::InvalidArgument("sqlite: oauth_accounts lacks user_id, provider or subject");
  for (const auto& c : *cols)
    if (!kOAuthColumns.count(c)) rep->not_migrated_columns.push_back("oauth_accounts." + c);
  auto st = Prepare(db, "SELECT user_id, provider, subject, " + SecondsExpr(*cols, "created_at") + ", " +
                            SecondsExpr(*cols, "updated_at") + " FROM oauth_accounts");
  if (!st.ok()) return st.error();
  sqlite3_stmt* s = st->get();
  rep->oauth_read = 0;
  int64_t unreadable = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rep->oauth_read++;
    auto user = ColText(s, 0);
    auto provider = ColText(s, 1);
    auto subject = ColText(s, 2);
    std::string user_id = user ? MigratedUserId(*user, src->tenant) : std::string();
    if (provider) std::transform(provider->begin(), provider->end(), provider->begin(), [](unsigned char c) {
      return std::tolower(c);
    });
    if (!user || !user_ids.count(user_id) || !provider || !ValidProvider(*provider) || !subject ||
        subject->empty() || subject->size() > 255) {
      rep->oauth_skipped++;
      continue;
    }
    auto created = ColSeconds(s, 3, &unreadable);
    auto updated = ColSeconds(s, 4, &unreadable);
    std::string& out = (*src)[kOAuth].copy;
    out += user_id;
    out.push_back('\t');
    AppendCopyText(out, *provider);
    out.push_back('\t');
    AppendCopyText(out, *subject);
    out.push_back('\t');
    AppendCopyInt(out, created ? *created * 1000000 : now);
    out.push_back('\t');
    AppendCopyInt(out, updated ? *updated * 1000000 : created ? *created * 1000000 : now);
    out.push_back('\n');
    (*src)[kOAuth].rows++;
  }
  if (rc != SQLITE_DONE) return SqliteError(db, "reading oauth_accounts");
  if (unreadable > 0)
    rep->warnings.push_back(std::to_string(unreadable) + " OAuth account timestamp(s) out of range: treated as NULL");
  return {};
}

// passkeys: torii-rs 0.5's SQLite table keeps the credential id in `id`
// (TEXT) and the serialized passkey in `public_key`; HEAD's SeaORM table
// has an integer `id`, `credential_id` and `data_json`. The credential id's
// bytes (a TEXT value: its UTF-8 bytes, as Torii passes it around) and the
// stored key or passkey JSON go to credential_id and public_key as they are.
Status ReadPasskeys(sqlite3* db, Micros now, const std::unordered_set<std::string>& user_ids, Source* src,
                    SqliteMigrateReport* rep) {
  auto cols = Columns(db, "passkeys");
  if (!cols.ok()) return cols.error();
  if (cols->empty()) return {};
  const char* cred_col = Has(*cols, "credential_id") ? "credential_id" : "id";
  const char* key_col = Has(*cols, "public_key") ? "public_key" : Has(*cols, "data_json") ? "data_json" : nullptr;
  if (!Has(*cols, "user_id") || !Has(*cols, cred_col) || key_col == nullptr)
    return Error::InvalidArgument("sqlite: passkeys lacks user_id, a credential id or a public key");
  for (const auto& c : *cols) {
    bool used = c == "user_id" || c == cred_col || c == key_col || c == "name" || c == "created_at" ||
                c == "last_used_at" || c == "updated_at" || (c == "id" && std::string(cred_col) != "id");
    if (!used || !kPasskeyColumns.count(c)) rep->not_migrated_columns.push_back("passkeys." + c);
  }
  auto st = Prepare(db, "SELECT user_id, " + QuoteSqliteIdent(cred_col) + ", " + QuoteSqliteIdent(key_col) + ", " +
                            TextExpr(*cols, "name") + ", " + SecondsExpr(*cols, "created_at") + ", " +
                            SecondsExpr(*cols, "last_used_at") + " FROM passkeys");
  if (!st.ok()) return st.error();
  sqlite3_stmt* s = st->get();
  rep->passkeys_read = 0;
  int64_t unreadable = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    rep->passkeys_read++;
    auto user = ColText(s, 0);
    auto cred = ColBytes(s, 1);
    auto key = ColBytes(s, 2);
    auto name = ColText(s, 3);
    std::string user_id = user ? MigratedUserId(*user, src->tenant) : std::string();
    if (!user || !user_ids.count(user_id) || !cred || cred->empty() || cred->size() > 1023 || !key ||
        key->empty() || key->size() > 4096) {
      rep->passkeys_skipped++;
      continue;
    }
    if (name && name->size() > 255) name.reset();
    auto created = ColSeconds(s, 4, &unreadable);
    auto used = ColSeconds(s, 5, &unreadable);
    std::string& out = (*src)[kPasskeys].copy;
    out += user_id;
    out.push_back('\t');
    AppendCopyBytea(out, cred->data(), cred->size());
    out.push_back('\t');
    AppendCopyBytea(out, key->data(), key->size());
    out.push_back('\t');
    AppendCopyOpt(out, name);
    out.push_back('\t');
    AppendCopyInt(out, created ? *created * 1000000 : now);
    out.push_back('\t');
    AppendCopyInt(out, used ? std::optional<int64_t>(*used * 1000000) : std::nullopt);
    out.push_back('\n');
    (*src)[kPasskeys].rows++;
  }
  if (rc != SQLITE_DONE) return SqliteError(db, "reading passkeys");
  if (unreadable > 0)
    rep->warnings.push_back(std::to_string(unreadable) + " passkey timestamp(s) out of range: treated as NULL");
  return {};
}

Status ReadOtherTables(sqlite3* db, SqliteMigrateReport* rep) {
  std::string migrated;
  for (const auto& t : kTables) migrated += std::string(migrated.empty() ? "'" : ", '") + t.source + "'";
  auto st = Prepare(db,
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                    "AND lower(name) NOT IN (" + migrated + ") ORDER BY name");
  if (!st.ok()) return st.error();
  std::vector<std::string> names;
  int rc;
  while ((rc = sqlite3_step(st->get())) == SQLITE_ROW)
    names.push_back(reinterpret_cast<const char*>(sqlite3_column_text(st->get(), 0)));
  if (rc != SQLITE_DONE) return SqliteError(db, "listing tables");
  for (const auto& n : names) {
    auto c = Prepare(db, "SELECT count(*) FROM " + QuoteSqliteIdent(n));
    if (!c.ok()) return c.error();
    if (sqlite3_step(c->get()) != SQLITE_ROW) return SqliteError(db, "counting " + n);
    rep->not_migrated_tables.emplace_back(n, sqlite3_column_int64(c->get(), 0));
  }
  return {};
}

Result<Source> ReadSource(const std::string& path, const std::string& tenant, Micros now, SqliteMigrateReport* rep) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  SqliteDb db(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, "cannot open " + path);
  sqlite3_busy_timeout(db.get(), 5000);
  // One read transaction: users and sessions from the same snapshot even if
  // a Torii server is still writing to the file.
  char* err = nullptr;
  if (sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);
    return SqliteError(db.get(), "begin");
  }
  Source src;
  src.tenant = tenant;
  std::unordered_set<std::string> ids;
  if (auto s = ReadUsers(db.get(), now, &src, &ids, rep); !s.ok()) return s.error();
  if (auto s = ReadSessions(db.get(), now, ids, &src, rep); !s.ok()) return s.error();
  if (auto s = ReadLoginFailures(db.get(), &src, rep); !s.ok()) return s.error();
  if (auto s = ReadOAuthAccounts(db.get(), now, ids, &src, rep); !s.ok()) return s.error();
  if (auto s = ReadPasskeys(db.get(), now, ids, &src, rep); !s.ok()) return s.error();
  if (auto s = ReadOtherTables(db.get(), rep); !s.ok()) return s.error();
  sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr);
  return src;
}

// ---- PostgreSQL side ------------------------------------------------------

// The tenant migrated into, in SQL text. "{t:A}" becomes " AND A.tenant =
// 'T'" and "{other_t:A}" " AND A.tenant <> 'T'"; against a target whose
// schema predates tenants (0014) every row is the default tenant's, and
// they become "" and " AND false". T is a valid tenant name ([a-z0-9_.-]),
// so it needs no escaping. Besides these explicit conditions (a superuser
// bypasses row-level security), each transaction sets torii.tenant to T,
// which the tenant policies and the tenant column's default read.
struct TenantSql {
  std::string name;     // T
  bool column = false;  // the target has the tenant column

  std::string operator()(std::string_view sql) const {
    std::string out;
    size_t at = 0;
    for (;;) {
      size_t open = sql.find('{', at);
      if (open == std::string_view::npos) break;
      size_t colon = sql.find(':', open);
      size_t close = sql.find('}', open);
      out.append(sql.substr(at, open - at));
      std::string_view kind = sql.substr(open + 1, colon - open - 1);
      std::string alias(sql.substr(colon + 1, close - colon - 1));
      if (kind == "t") {
        if (column) out += " AND " + alias + ".tenant = '" + name + "'";
      } else {
        out += column ? " AND " + alias + ".tenant <> '" + name + "'" : std::string(" AND false");
      }
      at = close + 1;
    }
    out.append(sql.substr(at));
    return out;
  }
};

Result<int64_t> ScalarInt(PGconn* conn, const std::string& sql) {
  auto r = ExecBlocking(conn, sql);
  if (!r.ok()) return r.error();
  if (PQntuples(r->get()) != 1 || PQgetisnull(r->get(), 0, 0)) return int64_t{0};
  return static_cast<int64_t>(std::stoll(PQgetvalue(r->get(), 0, 0)));
}

Result<std::vector<std::string>> Column(PGconn* conn, const std::string& sql) {
  auto r = ExecBlocking(conn, sql);
  if (!r.ok()) return r.error();
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r->get()); i++) out.emplace_back(PQgetvalue(r->get(), i, 0));
  return out;
}

Status CopyIn(PGconn* conn, const std::string& sql, const std::string& data) {
  PgResult start(PQexec(conn, sql.c_str()));
  if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN) {
    if (!start || PQstatus(conn) == CONNECTION_BAD) return ErrorFromConn(conn);
    return ErrorFromResult(start.get());
  }
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(conn, data.data() + off, static_cast<int>(n)) != 1) return ErrorFromConn(conn);
  }
  if (PQputCopyEnd(conn, nullptr) != 1) return ErrorFromConn(conn);
  Status status;
  while (PGresult* r = PQgetResult(conn)) {
    PgResult res(r);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && status.ok()) status = ErrorFromResult(r);
  }
  return status;
}

struct TargetState {
  bool has_tables = false;  // public.users and public.sessions exist
  bool has_tenants = false;  // public.tenants exists (schema/0014)
  int pending = 0;          // embedded migrations not recorded
};

Result<TargetState> InspectTarget(PGconn* conn) {
  TargetState t;
  auto tables = ScalarInt(conn,
                          "SELECT (to_regclass('public.users') IS NOT NULL AND "
                          "to_regclass('public.sessions') IS NOT NULL)::int");
  if (!tables.ok()) return tables.error();
  t.has_tables = *tables == 1;
  auto tenants = ScalarInt(conn, "SELECT (to_regclass('public.tenants') IS NOT NULL)::int");
  if (!tenants.ok()) return tenants.error();
  t.has_tenants = *tenants == 1;
  std::set<int> recorded;
  auto has_log = ScalarInt(conn, "SELECT (to_regclass('public.torii_schema_migrations') IS NOT NULL)::int");
  if (!has_log.ok()) return has_log.error();
  if (*has_log == 1) {
    auto v = Column(conn, "SELECT version FROM public.torii_schema_migrations");
    if (!v.ok()) return v.error();
    for (const auto& s : *v) recorded.insert(std::stoi(s));
  }
  for (const auto& m : EmbeddedMigrations())
    if (!recorded.count(m.version)) t.pending++;
  return t;
}

// Creates the staging tables and fills them with COPY; before_schema_only
// stages the tables that the validation pass before migrations needs.
Status Stage(PGconn* conn, const Source& src, bool before_schema_only) {
  std::string ddl, analyze;
  for (const auto& t : kTables) {
    ddl += std::string(ddl.empty() ? "" : ";") + "CREATE TEMP TABLE " + t.staging + " (" + t.columns + ") ON COMMIT DROP";
    analyze += std::string(analyze.empty() ? "" : "; ") + "ANALYZE " + t.staging;
  }
  auto made = ExecBlocking(conn, ddl);
  if (!made.ok()) return made.error();
  for (int i = 0; i < kTableCount; i++) {
    const auto& t = kTables[i];
    if (before_schema_only && !t.before_schema) continue;
    if (src[Table(i)].rows == 0) continue;
    if (auto s = CopyIn(conn, std::string("COPY ") + t.staging + " FROM STDIN", src[Table(i)].copy); !s.ok()) return s;
  }
  auto an = ExecBlocking(conn, analyze);
  if (!an.ok()) return an.error();
  return {};
}

// Rows of the source's tables that are already in the target, by table
// (0 where the target lacks the table or the count is not kept).
using Present = std::array<int64_t, kTableCount>;

Result<Present> CountPresent(PGconn* conn, bool target_tables, const TenantSql& ts) {
  Present present{};
  if (!target_tables) return present;
  for (int i = 0; i < kTableCount; i++) {
    const auto& t = kTables[i];
    if (t.present_sql == nullptr) continue;
    auto exists = ScalarInt(conn, std::string("SELECT (to_regclass('") + t.needs + "') IS NOT NULL)::int");
    if (!exists.ok()) return exists.error();
    if (*exists != 1) continue;
    auto n = ScalarInt(conn, ts(t.present_sql));
    if (!n.ok()) return n.error();
    present[i] = *n;
  }
  return present;
}

// Each a line of the refusal; empty when the data may be written.
Result<std::vector<std::string>> Check(PGconn* conn, bool target_tables, const TenantSql& ts) {
  std::vector<std::string> problems;
  auto dup_ids = Column(conn,
                        "SELECT string_agg(torii_id, ', ' ORDER BY torii_id) FROM torii_import_users "
                        "GROUP BY id HAVING count(*) > 1 ORDER BY 1");
  if (!dup_ids.ok()) return dup_ids.error();
  for (const auto& d : *dup_ids) problems.push_back("user ids that map to the same uuid: " + d);

  auto case_dups = Column(conn,
                          "SELECT string_agg(email, ', ' ORDER BY email) FROM torii_import_users "
                          "GROUP BY lower(email) HAVING count(*) > 1 ORDER BY 1");
  if (!case_dups.ok()) return case_dups.error();
  for (const auto& d : *case_dups) problems.push_back("emails equal but for case: " + d);

  auto pair_dups = ScalarInt(conn,
                             "SELECT count(*) FROM (SELECT 1 FROM torii_import_oauth GROUP BY provider, subject "
                             "HAVING count(DISTINCT user_id) > 1) d");
  if (!pair_dups.ok()) return pair_dups.error();
  if (*pair_dups > 0)
    problems.push_back(std::to_string(*pair_dups) + " OAuth (provider, subject) pair(s) linked to more than one user");
  auto cred_dups = ScalarInt(conn,
                             "SELECT count(*) FROM (SELECT 1 FROM torii_import_passkeys GROUP BY credential_id "
                             "HAVING count(*) > 1) d");
  if (!cred_dups.ok()) return cred_dups.error();
  if (*cred_dups > 0) problems.push_back(std::to_string(*cred_dups) + " passkey credential id(s) repeated");

  if (!target_tables) return problems;

  // The account tables exist once migration 0010 is applied; before that
  // nothing in the target can collide with them.
  auto has_accounts = ScalarInt(conn, "SELECT (to_regclass('public.oauth_accounts') IS NOT NULL AND "
                                      "to_regclass('public.passkeys') IS NOT NULL)::int");
  if (!has_accounts.ok()) return has_accounts.error();
  if (*has_accounts == 1) {
    auto pairs = ScalarInt(conn, ts("SELECT count(*) FROM torii_import_oauth s JOIN public.oauth_accounts t "
                                    "ON t.provider = s.provider AND t.subject = s.subject AND t.user_id <> s.user_id{t:t}"));
    if (!pairs.ok()) return pairs.error();
    if (*pairs > 0)
      problems.push_back(std::to_string(*pairs) + " OAuth account(s) already linked to another user in the target");
    auto creds = ScalarInt(conn, ts("SELECT count(*) FROM torii_import_passkeys s JOIN public.passkeys t "
                                    "ON t.credential_id = s.credential_id AND t.user_id <> s.user_id{t:t}"));
    if (!creds.ok()) return creds.error();
    if (*creds > 0)
      problems.push_back(std::to_string(*creds) + " passkey(s) whose credential id another user has in the target");
  }

  auto taken = Column(conn, ts("SELECT s.email || ' (the target has ' || u.email || ')' FROM torii_import_users s "
                               "JOIN public.users u ON lower(u.email) = lower(s.email) AND u.id <> s.id{t:u} "
                               "ORDER BY 1"));
  if (!taken.ok()) return taken.error();
  for (const auto& t : *taken) problems.push_back("email already taken in the target by another user: " + t);

  auto clash = ScalarInt(conn, ts("SELECT (SELECT count(*) FROM torii_import_sessions s JOIN public.sessions t "
                                  "ON t.id = s.id AND t.token_hash <> s.token_hash) + "
                                  "(SELECT count(*) FROM torii_import_sessions s JOIN public.sessions t "
                                  "ON t.token_hash = s.token_hash AND t.id <> s.id{t:t})"));
  if (!clash.ok()) return clash.error();
  if (*clash > 0)
    problems.push_back(std::to_string(*clash) +
                       " session(s) collide with a different session already in the target (same id or token)");

  // Ids are unique across tenants: one taken by another tenant's row
  // cannot be written here.
  auto elsewhere = ScalarInt(conn, ts("SELECT (SELECT count(*) FROM torii_import_users s JOIN public.users u "
                                      "ON u.id = s.id{other_t:u}) + (SELECT count(*) FROM torii_import_sessions s "
                                      "JOIN public.sessions t ON t.id = s.id{other_t:t})"));
  if (!elsewhere.ok()) return elsewhere.error();
  if (*elsewhere > 0)
    problems.push_back(std::to_string(*elsewhere) + " user or session id(s) already used by another tenant");
  return problems;
}

Error Refusal(const std::vector<std::string>& problems) {
  std::string m = "refusing to migrate, nothing was written:";
  for (const auto& p : problems) m += "\n  " + p;
  return Error::InvalidArgument(m);
}

// Verify before committing: every staged row of a verified table is in the
// target, and where each new row is one insert, as many were inserted as
// were missing. The error names the table that fell short.
Status Verify(PGconn* conn, const Source& src, const SqliteMigrateReport& rep, const TenantSql& ts) {
  for (int i = 0; i < kTableCount; i++) {
    const auto& t = kTables[i];
    if (t.verify_sql == nullptr) continue;
    int64_t staged = src[Table(i)].rows;
    auto found = ScalarInt(conn, ts(t.verify_sql));
    if (!found.ok()) return found.error();
    if (*found != staged)
      return Error::Internal(std::string("verification failed, nothing was written: expected ") +
                             std::to_string(staged) + " " + t.name + " rows in the target, found " +
                             std::to_string(*found));
    int64_t missing = staged - rep.*t.present;
    if (t.exact && rep.*t.inserted != missing)
      return Error::Internal(std::string("verification failed, nothing was written: ") + std::to_string(missing) +
                             " " + t.name + " rows were missing from the target, " +
                             std::to_string(rep.*t.inserted) + " inserted");
  }
  return {};
}

Status TargetTotals(PGconn* conn, SqliteMigrateReport* rep, const TenantSql& ts) {
  auto u = ScalarInt(conn, ts("SELECT count(*) FROM public.users u WHERE true{t:u}"));
  if (!u.ok()) return u.error();
  auto s = ScalarInt(conn, ts("SELECT count(*) FROM public.sessions s WHERE true{t:s}"));
  if (!s.ok()) return s.error();
  rep->target_users = *u;
  rep->target_sessions = *s;
  return {};
}

// Rolls back on every path that does not reach Commit(), so a failed check
// or a failed statement leaves the target as it was.
class Txn {
 public:
  explicit Txn(PGconn* conn) : conn_(conn) {}
  ~Txn() {
    if (open_) (void)ExecBlocking(conn_, "ROLLBACK");
  }
  Status Begin() {
    auto r = ExecBlocking(conn_, "BEGIN");
    if (!r.ok()) return r.error();
    open_ = true;
    return {};
  }
  Status Commit() {
    open_ = false;
    auto r = ExecBlocking(conn_, "COMMIT");
    if (!r.ok()) return r.error();
    return {};
  }

 private:
  PGconn* conn_;
  bool open_ = false;
};

int64_t Tuples(const PgResult& r) {
  const char* n = PQcmdTuples(r.get());
  return n && *n ? std::stoll(n) : 0;
}

}  // namespace

Result<SqliteMigrateReport> MigrateFromSqlite(const SqliteMigrateOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  SqliteMigrateReport rep;
  rep.dry_run = opt.dry_run;
  Micros now = opt.now != 0 ? opt.now : NowMicros();

  // Progress on stderr: a large migration takes a while, and the phases
  // show where the time goes.
  auto lap = t0;
  auto step = [&](const char* what) {
    auto t = std::chrono::steady_clock::now();
    TLOG_INFO("migrate: %s (%.2f s)", what, std::chrono::duration<double>(t - lap).count());
    lap = t;
  };

  const std::string tenant = opt.tenant.empty() ? std::string(kDefaultTenant) : opt.tenant;
  if (!IsValidTenantName(tenant)) {
    return Error::InvalidArgument("tenant: a tenant name is 1 to 64 bytes of [a-z0-9_.-]");
  }
  auto src = ReadSource(opt.sqlite_path, tenant, now, &rep);
  if (!src.ok()) return src.error();
  step("read the SQLite database");

  auto conn_r = ConnectBlocking(opt.target);
  if (!conn_r.ok()) return conn_r.error();
  PGconn* conn = conn_r->get();
  // Staging tables of a few hundred MB should stay in memory where they can.
  (void)ExecBlocking(conn, "SET temp_buffers = '256MB'");
  (void)ExecBlocking(conn, "SET statement_timeout = 0");

  auto target = InspectTarget(conn);
  if (!target.ok()) return target.error();
  rep.migrations_pending = target->pending;
  rep.tenant = tenant;

  // The tenant must exist: a misspelt --tenant must not scatter users into
  // a new tenant. A schema before tenants has the default tenant only.
  if (target->has_tenants) {
    auto known = ScalarInt(conn, "SELECT count(*) FROM public.tenants WHERE name = '" + tenant + "'");
    if (!known.ok()) return known.error();
    if (*known == 0) {
      return Error::NotFound("the target has no tenant named " + tenant + ": create it first (torii tenant add " +
                             tenant + ")");
    }
    // A role bound to a tenant (tenant_roles) acts in that tenant whatever
    // torii.tenant says: its rows would not land where they are checked.
    auto acts_in = Column(conn, "SELECT public.torii_current_tenant() FROM (SELECT set_config('torii.tenant', '" +
                                    tenant + "', false)) s");
    if (!acts_in.ok()) return acts_in.error();
    if (acts_in->size() != 1 || (*acts_in)[0] != tenant) {
      return Error::Forbidden("the --to role is bound to tenant " + (acts_in->empty() ? "?" : (*acts_in)[0]) +
                              " (tenant_roles): it cannot import into " + tenant);
    }
  } else if (tenant != kDefaultTenant) {
    return Error::NotFound("the target has no tenant named " + tenant +
                           " (its schema predates tenants): start toriid on it once, create the tenant (torii "
                           "tenant add " + tenant + "), then migrate");
  }
  // Every transaction below acts in the tenant.
  const std::string set_tenant = "SELECT set_config('torii.tenant', '" + tenant + "', true)";
  TenantSql ts{tenant, target->has_tenants};

  auto finish = [&]() {
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  // Validation pass: everything except the writes, rolled back. It is all a
  // dry run does, and it runs before applying migrations so that refused
  // data leaves a target without toriid's schema untouched.
  if (opt.dry_run || target->pending > 0) {
    Txn txn(conn);
    if (auto s = txn.Begin(); !s.ok()) return s.error();
    if (auto r = ExecBlocking(conn, set_tenant); !r.ok()) return r.error();
    if (auto s = Stage(conn, *src, !target->has_tables); !s.ok()) return s.error();
    step("staged the rows for validation");
    auto problems = Check(conn, target->has_tables, ts);
    if (!problems.ok()) return problems.error();
    step("validated");
    if (!problems->empty()) return Refusal(*problems);
    if (opt.dry_run) {
      auto present = CountPresent(conn, target->has_tables, ts);
      if (!present.ok()) return present.error();
      for (int i = 0; i < kTableCount; i++) {
        const auto& t = kTables[i];
        if (t.present == nullptr) continue;
        rep.*t.present = (*present)[i];
        rep.*t.inserted = (*src)[Table(i)].rows - (*present)[i];
      }
      if (target->has_tables)
        if (auto s = TargetTotals(conn, &rep, ts); !s.ok()) return s.error();
      finish();
      return rep;  // Txn rolls back
    }
  }

  if (target->pending > 0) {
    auto applied = ApplyMigrations(conn);
    if (!applied.ok()) return applied.error();
    rep.migrations_applied = applied->applied;
    step("applied toriid's migrations");
  }
  ts.column = true;  // the migrations include 0014

  Txn txn(conn);
  if (auto s = txn.Begin(); !s.ok()) return s.error();
  if (auto r = ExecBlocking(conn, set_tenant); !r.ok()) return r.error();
  // Writers wait until we commit, so what the checks saw is what we write
  // against. Readers (get_session, ...) go on.
  auto lock = ExecBlocking(conn, "LOCK TABLE public.users, public.sessions, public.oauth_accounts, public.passkeys "
                                "IN SHARE ROW EXCLUSIVE MODE");
  if (!lock.ok()) return lock.error();
  if (auto s = Stage(conn, *src, false); !s.ok()) return s.error();
  step("staged the rows");
  auto problems = Check(conn, true, ts);
  if (!problems.ok()) return problems.error();
  if (!problems->empty()) return Refusal(*problems);
  auto present = CountPresent(conn, true, ts);
  if (!present.ok()) return present.error();
  step("checked the rows against the target");
  auto missing = [&](int i) { return (*src)[Table(i)].rows > (*present)[i]; };
  bool bulk_rows = false;
  for (int i = 0; i < kTableCount; i++) {
    if (kTables[i].present != nullptr) rep.*kTables[i].present = (*present)[i];
    bulk_rows = bulk_rows || (kTables[i].bulk && missing(i));
  }

  // Bulk-import mode (schema/0007): the row triggers stay silent for this
  // transaction's INSERTs, and one summary (an audit row and a torii.resync
  // event) stands for them at the end. Per-row NOTIFYs and audit rows were
  // most of a large migration's time, and nobody can use 500,000
  // session.created events one by one. The database honours the switch
  // only for a role that may act as the tables' owner; for any other role
  // the rows are published and audited one by one, as before, and no
  // summary is written.
  bool bulk = false;
  if (bulk_rows) {
    auto on = ScalarInt(conn,
                        "SELECT (set_config('torii.bulk_import', 'on', true) = 'on' AND public.torii_bulk_import_allowed() "
                        "AND has_function_privilege('public.torii_bulk_import_summary(bigint, bigint)', 'EXECUTE'))::int");
    if (!on.ok()) return on.error();
    bulk = *on == 1;
    if (!bulk) {
      auto off = ExecBlocking(conn, "SELECT set_config('torii.bulk_import', 'off', true)");
      if (!off.ok()) return off.error();
      rep.warnings.push_back(
          "the target role may not act as the owner of users and sessions: every row was published and audited "
          "one by one (slower)");
    }
  }

  for (int i = 0; i < kTableCount; i++) {
    const auto& t = kTables[i];
    if (!missing(i)) continue;
    auto ins = ExecBlocking(conn, ts(t.insert_sql));
    if (!ins.ok()) return ins.error();
    rep.*t.inserted = Tuples(*ins);
    step(t.inserted_step);
  }

  if (auto s = Verify(conn, *src, rep, ts); !s.ok()) return s.error();
  rep.verified = true;

  if (bulk) {
    // Before COMMIT, in the same transaction: the summary's NOTIFY and
    // audit row exist exactly when the rows do.
    std::string nu = std::to_string(rep.users_new), ns = std::to_string(rep.sessions_new);
    auto sum = ExecParamsBlocking(conn, "SELECT public.torii_bulk_import_summary($1::int8, $2::int8)",
                                  {nu.c_str(), ns.c_str()});
    if (!sum.ok()) return sum.error();
  }

  if (rep.users_new == 0 && rep.sessions_new == 0 && rep.oauth_new == 0 && rep.passkeys_new == 0 &&
      rep.login_failures_new == 0) {
    // Nothing to write: roll back (the Txn does) rather than commit an
    // empty transaction, so a re-run leaves no trace at all.
  } else if (auto s = txn.Commit(); !s.ok()) {
    return s.error();
  } else {
    step("verified and committed");
  }
  if (auto s = TargetTotals(conn, &rep, ts); !s.ok()) return s.error();
  finish();
  return rep;
}

std::string FormatMigrateReport(const SqliteMigrateReport& r) {
  std::string o;
  char line[256];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(line, sizeof line, fmt, args...);
    o += line;
    o += '\n';
  };
  const char* would = r.dry_run ? "would insert" : "inserted";
  if (r.dry_run) o += "dry run: nothing was written\n";
  if (!r.tenant.empty() && r.tenant != kDefaultTenant) o += "tenant:   " + r.tenant + "\n";
  if (r.migrations_pending > 0) {
    if (r.dry_run) add("schema:   would apply %d toriid migration(s)", r.migrations_pending);
    else add("schema:   applied %d toriid migration(s)", r.migrations_applied);
  }
  add("users:    %lld read, %s %lld, %lld already present (%lld non-uuid ids mapped to uuidv5)",
      static_cast<long long>(r.users_read), would, static_cast<long long>(r.users_new),
      static_cast<long long>(r.users_present), static_cast<long long>(r.users_mapped_ids));
  add("sessions: %lld read (%s), %s %lld, %lld already present", static_cast<long long>(r.sessions_read),
      r.session_shape.c_str(), would, static_cast<long long>(r.sessions_new), static_cast<long long>(r.sessions_present));
  add("          not copied: %lld expired, %lld without a user, %lld without a token",
      static_cast<long long>(r.sessions_expired), static_cast<long long>(r.sessions_orphaned),
      static_cast<long long>(r.sessions_no_token));
  if (r.login_failures_read > 0)
    add("login failures: %lld read, %s %lld, %lld skipped (no email or time)",
        static_cast<long long>(r.login_failures_read), r.dry_run ? "not checked in a dry run:" : "inserted",
        static_cast<long long>(r.login_failures_new), static_cast<long long>(r.login_failures_skipped));
  if (r.oauth_read >= 0)
    add("oauth_accounts: %lld read, %s %lld, %lld already present, %lld skipped (no such user or unusable)",
        static_cast<long long>(r.oauth_read), would, static_cast<long long>(r.oauth_new),
        static_cast<long long>(r.oauth_present), static_cast<long long>(r.oauth_skipped));
  if (r.passkeys_read >= 0)
    add("passkeys: %lld read, %s %lld, %lld already present, %lld skipped (no such user or unusable)",
        static_cast<long long>(r.passkeys_read), would, static_cast<long long>(r.passkeys_new),
        static_cast<long long>(r.passkeys_present), static_cast<long long>(r.passkeys_skipped));
  for (const auto& [t, n] : r.not_migrated_tables)
    add("not migrated: table %s (%lld rows)", t.c_str(), static_cast<long long>(n));
  for (const auto& c : r.not_migrated_columns) add("not migrated: column %s", c.c_str());
  for (const auto& w : r.warnings) o += "warning: " + w + "\n";
  if (r.target_users >= 0)
    add("target:   %lld users, %lld sessions%s", static_cast<long long>(r.target_users),
        static_cast<long long>(r.target_sessions), r.dry_run ? " (before)" : "");
  if (!r.dry_run) {
    if (r.verified) o += "verified: every source user and live session is in the target\n";
    if (r.NothingToDo()) o += "nothing to do: the target already holds everything\n";
  }
  add("time:     %.2f s", r.seconds);
  return o;
}

}  // namespace torii
