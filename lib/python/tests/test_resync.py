"""Changes that fire no row trigger (issue 31), against two real toriid on one
database and a Python SessionCache subscribed to both: TRUNCATE sessions,
TRUNCATE users CASCADE, and a DELETE under session_replication_role = replica
followed by ``torii resync``. No truncated or deleted session is served by
the cache or by either daemon afterwards, and each database-wide resync is
relayed by both daemons and reported once (by eid). The same cases as
tests/integration/resync_test.cpp."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from torii_client import Client, NotFound, SessionCache, StaleKind, Subscriber
from conftest import BASE_SETTINGS, HEARTBEAT_MS, unique_email, wait_until

# How long a revoked session may still be served after the change committed:
# a few ms when healthy (p99 5 ms); generous for a loaded CI machine, and still
# far from "served until expiry".
REVOCATION_BOUND_S = 3.0


@pytest.fixture(scope="module")
def two(daemon_factory, cluster):
    url = cluster.create_database()
    d1 = daemon_factory(url, dict(BASE_SETTINGS))
    d2 = daemon_factory(url, dict(BASE_SETTINGS))
    return url, d1, d2


@pytest.fixture
def rig(two, cluster):
    url, d1, d2 = two
    with Client([d1.request_endpoint, d2.request_endpoint], timeout=10) as c, \
            Client(d1.request_endpoint, timeout=10) as c1, \
            Client(d2.request_endpoint, timeout=10) as c2, \
            Subscriber([d1.event_endpoint, d2.event_endpoint], families=["user", "session"],
                       heartbeat_ms=HEARTBEAT_MS, deliver_torii_events=True) as sub:
        resyncs, reports = [], []
        sub.add_listener(lambda e: resyncs.append(e) if e.topic == "torii.resync" else None,
                         lambda r: reports.append(r) if r.kind is StaleKind.RESYNC else None)
        wait_until(lambda: sub.endpoint_live(0) and sub.endpoint_live(1), 20, poll=lambda: sub.poll(50),
                   what="both endpoints live")
        with SessionCache(c, sub) as cache:
            yield url, c, (c1, c2), sub, cache, resyncs, reports


def settle(sub):
    """Polls until both daemons sent a few heartbeats after now (all they
    relayed before has arrived)."""
    hb = sub.stats["heartbeats"]
    wait_until(lambda: sub.stats["heartbeats"] >= hb + 4, 10, poll=lambda: sub.poll(20), what="heartbeats")


def make_sessions(c, n, user_id=None):
    uid = user_id or c.create_user(unique_email("resync"))["id"]
    return [c.create_session(uid, ttl_s=600) for _ in range(n)]


def warm(rig, sessions):
    _, _, direct, sub, cache, _, _ = rig
    settle(sub)  # the creations' events first, or they would evict what we cache
    for s in sessions:
        for _ in range(2):
            cache.get(s["token"])
            for d in direct:
                d.get_session(token=s["token"])
    assert len(cache) == len(sessions)


def served(rig, s):
    _, _, direct, sub, cache, _, _ = rig
    try:
        cache.get(s["token"])
        return "the SessionCache"
    except NotFound:
        pass
    for i, d in enumerate(direct):
        try:
            d.get_session(token=s["token"])
            return f"daemon {i + 1}"
        except NotFound:
            pass
    return ""


def expect_gone(rig, sessions, since, what, duplicates_before, resyncs=1):
    sub = rig[3]
    # First both daemons' copies of the resyncs: until the second daemon has
    # relayed one, its own cache may still answer a miss with a truncated row,
    # which the SessionCache would then keep (its copy is a duplicate): a
    # limitation of caching behind several daemons this test does not cover.
    while sub.stats["duplicates"] < duplicates_before + resyncs and time.monotonic() - since < REVOCATION_BOUND_S:
        sub.poll(5)
    while True:
        sub.poll(0)
        who = next(((w, s) for s in sessions for w in [served(rig, s)] if w), None)
        took = time.monotonic() - since
        if who is None:
            print(f"{what}: nothing served {took * 1000:.1f} ms after the change")
            return took
        assert took <= REVOCATION_BOUND_S, f"{what}: {who[0]} serves {who[1]['id']} {took * 1000:.0f} ms after it"
        sub.poll(5)


def expect_each_resync_once(rig, n, duplicates_before):
    _, _, _, sub, _, resyncs, reports = rig
    wait_until(lambda: sub.stats["duplicates"] >= duplicates_before + n, 10, poll=lambda: sub.poll(20),
               what="each resync from the second daemon too")
    eids = {e.eid for e in resyncs}
    assert None not in eids, "a database-wide resync without an eid"
    assert len(eids) == n and len(resyncs) == n, [e.body for e in resyncs]
    assert len(reports) == n, [str(r) for r in reports]


def reset(rig):
    rig[5].clear()
    rig[6].clear()
    return rig[3].stats["duplicates"]


def test_truncate_sessions(rig, cluster):
    url, c = rig[0], rig[1]
    sessions = make_sessions(c, 5)
    warm(rig, sessions)
    dups = reset(rig)
    at = time.monotonic()
    cluster.psql(url.rsplit("dbname=", 1)[1], "TRUNCATE sessions")
    expect_gone(rig, sessions, at, "TRUNCATE sessions", dups)
    expect_each_resync_once(rig, 1, dups)
    assert rig[5][0].get("reason") == "TRUNCATE sessions: rows were deleted without per-row events"


def test_truncate_users_cascade(rig, cluster):
    url, c = rig[0], rig[1]
    sessions = make_sessions(c, 3) + make_sessions(c, 2)
    warm(rig, sessions)
    dups = reset(rig)
    at = time.monotonic()
    cluster.psql(url.rsplit("dbname=", 1)[1], "TRUNCATE users CASCADE")
    expect_gone(rig, sessions, at, "TRUNCATE users CASCADE", dups, 4)
    # users, sessions, oauth_accounts, passkeys: one resync per truncated table.
    expect_each_resync_once(rig, 4, dups)


def test_replica_delete_then_torii_resync(rig, cluster, toriid_bin):
    url, c, sub, cache = rig[0], rig[1], rig[3], rig[4]
    sessions = make_sessions(c, 5)
    warm(rig, sessions)
    dups = reset(rig)
    cluster.psql(url.rsplit("dbname=", 1)[1],
                 "BEGIN; SET LOCAL session_replication_role = replica; DELETE FROM sessions; COMMIT;")
    settle(sub)
    assert cache.get(sessions[0]["token"]).id == sessions[0]["id"]  # nothing told the cache
    assert not rig[5]
    cli = os.path.join(os.path.dirname(os.path.dirname(toriid_bin)), "tools", "torii")
    at = time.monotonic()
    r = subprocess.run([cli, "resync", "--database", url, "--reason", "bulk delete with triggers off"],
                       capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "TORII_DATABASE_URL"})
    assert r.returncode == 0, r.stderr
    expect_gone(rig, sessions, at, "DELETE with triggers off, then torii resync", dups)
    expect_each_resync_once(rig, 1, dups)
    assert rig[5][0].get("reason") == "an operator's resync: bulk delete with triggers off"
