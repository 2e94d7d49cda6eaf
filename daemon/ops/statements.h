// Every SQL statement the request path runs, by id, prepared once on each
// pooled connection. Statements that act in a tenant say so with `$T`
// (StatementDef::tenant_param). Parameters are text, except those marked binary
// (bytea). Each family's SQL is beside the code that reads its columns
// (ops_sessions.cpp, ...); statements.cpp joins them. Constant data, built
// on first use; any thread.
#pragma once

#include <cstdint>

namespace torii::daemon {

enum class Stmt : uint8_t {
  kSetActor,
  kCreateUser,
  kGetUser,
  kGetUserByEmail,
  kUpdateUser,
  kVerifyEmail,
  kDeleteUser,
  kListUsers,
  kCreateSession,
  kGetSessionByToken,
  kGetSessionById,
  kExtendSessionByToken,
  kExtendSessionById,
  kDeleteSessionByToken,
  kDeleteSessionById,
  kListSessions,
  kDeleteUserSessions,
  kSearchUsers,
  kListAudit,
  kListAuditByTable,
  kListAuditByRecord,
  kGetSessionsByTokens,
  // tokens, login guard, JWT deny-list (ops_tokens, ops_guard, ops_jwt)
  kCreateToken,
  kCheckToken,
  kUseToken,
  kDeleteUserTokens,
  kGuardLock,
  kInsertLoginFailure,
  kCountLoginFailures,
  kLoginFailures,
  kClearLoginFailures,
  kSetUserLock,
  kGetUserLock,
  kRevokeJwt,
  kRevokeUserJwts,
  kIsJwtRevoked,
  kListJwtRevocations,
  // Section 5, accounts (issue 19): users, OAuth, passkeys.
  kGetOrCreateUserInsert,
  kGetOrCreateUserSelect,
  kLinkOAuthInsert,
  kLinkOAuthSelect,
  kGetOAuthAccount,
  kGetUserByOAuth,
  kListOAuthAccounts,
  kUnlinkOAuthAccount,
  kPutOAuthState,
  kTakeOAuthState,
  kAddPasskey,
  kGetPasskey,
  kListPasskeys,
  kUsePasskey,
  kDeletePasskey,
  kDeleteUserPasskeys,
  kPutPasskeyChallenge,
  kTakePasskeyChallenge,
  // get_session with include_expired: the row whatever its expiry.
  kGetAnySessionByToken,
  kGetAnySessionById,
  // Tenants (ops_tenants.cpp): the pool's switch of torii.tenant, and the
  // admin operations.
  kSetTenant,
  kTenantExists,
  kCreateTenant,
  kListTenants,
  kTenantCounts,
  kCount,
};

struct StatementDef {
  Stmt id;
  const char* name;     // prepared statement name
  const char* sql;
  uint32_t binary_params;  // bit i set: parameter i+1 is binary
  // The statement that answers many of these at once (see Pool's lookup
  // batches), or kCount. It takes the keys (this statement's $1) as one
  // binary array and returns this statement's columns plus the key each row
  // answers (bytea, in hex text) in the column named kBatchKeyColumn.
  Stmt batched = Stmt::kCount;
  // Set by the statement table, not by the families: the index of the
  // tenant parameter, or -1. A family writes `$T` in its SQL wherever the
  // request's tenant goes; the table replaces it with the parameter after
  // the statement's own highest one, and BuildPlan (ops.h) appends the
  // tenant to every command of such a statement.
  int tenant_param = -1;
};

// The name of a batched statement's key column (see StatementDef::batched).
constexpr const char* kBatchKeyColumn = "batch_key";

const StatementDef& Statement(Stmt s);
constexpr int kStatementCount = static_cast<int>(Stmt::kCount);

}  // namespace torii::daemon
