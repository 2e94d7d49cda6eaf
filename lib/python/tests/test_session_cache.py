"""torii_client.SessionCache against a real toriid: hits, eviction by events
(delete, extend, user update), whole-cache drops on stale conditions, nothing
cached while the subscriber is not live, the read-through race, expiry and
the LRU bound."""
from __future__ import annotations

import datetime as dt

import pytest

from torii_client import Client, Duplicate, NotFound, SessionCache, StaleKind, Subscriber
from conftest import BASE_SETTINGS, HEARTBEAT_MS, unique_email, wait_until

UTC = dt.timezone.utc


@pytest.fixture
def parts(daemon):
    with Client(daemon.request_endpoint, timeout=10) as c, \
            Client(daemon.request_endpoint, timeout=10) as other, \
            Subscriber(daemon.event_endpoint, families=["user", "session"], heartbeat_ms=HEARTBEAT_MS) as sub:
        seen = []
        sub.add_listener(seen.append, None)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="the subscriber to be live")
        with SessionCache(c, sub) as cache:
            yield c, other, sub, cache, seen


def wait_event(sub, seen, topic, ident, what=None):
    wait_until(lambda: any(e.topic == topic and e.get("id") == ident for e in seen), 20,
               poll=lambda: sub.poll(50), what=what or f"{topic} {ident}")


def new_session(c: Client, sub, seen, ttl_s: int = 3600):
    """A user and a session, once their creation events have been delivered
    (a session.created event arriving while a get is in flight would, rightly,
    keep that get's reply out of the cache)."""
    u = c.create_user(unique_email("cache"))
    s = c.create_session(u["id"], ttl_s=ttl_s)
    wait_event(sub, seen, "session.created", s["id"])
    return u, s


def recorder(sub):
    seen = []
    sub.add_listener(seen.append, None)
    return seen


def test_hit_then_evicted_by_delete(parts):
    c, other, sub, cache, seen = parts
    u, s = new_session(other, sub, seen)
    first = cache.get(s["token"])
    assert first.id == s["id"] and first.user_id == u["id"] and first.expires_at == s["expires_at"]
    assert first.data["user_id"] == u["id"]
    assert cache.stats["misses"] == 1 and len(cache) == 1
    sent = c.client_stats["sent"]
    again = cache.get(s["token"])
    assert again is first and cache.stats["hits"] == 1
    assert c.client_stats["sent"] == sent  # served without asking the daemon
    # Deleted by someone else: once its event is delivered, never served again.
    other.delete_session(id=s["id"])
    wait_event(sub, seen, "session.deleted", s["id"])
    assert len(cache) == 0 and cache.stats["evictions"] == 1
    with pytest.raises(NotFound):
        cache.get(s["token"])
    assert len(cache) == 0  # not_found is not cached


def test_evicted_by_extend_and_by_user_change(parts):
    c, other, sub, cache, seen = parts
    u, s = new_session(other, sub, seen)
    cache.get(s["token"])
    longer = other.extend_session(id=s["id"], ttl_s=7200)
    wait_event(sub, seen, "session.updated", s["id"])
    assert cache.get(s["token"]).expires_at == longer["expires_at"]  # what the database holds now
    assert cache.stats["evictions"] == 1
    s2 = other.create_session(u["id"], ttl_s=3600)
    wait_event(sub, seen, "session.created", s2["id"])
    cache.get(s2["token"])
    assert len(cache) == 2
    other.update_user(u["id"], metadata={"locked": True})  # evicts every session of that user
    wait_event(sub, seen, "user.updated", u["id"])
    assert len(cache) == 0 and cache.stats["evictions"] == 3


def test_user_deleted_evicts_its_sessions(parts):
    c, other, sub, cache, seen = parts
    u, s = new_session(other, sub, seen)
    cache.get(s["token"])
    other.delete_user(u["id"])
    wait_event(sub, seen, "user.deleted", u["id"])
    assert len(cache) == 0
    with pytest.raises(NotFound):
        cache.get(s["token"])


