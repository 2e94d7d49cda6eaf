"""torii_client.SessionCache: a bounded LRU read-through cache of ``get_session``
results, keyed by token, kept honest by a :class:`Subscriber` (the Python
mirror of lib/torii/session_cache.h)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set

from .client import DEFAULT_TENANT, Client
from .codec import UTC
from .errors import Internal
from .subscriber import Event, StaleReason, Subscriber


@dataclass(frozen=True)
class CachedSession:
    """A session as ``get_session`` returned it: ``id``, ``user_id``,
    ``expires_at`` and the whole Session map in ``data``. Shared with the cache:
    treat ``data`` as read-only."""

    id: str
    user_id: str
    expires_at: _dt.datetime
    data: Dict[str, Any]


def _now() -> _dt.datetime:
    return _dt.datetime.now(UTC)


class SessionCache:
    """A bounded LRU read-through cache of ``get_session`` by token.

    **Guarantee**: once ``delete_session`` (or ``delete_user``, or
    ``delete_user_sessions``) has replied AND its event has been delivered to
    this cache (processed by the Subscriber's ``poll()``, which :meth:`get`
    itself calls before looking anything up), :meth:`get` never again returns
    that session. The same holds for ``extend_session``/``update_user``: after
    their event is delivered, ``get`` returns what the database holds now.

    How:

    - Only the events of the cache's ``tenant`` count (when known), so another
      tenant's deletion of a session or user id never touches this cache.
    - ``session.*`` events evict that session id; ``user.updated`` and
      ``user.deleted`` evict every session of that user; ``session.expired``
      evicts the entries it covers (``expires_at <= before``).
    - Every stale condition of the Subscriber (gap, epoch change, missed
      heartbeats, resync, malformed) drops every entry.
    - Nothing is cached unless the Subscriber was :meth:`~Subscriber.live`
      both when the ``get_session`` was sent and when its reply is handled, and
      no stale condition happened in between.
    - The read-through race: a ``get_session`` read before a change whose reply
      is handled after the change's event is not cached. Each invalidating
      event bumps a counter and records it against its session id and user id
      while a get is in flight; the reply is cached only if neither id was
      touched since the get was sent. Events that arrived during the call are
      processed (``poll(0)``) before that check.
    - Bounded staleness: a daemon that falls silent (frozen, a silent network
      path) delivers no events and no error. The Subscriber declares an
      endpoint stale after 3 x ``heartbeat_ms`` without a message, and
      :meth:`get` polls it first, so by default an entry is served at most
      3 x ``heartbeat_ms`` (3 s with the daemon's default
      ``events.heartbeat_ms``) after the last message of a live endpoint: a
      session deleted through another daemon meanwhile is served for at most
      that long. ``max_staleness_ms`` tightens it: an entry is served only
      while :meth:`Subscriber.live_silence_ms` is below it; otherwise ``get``
      goes to the daemon (counted as ``silent_lookups``) and keeps the entries,
      which serve again once a live endpoint speaks (its heartbeat's ``seqs``
      prove no event was lost in the silence). Set it above ``heartbeat_ms``
      (a healthy daemon is silent for up to one heartbeat), e.g. 1.5 x. The
      daemon's own LISTEN connection can fall silent too: see
      docs/security.md for the bound end to end.
    - An entry is never served at or past its ``expires_at`` (local clock); it
      is dropped and fetched again (the daemon then answers ``not_found``).
    - ``not_found`` and other errors are not cached.

    Until the Subscriber has seen its first heartbeat every ``get`` goes to the
    daemon: correct, just not cached.

    **Not thread-safe**: the Client, the Subscriber and the cache belong to one
    thread. The cache adds a listener to the Subscriber when made and removes
    it in :meth:`close`. Tokens are keyed by their SHA-256 digest, so the cache
    holds no token.
    """

    def __init__(self, client: Client, subscriber: Subscriber, *, max_entries: int = 10000,
                 timeout: Optional[float] = None, timeout_ms: Optional[int] = None,
                 max_staleness_ms: Optional[int] = None, tenant: Optional[str] = None) -> None:
        """``timeout``: the deadline of each ``get_session``, in seconds (default
        the Client's); ``timeout_ms`` (milliseconds) is deprecated.
        ``max_staleness_ms``: see the class docstring (default 3 x the
        subscriber's heartbeat_ms). ``tenant``: the tenant of the client's
        requests (``"default"`` for the default tenant); default the client's
        ``tenant`` attribute when it has a str one; None: every tenant's events
        evict by id (safe, ids are unique across tenants, only less precise)."""
        if timeout_ms is not None:
            warnings.warn("SessionCache(timeout_ms=...) is deprecated: pass timeout= in seconds",
                          DeprecationWarning, stacklevel=2)
            timeout = timeout_ms / 1000.0 if timeout is None else timeout
        if max_staleness_ms is not None and max_staleness_ms <= 0:
            raise ValueError("max_staleness_ms must be positive (or None: 3 x the subscriber's heartbeat_ms)")
        self._client = client
        if tenant is None and isinstance(getattr(client, "tenant", None), str):
            tenant = getattr(client, "tenant")
        self._tenant = tenant
        # The subscriber must follow the stream of the tenant the client acts
        # in, or that tenant's deletions never reach this cache (a subscriber
        # of the default stream stays live on the default tenant's heartbeats
        # alone): then nothing is cached and every get goes to the daemon.
        acts_in = getattr(client, "tenant", None)
        acts_in = acts_in if isinstance(acts_in, str) and acts_in else DEFAULT_TENANT
        followed = getattr(subscriber, "tenant", "") or ""
        self._covered = followed in ("*", acts_in) or (followed == "" and acts_in == DEFAULT_TENANT)
        if not self._covered:
            warnings.warn(f"SessionCache: the client acts in tenant {acts_in!r} but the subscriber follows "
                          f"{('tenant ' + repr(followed)) if followed else 'the default tenant'}; nothing will "
                          "be cached (give the Subscriber tenant= the client's tenant)", RuntimeWarning, stacklevel=2)
        self._max_staleness_ms = max_staleness_ms
        self._subscriber = subscriber
        self._max_entries = max(1, max_entries)
        self._timeout = timeout
        self._lru: "OrderedDict[bytes, CachedSession]" = OrderedDict()  # digest -> session, most recent last
        self._by_session: Dict[str, bytes] = {}
        self._by_user: Dict[str, Set[str]] = {}
        self._global_gen = 0
        self._event_gen = 0
        self._in_flight = 0
        self._touched: Dict[str, int] = {}
        self._stats = {"hits": 0, "misses": 0, "evictions": 0, "expired": 0, "capacity_evictions": 0,
                       "flushes": 0, "not_cached_stale": 0, "not_cached_race": 0, "silent_lookups": 0}
        self._listener: Optional[int] = subscriber.add_listener(self._on_event, self._on_stale)

    def close(self) -> None:
        """Removes the cache's listener from the Subscriber. Idempotent."""
        if self._listener is not None:
            self._subscriber.remove_listener(self._listener)
            self._listener = None

    def __enter__(self) -> "SessionCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def stats(self) -> Dict[str, int]:
        """``hits``, ``misses`` (went to the daemon), ``evictions`` (by events),
        ``expired``, ``capacity_evictions`` (LRU victims), ``flushes`` (whole-cache
        drops), ``not_cached_stale``, ``not_cached_race``, ``silent_lookups`` (sent
        to the daemon: silent past ``max_staleness_ms``)."""
        return dict(self._stats)

    def clear(self) -> None:
        """Drops every entry."""
        self._stats["flushes"] += 1
        self._lru.clear()
        self._by_session.clear()
        self._by_user.clear()
        self._global_gen += 1

    # -- events ------------------------------------------------------------------

    def _on_stale(self, reason: StaleReason) -> None:
        self.clear()

    def _touch(self, ident: str) -> None:
        if not ident:
            return
        self._event_gen += 1
        # Only a get in flight can race; with none, nothing needs remembering.
        if self._in_flight > 0:
            self._touched[ident] = self._event_gen

    def _touched_since(self, ident: str, gen: int) -> bool:
        return self._touched.get(ident, -1) > gen

    def _erase(self, key: bytes) -> None:
        s = self._lru.pop(key)
        self._by_session.pop(s.id, None)
        ids = self._by_user.get(s.user_id)
        if ids is not None:
            ids.discard(s.id)
            if not ids:
                del self._by_user[s.user_id]

    def _evict_session(self, session_id: str) -> None:
        key = self._by_session.get(session_id)
        if key is None:
            return
        self._stats["evictions"] += 1
        self._erase(key)

    def _evict_user(self, user_id: str) -> None:
        for sid in list(self._by_user.get(user_id, ())):
            self._evict_session(sid)

    def _on_event(self, e: Event) -> None:
        if self._tenant is not None and e.tenant != self._tenant:
            return  # another tenant's rows
        if e.family == "session":
            if e.kind == "expired":
                # A cleanup summary names no ids: drop what it covers. Without a
                # readable `before`, drop everything rather than guess.
                before = e.get("before")
                if not isinstance(before, _dt.datetime):
                    self.clear()
                    return
                for key, s in list(self._lru.items()):
                    if s.expires_at <= before:
                        self._stats["evictions"] += 1
                        self._erase(key)
                return
            sid = e.get("id")
            sid = sid if isinstance(sid, str) else ""
            self._touch(sid)
            self._evict_session(sid)
        elif e.family == "user":
            if e.kind == "created":
                return  # a new user has no cached sessions
            uid = e.get("id")
            uid = uid if isinstance(uid, str) else ""
            self._touch(uid)
            self._evict_user(uid)

    def _drain_events(self) -> None:
        while self._subscriber.poll(0) > 0:
            pass

    # -- lookups -------------------------------------------------------------------

    def _fresh(self) -> bool:
        """A live endpoint spoke within ``max_staleness_ms`` (True when unset)."""
        if self._max_staleness_ms is None:
            return True
        silence = self._subscriber.live_silence_ms()
        return silence is not None and silence < self._max_staleness_ms

    def get(self, token: str) -> CachedSession:
        """The unexpired session of ``token``, from the cache or the daemon.

        :raises NotFound: unknown or expired token (from the daemon).
        :raises ToriiError: the Client's other errors (e.g. :class:`Timeout`)."""
        # Events that already arrived come first: an eviction they carry must win
        # over the lookup below.
        self._drain_events()
        key = hashlib.sha256(token.encode("utf-8")).digest()
        fresh = self._covered and self._fresh()
        if not fresh:
            self._stats["silent_lookups"] += 1
        s = self._lru.get(key) if fresh else None
        if s is not None:
            if _now() < s.expires_at:
                self._stats["hits"] += 1
                self._lru.move_to_end(key)
                return s
            self._stats["expired"] += 1
            self._erase(key)

        self._stats["misses"] += 1
        live_at_start = self._subscriber.live()
        global_at_start = self._global_gen
        event_at_start = self._event_gen
        self._in_flight += 1
        try:
            try:
                data = self._client.get_session(token=token, timeout=self._timeout)
            finally:
                # Events that arrived while we waited are handled before deciding
                # whether the reply may be cached.
                self._drain_events()
            sid = data.get("id") if isinstance(data, dict) else None
            uid = data.get("user_id")
            exp = data.get("expires_at")
            if not isinstance(sid, str) or not sid or not isinstance(exp, _dt.datetime):
                raise Internal("get_session returned a malformed session", op="get_session")
            session = CachedSession(sid, uid if isinstance(uid, str) else "", exp, data)

            cache = True
            if not self._covered or not live_at_start or not self._subscriber.live() or \
                    self._global_gen != global_at_start:
                self._stats["not_cached_stale"] += 1
                cache = False
            elif self._touched_since(session.id, event_at_start) or \
                    self._touched_since(session.user_id, event_at_start):
                self._stats["not_cached_race"] += 1
                cache = False
            elif _now() >= session.expires_at:
                cache = False
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._touched.clear()
        if not cache:
            return session

        # A token maps to one session; a stale entry of the same key or session
        # (replaced between lookup and insert) goes first.
        if key in self._lru:
            self._erase(key)
        old = self._by_session.get(session.id)
        if old is not None:
            self._erase(old)
        self._lru[key] = session
        self._by_session[session.id] = key
        if session.user_id:
            self._by_user.setdefault(session.user_id, set()).add(session.id)
        while len(self._lru) > self._max_entries:
            self._stats["capacity_evictions"] += 1
            self._erase(next(iter(self._lru)))
        return session
