"""Tenants on the event stream (docs/protocol.md section 6), with a scripted
PUB socket: a tenant T's ``@T/family.kind`` topic is stripped and its tenant
exposed, seqs and heartbeats count per (tenant, family), ``tenant=`` picks a
stream, and the session cache keyed by tenant ignores another tenant's
deletion of the same id."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Dict, List, Optional, Tuple

import pytest
import zmq

import torii_client
from torii_client import SessionCache, StaleKind, Subscriber
from torii_client.subscriber import split_tenant_topic, valid_tenant_name
from conftest import wait_until

UTC = dt.timezone.utc


class TenantPub:
    """A PUB socket publishing toriid's event format, seqs per (tenant, family)."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.linger = 0
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.epoch = str(uuid.uuid4())
        self.seqs: Dict[Tuple[str, str], int] = {}

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def publish(self, tenant: str, family: str, kind: str, body: Optional[dict] = None, skip: int = 0) -> None:
        s = self.seqs.get((tenant, family), 0) + 1 + skip
        self.seqs[(tenant, family)] = s
        b = {"seq": s, "epoch": self.epoch, "at": dt.datetime.now(UTC)}
        prefix = ""
        if tenant != "default":
            b["tenant"] = tenant
            prefix = f"@{tenant}/"
        b.update(body or {})
        self.sock.send_multipart([f"{prefix}{family}.{kind}".encode(), torii_client.packb(b)])

    def heartbeat(self, tenant: str = "default") -> None:
        # The heartbeat's own seq is counted in its `seqs`.
        seqs = {f: s for (t, f), s in self.seqs.items() if t == tenant}
        seqs["torii"] = seqs.get("torii", 0) + 1
        self.publish(tenant, "torii", "heartbeat", {"seqs": seqs})


@pytest.fixture
def pub():
    p = TenantPub()
    yield p
    p.close()


def test_names_and_prefixes():
    assert valid_tenant_name("acme") and valid_tenant_name("a.b-c_9") and valid_tenant_name("x" * 64)
    assert not valid_tenant_name("") and not valid_tenant_name("x" * 65) and not valid_tenant_name("Acme")
    assert split_tenant_topic("user.created") == ("default", "user.created")
    assert split_tenant_topic("@acme/user.created") == ("acme", "user.created")
    assert split_tenant_topic("@acme") is None and split_tenant_topic("@default/user.created") is None
    with pytest.raises(ValueError):
        Subscriber("tcp://127.0.0.1:1", tenant="Not Valid")


def test_prefix_stripped_and_seqs_per_tenant(pub):
    with Subscriber(pub.endpoint, heartbeat_ms=1000) as sub:  # everything, every tenant
        got: List[Tuple[str, str, int]] = []
        stale: List[torii_client.StaleReason] = []
        sub.add_listener(lambda e: got.append((e.tenant, e.topic, e.seq)), stale.append)
        wait_until(sub.live, 10, poll=lambda: (pub.heartbeat(), sub.poll(20)), what="live")
        pub.heartbeat("acme")
        for t in ("acme", "default", "acme", "default"):
            pub.publish(t, "session", "created", {"id": str(uuid.uuid4()), "user_id": "u"})
        pub.heartbeat()
        pub.heartbeat("acme")
        wait_until(lambda: len(got) >= 4 and sub.stats["heartbeats"] >= 3, 10, poll=lambda: sub.poll(20),
                   what="four events")
        assert got == [("acme", "session.created", 1), ("default", "session.created", 1),
                       ("acme", "session.created", 2), ("default", "session.created", 2)]
        assert stale == [] and sub.live()
        pub.publish("acme", "session", "deleted", {"id": "x", "user_id": "u"}, skip=1)
        wait_until(lambda: stale, 10, poll=lambda: sub.poll(20), what="the gap")
        assert stale[0].kind is StaleKind.GAP and stale[0].tenant == "acme"
        assert "gap on session of tenant acme" in str(stale[0])


def test_a_tenants_stream_only(pub):
    with Subscriber(pub.endpoint, families=["session"], tenant="acme", heartbeat_ms=1000) as sub:
        got: List[str] = []
        sub.add_listener(lambda e: got.append(f"{e.tenant}:{e.topic}:{e.get('id')}"))

        def beat() -> None:
            pub.heartbeat()
            pub.heartbeat("acme")
            sub.poll(20)

        wait_until(sub.live, 10, poll=beat, what="live on acme's heartbeats")
        pub.publish("default", "session", "created", {"id": "d1"})
        pub.publish("acme", "user", "created", {"id": "u1"})
        pub.publish("acme", "session", "created", {"id": "a1"})
        pub.publish("beta", "session", "created", {"id": "b1"})
        wait_until(lambda: got, 10, poll=lambda: sub.poll(20), what="acme's event")
        sub.poll(50)
        assert got == ["acme:session.created:a1"]
        assert sub.stats["stale"] == 0


