"""The operations of the protocol (PROTOCOL.md sections 2 and 5), with what a
caller may rely on. A copy of the C++ table (lib/torii/operations.cpp), which
``tests/test_operations.py`` compares with the daemon's build, so the two
cannot drift apart unnoticed.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, NamedTuple


class Operation(NamedTuple):
    name: str
    read_only: bool
    """Writes nothing."""
    retry_safe: bool
    """Safe to send again, to this or another daemon, when no reply came."""
    local: bool
    """Answered by the daemon itself (ping, stats, ...), not by a statement."""


OPERATIONS: Dict[str, Operation] = {op.name: op for op in (
    Operation("ping", True, True, True),
    Operation("stats", True, True, True),
    Operation("create_user", False, False, False),
    Operation("get_user", True, True, False),
    Operation("get_user_by_email", True, True, False),
    Operation("update_user", False, False, False),
    Operation("verify_email", False, False, False),
    Operation("delete_user", False, False, False),
    Operation("search_users", True, True, False),
    Operation("list_users", True, True, False),
    Operation("create_session", False, False, False),
    Operation("get_session", True, True, False),
    Operation("extend_session", False, False, False),
    Operation("delete_session", False, False, False),
    Operation("list_sessions", True, True, False),
    Operation("delete_user_sessions", False, False, False),
    Operation("cleanup_expired_sessions", False, False, True),
    Operation("list_audit", True, True, False),
    Operation("get_or_create_user", False, False, False),
    Operation("link_oauth_account", False, False, False),
    Operation("get_oauth_account", True, True, False),
    Operation("get_user_by_oauth", True, True, False),
    Operation("list_oauth_accounts", True, True, False),
    Operation("unlink_oauth_account", False, False, False),
    Operation("put_oauth_state", False, False, False),
    Operation("take_oauth_state", False, False, False),
    Operation("add_passkey", False, False, False),
    Operation("get_passkey", True, True, False),
    Operation("list_passkeys", True, True, False),
    Operation("use_passkey", False, False, False),
    Operation("delete_passkey", False, False, False),
    Operation("delete_user_passkeys", False, False, False),
    Operation("put_passkey_challenge", False, False, False),
    Operation("take_passkey_challenge", False, False, False),
    Operation("create_token", False, False, False),
    Operation("check_token", True, True, False),
    Operation("use_token", False, False, False),
    Operation("delete_user_tokens", False, False, False),
    Operation("record_login_failure", False, False, False),
    Operation("login_failures", True, True, False),
    Operation("clear_login_failures", False, False, False),
    Operation("set_user_lock", False, False, False),
    Operation("get_user_lock", True, True, False),
    Operation("revoke_jwt", False, False, False),
    Operation("revoke_user_jwts", False, False, False),
    Operation("is_jwt_revoked", True, True, False),
    Operation("list_jwt_revocations", True, True, False),
    # section 6: tenants
    Operation("create_tenant", False, False, False),
    Operation("list_tenants", True, True, False),
)}
"""Every operation by name, in the order of PROTOCOL.md's tables."""

IDEMPOTENT_OPS: FrozenSet[str] = frozenset(op.name for op in OPERATIONS.values() if op.retry_safe)
"""Operations that are safe to send again to another endpoint."""
