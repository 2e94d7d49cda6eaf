"""Errors of the toriid protocol as exceptions (PROTOCOL.md section 2).

Every failure a daemon reports, and every local failure of a request (its
deadline passed), is a :class:`ToriiError` carrying the protocol's error code
in ``.code``. Each code has its own subclass, so callers can write
``except NotFound:``; a code this library does not know (a newer daemon)
becomes a plain :class:`ToriiError` with that code.

Where a built-in exception means the same, the class derives from it too, so
code that handles timeouts or connection trouble generically catches ours:
:class:`Timeout` is a :class:`TimeoutError` and :class:`Unavailable` a
:class:`ConnectionError`.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type


class ToriiError(Exception):
    """A failed request. ``code`` is the protocol's error code (a string such as
    ``"not_found"``), ``message`` the daemon's text (for people; it may change
    between versions), ``op`` the operation that failed when known."""

    code: str = "internal"

    def __init__(self, message: str = "", code: Optional[str] = None, op: Optional[str] = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.op = op
        super().__init__(f"{op + ': ' if op else ''}{self.code}: {message}")


class BadRequest(ToriiError):
    """The body was not a msgpack map, had no op, or a key had the wrong type."""

    code = "bad_request"


class UnsupportedVersion(ToriiError):
    """The request's protocol version ``v`` is not 1."""

    code = "unsupported_version"


class UnknownOp(ToriiError):
    """The daemon has no such operation (e.g. a section-5 op on an older daemon)."""

    code = "unknown_op"


class InvalidArgument(ToriiError):
    """Well-formed but not acceptable: malformed uuid or email, missing or unknown argument, ..."""

    code = "invalid_argument"


class NotFound(ToriiError):
    """The record does not exist, is not visible to the actor, or has expired."""

    code = "not_found"


class Duplicate(ToriiError):
    """A unique value is already taken (SQLSTATE 23505), e.g. an email."""

    code = "duplicate"


class ForeignKey(ToriiError):
    """A referenced record is missing (SQLSTATE 23503), e.g. a session for an unknown user."""

    code = "foreign_key"


class Forbidden(ToriiError):
    """Refused by row-level security or by the daemon's own checks."""

    code = "forbidden"


class Conflict(ToriiError):
    """The request contradicts the stored state (a passkey counter that did not increase)."""

    code = "conflict"


class Timeout(ToriiError, TimeoutError):
    """The deadline passed before the request completed.

    ``local`` is True when this client gave up waiting (no reply arrived in
    time: the daemon may be down, slow, or unreachable), False when the daemon
    answered ``timeout`` itself. After a local timeout of a write, its outcome
    is unknown: the request may still reach a daemon and be applied."""

    code = "timeout"

    def __init__(self, message: str = "", code: Optional[str] = None, op: Optional[str] = None,
                 local: bool = False) -> None:
        super().__init__(message, code, op)
        self.local = local


class Overloaded(ToriiError):
    """The daemon's queue of waiting requests is full; retry later."""

    code = "overloaded"


class Unavailable(ToriiError, ConnectionError):
    """The database cannot be reached now (for a write that was sent: outcome unknown)."""

    code = "unavailable"


class Storage(ToriiError):
    """Any other database error."""

    code = "storage"


class Internal(ToriiError):
    """A bug in the daemon, or a reply this client cannot understand."""

    code = "internal"


ERROR_CLASSES: Dict[str, Type[ToriiError]] = {
    cls.code: cls
    for cls in (BadRequest, UnsupportedVersion, UnknownOp, InvalidArgument, NotFound, Duplicate, ForeignKey,
                Forbidden, Conflict, Timeout, Overloaded, Unavailable, Storage, Internal)
}


def error_from_code(code: str, message: str = "", op: Optional[str] = None) -> ToriiError:
    """The exception for a protocol error code: its subclass, or a plain
    :class:`ToriiError` carrying an unknown code as is."""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return ToriiError(message, code=code, op=op)
    return cls(message, op=op)


def result_of_reply(reply: Mapping[Any, Any], op: Optional[str] = None) -> Any:
    """The ``result`` of a decoded reply body, or raises the error it carries.

    A body that is neither ``{"ok": true, "result": ...}`` nor
    ``{"ok": false, "error": {"code", "message"}}`` raises :class:`Internal`."""
    if not isinstance(reply, Mapping):
        raise Internal("the reply is not a map", op=op)
    ok = reply.get("ok")
    if ok is True:
        return reply.get("result")
    if ok is False:
        err = reply.get("error")
        if isinstance(err, Mapping) and isinstance(err.get("code"), str):
            msg = err.get("message")
            raise error_from_code(err["code"], msg if isinstance(msg, str) else "", op)
    raise Internal("the reply has neither a result nor an error", op=op)