def test_session_cache_keyed_by_tenant(pub):
    # The cache's bookkeeping alone: another tenant's deletion of the same id
    # does not evict, its own tenant's does.
    with Subscriber(pub.endpoint, tenant="*", heartbeat_ms=1000) as sub:
        cache = SessionCache(object(), sub, tenant="acme")  # type: ignore[arg-type]
        sid = str(uuid.uuid4())
        evicted: List[str] = []
        cache._evict_session = evicted.append  # type: ignore[method-assign]
        wait_until(sub.live, 10, poll=lambda: (pub.heartbeat(), sub.poll(20)), what="live")
        pub.publish("beta", "session", "deleted", {"id": sid, "user_id": "u"})
        pub.publish("default", "session", "deleted", {"id": sid, "user_id": "u"})
        pub.publish("acme", "session", "deleted", {"id": sid, "user_id": "u"})
        wait_until(lambda: sub.stats["events"] >= 3, 10, poll=lambda: sub.poll(20), what="three events")
        assert evicted == [sid]
        cache.close()


# -- the real daemon --------------------------------------------------------------


def _write_pair(prefix) -> Tuple[str, str]:
    public, secret = zmq.curve_keypair()
    with open(str(prefix) + ".key", "w") as f:
        f.write(secret.decode() + "\n")
    with open(str(prefix) + ".pub", "w") as f:
        f.write(public.decode() + "\n")
    return public.decode(), secret.decode()


def test_bound_key_sees_its_tenant_only(daemon_factory, cluster, tmp_path):
    """A Python subscriber with a key bound to acme, subscribed to everything,
    gets acme's events and heartbeats (tenant exposed, topic stripped) and none
    of beta's; an unbound one with tenant="*" gets both with contiguous seqs."""
    from conftest import BASE_SETTINGS

    keys = tmp_path / "keys"
    auth = keys / "authorized"
    (auth / "acme").mkdir(parents=True)
    _write_pair(keys / "server")
    acme_pub, _ = _write_pair(keys / "acme")
    free_pub, _ = _write_pair(keys / "free")
    (auth / "acme" / "acme.pub").write_text(acme_pub + "\n")
    (auth / "free.pub").write_text(free_pub + "\n")
    acme = torii_client.CurveKeys.from_files(str(keys / "server.pub"), str(keys / "acme.key"))
    free = torii_client.CurveKeys.from_files(str(keys / "server.pub"), str(keys / "free.key"))
    settings = dict(BASE_SETTINGS)
    settings["security.curve_secret_key_file"] = f'"{keys / "server.key"}"'
    settings["security.curve_authorized_keys_dir"] = f'"{auth}"'
    conninfo = cluster.create_database()
    d = daemon_factory(conninfo, settings, ready_curve=free)
    dbname = conninfo.rsplit("dbname=", 1)[1]
    cluster.psql(dbname, "INSERT INTO tenants (name) VALUES ('acme'), ('beta')")

    def users(tenant: str, n: int) -> None:
        cluster.psql(dbname, f"BEGIN; SET LOCAL torii.tenant = '{tenant}'; INSERT INTO users (id, email) "
                             f"SELECT gen_random_uuid(), '{tenant}-' || i || '-{uuid.uuid4().hex[:8]}@example.com' "
                             f"FROM generate_series(1, {n}) i; COMMIT")

    users("acme", 1)  # the daemon knows acme from its first event
    with Subscriber(d.event_endpoint, heartbeat_ms=100, curve=acme, deliver_torii_events=True) as bound, \
            Subscriber(d.event_endpoint, heartbeat_ms=100, curve=free, tenant="*") as unbound:
        got_bound: List[Tuple[str, str, int]] = []
        got_all: List[Tuple[str, str, int]] = []
        stale: List[str] = []
        bound.add_listener(lambda e: got_bound.append((e.tenant, e.topic, e.seq)), lambda r: stale.append(str(r)))
        unbound.add_listener(lambda e: got_all.append((e.tenant, e.topic, e.seq)), lambda r: stale.append(str(r)))

        def poll() -> None:
            bound.poll(10)
            unbound.poll(10)

        wait_until(lambda: bound.live() and unbound.live(), 20, poll=poll, what="both subscribers live")
        got_bound.clear()
        got_all.clear()
        stale.clear()
        users("beta", 200)
        users("acme", 2)
        wait_until(lambda: sum(1 for t, topic, _ in got_bound if topic == "user.created") >= 2
                   and len(got_all) >= 202, 20, poll=poll, what="the events")
        hb = bound.stats["heartbeats"]
        wait_until(lambda: bound.stats["heartbeats"] >= hb + 3, 10, poll=poll, what="three more heartbeats")
        events = [g for g in got_bound if g[1] != "torii.heartbeat"]
        assert events == [("acme", "user.created", 2), ("acme", "user.created", 3)]
        assert {t for t, _, _ in got_bound} == {"acme"}
        assert stale == [] and bound.live()
        beta = [seq for t, topic, seq in got_all if t == "beta"]
        assert beta == list(range(1, 201))
        assert [seq for t, topic, seq in got_all if t == "acme"] == [2, 3]
