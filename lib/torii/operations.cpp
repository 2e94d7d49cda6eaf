// The operation table. A new operation gets its row here first; the daemon's
// unit tests fail until it implements the row, and the clients' until they
// list it.
#include "torii/operations.h"

namespace torii {

namespace {

// name, read_only, retry_safe, local
constexpr OperationInfo kOperations[] = {
    // section 2
    {"ping", true, true, true},
    {"stats", true, true, true},
    {"create_user", false, false, false},
    {"get_user", true, true, false},
    {"get_user_by_email", true, true, false},
    {"update_user", false, false, false},
    {"verify_email", false, false, false},
    {"delete_user", false, false, false},
    {"search_users", true, true, false},
    {"list_users", true, true, false},
    {"create_session", false, false, false},
    {"get_session", true, true, false},
    {"extend_session", false, false, false},
    {"delete_session", false, false, false},
    {"list_sessions", true, true, false},
    {"delete_user_sessions", false, false, false},
    {"cleanup_expired_sessions", false, false, true},
    {"list_audit", true, true, false},
    // section 5: accounts
    {"get_or_create_user", false, false, false},
    {"link_oauth_account", false, false, false},
    {"get_oauth_account", true, true, false},
    {"get_user_by_oauth", true, true, false},
    {"list_oauth_accounts", true, true, false},
    {"unlink_oauth_account", false, false, false},
    {"put_oauth_state", false, false, false},
    {"take_oauth_state", false, false, false},
    {"add_passkey", false, false, false},
    {"get_passkey", true, true, false},
    {"list_passkeys", true, true, false},
    {"use_passkey", false, false, false},
    {"delete_passkey", false, false, false},
    {"delete_user_passkeys", false, false, false},
    {"put_passkey_challenge", false, false, false},
    {"take_passkey_challenge", false, false, false},
    // section 5: secure tokens, login guard, JWT deny-list
    {"create_token", false, false, false},
    {"check_token", true, true, false},
    {"use_token", false, false, false},
    {"delete_user_tokens", false, false, false},
    {"record_login_failure", false, false, false},
    {"login_failures", true, true, false},
    {"clear_login_failures", false, false, false},
    {"set_user_lock", false, false, false},
    {"get_user_lock", true, true, false},
    {"revoke_jwt", false, false, false},
    {"revoke_user_jwts", false, false, false},
    {"is_jwt_revoked", true, true, false},
    {"list_jwt_revocations", true, true, false},
    // section 6: tenants (admin: refused to keys bound to a tenant)
    {"create_tenant", false, false, false},
    {"list_tenants", true, true, false},
};

}  // namespace

std::span<const OperationInfo> Operations() { return kOperations; }

const OperationInfo* FindOperation(std::string_view name) {
  for (const OperationInfo& op : kOperations) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

}  // namespace torii
