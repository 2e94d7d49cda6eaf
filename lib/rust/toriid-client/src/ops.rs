//! The protocol's operation table, the same rows in the same order as the
//! C++ `torii::Operations()` (lib/torii/operations.cpp) and the Python
//! client's `OPERATIONS`; the test `ops_table` compares them.

/// One operation of the protocol and the properties the client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The operation's name on the wire.
    pub name: &'static str,
    /// Writes nothing.
    pub read_only: bool,
    /// Safe to send again, to this or another daemon, when no reply came.
    pub retry_safe: bool,
    /// Answered by the daemon itself, not by a statement.
    pub local: bool,
}

const fn op(name: &'static str, read_only: bool, retry_safe: bool, local: bool) -> Operation {
    Operation {
        name,
        read_only,
        retry_safe,
        local,
    }
}

/// Every operation, in the order of PROTOCOL.md's tables.
pub const OPERATIONS: &[Operation] = &[
    op("ping", true, true, true),
    op("stats", true, true, true),
    op("create_user", false, false, false),
    op("get_user", true, true, false),
    op("get_user_by_email", true, true, false),
    op("update_user", false, false, false),
    op("verify_email", false, false, false),
    op("delete_user", false, false, false),
    op("search_users", true, true, false),
    op("list_users", true, true, false),
    op("create_session", false, false, false),
    op("get_session", true, true, false),
    op("extend_session", false, false, false),
    op("delete_session", false, false, false),
    op("list_sessions", true, true, false),
    op("delete_user_sessions", false, false, false),
    op("cleanup_expired_sessions", false, false, true),
    op("list_audit", true, true, false),
    op("get_or_create_user", false, false, false),
    op("link_oauth_account", false, false, false),
    op("get_oauth_account", true, true, false),
    op("get_user_by_oauth", true, true, false),
    op("list_oauth_accounts", true, true, false),
    op("unlink_oauth_account", false, false, false),
    op("put_oauth_state", false, false, false),
    op("take_oauth_state", false, false, false),
    op("add_passkey", false, false, false),
    op("get_passkey", true, true, false),
    op("list_passkeys", true, true, false),
    op("use_passkey", false, false, false),
    op("delete_passkey", false, false, false),
    op("delete_user_passkeys", false, false, false),
    op("put_passkey_challenge", false, false, false),
    op("take_passkey_challenge", false, false, false),
    op("create_token", false, false, false),
    op("check_token", true, true, false),
    op("use_token", false, false, false),
    op("delete_user_tokens", false, false, false),
    op("record_login_failure", false, false, false),
    op("login_failures", true, true, false),
    op("clear_login_failures", false, false, false),
    op("set_user_lock", false, false, false),
    op("get_user_lock", true, true, false),
    op("revoke_jwt", false, false, false),
    op("revoke_user_jwts", false, false, false),
    op("is_jwt_revoked", true, true, false),
    op("list_jwt_revocations", true, true, false),
    // section 6: tenants
    op("create_tenant", false, false, false),
    op("list_tenants", true, true, false),
];

/// The row of `name`, if it is an operation of the protocol.
pub fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}
