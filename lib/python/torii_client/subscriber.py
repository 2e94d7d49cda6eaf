"""torii_client.Subscriber: the change-event side of PROTOCOL.md section 3.

SUB sockets on one or more ``events`` endpoints, event decoding, and the
bookkeeping that tells a cache when it may have missed something: the rules
of docs/protocol.md section 6, as lib/torii/subscriber.h implements them.

Contract:

- **Not thread-safe.** One thread owns a Subscriber and drives it with
  :meth:`poll`. Listeners run inside ``poll()``, on that thread; they may call
  :meth:`live` and the other accessors but must not call ``poll()``.
- One SUB socket per endpoint, each tracked on its own: the epoch of the
  daemon behind it, the last ``seq`` per family, the time of its last message.
  Families are subscribed first and ``torii.`` last (the first heartbeat then
  proves the other subscriptions are in place).
- ``on_stale(reason)`` is called whenever an endpoint may have missed events:

  * ``gap``: a family's seq skipped (expected N, got M), or a heartbeat's
    ``seqs`` shows a family beyond the last seq seen (a dropped last message),
    or behind it;
  * ``epoch_change``: a new epoch on an endpoint that had one (the daemon restarted);
  * ``missed_heartbeats``: no message of any kind for 3 x ``heartbeat_ms``
    (reported once per silence, also when nothing ever arrived);
  * ``resync``: a ``torii.resync`` event (its reason in ``detail``);
  * ``malformed``: an undecodable message on a subscribed topic (it may have
    been an invalidation).

  After one, the endpoint is not caught up until its next clean heartbeat,
  and its seq tracking starts a new *segment* (its messages since its last
  stale condition).
- **The stale rule, several endpoints** (the same as lib/torii/subscriber.h;
  docs/protocol.md section 11 gives the argument): a stale condition on
  endpoint A reaches ``on_stale`` unless another endpoint vouches for it.

  * A's *position* is the eid of the last event A delivered. If another
    endpoint B received that eid in its current segment and is live, B's
    stream after it is complete (or B reports its own stale condition, judged
    by this rule): the condition is absorbed (``stats["absorbed"]``). If some
    other endpoint is live but none has that eid yet (B lags A), the
    condition is held for up to 3 x ``heartbeat_ms`` waiting for one to
    receive it; reported otherwise.
  * B also vouches, with or without A's position, when B is live and has
    been caught up with no stale condition since before anything was cached:
    the only vouch in the quiet case, where A never delivered an event with
    an eid (no position; all it missed came after its start). Since
    before the first ``live()`` call that answered True after the last
    reported condition (or construction). A cache checks ``live()`` before it
    reads what it caches and drops everything at each report (SessionCache
    does; a cache of your own must too), so nothing it holds predates that
    call. With no such call since the last report, any live endpoint vouches.
  * Always reported: when no other endpoint is live; when A has no position
    and no endpoint has been live since that moment; when A's position left
    the dedup window; and a ``torii.resync`` with an eid (database-wide: a
    TRUNCATE, ``torii_resync()``, a bulk import), reported once however many
    daemons relay it.

  With one endpoint every stale condition is reported. So a cache flushes only
  when no endpoint stayed live across the gap, or on a database-wide resync.
- The first message seen of a family (per endpoint and epoch) sets the
  baseline; only later skips are gaps.
- An endpoint is **caught up** when, since it connected and since its last
  stale condition, it delivered a heartbeat of its current epoch whose
  ``seqs`` showed nothing missed, and it is within its heartbeat deadline.
  :meth:`live` is true while **at least one** endpoint is caught up. (The C++
  header said "every endpoint"; with several daemons on one database each of
  them publishes every change, so one caught-up endpoint sees them all, and a
  daemon that is down must not keep a cache cold. The C++ Subscriber is being
  changed the same way.) Right after construction ``live()`` is false.
- **Duplicates across daemons.** Events may carry ``eid``, an identity the
  database assigns to each change and every daemon publishes unchanged. An
  event whose ``eid`` was already delivered (from another endpoint) is not
  delivered again (counted in ``stats["duplicates"]``); its seq still counts
  for its own endpoint's gap checks. The last ``dedup_window`` eids are
  remembered. Events without ``eid`` are always delivered, so two endpoints of
  one daemon, or daemons that do not send ``eid``, deliver events twice
  (harmless for invalidation).
"""
from __future__ import annotations

