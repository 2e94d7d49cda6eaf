"""torii_client.Client: the request side of PROTOCOL.md sections 2 and 5.

One ZeroMQ DEALER socket per endpoint, request ids, a deadline per request,
several endpoints with round-robin and failover, CURVE, and every operation
as a typed method.

Contract:

- **Not thread-safe.** ZeroMQ sockets are not; use one Client per thread (a
  Client may move to another thread between uses, never be used by two at
  once). Calls are blocking.
- Every request carries a unique integer ``id``; a reply is matched by it. A
  reply that arrives after its request gave up (or was never ours) is dropped
  and counted in ``client_stats["dropped_replies"]``, so the client stays usable
  after a timeout (unlike a REQ socket).
- The deadline (``timeout``, float seconds, default the Client's ``timeout``)
  bounds the whole call, every endpoint included. It is also sent to the
  daemon as the request's ``timeout_ms`` (the time left), so the daemon gives
  up at the same time. (``timeout_ms=``, integer milliseconds, is still taken
  by the constructor and every method, with a :class:`DeprecationWarning`.) When it passes with no reply the call raises :class:`Timeout` with
  ``local=True``. ZeroMQ cannot tell "daemon down" from "daemon slow".
- **Endpoints.** Each call starts at the next endpoint in turn (round-robin).
  Sockets use ``ZMQ_IMMEDIATE``: a request is only handed to an endpoint with
  a completed connection, so an endpoint whose daemon is down (refused, or
  its connection closed) is skipped at once and the request goes to the next
  one; such a request was never sent, so this is safe for writes too. If no
  endpoint is connected, the call waits (within its deadline) for the first
  one that is.
- **Retries.** A request that was handed to a connected daemon which then does
  not answer (hung, partitioned, or killed after taking it) is retried only if
  its operation is idempotent (:data:`IDEMPOTENT_OPS`, the read-only
  operations): its deadline is shared among the endpoints not yet tried, and
  when an attempt's share passes, the same request is sent to the next
  endpoint while the earlier attempts stay open (whichever reply comes first
  wins). An endpoint that left a request unanswered is tried last for the
  next ``SUSPECT_S`` seconds (or until it answers anything). Writes are never retried: a write that got no reply may have been
  applied (it may still reach the daemon later), so it raises
  :class:`Timeout` and the caller decides. ``call(..., idempotent=True)``
  opts a write in when the caller knows repeating it is harmless
  (``revoke_jwt``, ``set_user_lock``, ``revoke_user_jwts`` with an explicit
  ``issued_before``, ``verify_email`` with an explicit ``at`` are; deletes
  and creates are not: a repeat answers ``not_found``/``duplicate``).
- Error replies raise the :class:`~torii_client.errors.ToriiError` subclass of
  their code (``.code`` carries the code string).
- Results are returned as the protocol's result map (e.g. ``search_users``
  returns ``{"users": [...]}``): str keys, uuids as str, binaries as bytes,
  timestamps as aware UTC datetimes.
- Arguments: ``None`` means "not given" (the argument is not sent: the daemon
  refuses unknown keys, and for optional arguments nil equals absent). Where
  nil has a meaning of its own (``update_user``'s ``password_hash``, ``name``
  and ``locked_at`` clear the value; ``set_user_lock``'s ``locked_at`` unlocks)
  the default is :data:`UNSET` and ``None`` is sent as nil.
"""
from __future__ import annotations

import datetime as _dt
import functools
import inspect
import itertools
import re
import time
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union, cast

import zmq

from . import codec
from ._sockets import SocketOwner
from .curve import CurveKeys
from .errors import Timeout, result_of_reply
from .operations import IDEMPOTENT_OPS
from .types import (AuditPage, Deleted, Expiry, JwtRevocations, JwtRevoked, LoginFailureCount, LoginFailures,
                    OAuthAccount, OAuthAccounts, OAuthState, Passkey, PasskeyChallenge, Passkeys, Ping, SecureToken,
                    Session, Sessions, User, UserCreated, UserLock, UserPage, Users)


class _Unset:
    _instance: Optional["_Unset"] = None

    def __new__(cls) -> "_Unset":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()
"""Default of arguments where ``None`` is a value (sent as nil): not sent."""

Timestamp = Union[_dt.datetime, int]
"""A timestamp argument: a datetime (naive taken as UTC) or integer ms since the epoch."""
Binary = Union[bytes, bytearray, memoryview]

_F = TypeVar("_F", bound=Callable[..., Any])


