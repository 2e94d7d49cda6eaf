"""torii_client.Subscriber: section 3's rules. The exact rules (gap, heartbeat
seqs, epoch, resync, silence, malformed, eid dedup, "live while one endpoint is
caught up") are driven by a scripted PUB socket that speaks the event format;
the real daemon then shows the same conditions arising for real (events of
changes, an epoch change on restart, a resync when its LISTEN connection is
killed, silence when it dies)."""
from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Dict, List, Optional

import pytest
import zmq

import torii_client
from torii_client import Client, StaleKind, Subscriber
from conftest import BASE_SETTINGS, HEARTBEAT_MS, unique_email, wait_until

UTC = dt.timezone.utc


class FakePub:
    """A PUB socket publishing toriid's event format with its own seqs."""

    def __init__(self, epoch: Optional[str] = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.linger = 0
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.epoch = epoch or str(uuid.uuid4())
        self.seqs: Dict[str, int] = {}

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def publish(self, family: str, kind: str, body: Optional[dict] = None, skip: int = 0,
                seq: Optional[int] = None, send: bool = True) -> int:
        s = self.seqs.get(family, 0) + 1 + skip if seq is None else seq
        self.seqs[family] = s
        if send:
            b = {"seq": s, "epoch": self.epoch, "at": dt.datetime.now(UTC)}
            b.update(body or {})
            self.sock.send_multipart([f"{family}.{kind}".encode(), torii_client.packb(b)])
        return s

    def heartbeat(self) -> None:
        s = self.seqs.get("torii", 0) + 1
        seqs = dict(self.seqs)
        seqs["torii"] = s
        self.publish("torii", "heartbeat", {"seqs": seqs})

    def raw(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))


class Recorder:
    def __init__(self, sub: Subscriber) -> None:
        self.events: List[torii_client.Event] = []
        self.stale: List[torii_client.StaleReason] = []
        sub.add_listener(self.events.append, self.stale.append)

    def kinds(self) -> List[StaleKind]:
        return [r.kind for r in self.stale]


@pytest.fixture
def fake():
    pubs: List[FakePub] = []

    def make(**kw) -> FakePub:
        p = FakePub(**kw)
        pubs.append(p)
        return p

    yield make
    for p in pubs:
        p.close()


def catch_up(sub: Subscriber, pub: FakePub, index: int = 0) -> None:
    """Heartbeats until endpoint ``index`` is caught up (early ones may be lost
    while the subscription travels: the first one received is the baseline)."""
    wait_until(lambda: sub.endpoint_live(index), 10, poll=lambda: (pub.heartbeat(), sub.poll(20)),
               what="the subscriber to catch up")


def pump(sub: Subscriber, count: int, timeout_s: float = 5) -> None:
    """Polls until ``count`` more messages have been processed."""
    target = sub.stats["messages"] + count
    wait_until(lambda: sub.stats["messages"] >= target, timeout_s, poll=lambda: sub.poll(20),
               what=f"{count} message(s)")


# -- the rules, with a scripted publisher ----------------------------------------


