"""Python client of toriid, the Torii storage daemon (docs/python.md).

- :class:`Client`: every request operation of PROTOCOL.md sections 2 and 5.
- :class:`Subscriber`: change events (section 3) with gap, epoch, heartbeat
  and resync detection.
- :class:`SessionCache`: a read-through LRU of ``get_session`` kept honest by
  the Subscriber's events.

None of them is thread-safe: use one of each per thread.
"""
from ._version import __version__
from .client import DEFAULT_TENANT, IDEMPOTENT_OPS, UNSET, Client, check_tenant_name
from .codec import packb, unpackb
from .curve import CurveKeys, public_from_secret, read_key_file
from .errors import (BadRequest, Conflict, Duplicate, ForeignKey, Forbidden, Internal, InvalidArgument, NotFound,
                     Overloaded, Storage, Timeout, ToriiError, Unavailable, UnknownOp, UnsupportedVersion,
                     error_from_code, result_of_reply)
from .operations import OPERATIONS, Operation
from .session_cache import CachedSession, SessionCache
from .subscriber import Event, StaleKind, StaleReason, Subscriber
from .types import (Audit, AuditPage, Deleted, Expiry, JwtRevocations, JwtRevoked, LoginFailureCount, LoginFailures,
                    Metadata, OAuthAccount, OAuthAccounts, OAuthState, Passkey, PasskeyChallenge, Passkeys, Ping,
                    RevokedJti, SecureToken, Session, Sessions, User, UserCreated, UserCutoff, UserLock, UserPage,
                    Users)

__all__ = [
    "Client", "Subscriber", "SessionCache", "CachedSession", "Event", "StaleKind", "StaleReason", "CurveKeys",
    "read_key_file", "public_from_secret", "UNSET", "IDEMPOTENT_OPS", "OPERATIONS", "Operation", "packb", "unpackb", "ToriiError",
    "BadRequest", "UnsupportedVersion", "UnknownOp", "InvalidArgument", "NotFound", "Duplicate", "ForeignKey",
    "Forbidden", "Conflict", "Timeout", "Overloaded", "Unavailable", "Storage", "Internal", "error_from_code",
    "result_of_reply", "__version__", "Metadata", "User", "Session", "Audit", "OAuthAccount", "Passkey",
    "SecureToken", "Ping", "Deleted", "Users", "UserPage", "Sessions", "AuditPage", "UserCreated", "OAuthAccounts",
    "Passkeys", "Expiry", "OAuthState", "PasskeyChallenge", "LoginFailureCount", "LoginFailures", "UserLock",
    "JwtRevoked", "RevokedJti", "UserCutoff", "JwtRevocations", "DEFAULT_TENANT", "check_tenant_name",
]
