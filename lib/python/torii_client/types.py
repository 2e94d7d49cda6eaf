"""The protocol's records as typed dicts (PROTOCOL.md sections 2 and 5).

Results are the decoded reply maps, unchanged: these ``TypedDict`` classes
only tell a type checker (and a reader) which keys each one has and what
they hold. uuids are ``str``, binaries ``bytes``, timestamps aware UTC
``datetime``; a field the daemon may leave out is marked so, and a field
that may be nil is ``Optional``.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List, Optional, TypedDict

Metadata = Dict[str, Any]
"""A metadata map: str keys; nested maps, lists, str, numbers, bools, None."""


class _UserFields(TypedDict):
    id: str
    email: str
    email_verified_at: Optional[_dt.datetime]
    metadata: Metadata
    created_at: _dt.datetime
    updated_at: _dt.datetime
    user_torii_id: Optional[str]  # the user's metadata.torii_id (docs/protocol.md section 12)
    name: Optional[str]
    locked_at: Optional[_dt.datetime]


class User(_UserFields, total=False):
    """A user. ``password_hash`` only in the results of ``create_user``,
    ``get_user``, ``get_user_by_email`` and ``update_user``."""

    password_hash: Optional[str]


class _SessionFields(TypedDict):
    id: str
    user_id: str
    expires_at: _dt.datetime
    user_agent: Optional[str]
    ip_address: Optional[str]
    metadata: Metadata
    created_at: _dt.datetime


class Session(_SessionFields, total=False):
    """A session. ``token`` (the bearer secret) only in ``create_session``'s result."""

    token: str


class Audit(TypedDict):
    """An audit entry; ``operation`` is ``INSERT``, ``UPDATE`` or ``DELETE``."""

    id: int
    table: str
    record_id: str
    operation: str
    old_data: Optional[Dict[str, Any]]
    new_data: Optional[Dict[str, Any]]
    actor: Optional[str]
    created_at: _dt.datetime


class OAuthAccount(TypedDict):
    """A (provider, subject) pair linked to a user."""

    user_id: str
    provider: str
    subject: str
    created_at: _dt.datetime
    updated_at: _dt.datetime


class Passkey(TypedDict):
    """A WebAuthn credential."""

    credential_id: bytes
    user_id: str
    public_key: bytes
    name: Optional[str]
    sign_count: int
    created_at: _dt.datetime
    last_used_at: Optional[_dt.datetime]
    user_torii_id: Optional[str]


class _SecureTokenFields(TypedDict):
    id: str
    user_id: str
    purpose: str
    expires_at: _dt.datetime
    used_at: Optional[_dt.datetime]
    created_at: _dt.datetime
    user_torii_id: Optional[str]


class SecureToken(_SecureTokenFields, total=False):
    """A magic-link, password-reset or email-verification token. ``token``
    (the secret) only in ``create_token``'s result."""

    token: str


class Ping(TypedDict, total=False):
    version: str
    protocol: int
    schema: int  # the schema version the daemon runs on (absent from older daemons)


class Deleted(TypedDict):
    """``{"deleted": n}``: how many rows went."""

    deleted: int


class Users(TypedDict):
    users: List[User]


class UserPage(TypedDict):
    """A page of users; pass ``next`` back as ``after`` (None: the last page)."""

    users: List[User]
    next: Optional[str]


class Sessions(TypedDict):
    sessions: List[Session]


class AuditPage(TypedDict):
    """A page of audit entries; pass ``next`` back as ``before``."""

    entries: List[Audit]
    next: Optional[str]


class UserCreated(TypedDict):
    """``get_or_create_user``'s result."""

    user: User
    created: bool


class OAuthAccounts(TypedDict):
    accounts: List[OAuthAccount]


class Passkeys(TypedDict):
    passkeys: List[Passkey]


class Expiry(TypedDict):
    expires_at: _dt.datetime


class OAuthState(TypedDict):
    verifier: str


class PasskeyChallenge(TypedDict):
    challenge: bytes
    user_id: Optional[str]


class LoginFailureCount(TypedDict):
    """``record_login_failure``'s result."""

    failures: int
    locked: bool


class LoginFailures(TypedDict):
    """``login_failures``' result."""

    count: int
    latest_at: Optional[_dt.datetime]


class UserLock(TypedDict):
    locked_at: Optional[_dt.datetime]


class JwtRevoked(TypedDict):
    revoked: bool


class RevokedJti(TypedDict):
    jti: str
    expires_at: _dt.datetime


class UserCutoff(TypedDict):
    user_id: str
    issued_before: _dt.datetime


class JwtRevocations(TypedDict):
    """A page of ``list_jwt_revocations``; pass ``next`` back as ``after``."""

    jtis: List[RevokedJti]
    users: List[UserCutoff]
    next: Optional[str]


__all__ = [
    "Metadata", "User", "Session", "Audit", "OAuthAccount", "Passkey", "SecureToken", "Ping", "Deleted", "Users",
    "UserPage", "Sessions", "AuditPage", "UserCreated", "OAuthAccounts", "Passkeys", "Expiry", "OAuthState",
    "PasskeyChallenge", "LoginFailureCount", "LoginFailures", "UserLock", "JwtRevoked", "RevokedJti", "UserCutoff",
    "JwtRevocations",
]