def test_nothing_cached_until_the_subscriber_is_live(daemon):
    with Client(daemon.request_endpoint) as c:
        # Made before the Subscriber exists: its events can never reach it.
        u = c.create_user(unique_email("cache"))
        s = c.create_session(u["id"], ttl_s=3600)
        with Subscriber(daemon.event_endpoint, heartbeat_ms=HEARTBEAT_MS) as sub, SessionCache(c, sub) as cache:
            assert not sub.live()
            assert cache.get(s["token"]).id == s["id"]  # correct, just not cached
            assert len(cache) == 0 and cache.stats["not_cached_stale"] == 1
            wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="live")
            cache.get(s["token"])
            assert len(cache) == 1 and cache.stats["misses"] == 2
            cache.get(s["token"])
            assert cache.stats["hits"] == 1


def test_a_subscriber_of_another_tenants_stream_caches_nothing(daemon):
    """A client of tenant acme with a subscriber of the default stream: the
    subscriber is live on the default tenant's heartbeats but would never
    hear of acme's deletions, so the cache caches nothing."""
    with Client(daemon.request_endpoint) as admin:
        try:
            admin.create_tenant(name="acme")
        except Duplicate:  # made by an earlier test on this database
            pass
    with Client(daemon.request_endpoint, tenant="acme") as c, \
            Subscriber(daemon.event_endpoint, heartbeat_ms=HEARTBEAT_MS) as sub:
        with pytest.warns(RuntimeWarning, match="nothing will be cached"):
            cache = SessionCache(c, sub)
        with cache:
            u = c.create_user(unique_email("cache"))
            s = c.create_session(u["id"], ttl_s=3600)
            wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="live")
            for _ in range(3):
                assert cache.get(s["token"]).id == s["id"]
            assert len(cache) == 0 and cache.stats["hits"] == 0 and cache.stats["misses"] == 3


def test_stale_drops_everything(daemon, cluster, database):
    dbname = database.rsplit("dbname=", 1)[1]
    with Client(daemon.request_endpoint) as c, \
            Subscriber(daemon.event_endpoint, heartbeat_ms=HEARTBEAT_MS) as sub, SessionCache(c, sub) as cache:
        stale = []
        sub.add_listener(None, stale.append)
        seen = recorder(sub)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="live")
        for _ in range(3):
            cache.get(new_session(c, sub, seen)[1]["token"])
        assert len(cache) == 3
        flushes = cache.stats["flushes"]
        # The daemon loses its LISTEN connection: it publishes torii.resync.
        assert cluster.psql(dbname, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                    "application_name = 'toriid-listener' AND datname = current_database()") == "1"
        wait_until(lambda: StaleKind.RESYNC in [r.kind for r in stale], 30, poll=lambda: sub.poll(50),
                   what="the resync")
        assert len(cache) == 0 and cache.stats["flushes"] > flushes


def test_read_through_race_is_not_cached(parts):
    c, other, sub, cache, seen = parts
    _, s = new_session(other, sub, seen)
    real_get = c.get_session

    def get_then_deleted(**kwargs):
        # The read happens, then the session is deleted and its event delivered
        # before the cache handles the (now stale) reply.
        reply = real_get(**kwargs)
        other.delete_session(id=s["id"])
        wait_event(sub, seen, "session.deleted", s["id"])
        return reply

    c.get_session = get_then_deleted
    try:
        got = cache.get(s["token"])
    finally:
        del c.get_session
    assert got.id == s["id"]  # the caller gets the answer of its read
    assert cache.stats["not_cached_race"] == 1 and len(cache) == 0
    with pytest.raises(NotFound):
        cache.get(s["token"])