import datetime as _dt
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import zmq

from . import codec
from ._sockets import SocketOwner
from .curve import CurveKeys

# A flood must not keep poll() from checking deadlines and returning.
_MAX_MESSAGES_PER_SOCKET_PER_POLL = 10000


class StaleKind(str, Enum):
    GAP = "gap"
    EPOCH_CHANGE = "epoch_change"
    MISSED_HEARTBEATS = "missed_heartbeats"
    RESYNC = "resync"
    MALFORMED = "malformed"


@dataclass
class StaleReason:
    """Why an endpoint may have missed events."""

    kind: StaleKind
    endpoint: int  # index into the Subscriber's endpoints
    family: str = ""  # gap
    tenant: str = ""  # gap: the tenant of ``family`` ("default" for the default tenant)
    epoch: str = ""  # the epoch now tracked (epoch_change: the new one)
    old_epoch: str = ""  # epoch_change
    expected: int = 0  # gap: the next seq we expected
    got: int = 0  # gap: the seq seen (or shown by a heartbeat)
    detail: str = ""  # resync: the daemon's reason; otherwise more words

    def __str__(self) -> str:
        s = self.kind.value
        if self.kind is StaleKind.GAP:
            s += f" on {self.family}"
            if self.tenant and self.tenant != DEFAULT_TENANT:
                s += f" of tenant {self.tenant}"
            s += f" (epoch {self.epoch}, expected seq {self.expected}, got {self.got})"
        elif self.kind is StaleKind.EPOCH_CHANGE:
            s += f" (epoch {self.old_epoch} -> {self.epoch})"
        else:
            s += f" (epoch {self.epoch or 'unknown'})"
        s += f" on endpoint #{self.endpoint}"
        if self.detail:
            s += f": {self.detail}"
        return s


@dataclass
class Event:
    """One decoded event: ``topic`` ``family.kind`` (a tenant's ``@T/``
    prefix stripped), the common keys, and the whole ``body`` (timestamps as
    UTC datetimes, binaries as bytes). ``tenant``: the tenant whose rows
    changed, ``"default"`` for the default tenant."""

    topic: str
    family: str
    kind: str
    seq: int
    epoch: str
    at: Optional[_dt.datetime]
    endpoint: int
    body: Dict[str, Any] = field(repr=False)
    tenant: str = "default"

    @property
    def eid(self) -> Any:
        """The database-assigned event identity, or None when the event has none."""
        return self.body.get("eid")

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


EventFn = Callable[[Event], None]
StaleFn = Callable[[StaleReason], None]


class _Endpoint:
    def __init__(self, address: str, socket: zmq.Socket, now: float) -> None:
        self.address = address
        self.socket = socket
        self.epoch = ""  # empty until the first message
        self.seqs: Dict[str, int] = {}  # _seq_key(tenant, family) -> last seq seen (this epoch)
        self.last_message = now  # monotonic seconds; connect time at first
        self.silence_reported = False  # missed_heartbeats fired for this silence
        self.caught_up = False  # a clean heartbeat since the last stale condition
        self.caught_up_tick = 0  # Subscriber._tick when caught_up last became true
        self.last_eid: Any = None  # eid of the last event received: its stream position


DEFAULT_TENANT = "default"
_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


def valid_tenant_name(name: Any) -> bool:
    """True for 1 to 64 bytes of ``[a-z0-9_.-]`` (docs/protocol.md section 6)."""
    return isinstance(name, str) and 1 <= len(name) <= 64 and all(c in _TENANT_CHARS for c in name)