def _accepts_timeout_ms(fn: _F) -> _F:
    """Lets ``fn``, which takes ``timeout`` in float seconds, also take the
    old ``timeout_ms`` keyword (integer milliseconds), with a
    :class:`DeprecationWarning`. ``timeout_ms=None`` is "not given"."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "timeout_ms" in kwargs:
            ms = kwargs.pop("timeout_ms")
            if ms is not None:
                warnings.warn(f"{fn.__name__}(timeout_ms=...) is deprecated: pass timeout= in seconds",
                              DeprecationWarning, stacklevel=2)
                if kwargs.get("timeout") is not None:
                    raise TypeError(f"{fn.__name__}() got both timeout and timeout_ms")
                kwargs["timeout"] = ms / 1000.0
        return fn(*args, **kwargs)

    return cast(_F, wrapper)


def _args(**kwargs: Any) -> Dict[str, Any]:
    """The protocol args: None and UNSET are left out; other values kept."""
    return {k: v for k, v in kwargs.items() if v is not None and v is not UNSET}


DEFAULT_TENANT = "default"
"""The tenant of a request that names none (PROTOCOL.md section 6)."""

_TENANT_NAME = re.compile(r"[a-z0-9_.-]{1,64}")


def check_tenant_name(name: Any) -> str:
    """Returns ``name`` if it is a tenant name (1 to 64 bytes of ``[a-z0-9_.-]``).

    :raises ValueError: it is not (the message says the rule)."""
    if not isinstance(name, str) or _TENANT_NAME.fullmatch(name) is None:
        raise ValueError("tenant: a tenant name is 1 to 64 bytes of [a-z0-9_.-]")
    return name


# How long an endpoint that left a request unanswered is tried last.
SUSPECT_S = 5.0


class _Endpoint:
    __slots__ = ("address", "socket", "index", "suspect_until")

    def __init__(self, address: str, socket: zmq.Socket, index: int) -> None:
        self.address = address
        self.socket = socket
        self.index = index
        self.suspect_until = 0.0  # monotonic; until then the endpoint is tried last


class Client(SocketOwner):
    """A blocking client of one or more toriid ``requests`` endpoints.

    :param endpoints: ``tcp://host:port`` or ``ipc://path`` addresses (one str or several).
    :param timeout: default deadline of a call, in seconds (``timeout_ms=``,
        in milliseconds, is deprecated).
    :param curve: CURVE keys (:meth:`CurveKeys.from_files`), or None for none.
    :param hwm: send and receive high-water marks, in messages.
    :param context: a ``zmq.Context`` to share (required for ``inproc://``); default a private one.
    :param tenant: the tenant every request acts in (PROTOCOL.md section 6), sent as the
        request's ``tenant`` key; None (the default) sends no key, so the daemon uses the
        default tenant, or the tenant this client's CURVE key is bound to. One Client per
        tenant. Whether the tenant exists is the daemon's answer (:class:`NotFound`).
    :raises ValueError: no endpoints, a bad timeout, bad CURVE keys, or a tenant name that
        is not 1 to 64 bytes of ``[a-z0-9_.-]``.
    :raises zmq.ZMQError: a malformed endpoint.

    Connecting does not wait for the daemon. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], *, timeout: float = 5.0,
                 curve: Optional[CurveKeys] = None, hwm: int = 100000,
                 context: Optional[zmq.Context] = None, tenant: Optional[str] = None) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        endpoints = list(endpoints)
        if not endpoints:
            raise ValueError("the client needs at least one endpoint")
        if timeout is None or timeout <= 0:
            raise ValueError("timeout must be positive")
        if curve is not None:
            curve.validate()
        if tenant is not None:
            check_tenant_name(tenant)
        self.tenant: Optional[str] = tenant  # sent with every request when not None
        self.timeout: float = timeout  # default deadline of a call, in seconds
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._endpoints: List[_Endpoint] = []
        self._ids = itertools.count(1)
        self._next = 0
        self.last_endpoint: Optional[str] = None  # the endpoint whose reply the last call used
        self._stats = {"sent": 0, "replies": 0, "timeouts": 0, "retries": 0, "dropped_replies": 0}
        try:
            for i, address in enumerate(endpoints):
                s = self._context.socket(zmq.DEALER)
                self._endpoints.append(_Endpoint(address, s, i))
                s.linger = 0
                s.sndhwm = hwm
                s.rcvhwm = hwm
                s.setsockopt(zmq.IMMEDIATE, 1)
                if curve is not None:
                    curve.apply(s)
                s.connect(address)
        except Exception:
            self.close()
            raise
        self._poll_endpoints()

    @property
    def timeout_ms(self) -> int:
        """The default deadline in milliseconds (deprecated: use :attr:`timeout`)."""
        return int(round(self.timeout * 1000))

    @property
    def endpoints(self) -> List[str]:
        return [ep.address for ep in self._endpoints]

    @property
    def client_stats(self) -> Dict[str, int]:
        """Counters: ``sent`` (attempts handed to ZeroMQ), ``replies`` (matched),
        ``timeouts`` (calls that gave up), ``retries`` (extra attempts of
        idempotent calls), ``dropped_replies`` (late, unknown-id or undecodable)."""
        return dict(self._stats)

    # -- the generic call -------------------------------------------------

    def call(self, op: str, args: Optional[Mapping[str, Any]] = None, *, timeout: Optional[float] = None,
             actor: Optional[str] = None, idempotent: Optional[bool] = None) -> Any:
        """Sends one request and returns its ``result``, or raises its error.

        :param op: the operation name (PROTOCOL.md sections 2 and 5).
        :param args: the ``args`` map, sent as given (None: no args).
        :param timeout: this call's deadline in seconds; default the Client's.
        :param actor: uuid of the user on whose behalf the request acts (row-level security).
        :param idempotent: may the request be sent again to another endpoint when one does
            not answer? Default: ``op in IDEMPOTENT_OPS``.
        :raises ToriiError: the subclass of the reply's error code; :class:`Timeout`
            (``local=True``) when no reply came within the deadline.
        """
        if not self._endpoints:
            raise ValueError("the client is closed")
        timeout = self.timeout if timeout is None or timeout <= 0 else timeout
        retry = (op in IDEMPOTENT_OPS) if idempotent is None else idempotent
        start = time.monotonic()
        deadline = start + timeout
        n = len(self._endpoints)
        # Round-robin: each call starts at the next endpoint; endpoints that
        # recently left a request unanswered go last.
        order = [self._endpoints[(self._next + i) % n] for i in range(n)]
        order.sort(key=lambda ep: ep.suspect_until > start)
        self._next = (self._next + 1) % n
        pending: Dict[int, _Endpoint] = {}  # request id -> endpoint, attempts of this call
        tried: List[_Endpoint] = []
        attempt_deadline = deadline
        while True:
            now = time.monotonic()
            if now >= deadline:
                self._stats["timeouts"] += 1
                for ep in tried:
                    ep.suspect_until = now + SUSPECT_S
                where = ", ".join(ep.address for ep in tried) if tried else "no connected endpoint"
                raise Timeout(f"no reply within {timeout * 1000:.0f} ms ({where})", op=op, local=True)
            untried = [ep for ep in order if ep not in tried]
            want_send = not pending or (retry and untried and now >= attempt_deadline)
            if want_send and pending and tried[-1].suspect_until < now:
                tried[-1].suspect_until = now + SUSPECT_S  # its share passed unanswered
            if want_send:
                sent_to = self._send_attempt(op, args, actor, deadline - now, untried, pending)
                if sent_to is not None:
                    if len(pending) > 1:
                        self._stats["retries"] += 1
                    tried.append(sent_to)
                    left = n - len(tried)
                    # Share the time left among this attempt and the endpoints not tried yet.
                    attempt_deadline = now + (deadline - now) / (left + 1) if retry and left else deadline
                    continue
            # Wait for a reply, for an endpoint to connect (nothing sent yet), or
            # for this attempt's share of the deadline to pass.
            wake = deadline
            if pending and retry and untried and not want_send:
                wake = min(wake, attempt_deadline)
            poller = self._poller
            if want_send:
                # Nothing could be sent: also wake when an endpoint can take it.
                poller = zmq.Poller()
                for ep in self._endpoints:
                    poller.register(ep.socket, zmq.POLLIN | (zmq.POLLOUT if ep in untried else 0))
            wait_ms = max(0, int((wake - time.monotonic()) * 1000) + 1)
            events = dict(poller.poll(wait_ms))
            for ep in self._endpoints:
                if events.get(ep.socket, 0) & zmq.POLLIN:
                    found, value = self._read_replies(ep, pending)
                    if found:
                        self.last_endpoint = ep.address
                        return result_of_reply(value, op)

    def _send_attempt(self, op: str, args: Optional[Mapping[str, Any]], actor: Optional[str], left_s: float,
                      candidates: Iterable[_Endpoint], pending: Dict[int, _Endpoint]) -> Optional[_Endpoint]:
        """Hands the request to the first candidate with a completed connection;
        returns it, or None when none could take it now."""
        for ep in candidates:
            rid = next(self._ids)
            body: Dict[str, Any] = {"op": op, "id": rid, "v": 1, "timeout_ms": max(1, int(left_s * 1000))}
            if args:
                body["args"] = dict(args)
            if actor is not None:
                body["actor"] = actor
            if self.tenant is not None:
                body["tenant"] = self.tenant
            data = codec.packb(body)
            try:
                ep.socket.send_multipart([b"", data], flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue  # no completed connection (ZMQ_IMMEDIATE) or the queue is full
            self._stats["sent"] += 1
            pending[rid] = ep
            return ep
        return None

    def _read_replies(self, ep: _Endpoint, pending: Dict[int, _Endpoint]) -> Tuple[bool, Any]:
        """Reads every reply waiting on ``ep``; returns (True, body) for the first
        one that answers an attempt in ``pending``, dropping the others."""
        while True:
            try:
                frames = ep.socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return False, None
            ep.suspect_until = 0.0  # it answers (even late): alive
            try:
                body = codec.unpackb(frames[-1])
            except Exception:  # noqa: BLE001 - an undecodable reply is dropped
                self._stats["dropped_replies"] += 1
                continue
            rid = body.get("id") if isinstance(body, dict) else None
            if isinstance(rid, int) and rid in pending:
                self._stats["replies"] += 1
                return True, body
            self._stats["dropped_replies"] += 1

    # -- section 2: service -----------------------------------------------

    def ping(self, *, timeout: Optional[float] = None) -> Ping:
        """``ping``: ``{"version": str, "protocol": 1, "schema": int}`` (``schema``: the
        schema version the daemon runs on; absent from daemons that predate it)."""
        return self.call("ping", None, timeout=timeout)

    def stats(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``stats``: the daemon's counters (requests, errors, pool, events, cleanup, ...).
        This client's own counters are :attr:`client_stats`."""
        return self.call("stats", None, timeout=timeout)

    # -- section 2: users ---------------------------------------------------

    def create_user(self, email: str, *, id: Optional[str] = None, password_hash: Optional[str] = None,
                    metadata: Optional[Mapping[str, Any]] = None, name: Optional[str] = None,
                    email_verified_at: Optional[Timestamp] = None,
                    timeout: Optional[float] = None, actor: Optional[str] = None) -> User:
        """``create_user``: a new User. ``id`` defaults to a random uuid; ``name``
        (section 5) needs a daemon with accounts support; ``email_verified_at``
        creates the user verified (docs/protocol.md).

        :raises Duplicate: the email (case-insensitively) or id is taken.
        :raises InvalidArgument: malformed email, id or metadata."""
        return self.call("create_user", _args(email=email, id=id, password_hash=password_hash, metadata=metadata,
                                              name=name, email_verified_at=email_verified_at),
                         timeout=timeout, actor=actor)

    def get_user(self, id: str, *, timeout: Optional[float] = None, actor: Optional[str] = None) -> User:
        """``get_user``: the User with this id (with ``password_hash``).

        :raises NotFound: no such user (or not visible to the actor)."""
        return self.call("get_user", _args(id=id), timeout=timeout, actor=actor)

    def get_user_by_email(self, email: str, *, timeout: Optional[float] = None,
                          actor: Optional[str] = None) -> User:
        """``get_user_by_email``: case-insensitive lookup; the stored case is returned.

        :raises NotFound: no user has this email."""
        return self.call("get_user_by_email", _args(email=email), timeout=timeout, actor=actor)

    def update_user(self, id: str, *, email: Optional[str] = None, password_hash: Optional[str] = UNSET,
                    metadata: Optional[Mapping[str, Any]] = None,
                    metadata_merge: Optional[Mapping[str, Any]] = None, name: Optional[str] = UNSET,
                    locked_at: Optional[Timestamp] = UNSET, email_verified_at: Optional[Timestamp] = UNSET,
                    timeout: Optional[float] = None, actor: Optional[str] = None) -> User:
        """``update_user``: changes the given fields and returns the User.

        ``password_hash=None`` clears the stored hash (Torii's "remove password");
        ``name=None`` / ``locked_at=None`` / ``email_verified_at=None`` clear those
        (section 5; ``email_verified_at``: docs/protocol.md). ``metadata``
        replaces the map, ``metadata_merge`` merges top-level keys into it.

        :raises NotFound: no such user. :raises InvalidArgument: nothing to change.
        :raises Duplicate: the new email is taken."""
        a = _args(id=id, email=email, metadata=metadata, metadata_merge=metadata_merge)
        for key, value in (("password_hash", password_hash), ("name", name), ("locked_at", locked_at),
                           ("email_verified_at", email_verified_at)):
            if value is not UNSET:
                a[key] = value
        return self.call("update_user", a, timeout=timeout, actor=actor)

    def verify_email(self, id: str, *, at: Optional[Timestamp] = None, timeout: Optional[float] = None,
                     actor: Optional[str] = None) -> User:
        """``verify_email``: sets ``email_verified_at`` to ``at`` (default: the database's now).

        :raises NotFound: no such user."""
        return self.call("verify_email", _args(id=id, at=at), timeout=timeout, actor=actor)

    def delete_user(self, id: str, *, timeout: Optional[float] = None,
                    actor: Optional[str] = None) -> Deleted:
        """``delete_user``: ``{"deleted": 1}``; the user's sessions (and accounts,
        passkeys, tokens) go with it.

        :raises NotFound: no such user."""
        return self.call("delete_user", _args(id=id), timeout=timeout, actor=actor)

    def search_users(self, query: str, *, limit: Optional[int] = None, offset: Optional[int] = None,
                     timeout: Optional[float] = None, actor: Optional[str] = None) -> Users:
        """``search_users``: ``{"users": [User...]}`` best match first, web-search
        syntax over email and metadata. ``limit`` 1..100 (default 20).

        :raises InvalidArgument: limit or offset out of range, query too long."""
        return self.call("search_users", _args(query=query, limit=limit, offset=offset), timeout=timeout,
                         actor=actor)

    def list_users(self, *, limit: Optional[int] = None, after: Optional[str] = None,
                   timeout: Optional[float] = None, actor: Optional[str] = None) -> UserPage:
        """``list_users``: ``{"users": [User...], "next": cursor or None}``, oldest
        first. Pass ``next`` back as ``after`` for the next page.

        :raises InvalidArgument: limit out of 1..1000, malformed cursor."""
        return self.call("list_users", _args(limit=limit, after=after), timeout=timeout, actor=actor)

    # -- section 2: sessions ------------------------------------------------

    def create_session(self, user_id: str, *, expires_at: Optional[Timestamp] = None, ttl_s: Optional[int] = None,
                       id: Optional[str] = None, user_agent: Optional[str] = None,
                       ip_address: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None,
                       timeout: Optional[float] = None, actor: Optional[str] = None) -> Session:
        """``create_session``: a Session plus ``token`` (43 characters, returned only
        here: keep it, the daemon stores only its digest). Give ``expires_at`` or
        ``ttl_s``, not both.

        :raises ForeignKey: no such user. :raises InvalidArgument: both or neither
            of expires_at/ttl_s, a past expires_at. :raises Forbidden: an actor
            creating a session for another user."""
        return self.call("create_session", _args(user_id=user_id, expires_at=expires_at, ttl_s=ttl_s, id=id,
                                                 user_agent=user_agent, ip_address=ip_address, metadata=metadata),
                         timeout=timeout, actor=actor)

    def get_session(self, *, token: Optional[str] = None, id: Optional[str] = None,
                    include_expired: bool = False,
                    timeout: Optional[float] = None, actor: Optional[str] = None) -> Session:
        """``get_session`` by ``token`` or ``id`` (one of them): the Session while unexpired.

        ``include_expired=True`` (an addition, docs/protocol.md) returns it even
        when it has expired (``expires_at`` in the past), for a caller that
        judges expiry itself; the daemon's session cache is not used then.

        :raises NotFound: unknown, or expired without ``include_expired``."""
        return self.call("get_session", _args(token=token, id=id, include_expired=include_expired or None),
                         timeout=timeout, actor=actor)

    def extend_session(self, *, token: Optional[str] = None, id: Optional[str] = None,
                       expires_at: Optional[Timestamp] = None, ttl_s: Optional[int] = None,
                       timeout: Optional[float] = None, actor: Optional[str] = None) -> Session:
        """``extend_session``: a new ``expires_at`` (or ``ttl_s`` from now) for an
        unexpired session, by ``token`` or ``id``.

        :raises NotFound: unknown or expired (never revived)."""
        return self.call("extend_session", _args(token=token, id=id, expires_at=expires_at, ttl_s=ttl_s),
                         timeout=timeout, actor=actor)

    def delete_session(self, *, token: Optional[str] = None, id: Optional[str] = None,
                       timeout: Optional[float] = None, actor: Optional[str] = None) -> Deleted:
        """``delete_session`` by ``token`` or ``id``: ``{"deleted": 1}``.

        :raises NotFound: unknown, or expired (the row is deleted all the same)."""
        return self.call("delete_session", _args(token=token, id=id), timeout=timeout, actor=actor)

    def list_sessions(self, user_id: str, *, timeout: Optional[float] = None,
                      actor: Optional[str] = None) -> Sessions:
        """``list_sessions``: ``{"sessions": [Session...]}`` unexpired, newest first."""
        return self.call("list_sessions", _args(user_id=user_id), timeout=timeout, actor=actor)

    def delete_user_sessions(self, user_id: str, *, except_: Optional[str] = None,
                             timeout: Optional[float] = None, actor: Optional[str] = None) -> Deleted:
        """``delete_user_sessions``: ``{"deleted": n}``, expired ones included;
        ``except_`` (the protocol's ``except``) is a session id to keep."""
        a = _args(user_id=user_id)
        if except_ is not None:
            a["except"] = except_
        return self.call("delete_user_sessions", a, timeout=timeout, actor=actor)

    def cleanup_expired_sessions(self, *, timeout: Optional[float] = None) -> Deleted:
        """``cleanup_expired_sessions``: runs one cleanup pass now; ``{"deleted": n}``."""
        return self.call("cleanup_expired_sessions", None, timeout=timeout)

    def list_audit(self, *, record_id: Optional[str] = None, table: Optional[str] = None,
                   limit: Optional[int] = None, before: Optional[str] = None, timeout: Optional[float] = None,
                   actor: Optional[str] = None) -> AuditPage:
        """``list_audit``: ``{"entries": [Audit...], "next": cursor or None}`` newest
        first; pass ``next`` back as ``before``. ``table`` is ``users`` or ``sessions``.

        :raises InvalidArgument: another table, limit out of 1..1000, malformed cursor."""
        return self.call("list_audit", _args(record_id=record_id, table=table, limit=limit, before=before),
                         timeout=timeout, actor=actor)

    # -- section 5: users ---------------------------------------------------

    def get_or_create_user(self, email: str, *, name: Optional[str] = None, id: Optional[str] = None,
                           metadata: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None,
                           actor: Optional[str] = None) -> UserCreated:
        """``get_or_create_user``: ``{"user": User, "created": bool}``; concurrent
        calls for one email make one user."""
        return self.call("get_or_create_user", _args(email=email, name=name, id=id, metadata=metadata),
                         timeout=timeout, actor=actor)

    # -- section 5: OAuth ---------------------------------------------------

    def link_oauth_account(self, user_id: str, provider: str, subject: str, *, timeout: Optional[float] = None,
                           actor: Optional[str] = None) -> OAuthAccount:
        """``link_oauth_account``: the OAuthAccount (the existing one when linked again).

        :raises Duplicate: the (provider, subject) pair belongs to another user."""
        return self.call("link_oauth_account", _args(user_id=user_id, provider=provider, subject=subject),
                         timeout=timeout, actor=actor)

    def get_oauth_account(self, provider: str, subject: str, *, timeout: Optional[float] = None,
                          actor: Optional[str] = None) -> OAuthAccount:
        """``get_oauth_account``: the OAuthAccount. :raises NotFound: not linked."""
        return self.call("get_oauth_account", _args(provider=provider, subject=subject), timeout=timeout,
                         actor=actor)

    def get_user_by_oauth(self, provider: str, subject: str, *, timeout: Optional[float] = None,
                          actor: Optional[str] = None) -> User:
        """``get_user_by_oauth``: the User linked to (provider, subject). :raises NotFound: none."""
        return self.call("get_user_by_oauth", _args(provider=provider, subject=subject), timeout=timeout,
                         actor=actor)

    def list_oauth_accounts(self, user_id: str, *, timeout: Optional[float] = None,
                            actor: Optional[str] = None) -> OAuthAccounts:
        """``list_oauth_accounts``: ``{"accounts": [OAuthAccount...]}`` oldest first."""
        return self.call("list_oauth_accounts", _args(user_id=user_id), timeout=timeout, actor=actor)

    def unlink_oauth_account(self, user_id: str, provider: str, *, subject: Optional[str] = None,
                             timeout: Optional[float] = None, actor: Optional[str] = None) -> Deleted:
        """``unlink_oauth_account``: ``{"deleted": n}`` (every subject of the provider
        when ``subject`` is not given)."""
        return self.call("unlink_oauth_account", _args(user_id=user_id, provider=provider, subject=subject),
                         timeout=timeout, actor=actor)

    def put_oauth_state(self, state: str, verifier: str, ttl_s: int, *, timeout: Optional[float] = None,
                        actor: Optional[str] = None) -> Expiry:
        """``put_oauth_state``: ``{"expires_at"}``; replaces a verifier stored under ``state``."""
        return self.call("put_oauth_state", _args(state=state, verifier=verifier, ttl_s=ttl_s),
                         timeout=timeout, actor=actor)

    def take_oauth_state(self, state: str, *, timeout: Optional[float] = None,
                         actor: Optional[str] = None) -> OAuthState:
        """``take_oauth_state``: ``{"verifier"}``, at most once (the row goes).

        :raises NotFound: unknown, expired or already taken."""
        return self.call("take_oauth_state", _args(state=state), timeout=timeout, actor=actor)

    # -- section 5: passkeys --------------------------------------------------

    def add_passkey(self, user_id: str, credential_id: Binary, public_key: Binary, *, name: Optional[str] = None,
                    sign_count: Optional[int] = None, timeout: Optional[float] = None,
                    actor: Optional[str] = None) -> Passkey:
        """``add_passkey``: the Passkey. ``credential_id`` (1..1023 bytes) and
        ``public_key`` (1..4096 bytes) travel as msgpack bin.

        :raises Duplicate: the credential id is taken."""
        return self.call("add_passkey", _args(user_id=user_id, credential_id=bytes(credential_id),
                                              public_key=bytes(public_key), name=name, sign_count=sign_count),
                         timeout=timeout, actor=actor)

    def get_passkey(self, credential_id: Binary, *, timeout: Optional[float] = None,
                    actor: Optional[str] = None) -> Passkey:
        """``get_passkey``: the Passkey. :raises NotFound: unknown credential id."""
        return self.call("get_passkey", _args(credential_id=bytes(credential_id)), timeout=timeout,
                         actor=actor)

    def list_passkeys(self, user_id: str, *, timeout: Optional[float] = None,
                      actor: Optional[str] = None) -> Passkeys:
        """``list_passkeys``: ``{"passkeys": [Passkey...]}`` oldest first."""
        return self.call("list_passkeys", _args(user_id=user_id), timeout=timeout, actor=actor)

    def use_passkey(self, credential_id: Binary, *, sign_count: Optional[int] = None,
                    timeout: Optional[float] = None, actor: Optional[str] = None) -> Passkey:
        """``use_passkey``: the Passkey with ``last_used_at`` now and the new count.

        :raises Conflict: stored and given counts both non-zero and the given one
            not greater (a cloned authenticator?); nothing changes."""
        return self.call("use_passkey", _args(credential_id=bytes(credential_id), sign_count=sign_count),
                         timeout=timeout, actor=actor)

    def delete_passkey(self, credential_id: Binary, *, timeout: Optional[float] = None,
                       actor: Optional[str] = None) -> Deleted:
        """``delete_passkey``: ``{"deleted": 1}``. :raises NotFound: unknown."""
        return self.call("delete_passkey", _args(credential_id=bytes(credential_id)), timeout=timeout,
                         actor=actor)

    def delete_user_passkeys(self, user_id: str, *, timeout: Optional[float] = None,
                             actor: Optional[str] = None) -> Deleted:
        """``delete_user_passkeys``: ``{"deleted": n}``."""
        return self.call("delete_user_passkeys", _args(user_id=user_id), timeout=timeout, actor=actor)

    def put_passkey_challenge(self, challenge_id: Union[str, Binary], challenge: Union[str, Binary], ttl_s: int, *,
                              user_id: Optional[str] = None, timeout: Optional[float] = None,
                              actor: Optional[str] = None) -> Expiry:
        """``put_passkey_challenge``: ``{"expires_at"}``; replaces one stored under
        ``challenge_id``. ``challenge`` (1..1024 bytes) is sent as bin when bytes."""
        return self.call("put_passkey_challenge", _args(challenge_id=_bin_or_str(challenge_id),
                                                        challenge=_bin_or_str(challenge), ttl_s=ttl_s,
                                                        user_id=user_id), timeout=timeout, actor=actor)

    def take_passkey_challenge(self, challenge_id: Union[str, Binary], *, timeout: Optional[float] = None,
                               actor: Optional[str] = None) -> PasskeyChallenge:
        """``take_passkey_challenge``: ``{"challenge", "user_id"}``, at most once.

        :raises NotFound: unknown, expired or already taken."""
        return self.call("take_passkey_challenge", _args(challenge_id=_bin_or_str(challenge_id)),
                         timeout=timeout, actor=actor)

    # -- section 5: secure tokens ---------------------------------------------

    def create_token(self, user_id: str, purpose: str, ttl_s: int, *, timeout: Optional[float] = None,
                     actor: Optional[str] = None) -> SecureToken:
        """``create_token``: a SecureToken plus ``token`` (returned only here).
        ``purpose``: ``magic_link``, ``password_reset`` or ``email_verification``."""
        return self.call("create_token", _args(user_id=user_id, purpose=purpose, ttl_s=ttl_s),
                         timeout=timeout, actor=actor)

    def check_token(self, token: str, purpose: str, *, timeout: Optional[float] = None,
                    actor: Optional[str] = None) -> SecureToken:
        """``check_token``: the SecureToken while unused and unexpired (does not use it).

        :raises NotFound: unknown, wrong purpose, used or expired."""
        return self.call("check_token", _args(token=token, purpose=purpose), timeout=timeout, actor=actor)

    def use_token(self, token: str, purpose: str, *, timeout: Optional[float] = None,
                  actor: Optional[str] = None) -> SecureToken:
        """``use_token``: the SecureToken with ``used_at`` set, exactly once.

        :raises NotFound: unknown, wrong purpose, already used or expired."""
        return self.call("use_token", _args(token=token, purpose=purpose), timeout=timeout, actor=actor)

    def delete_user_tokens(self, user_id: str, *, purpose: Optional[str] = None, timeout: Optional[float] = None,
                           actor: Optional[str] = None) -> Deleted:
        """``delete_user_tokens``: ``{"deleted": n}`` (of one purpose when given)."""
        return self.call("delete_user_tokens", _args(user_id=user_id, purpose=purpose), timeout=timeout,
                         actor=actor)

    # -- section 5: login guard -------------------------------------------------

    def record_login_failure(self, email: str, *, ip_address: Optional[str] = None, window_s: Optional[int] = None,
                             max_failures: Optional[int] = None, timeout: Optional[float] = None,
                             actor: Optional[str] = None) -> LoginFailureCount:
        """``record_login_failure``: ``{"failures": n, "locked": bool}``; with
        ``max_failures``, reaching it locks the user with that email (if any)."""
        return self.call("record_login_failure", _args(email=email, ip_address=ip_address, window_s=window_s,
                                                       max_failures=max_failures), timeout=timeout,
                         actor=actor)

    def login_failures(self, email: str, *, since: Optional[Timestamp] = None, timeout: Optional[float] = None,
                       actor: Optional[str] = None) -> LoginFailures:
        """``login_failures``: ``{"count", "latest_at"}`` since ``since`` (default 900 s ago)."""
        return self.call("login_failures", _args(email=email, since=since), timeout=timeout, actor=actor)

    def clear_login_failures(self, email: str, *, timeout: Optional[float] = None,
                             actor: Optional[str] = None) -> Deleted:
        """``clear_login_failures``: ``{"deleted": n}``."""
        return self.call("clear_login_failures", _args(email=email), timeout=timeout, actor=actor)

    def set_user_lock(self, email: str, locked_at: Optional[Timestamp], *, timeout: Optional[float] = None,
                      actor: Optional[str] = None) -> Dict[str, Any]:
        """``set_user_lock``: locks (a timestamp) or unlocks (None) the user with this
        email; ``{}`` whether or not one exists."""
        return self.call("set_user_lock", {"email": email, "locked_at": locked_at}, timeout=timeout,
                         actor=actor)

    def get_user_lock(self, email: str, *, timeout: Optional[float] = None,
                      actor: Optional[str] = None) -> UserLock:
        """``get_user_lock``: ``{"locked_at"}`` (None when unlocked or no such user)."""
        return self.call("get_user_lock", _args(email=email), timeout=timeout, actor=actor)

    # -- section 5: JWT revocation ------------------------------------------------

    def revoke_jwt(self, jti: str, expires_at: Timestamp, *, user_id: Optional[str] = None,
                   timeout: Optional[float] = None, actor: Optional[str] = None) -> Dict[str, Any]:
        """``revoke_jwt``: ``{}``; idempotent. ``expires_at`` is the JWT's ``exp``."""
        return self.call("revoke_jwt", _args(jti=jti, expires_at=expires_at, user_id=user_id),
                         timeout=timeout, actor=actor)

    def revoke_user_jwts(self, user_id: str, *, issued_before: Optional[Timestamp] = None,
                         timeout: Optional[float] = None, actor: Optional[str] = None) -> Dict[str, Any]:
        """``revoke_user_jwts``: ``{}``; every JWT of the user issued before
        ``issued_before`` (default now) counts as revoked."""
        return self.call("revoke_user_jwts", _args(user_id=user_id, issued_before=issued_before),
                         timeout=timeout, actor=actor)

    def is_jwt_revoked(self, jti: str, *, user_id: Optional[str] = None, issued_at: Optional[Timestamp] = None,
                       timeout: Optional[float] = None, actor: Optional[str] = None) -> JwtRevoked:
        """``is_jwt_revoked``: ``{"revoked": bool}`` (listed, or issued before the user's cutoff)."""
        return self.call("is_jwt_revoked", _args(jti=jti, user_id=user_id, issued_at=issued_at),
                         timeout=timeout, actor=actor)

    def list_jwt_revocations(self, *, after: Optional[str] = None, limit: Optional[int] = None,
                             timeout: Optional[float] = None, actor: Optional[str] = None) -> JwtRevocations:
        """``list_jwt_revocations``: ``{"jtis": [...], "users": [...], "next"}``,
        unexpired only; pass ``next`` back as ``after``."""
        return self.call("list_jwt_revocations", _args(after=after, limit=limit), timeout=timeout,
                         actor=actor)

    # --- section 6: tenants (admin operations; refused to keys bound to a tenant) ---

    def create_tenant(self, name: str, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``create_tenant``: registers tenant ``name``; ``{"name", "created_at"}``."""
        return self.call("create_tenant", _args(name=name), timeout=timeout)

    def list_tenants(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``list_tenants``: ``{"tenants": [{"name", "created_at"}...]}`` by name."""
        return self.call("list_tenants", {}, timeout=timeout)


# Every method that takes ``timeout`` (and the constructor) also takes the
# deprecated ``timeout_ms``.
for _name, _fn in list(vars(Client).items()):
    if inspect.isfunction(_fn) and "timeout" in inspect.signature(_fn).parameters:
        setattr(Client, _name, _accepts_timeout_ms(_fn))
del _name, _fn


def _bin_or_str(value: Union[str, Binary]) -> Union[str, bytes]:
    return value if isinstance(value, str) else bytes(value)