def test_expired_entries_are_not_served(parts):
    c, other, sub, cache, seen = parts
    _, s = new_session(other, sub, seen, ttl_s=1)
    cache.get(s["token"])
    assert len(cache) == 1
    wait_until(lambda: dt.datetime.now(UTC) >= s["expires_at"], 5, what="the session to expire")
    with pytest.raises(NotFound):
        cache.get(s["token"])
    assert cache.stats["expired"] == 1 and len(cache) == 0


def test_lru_bound(daemon):
    with Client(daemon.request_endpoint) as c, \
            Subscriber(daemon.event_endpoint, heartbeat_ms=HEARTBEAT_MS) as sub, \
            SessionCache(c, sub, max_entries=2) as cache:
        seen = recorder(sub)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="live")
        a, b, d = (new_session(c, sub, seen)[1] for _ in range(3))
        cache.get(a["token"])
        cache.get(b["token"])
        cache.get(a["token"])  # a is now the most recent
        cache.get(d["token"])  # b goes
        assert len(cache) == 2 and cache.stats["capacity_evictions"] == 1
        hits = cache.stats["hits"]
        cache.get(a["token"])
        assert cache.stats["hits"] == hits + 1
        cache.get(b["token"])
        assert cache.stats["misses"] == 4


def test_a_frozen_daemon_is_trusted_for_at_most_the_bound(daemon_factory, database):
    """Bounded staleness: the daemon whose events the caches follow is frozen
    (SIGSTOP: no events, no heartbeats, no error) while a session is deleted
    through another daemon. A cache serves it for at most 3 x heartbeat_ms after
    the last message, or ``max_staleness_ms`` when set (the C++ test
    StalenessTest.AFrozenDaemonIsTrustedForAtMostTheBound is the same case)."""
    import os
    import signal
    import time

    heartbeat_ms, tight_ms = 200, 300
    settings = dict(BASE_SETTINGS, **{"events.heartbeat_ms": str(heartbeat_ms)})
    frozen_daemon = daemon_factory(database, settings)
    other = daemon_factory(database, settings)
    with Client(other.request_endpoint, timeout=10) as c, \
            Subscriber(frozen_daemon.event_endpoint, heartbeat_ms=heartbeat_ms) as sub, \
            SessionCache(c, sub) as by_default, \
            SessionCache(c, sub, max_staleness_ms=tight_ms) as tight:
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="the subscriber to be live")
        u = c.create_user(unique_email("frozen"))
        s = c.create_session(u["id"], ttl_s=3600)
        for cache in (by_default, tight):
            wait_until(lambda: cache.get(s["token"]) and cache.stats["hits"] > 0, 10, what="a hit")
        pid = frozen_daemon.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen_at = time.monotonic()
            c.delete_session(id=s["id"])
            last_served = {"default": -1.0, "tight": -1.0}
            done = set()
            deadline = frozen_at + 5
            while len(done) < 2 and time.monotonic() < deadline:
                for name, cache in (("default", by_default), ("tight", tight)):
                    if name in done:
                        continue
                    at_ms = (time.monotonic() - frozen_at) * 1000
                    try:
                        cache.get(s["token"])
                        last_served[name] = at_ms
                    except NotFound:
                        done.add(name)
        finally:
            os.kill(pid, signal.SIGCONT)
    assert done == {"default", "tight"}, f"still served 5 s after the freeze: {last_served}"
    # The last message was sent before the freeze. A message counts from when
    # the Subscriber processes it, so one still in flight at the freeze may
    # count a little later: 50 ms for that on a busy machine.
    assert last_served["default"] <= 3 * heartbeat_ms + 50, last_served
    assert last_served["tight"] <= tight_ms + 50, last_served
    assert tight.stats["silent_lookups"] > 0


def test_max_staleness_must_be_positive(client):
    with Subscriber("tcp://127.0.0.1:1", heartbeat_ms=HEARTBEAT_MS) as sub:
        with pytest.raises(ValueError):
            SessionCache(client, sub, max_staleness_ms=0)
