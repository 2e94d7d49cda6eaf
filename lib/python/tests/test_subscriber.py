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
        # b goes silent: stale is reported (a cache flushes), but a still covers us.
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:
            a.heartbeat()
            sub.poll(50)
        assert StaleKind.MISSED_HEARTBEATS in rec.kinds()
        assert all(r.endpoint == 1 for r in rec.stale)
        assert sub.live() and sub.endpoint_live(0) and not sub.endpoint_live(1)
        # Both silent: not live.
        wait_until(lambda: not sub.live(), 5, poll=lambda: sub.poll(50), what="both endpoints to be silent")


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
