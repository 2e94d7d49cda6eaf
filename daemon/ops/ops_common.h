// What the operation families (ops_<family>.cpp) share: packing columns
// into replies, the argument rules used by more than one family, and the
// family tables that ops.cpp joins into one. Pure functions; no I/O, no
// state, any thread (the daemon calls them on its loop thread).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ops/ops.h"
#include "ops/sql.h"

namespace torii::daemon {

constexpr int64_t kMaxTtlS = 100LL * 366 * 24 * 3600;
constexpr size_t kMaxTokenBytes = 1024;

// Returns the error of a Result-valued expression from the enclosing
// builder, or binds its value to `var`.
#define TRY(var, expr)             \
  auto var = (expr);               \
  if (!var.ok()) return var.error()

// The columns of a user, read by name (UserFields); the second form
// without the hash. Used by the users and OAuth families.
#define USER_COLS                                                                                           \
  "id, email, password_hash, " US("email_verified_at") " AS email_verified_at_us, metadata, " US("created_at") \
  " AS created_at_us, " US("updated_at") " AS updated_at_us, name, " US("locked_at") " AS locked_at_us"
#define USER_COLS_NO_HASH                                                                                     \
  "id, email, NULL::text AS password_hash, " US("email_verified_at") " AS email_verified_at_us, metadata, "   \
  US("created_at") " AS created_at_us, " US("updated_at") " AS updated_at_us, name, " US("locked_at")         \
  " AS locked_at_us"

// --- packing columns (nil when the column is NULL) ---
void PackText(Packer& pk, const PGresult* r, int row, int col);
// An int8 microseconds column as a timestamp.
void PackMicros(Packer& pk, const PGresult* r, int row, int col);
void PackJsonb(Packer& pk, const PGresult* r, int row, int col);
// A bytea column (hex text from libpq) as msgpack bin.
void PackBytea(Packer& pk, const PGresult* r, int row, int col);
// A reply key, the result column it is read from (by name) and how it is
// packed: a family lists its entity's fields once, in reply order.
using PackColumnFn = void (*)(Packer& pk, const PGresult* r, int row, int col);
struct Field {
  const char* key;
  const char* column;
  PackColumnFn pack;
};
// The column of each field in a result, found by name once per result.
class FieldColumns {
 public:
  static constexpr size_t kMaxFields = 16;
  FieldColumns(const PGresult* r, std::span<const Field> fields);
  // Every field's column is in the result.
  bool complete() const { return complete_; }
  // Packs a map of the fields of row `row`, but the one whose key is
  // `omit`, sized for `extra` more entries that the caller packs after it.
  void Pack(Packer& pk, const PGresult* r, int row, size_t extra = 0, const char* omit = nullptr) const;

 private:
  std::span<const Field> fields_;
  int cols_[kMaxFields] = {};
  bool complete_ = true;
};
// An int8 column as an unsigned integer (nil when NULL).
void PackUint(Packer& pk, const PGresult* r, int row, int col);
// Whether a boolean column of row `row` is true; false when absent or NULL.
bool ColumnIsTrue(const PGresult* r, int row, const char* column);

// The fields of a User (USER_COLS), in reply order.
std::span<const Field> UserFields();
// Packs a User from row `row` (`user`: FieldColumns of UserFields()); the
// hash only where the contract returns it.
void PackUser(Packer& pk, const PGresult* r, int row, const FieldColumns& user, bool with_hash);

// The error for a result that lacks a column its renderer reads (a bug).
Error MissingColumns(std::string_view what);

// --- renderers more than one family uses ---
Status RenderUser(const PGresult* r, const Plan& plan, Packer& pk);  // with the hash
// {"deleted": n} from the command's row count.
Status RenderDeletedCount(const PGresult* r, const Plan& plan, Packer& pk);
// {} (an empty map), whatever the statement returned.
Status RenderEmpty(const PGresult* r, const Plan& plan, Packer& pk);
// The number of rows a command changed (PQcmdTuples).
uint64_t CmdTuples(const PGresult* r);

// --- arguments ---
// One of two alternative arguments, exactly one present: 0 for `a`, 1 for `b`.
Result<int> OneOf(const Args& args, const char* a, const char* b);
// The SHA-256 digest of a bearer secret, as a binary statement parameter.
std::string DigestParam(std::string_view token);
// `token`: a view into the request, 1 to 1024 bytes; it is only hashed,
// before the request goes.
Result<std::string_view> TokenArg(const Args& args);
// Adds the expiry parameters ($micros, $ttl) from `expires_at` or `ttl_s`.
Status AddExpiry(const Args& args, Command& cmd);

// --- section 5, accounts (issue 19) ---
// A User without the hash (the results that do not carry it).
Status RenderUserNoHash(const PGresult* r, const Plan& plan, Packer& pk);
// {"expires_at"} from a statement returning one row of it (the put_* ops).
Status RenderExpiresAt(const PGresult* r, const Plan& plan, Packer& pk);
// `name` of a user: a string of at most 255 bytes, or nil/absent.
Result<std::optional<std::string>> UserNameArg(const Args& args);
// A string argument of `min` to `max` bytes (a view into the request);
// nullopt when absent or nil and not `required`.
Result<std::optional<std::string_view>> SizedStrArg(const Args& args, std::string_view key, size_t min, size_t max,
                                                    bool required);
// A binary argument (msgpack bin; a str too when `str_ok`) of `min` to
// `max` bytes; nullopt when absent or nil and not `required`.
Result<std::optional<std::string_view>> BinArg(const Args& args, std::string_view key, size_t min, size_t max,
                                               bool required, bool str_ok = false);
// A required `ttl_s`: positive, at most 100 years.
Result<int64_t> TtlArg(const Args& args);

// --- the families, in ops_<family>.cpp: operations and their statements
// (the sessions family's are in ops_sessions.h) ---
std::span<const StatementDef> ActorStatements();  // ops.cpp
std::span<const StatementDef> UserStatements();
std::span<const StatementDef> AuditStatements();
std::span<const StatementDef> TokenStatements();
std::span<const StatementDef> GuardStatements();
std::span<const StatementDef> JwtStatements();
std::span<const StatementDef> OAuthStatements();
std::span<const StatementDef> PasskeyStatements();
std::span<const StatementDef> TenantStatements();
std::span<const OpDef> UserOps();
std::span<const OpDef> SessionOps();
std::span<const OpDef> AuditOps();
std::span<const OpDef> TokenOps();
std::span<const OpDef> GuardOps();
std::span<const OpDef> JwtOps();
std::span<const OpDef> OAuthOps();
std::span<const OpDef> PasskeyOps();
std::span<const OpDef> TenantOps();

}  // namespace torii::daemon
