"""One of two daemons restarts under a Python SessionCache (issue 29), the same
cases as tests/integration/ha_restart_test.cpp: a cache over a Client and a
Subscriber connected to both daemons keeps every entry when one daemon is
SIGKILLed and restarted while the other stays up, whether changes flowed
before (busy) or nothing changed since the subscriber connected (quiet); a
session deleted through the restarted daemon and one deleted with plain SQL
then stop being served once their events arrive. It still flushes when no
endpoint stayed live across the gap: both daemons restarted one after the
other, or the only live one restarted."""
from __future__ import annotations

import time

import pytest

from torii_client import Client, NotFound, SessionCache, Subscriber
from conftest import BASE_SETTINGS, HEARTBEAT_MS, unique_email, wait_until

SESSIONS = 50


class Rig:
    def __init__(self, cluster, daemon_factory) -> None:
        self.cluster = cluster
        self.url = cluster.create_database()
        self.dbname = self.url.rsplit("dbname=", 1)[1]
        self.d = [daemon_factory(self.url, dict(BASE_SETTINGS)), daemon_factory(self.url, dict(BASE_SETTINGS))]
        self.client = Client([d.request_endpoint for d in self.d], timeout=10)
        self.sub = None
        self.cache = None
        self.deleted = set()
        self.stale = []

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        if self.sub is not None:
            self.sub.close()
        self.client.close()

    def make_sessions(self, n):
        uid = self.client.create_user(unique_email("ha-restart"))["id"]
        return [self.client.create_session(uid, ttl_s=600) for _ in range(n)]

    def wait_relayed(self, sessions: int) -> None:
        """Polls until every running daemon has published the creation of
        ``sessions`` sessions (under load a daemon relays them late, and a
        subscriber made now would see them: not a quiet start)."""
        for d in self.d:
            if not d.running():
                continue
            with Client(d.request_endpoint, timeout=10) as c:
                wait_until(lambda: c.stats()["events"]["seq"].get("session", 0) >= sessions, 20,
                           what="the daemon to relay the creations")

    def subscribe(self, live=(0, 1)) -> None:
        self.sub = Subscriber([d.event_endpoint for d in self.d], families=["session", "user"],
                              heartbeat_ms=HEARTBEAT_MS)
        self.sub.add_listener(lambda e: self.deleted.add(e.get("id")) if e.topic == "session.deleted" else None,
                              self.stale.append)
        self.cache = SessionCache(self.client, self.sub)
        wait_until(lambda: all(self.sub.endpoint_live(i) for i in live), 20, poll=lambda: self.sub.poll(50),
                   what=f"endpoints {list(live)} live")

    def settle(self) -> None:
        hb = self.sub.stats["heartbeats"]
        wait_until(lambda: self.sub.stats["heartbeats"] >= hb + 4, 10, poll=lambda: self.sub.poll(20),
                   what="heartbeats")

    def fill(self, sessions) -> None:
        self.settle()  # the creations' events first, or they would evict what we cache
        for _ in range(2):
            for s in sessions:
                self.cache.get(s["token"])
        assert len(self.cache) == len(sessions)

    def kill_and_restart(self, i: int) -> None:
        self.d[i].kill()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:  # 6 heartbeat intervals of silence
            self.sub.poll(20)
        assert not self.sub.endpoint_live(i)
        self.d[i].start()
        wait_until(lambda: self.sub.endpoint_live(i), 20, poll=lambda: self.sub.poll(20),
                   what=f"endpoint {i} live after its daemon restarted")

    def delete_and_expect_gone(self, s, via) -> None:
        if via is None:
            self.cluster.psql(self.dbname, f"DELETE FROM sessions WHERE id = '{s['id']}'")
        else:
            with Client(self.d[via].request_endpoint, timeout=10) as c:
                c.delete_session(id=s["id"])
        duplicates = self.sub.stats["duplicates"]
        wait_until(lambda: s["id"] in self.deleted, 10, poll=lambda: self.sub.poll(10),
                   what=f"session.deleted {s['id']}")
        # And its copy from the other live daemon: until that daemon has
        # relayed the change, its own cache may still answer a miss with the
        # old row, which the SessionCache would then keep (a separate
        # limitation of caching behind several daemons, not of the stale
        # rule tested here).
        if all(self.sub.endpoint_live(i) for i in range(2)):
            wait_until(lambda: self.sub.stats["duplicates"] > duplicates, 10, poll=lambda: self.sub.poll(10),
                       what=f"the second copy of session.deleted {s['id']}")
        for _ in range(3):
            with pytest.raises(NotFound):
                self.cache.get(s["token"])

    def expect_kept_through_one_restart(self, sessions, restarted: int) -> None:
        hits = self.cache.stats["hits"]
        self.kill_and_restart(restarted)
        assert self.stale == [], [str(r) for r in self.stale]
        assert self.cache.stats["flushes"] == 0
        assert len(self.cache) == len(sessions)
        assert self.sub.stats["absorbed"] >= 2  # the silence and the new epoch at least
        for s in sessions:
            self.cache.get(s["token"])
        assert self.cache.stats["hits"] == hits + len(sessions), "entries were fetched again"
        self.delete_and_expect_gone(sessions[0], restarted)
        self.delete_and_expect_gone(sessions[1], None)
        assert len(self.cache) == len(sessions) - 2
        assert self.cache.stats["flushes"] == 0


@pytest.fixture
def rig(cluster, daemon_factory):
    r = Rig(cluster, daemon_factory)
    yield r
    r.close()
    for d in r.d:
        d.close()


@pytest.mark.parametrize("restarted", [0, 1])
def test_quiet_service_keeps_its_cache_when_one_daemon_restarts(rig, restarted):
    sessions = rig.make_sessions(SESSIONS)  # before the subscriber: nothing changes after it connects
    rig.wait_relayed(SESSIONS)
    rig.subscribe()
    rig.fill(sessions)
    assert rig.sub.stats["events"] == 0, "not quiet: events arrived"
    rig.expect_kept_through_one_restart(sessions, restarted)


def test_busy_service_keeps_its_cache_when_one_daemon_restarts(rig):
    rig.subscribe()
    sessions = rig.make_sessions(SESSIONS)  # their events flow through both daemons
    rig.fill(sessions)
    assert rig.sub.stats["duplicates"] >= SESSIONS
    rig.expect_kept_through_one_restart(sessions, 0)


def test_both_daemons_restarted_one_after_the_other_flushes(rig):
    sessions = rig.make_sessions(10)
    rig.subscribe()
    rig.fill(sessions)
    rig.kill_and_restart(0)
    assert rig.stale == [] and rig.cache.stats["flushes"] == 0
    # Endpoint 0 is live again, but only since its restart: nobody stayed live
    # across both gaps.
    rig.kill_and_restart(1)
    assert rig.stale and rig.cache.stats["flushes"] >= 1 and len(rig.cache) == 0
    rig.delete_and_expect_gone(sessions[0], 1)


def test_the_only_live_daemon_restarted_flushes(rig):
    sessions = rig.make_sessions(10)
    rig.d[1].kill()  # down before the subscriber connects: never live
    rig.subscribe(live=(0,))
    rig.fill(sessions)
    rig.stale.clear()  # endpoint 1's silence at the start, if it was reported
    flushes = rig.cache.stats["flushes"]
    rig.kill_and_restart(0)
    assert rig.stale and rig.cache.stats["flushes"] > flushes and len(rig.cache) == 0
    rig.delete_and_expect_gone(sessions[0], 0)