def tenant_prefix(tenant: str) -> str:
    """The topic prefix of a tenant's events: "" for the default tenant, ``@T/`` otherwise."""
    return "" if not tenant or tenant == DEFAULT_TENANT else f"@{tenant}/"


def split_tenant_topic(topic: str) -> Optional[tuple]:
    """(tenant, topic without the prefix); None for a malformed ``@`` prefix."""
    if not topic.startswith("@"):
        return DEFAULT_TENANT, topic
    slash = topic.find("/")
    name = topic[1:slash] if slash > 0 else ""
    if not valid_tenant_name(name) or name == DEFAULT_TENANT:
        return None
    return name, topic[slash + 1:]


def _seq_key(tenant: str, family: str) -> str:
    return tenant_prefix(tenant) + family


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class Subscriber(SocketOwner):
    """SUB sockets on toriid ``events`` endpoints with section 3's stale rules.

    :param endpoints: ``tcp://`` or ``ipc://`` addresses (one str or several).
    :param families: families to receive (``"user"``, ``"session"``; a trailing
        ``.`` is allowed); ``torii.`` is always subscribed. None or empty: all.
    :param heartbeat_ms: the daemon's ``events.heartbeat_ms``; 3 x this of silence is stale.
    :param deliver_torii_events: pass ``torii.*`` events (heartbeat, resync) to listeners too.
    :param rcvhwm: receive high-water mark per socket, in messages.
    :param curve: CURVE keys, or None.
    :param context: a ``zmq.Context`` to share; default a private one.
    :param dedup_window: how many delivered ``eid`` values are remembered.
    :param tenant: whose events. None or "": as before tenants, the default
        tenant's ``families`` (with no families, everything the daemon sends
        this key: every tenant's for an unbound key); a tenant name: that
        tenant's stream (``@T/`` prefixed subscriptions: what a key bound to T
        must use); ``"*"``: every tenant's (everything is subscribed, the
        families are kept here). Seqs, heartbeats and gaps are tracked per
        (tenant, family); :attr:`Event.tenant` says whose event it is.
    :raises ValueError: no endpoints, heartbeat_ms <= 0, bad CURVE keys, a bad tenant.
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], *, families: Optional[Iterable[str]] = None,
                 heartbeat_ms: int = 1000, deliver_torii_events: bool = False, rcvhwm: int = 100000,
                 curve: Optional[CurveKeys] = None, context: Optional[zmq.Context] = None,
                 dedup_window: int = 65536, tenant: Optional[str] = None) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        endpoints = list(endpoints)
        if not endpoints:
            raise ValueError("the subscriber needs at least one endpoint")
        if heartbeat_ms <= 0:
            raise ValueError("heartbeat_ms must be positive")
        if curve is not None:
            curve.validate()
        every_tenant = tenant == "*"
        if tenant and not every_tenant and not valid_tenant_name(tenant):
            raise ValueError('tenant must be empty, "*" or 1 to 64 bytes of [a-z0-9_.-]')
        self.tenant = tenant or ""
        prefix = "" if every_tenant else tenant_prefix(tenant or "")
        fams = [f[:-1] if f.endswith(".") else f for f in (families or [])]
        # An empty family name means "everything", like no families at all.
        self.families: List[str] = [] if "" in fams else fams
        self.heartbeat_ms = heartbeat_ms
        self.deliver_torii_events = deliver_torii_events
        # "*" with families: everything is subscribed, the families kept here.
        self._local_filter = every_tenant and bool(self.families)
        self._dedup_window = max(1, dedup_window)
        # eid -> bit mask of the endpoints that received it in their current
        # segment (bit i cleared at endpoint i's next stale condition).
        self._seen_eids: "OrderedDict[Any, int]" = OrderedDict()
        # Stale conditions waiting for another endpoint to receive the eid of
        # their endpoint's position: (reason, eid, deadline).
        self._held: List[tuple] = []
        # The quiet-case vouch: _tick orders endpoints becoming caught up and
        # the anchor, the tick of the first live() call that answered True
        # since the last report (None: nothing cached since then). A cache
        # checks live() before reading what it caches.
        self._tick = 0
        self._anchor: Optional[int] = None
        self._listeners: List[tuple] = []
        self._next_handle = 1
        self._stale_generation = 0
        self._stats = {"messages": 0, "events": 0, "heartbeats": 0, "stale": 0, "malformed": 0, "duplicates": 0,
                       "absorbed": 0}
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._endpoints: List[_Endpoint] = []
        now = time.monotonic()
        try:
            for address in endpoints:
                s = self._context.socket(zmq.SUB)
                self._endpoints.append(_Endpoint(address, s, now))
                s.linger = 0
                s.rcvhwm = rcvhwm
                if curve is not None:
                    curve.apply(s)
                if not self.families or every_tenant:
                    s.setsockopt(zmq.SUBSCRIBE, prefix.encode())
                else:
                    for f in self.families:
                        if f != "torii":
                            s.setsockopt(zmq.SUBSCRIBE, (prefix + f + ".").encode())
                    s.setsockopt(zmq.SUBSCRIBE, (prefix + "torii.").encode())
                s.connect(address)
        except Exception:
            self.close()
            raise
        self._poll_endpoints()

    # -- listeners ------------------------------------------------------------

    def add_listener(self, on_event: Optional[EventFn] = None, on_stale: Optional[StaleFn] = None) -> int:
        """Adds a listener (called in the order added); returns a handle for
        :meth:`remove_listener`. Either function may be None."""
        h = self._next_handle
        self._next_handle += 1
        self._listeners.append((h, on_event, on_stale))
        return h

    def remove_listener(self, handle: int) -> None:
        self._listeners = [x for x in self._listeners if x[0] != handle]

    # -- state ------------------------------------------------------------------

    def live(self) -> bool:
        """True while at least one endpoint is caught up (see the module doc).
        The first call that answers True after a reported stale condition marks
        the moment caching may start (the stale rule's anchor): check it before
        reading anything you cache."""
        now = time.monotonic()
        if not any(self._live_at(i, now) for i in range(len(self._endpoints))):
            return False
        if self._anchor is None:
            self._tick += 1
            self._anchor = self._tick
        return True

    def endpoint_live(self, index: int) -> bool:
        """Whether endpoint ``index`` is caught up and within its heartbeat deadline."""
        ep = self._endpoints[index]
        return ep.caught_up and not ep.silence_reported and \
            time.monotonic() - ep.last_message < 3 * self.heartbeat_ms / 1000.0

    def live_silence_ms(self) -> Optional[float]:
        """Milliseconds since the newest message (of any kind) from an endpoint
        that is live now was processed by :meth:`poll`; ``None`` while none is
        live. A cache's bound on
        staleness (``SessionCache(max_staleness_ms=...)``): :meth:`live` alone
        allows up to 3 x ``heartbeat_ms`` of silence."""
        now = time.monotonic()
        silences = [now - ep.last_message for i, ep in enumerate(self._endpoints) if self.endpoint_live(i)]
        return min(silences) * 1000.0 if silences else None

    @property
    def stale_generation(self) -> int:
        """Bumped at every on_stale: a cheap way to notice "something went stale"."""
        return self._stale_generation

    @property
    def stats(self) -> Dict[str, int]:
        """``messages`` received, ``events`` delivered, ``heartbeats``, ``stale``
        (on_stale calls), ``absorbed`` (stale conditions another endpoint vouched
        for), ``malformed``, ``duplicates`` (eid already delivered)."""
        return dict(self._stats)

    @property
    def endpoints(self) -> List[str]:
        return [ep.address for ep in self._endpoints]

    def sockets(self) -> List[zmq.Socket]:
        """The SUB sockets, for an outer poll loop (readable: call ``poll(0)``).
        Only for polling; receiving on them breaks the subscriber."""
        return [ep.socket for ep in self._endpoints]

    # -- polling ------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> int:
        """Waits up to ``timeout_ms`` (0: no wait; < 0: forever) for messages,
        processes every message that arrived and checks heartbeat deadlines
        (waking at the next one, so a silence is reported on time). Returns the
        number of messages processed; returns early once it processed any."""
        until = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000.0
        while True:
            self._mark_waiting()
            n = 0
            for i in range(len(self._endpoints)):
                n += self._drain(i)
            # Deadlines after draining: messages that waited in the socket while
            # nobody polled are not a silence.
            now = time.monotonic()
            next_deadline = self._check_deadlines(now)
            if n > 0:
                return n
            if until is not None and now >= until:
                return 0
            wait: Optional[float] = None if until is None else until - now
            if next_deadline is not None:
                wait = next_deadline if wait is None else min(wait, next_deadline)
            self._poller.poll(None if wait is None else max(0, int(wait * 1000) + 1))

    # -- internals ------------------------------------------------------------------

    def _subscribed(self, family: str) -> bool:
        return not self.families or family in self.families

    def _live_at(self, i: int, now: float) -> bool:
        ep = self._endpoints[i]
        return ep.caught_up and not ep.silence_reported and now - ep.last_message < 3 * self.heartbeat_ms / 1000.0

    def _any_other_live(self, index: int, now: float) -> bool:
        return any(i != index and self._live_at(i, now) for i in range(len(self._endpoints)))

    def _any_other_live_since_anchor(self, index: int, now: float) -> bool:
        return any(i != index and self._live_at(i, now) and (self._anchor is None or ep.caught_up_tick <= self._anchor)
                   for i, ep in enumerate(self._endpoints))

    def _caught_up(self, index: int) -> None:
        ep = self._endpoints[index]
        if ep.caught_up:
            return
        ep.caught_up = True
        self._tick += 1
        ep.caught_up_tick = self._tick

    def _stale(self, reason: StaleReason, absorbable: bool = True) -> None:
        """A stale condition on an endpoint: it starts a new segment, and reaches
        the listeners unless another endpoint vouches for it (the module doc)."""
        a = reason.endpoint
        ep = self._endpoints[a]
        ep.caught_up = False
        if len(self._endpoints) == 1:
            self._report(reason)
            return
        mine = 1 << a
        for eid in self._seen_eids:
            self._seen_eids[eid] &= ~mine
        now = time.monotonic()
        if not absorbable or not self._any_other_live(a, now):
            self._report(reason)
            return
        # An endpoint live since before anything was cached has every change a
        # cache could miss, wherever A's position is: the only vouch when A has
        # none (the quiet case).
        if self._any_other_live_since_anchor(a, now):
            self._stats["absorbed"] += 1
            return
        if ep.last_eid is None:
            self._report(reason)
            return
        mask = self._seen_eids.get(ep.last_eid)
        if mask is None:  # left the window: nothing to vouch with
            self._report(reason)
            return
        if any(i != a and mask & (1 << i) and self._live_at(i, now) for i in range(len(self._endpoints))):
            self._stats["absorbed"] += 1
            return
        self._held.append((reason, ep.last_eid, now + 3 * self.heartbeat_ms / 1000.0))

    def _report(self, reason: StaleReason) -> None:
        self._stale_generation += 1
        self._stats["stale"] += 1
        # Caches drop everything now: what they hold from here on is read
        # after their next live() check.
        self._anchor = None
        for _, _, on_stale in list(self._listeners):
            if on_stale is not None:
                on_stale(reason)

    def _check_held(self, now: float) -> Optional[float]:
        """Reports held conditions past their deadline, or all of them when no
        other endpoint is live any more; returns the seconds until the next
        deadline (None: none)."""
        nxt: Optional[float] = None
        i = 0
        while i < len(self._held):
            reason, _, deadline = self._held[i]
            if now >= deadline or not self._any_other_live(reason.endpoint, now):
                del self._held[i]
                reason.detail = (reason.detail + "; " if reason.detail else "") + "no other endpoint vouched for it"
                self._report(reason)
                i = 0
                nxt = None
                continue
            if nxt is None or deadline - now < nxt:
                nxt = deadline - now
            i += 1
        return nxt

    def _record_eid(self, index: int, e: Event) -> bool:
        """Endpoint ``index`` received the event's eid in its current segment.
        False for a duplicate (already delivered). Settles held conditions
        waiting for this eid from another endpoint."""
        eid = e.body.get("eid")
        if eid is None or not isinstance(eid, (int, str, bytes)) or isinstance(eid, bool):
            return True
        self._endpoints[index].last_eid = eid
        mine = 1 << index
        mask = self._seen_eids.get(eid)
        fresh = mask is None
        if fresh:
            self._seen_eids[eid] = mine
            if len(self._seen_eids) > self._dedup_window:
                self._seen_eids.popitem(last=False)
        else:
            self._seen_eids[eid] = mask | mine
            self._stats["duplicates"] += 1
        if self._held:
            kept = [h for h in self._held if not (h[1] == eid and h[0].endpoint != index)]
            self._stats["absorbed"] += len(self._held) - len(kept)
            self._held = kept
        return fresh

    def _deliver(self, e: Event) -> None:
        self._stats["events"] += 1
        for _, on_event, _ in list(self._listeners):
            if on_event is not None:
                on_event(e)

    def _gap(self, index: int, tenant: str, family: str, expected: int, got: int, detail: str) -> None:
        self._stale(StaleReason(StaleKind.GAP, index, family=family, tenant=tenant,
                                epoch=self._endpoints[index].epoch, expected=expected, got=got, detail=detail))

    def _malformed(self, index: int, detail: str) -> None:
        self._stats["malformed"] += 1
        self._stale(StaleReason(StaleKind.MALFORMED, index, epoch=self._endpoints[index].epoch, detail=detail))

    def _check_heartbeat(self, index: int, e: Event) -> bool:
        """A heartbeat's ``seqs`` against what we saw; False on a gap."""
        ep = self._endpoints[index]
        seqs = e.body.get("seqs")
        if not isinstance(seqs, dict):
            self._malformed(index, "torii.heartbeat without a seqs map")
            return False
        clean = True
        for family, shown in seqs.items():
            if not isinstance(family, str) or not _is_uint(shown):
                continue
            # The torii family is checked by the heartbeat's own seq.
            if family == "torii" or not self._subscribed(family):
                continue
            # A tenant's heartbeat shows that tenant's seqs.
            key = _seq_key(e.tenant, family)
            last = ep.seqs.get(key)
            if last is None:
                ep.seqs[key] = shown  # the baseline for a family not seen yet
            elif shown != last:
                self._gap(index, e.tenant, family, last + 1, shown,
                          "the heartbeat shows messages we did not receive" if shown > last
                          else "the heartbeat shows a seq behind what we received")
                ep.seqs[key] = shown
                clean = False
        # A subscribed family the heartbeat does not list has published nothing
        # yet: its first message must be seq 1.
        for f in self.families:
            if f != "torii":
                ep.seqs.setdefault(_seq_key(e.tenant, f), 0)
        return clean

    def _process(self, index: int, topic_bytes: bytes, body_bytes: bytes) -> None:
        ep = self._endpoints[index]
        split = split_tenant_topic(topic_bytes.decode("utf-8", errors="replace"))
        if split is None:
            self._malformed(index, "an event topic with a malformed tenant prefix")
            return
        tenant, topic = split
        dot = topic.find(".")
        if dot < 0:
            self._malformed(index, "an event topic without a '.'")
            return
        try:
            body = codec.unpackb(body_bytes)
        except Exception:  # noqa: BLE001 - any decoding failure is a malformed event
            body = None
        if not isinstance(body, dict):
            self._malformed(index, f"an event body that is not a msgpack map ({topic})")
            return
        seq = body.get("seq")
        epoch = body.get("epoch")
        if not _is_uint(seq) or not isinstance(epoch, str):
            self._malformed(index, f"an event without seq or epoch ({topic})")
            return
        at = body.get("at")
        e = Event(topic=topic, family=topic[:dot], kind=topic[dot + 1:], seq=seq, epoch=epoch,
                  at=at if isinstance(at, _dt.datetime) else None, endpoint=index, body=body, tenant=tenant)

        if ep.epoch != e.epoch:
            if ep.epoch:
                old = ep.epoch
                ep.epoch = e.epoch
                ep.seqs.clear()
                self._stale(StaleReason(StaleKind.EPOCH_CHANGE, index, epoch=e.epoch, old_epoch=old,
                                        detail="the daemon restarted"))
            else:
                ep.epoch = e.epoch

        clean = True
        key = _seq_key(e.tenant, e.family)
        last = ep.seqs.get(key)
        if last is None:
            ep.seqs[key] = e.seq  # first of its family: the baseline
        else:
            if e.seq != last + 1:
                self._gap(index, e.tenant, e.family, last + 1, e.seq,
                          "" if e.seq > last + 1 else "the seq went backwards within one epoch")
                clean = False
            ep.seqs[key] = e.seq

        # After the seq checks: a duplicate still counted for its endpoint's seq.
        fresh = self._record_eid(index, e)

        torii = e.family == "torii"
        if torii and e.kind == "heartbeat":
            self._stats["heartbeats"] += 1
            if self._check_heartbeat(index, e) and clean:
                self._caught_up(index)
        elif torii and e.kind == "resync" and fresh:
            # With an eid it came from the database (a TRUNCATE, torii_resync(),
            # a bulk import): every daemon relays it, and it is reported once.
            reason = body.get("reason")
            self._stale(StaleReason(StaleKind.RESYNC, index, epoch=ep.epoch,
                                    detail=reason if isinstance(reason, str) and reason else "torii.resync"),
                        absorbable=e.eid is None)
        wanted = self.deliver_torii_events if torii else (not self._local_filter or self._subscribed(e.family))
        if fresh and wanted:
            self._deliver(e)

    def _mark_waiting(self) -> None:
        """An endpoint with messages waiting has been heard from now, before any
        endpoint's messages are processed: otherwise, after a while without
        poll(), the first endpoint drained would judge its stale conditions
        (does another endpoint vouch?) against the others' old last_message,
        though their messages sit in their sockets."""
        now = time.monotonic()
        for ep in self._endpoints:
            if ep.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                ep.last_message = now

    def _drain(self, index: int) -> int:
        """Reads what has arrived on one socket; returns the number of messages."""
        ep = self._endpoints[index]
        n = 0
        while n < _MAX_MESSAGES_PER_SOCKET_PER_POLL:
            try:
                frames = ep.socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            self._stats["messages"] += 1
            ep.last_message = time.monotonic()
            ep.silence_reported = False
            if len(frames) == 1:
                self._malformed(index, "an event with one frame")
                continue
            if len(frames) > 2:
                self._malformed(index, "an event with more than two frames")
                continue
            self._process(index, frames[0], frames[1])
        return n

    def _check_deadlines(self, now: float) -> Optional[float]:
        """Fires missed_heartbeats for endpoints silent past 3 intervals; returns
        the seconds until the next such deadline (None: none pending)."""
        limit = 3 * self.heartbeat_ms / 1000.0
        nxt: Optional[float] = None
        for i, ep in enumerate(self._endpoints):
            if ep.silence_reported:
                continue
            due = ep.last_message + limit
            if now >= due:
                ep.silence_reported = True
                self._stale(StaleReason(StaleKind.MISSED_HEARTBEATS, i, epoch=ep.epoch,
                                        detail=f"no message for {int((now - ep.last_message) * 1000)} ms "
                                               f"(3 heartbeats of {self.heartbeat_ms} ms)"))
            elif nxt is None or due - now < nxt:
                nxt = due - now
        held_next = self._check_held(now)
        if held_next is not None and (nxt is None or held_next < nxt):
            nxt = held_next
        return nxt