def test_live_only_after_a_clean_heartbeat(fake):
    pub = fake()
    with Subscriber(pub.endpoint, families=["user", "session."], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        assert not sub.live()
        catch_up(sub, pub)
        assert sub.live()
        pub.publish("user", "created", {"id": "u1", "email": "a@example.com"})
        pump(sub, 1)
        assert [e.topic for e in rec.events] == ["user.created"]
        e = rec.events[0]
        assert (e.family, e.kind, e.get("id"), e.endpoint) == ("user", "created", "u1", 0)
        assert isinstance(e.at, dt.datetime) and e.at.tzinfo is not None
        assert rec.stale == [] and sub.live()


def test_seq_gap_is_stale_until_the_next_clean_heartbeat(fake):
    pub = fake()
    with Subscriber(pub.endpoint, families=["user", "session"], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        pub.publish("session", "created", {"id": "s1", "user_id": "u1"})
        pub.publish("session", "created", {"id": "s3", "user_id": "u1"}, skip=1)  # seq 2 lost
        pump(sub, 2)
        assert rec.kinds() == [StaleKind.GAP]
        r = rec.stale[0]
        assert (r.family, r.expected, r.got, r.endpoint) == ("session", 2, 3, 0)
        assert "gap on session" in str(r)
        assert not sub.live()
        assert len(rec.events) == 2  # events are still delivered
        gen = sub.stale_generation
        pub.heartbeat()
        pump(sub, 1)
        assert sub.live() and sub.stale_generation == gen


def test_heartbeat_shows_a_dropped_last_message(fake):
    pub = fake()
    with Subscriber(pub.endpoint, families=["user"], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        pub.publish("user", "created", {"id": "u1"})
        pub.publish("user", "deleted", {"id": "u1"}, send=False)  # dropped, nothing follows it
        pub.heartbeat()
        pump(sub, 2)
        assert rec.kinds() == [StaleKind.GAP]
        assert (rec.stale[0].family, rec.stale[0].expected, rec.stale[0].got) == ("user", 2, 2)
        assert not sub.live()
        pub.heartbeat()
        pump(sub, 1)
        assert sub.live()


def test_heartbeat_behind_what_we_received_is_a_gap(fake):
    pub = fake()
    with Subscriber(pub.endpoint, families=["user"], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        pub.publish("user", "created", {"id": "a"})
        pub.publish("user", "created", {"id": "b"})
        pub.seqs["user"] = 1  # the heartbeat claims less than was received
        pub.heartbeat()
        pump(sub, 3)
        assert rec.kinds() == [StaleKind.GAP]
        assert "behind" in rec.stale[0].detail and not sub.live()


def test_a_family_never_seen_must_start_at_seq_1(fake):
    pub = fake()
    with Subscriber(pub.endpoint, families=["user", "session"], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        pub.publish("session", "created", {"id": "s"}, skip=1)  # seq 2: the first one was lost
        pump(sub, 1)
        assert rec.kinds() == [StaleKind.GAP]
        assert (rec.stale[0].expected, rec.stale[0].got) == (1, 2)


def test_seq_going_backwards_is_a_gap(fake):
    pub = fake()
    with Subscriber(pub.endpoint, heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        pub.publish("user", "created", {"id": "a"})
        pub.publish("user", "created", {"id": "b"})
        pub.publish("user", "created", {"id": "c"}, seq=1)
        pump(sub, 3)
        assert rec.kinds() == [StaleKind.GAP]
        assert "backwards" in rec.stale[0].detail


def test_epoch_change_and_resync(fake):
    pub = fake()
    with Subscriber(pub.endpoint, families=["user"], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        old = pub.epoch
        pub.epoch = str(uuid.uuid4())  # "the daemon restarted"
        pub.seqs = {}
        pub.publish("torii", "resync", {"reason": "the daemon started"})
        pump(sub, 1)
        assert rec.kinds() == [StaleKind.EPOCH_CHANGE, StaleKind.RESYNC]
        assert (rec.stale[0].old_epoch, rec.stale[0].epoch) == (old, pub.epoch)
        assert rec.stale[1].detail == "the daemon started"
        assert not sub.live()
        assert rec.events == []  # torii.* are not delivered unless asked for
        pub.heartbeat()
        pump(sub, 1)
        assert sub.live()


def test_missed_heartbeats(fake):
    pub = fake()
    with Subscriber(pub.endpoint, heartbeat_ms=100) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:  # silence: poll() wakes for the deadline
            sub.poll(1000)
        assert rec.kinds() == [StaleKind.MISSED_HEARTBEATS]  # once per silence
        assert not sub.live()
        catch_up(sub, pub)
        assert sub.live()


def test_missed_heartbeats_when_nothing_ever_arrives(fake):
    pub = fake()
    with Subscriber(pub.endpoint, heartbeat_ms=100) as sub:
        rec = Recorder(sub)
        wait_until(lambda: rec.stale, 5, poll=lambda: sub.poll(50), what="the silence to be reported")
        assert rec.kinds() == [StaleKind.MISSED_HEARTBEATS]


def test_malformed_messages(fake):
    pub = fake()
    with Subscriber(pub.endpoint, heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        pub.raw(b"user.created", b"\xc1")  # not msgpack
        pub.raw(b"user.created", torii_client.packb({"id": "no seq"}))
        pub.raw(b"user.created")  # one frame
        pump(sub, 3)
        assert rec.kinds() == [StaleKind.MALFORMED] * 3
        assert sub.stats["malformed"] == 3 and not sub.live()


def test_torii_events_delivered_on_request(fake):
    pub = fake()
    with Subscriber(pub.endpoint, heartbeat_ms=1000, deliver_torii_events=True) as sub:
        rec = Recorder(sub)
        catch_up(sub, pub)
        assert rec.events and all(e.topic == "torii.heartbeat" for e in rec.events)


def test_eid_dedup_across_endpoints(fake):
    a, b = fake(), fake()
    with Subscriber([a.endpoint, b.endpoint], families=["user"], heartbeat_ms=1000) as sub:
        rec = Recorder(sub)
        catch_up(sub, a, 0)
        catch_up(sub, b, 1)
        # Two daemons publish the same change (same eid) with their own seqs.
        a.publish("user", "created", {"id": "u1", "eid": 41})
        b.publish("user", "created", {"id": "u1", "eid": 41})
        # Events without eid (an older daemon) are delivered from each endpoint.
        a.publish("user", "updated", {"id": "u1"})
        b.publish("user", "updated", {"id": "u1"})
        b.publish("user", "deleted", {"id": "u1", "eid": 42})
        a.publish("user", "deleted", {"id": "u1", "eid": 42})
        pump(sub, 6)
        got = [(e.topic, e.eid) for e in rec.events]
        # Which endpoint's copy wins depends on arrival order; each change is delivered once.
        assert sorted(got, key=str) == sorted([("user.created", 41), ("user.updated", None),
                                               ("user.updated", None), ("user.deleted", 42)], key=str)
        assert sorted(e.endpoint for e in rec.events if e.eid is None) == [0, 1]
        assert sub.stats["duplicates"] == 2
        assert rec.stale == [] and sub.live()  # each endpoint's seqs still count


def test_live_while_one_endpoint_is_caught_up(fake):
    a, b = fake(), fake()
    with Subscriber([a.endpoint, b.endpoint], heartbeat_ms=100) as sub:
        rec = Recorder(sub)
        catch_up(sub, a, 0)
        assert sub.live() and not sub.endpoint_live(1)  # one is enough
        catch_up(sub, b, 1)
        # b goes silent. b never delivered an event with an eid, and a has been
        # live since before anything could be cached (no live() call answered
        # True before a was): a vouches for b's silence (the quiet case).
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:
            a.heartbeat()
            sub.poll(50)
        assert rec.stale == [] and sub.stats["absorbed"] == 1
        assert sub.live() and sub.endpoint_live(0) and not sub.endpoint_live(1)
        # Both silent: not live, and a's silence is reported.
        wait_until(lambda: not sub.live(), 5, poll=lambda: sub.poll(50), what="both endpoints to be silent")
        wait_until(lambda: rec.kinds() == [StaleKind.MISSED_HEARTBEATS], 5, poll=lambda: sub.poll(50),
                   what="a's silence reported")
        assert rec.stale[0].endpoint == 0


class Two:
    """Two scripted daemons relaying one database, as the C++ TwoDaemons."""

    def __init__(self, fake, heartbeat_ms: int = 100, window: int = 65536) -> None:
        self.a, self.b = fake(), fake()
        self.sub = Subscriber([self.a.endpoint, self.b.endpoint], families=["session"], heartbeat_ms=heartbeat_ms,
                              dedup_window=window)
        self.rec = Recorder(self.sub)

    def both_live(self) -> None:
        wait_until(lambda: self.sub.endpoint_live(0) and self.sub.endpoint_live(1), 10,
                   poll=lambda: (self.a.heartbeat(), self.b.heartbeat(), self.sub.poll(10)), what="both live")

    def a_then_both_live(self) -> None:
        """a live, a cache's first live() (the anchor), then b live: b has not
        been live since before anything was cached, so only a position of b's
        can vouch for a (the position rule, tested on its own)."""
        catch_up(self.sub, self.a, 0)
        assert self.sub.live()
        self.both_live()

    def deleted(self, pub: FakePub, eid: int) -> None:
        pub.publish("session", "deleted", {"id": f"s{eid}", "eid": eid})

    def poll_until(self, pred, what: str, each=None, timeout_s: float = 5) -> None:
        wait_until(pred, timeout_s, poll=lambda: (each() if each else None, self.sub.poll(10)), what=what)

    def silence(self, speaking: FakePub, seconds: float) -> bool:
        """Only ``speaking`` sends heartbeats for ``seconds``; whether the
        subscriber stayed live throughout."""
        always = True
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            speaking.heartbeat()
            self.sub.poll(20)
            always = always and self.sub.live()
        return always

    def close(self) -> None:
        self.sub.close()


@pytest.fixture
def two(fake):
    made = []

    def make(**kw) -> Two:
        t = Two(fake, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_a_gap_is_absorbed_when_another_live_endpoint_had_its_position(two):
    t = two(heartbeat_ms=1000)
    t.a_then_both_live()
    t.deleted(t.a, 5)
    t.deleted(t.b, 5)
    t.poll_until(lambda: t.sub.stats["duplicates"] == 1, "eid 5 twice")
    t.a.publish("session", "deleted", {"id": "s7", "eid": 7}, skip=1)  # a loses eid 6
    t.deleted(t.b, 6)
    t.deleted(t.b, 7)
    t.poll_until(lambda: len(t.rec.events) == 3 and t.sub.stats["duplicates"] == 2, "the events")
    assert t.rec.stale == [] and t.sub.stats["absorbed"] == 1 and t.sub.stats["stale"] == 0
    assert t.sub.live() and not t.sub.endpoint_live(0)
    assert sorted(e.eid for e in t.rec.events) == [5, 6, 7]
    t.poll_until(lambda: t.sub.endpoint_live(0), "a back after a clean heartbeat", each=t.a.heartbeat)


def test_a_gap_is_held_until_a_lagging_endpoint_reaches_its_position(two):
    t = two(heartbeat_ms=1000)
    t.a_then_both_live()
    t.deleted(t.a, 5)
    t.poll_until(lambda: len(t.rec.events) == 1, "eid 5")
    t.a.publish("session", "deleted", {"id": "s7", "eid": 7}, skip=1)
    t.poll_until(lambda: len(t.rec.events) == 2, "eid 7")
    assert t.rec.stale == [] and t.sub.stats["absorbed"] == 0
    for eid in (5, 6, 7):
        t.deleted(t.b, eid)
    t.poll_until(lambda: t.sub.stats["absorbed"] == 1 and len(t.rec.events) == 3, "b reaches eid 5")
    assert t.rec.stale == []


def test_a_held_gap_nobody_vouches_for_is_reported_after_three_heartbeats(two):
    t = two()
    t.a_then_both_live()
    t.deleted(t.a, 5)
    t.poll_until(lambda: len(t.rec.events) == 1, "eid 5")
    t.a.publish("session", "deleted", {"id": "s7", "eid": 7}, skip=1)
    t0 = time.monotonic()
    t.poll_until(lambda: t.rec.stale, "the report", each=lambda: (t.a.heartbeat(), t.b.heartbeat()))
    assert time.monotonic() - t0 >= 0.25
    assert t.rec.kinds() == [StaleKind.GAP] and t.rec.stale[0].endpoint == 0
    assert "no other endpoint vouched" in t.rec.stale[0].detail
    assert t.sub.stats["absorbed"] == 0


def test_one_silent_daemon_is_absorbed_by_its_position(two):
    t = two()
    t.a_then_both_live()
    t.deleted(t.a, 5)
    t.deleted(t.b, 5)
    t.poll_until(lambda: t.sub.stats["duplicates"] == 1, "eid 5 twice")
    assert t.silence(t.b, 0.6)
    assert t.rec.stale == [] and t.sub.stats["absorbed"] == 1 and not t.sub.endpoint_live(0)
    t.poll_until(lambda: t.rec.stale, "b silent too")
    assert t.rec.kinds() == [StaleKind.MISSED_HEARTBEATS] and t.rec.stale[0].endpoint == 1
    assert not t.sub.live()


def test_a_quiet_daemons_restart_is_absorbed(two):
    t = two()
    t.both_live()
    assert t.sub.live()  # what a cache asks before it caches: the anchor
    assert t.silence(t.b, 0.6)  # a dies
    assert t.sub.stats["absorbed"] == 1 and not t.sub.endpoint_live(0)
    # a comes back under a new epoch, with its start-up resync.
    t.a.epoch = str(uuid.uuid4())
    t.a.seqs = {}
    t.a.publish("torii", "resync", {"reason": "the daemon started"})
    t.poll_until(lambda: t.sub.endpoint_live(0), "a live again", each=lambda: (t.a.heartbeat(), t.b.heartbeat()))
    assert t.rec.stale == [], [str(r) for r in t.rec.stale]
    assert t.sub.stats["absorbed"] >= 3  # the silence, the epoch change, the resync
    t.deleted(t.a, 1)
    t.deleted(t.b, 1)
    t.poll_until(lambda: t.sub.stats["duplicates"] == 1, "eid 1 twice")
    assert len(t.rec.events) == 1


def test_a_quiet_silence_is_reported_when_the_other_became_live_after_the_anchor(two):
    t = two()
    catch_up(t.sub, t.a, 0)
    assert t.sub.live()  # the anchor: only a is live
    t.both_live()
    t.poll_until(lambda: t.rec.stale, "a's silence", each=t.b.heartbeat)
    assert t.rec.kinds() == [StaleKind.MISSED_HEARTBEATS] and t.rec.stale[0].endpoint == 0
    assert t.sub.stats["absorbed"] == 0
    # After that report both are live before a cache asks again: b vouches.
    t.rec.stale.clear()
    t.both_live()
    assert t.sub.live()
    t.silence(t.b, 0.6)
    assert t.rec.stale == [] and t.sub.stats["absorbed"] == 1


def test_a_rolling_restart_of_both_quiet_daemons_is_reported(two):
    t = two()
    t.both_live()
    assert t.sub.live()
    t.a.epoch, t.a.seqs = str(uuid.uuid4()), {}
    t.poll_until(lambda: t.sub.stats["absorbed"] == 1 and t.sub.endpoint_live(0), "a restarted and back",
                 each=lambda: (t.a.heartbeat(), t.b.heartbeat()))
    assert t.rec.stale == []
    t.b.epoch, t.b.seqs = str(uuid.uuid4()), {}
    t.poll_until(lambda: t.rec.stale, "b's restart reported", each=lambda: (t.a.heartbeat(), t.b.heartbeat()))
    assert t.rec.kinds() == [StaleKind.EPOCH_CHANGE] and t.rec.stale[0].endpoint == 1


def test_a_database_resync_is_reported_once_and_a_daemons_own_is_absorbed(two):
    t = two(heartbeat_ms=1000)
    t.both_live()
    t.deleted(t.a, 5)
    t.deleted(t.b, 5)
    t.poll_until(lambda: t.sub.stats["duplicates"] == 1, "eid 5 twice")
    t.a.publish("torii", "resync", {"reason": "listen lost"})  # a's own: b vouches
    t.poll_until(lambda: t.sub.stats["absorbed"] == 1, "absorbed")
    assert t.rec.stale == []
    for p in (t.a, t.b):
        p.publish("torii", "resync", {"reason": "TRUNCATE sessions", "eid": 9})
    t.poll_until(lambda: t.sub.stats["duplicates"] == 2, "the database resync twice")
    assert t.rec.kinds() == [StaleKind.RESYNC] and t.rec.stale[0].detail == "TRUNCATE sessions"


# -- the real daemon ----------------------------------------------------------------


def test_real_events_of_changes(daemon):
    with Subscriber(daemon.event_endpoint, families=["user", "session"], heartbeat_ms=HEARTBEAT_MS) as sub, \
            Client(daemon.request_endpoint) as c:
        rec = Recorder(sub)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="the subscriber to be live")
        u = c.create_user(unique_email("ev"))
        s = c.create_session(u["id"], ttl_s=60)
        c.delete_session(id=s["id"])
        want = [("user.created", u["id"]), ("session.created", s["id"]), ("session.deleted", s["id"])]
        wait_until(lambda: [(e.topic, e.get("id")) for e in rec.events if e.get("id") in (u["id"], s["id"])]
                   == want, 20, poll=lambda: sub.poll(50), what="the three events")
        created = next(e for e in rec.events if e.topic == "user.created" and e.get("id") == u["id"])
        assert created.get("email") == u["email"] and created.epoch
        assert "password_hash" not in created.body and "token" not in created.body
        assert rec.stale == [] and sub.live()


def test_real_epoch_change_on_restart(daemon_factory, cluster):
    d = daemon_factory(cluster.create_database(), dict(BASE_SETTINGS))
    with Subscriber(d.event_endpoint, heartbeat_ms=HEARTBEAT_MS) as sub:
        rec = Recorder(sub)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="the subscriber to be live")
        d.kill()
        wait_until(lambda: StaleKind.MISSED_HEARTBEATS in rec.kinds(), 10, poll=lambda: sub.poll(50),
                   what="the silence of the killed daemon")
        assert not sub.live()
        d.start()
        wait_until(sub.live, 30, poll=lambda: sub.poll(50), what="live again after the restart")
        assert StaleKind.EPOCH_CHANGE in rec.kinds()
        change = next(r for r in rec.stale if r.kind is StaleKind.EPOCH_CHANGE)
        assert change.old_epoch and change.epoch and change.old_epoch != change.epoch


def test_real_resync_when_the_listen_connection_is_killed(daemon_factory, cluster):
    db = cluster.create_database()
    d = daemon_factory(db, dict(BASE_SETTINGS))
    dbname = db.rsplit("dbname=", 1)[1]
    with Subscriber(d.event_endpoint, heartbeat_ms=HEARTBEAT_MS) as sub:
        rec = Recorder(sub)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="the subscriber to be live")
        killed = cluster.psql(dbname, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE application_name = 'toriid-listener' AND datname = current_database()")
        assert killed == "1"
        wait_until(lambda: StaleKind.RESYNC in rec.kinds(), 30, poll=lambda: sub.poll(50),
                   what="torii.resync after the LISTEN connection was lost")
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="live again after the resync")


def test_real_duplicates_from_two_daemons(daemon_factory, cluster):
    db = cluster.create_database()
    a = daemon_factory(db, dict(BASE_SETTINGS))
    b = daemon_factory(db, dict(BASE_SETTINGS))
    with Subscriber([a.event_endpoint, b.event_endpoint], families=["user"], heartbeat_ms=HEARTBEAT_MS) as sub, \
            Client(a.request_endpoint) as c:
        rec = Recorder(sub)
        wait_until(lambda: sub.endpoint_live(0) and sub.endpoint_live(1), 20, poll=lambda: sub.poll(50),
                   what="both endpoints to be live")
        u = c.create_user(unique_email("dup"))
        mine = lambda: [e for e in rec.events if e.get("id") == u["id"]]  # noqa: E731
        wait_until(lambda: len(mine()) >= 1, 20, poll=lambda: sub.poll(50), what="user.created")
        # Every relayed event carries eid (docs/protocol.md, "Event identity"):
        # without it the copies cannot be told apart, and that is a failure.
        assert mine()[0].eid is not None, "user.created carries no eid"
        # Wait until both endpoints have moved past the change (their heartbeats
        # show the user family's seq), then exactly one copy was delivered.
        wait_until(lambda: sub.stats["duplicates"] >= 1, 20, poll=lambda: sub.poll(50), what="the duplicate")
        assert len(mine()) == 1
