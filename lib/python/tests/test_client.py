"""torii_client.Client against a real toriid and PostgreSQL: every section-2
operation's success and an error each, the error classes, deadlines, failover
between daemons, and CURVE."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
import uuid

import msgpack
import pytest
import zmq

import torii_client
from torii_client import (BadRequest, Client, CurveKeys, Duplicate, ForeignKey, Forbidden, InvalidArgument,
                          NotFound, Timeout, ToriiError, UnknownOp, UnsupportedVersion)
from conftest import BASE_SETTINGS, unique_email, wait_until

UTC = dt.timezone.utc


def new_user(client: Client, **kwargs):
    return client.create_user(unique_email(), **kwargs)


# -- service ops --------------------------------------------------------------


def test_ping(client):
    r = client.ping()
    assert r["protocol"] == 1
    assert isinstance(r["version"], str) and r["version"]
    assert isinstance(r["schema"], int) and r["schema"] >= 12  # the schema version it runs on
    # Operations the daemon answers itself refuse an actor (docs/protocol.md 2).
    with pytest.raises(InvalidArgument) as e:
        client.call("ping", actor=str(uuid.uuid4()))
    assert e.value.code == "invalid_argument" and e.value.op == "ping"


def test_stats(client):
    before = client.stats()["requests"]
    client.ping()
    s = client.stats()
    assert s["requests"] >= before + 2
    for key in ("size", "idle", "busy", "waiting"):
        assert isinstance(s["pool"][key], int)
    assert isinstance(s["events"]["epoch"], str)
    assert {"runs", "deleted"} <= set(s["cleanup"])
    with pytest.raises(InvalidArgument):  # answered by the daemon itself: no actor
        client.call("stats", actor=str(uuid.uuid4()))


# -- users --------------------------------------------------------------------


def test_create_user(client):
    email = unique_email("Create")
    uid = str(uuid.uuid4()).upper()
    u = client.create_user(email, id=uid, password_hash="$argon2id$x", metadata={"plan": "pro", "n": [1, 2.5]})
    assert u["id"] == uid.lower()  # returned lower case
    assert u["email"] == email
    assert u["password_hash"] == "$argon2id$x"
    assert u["metadata"] == {"plan": "pro", "n": [1, 2.5]}
    assert u["email_verified_at"] is None
    assert isinstance(u["created_at"], dt.datetime) and u["created_at"].tzinfo is not None
    assert abs((dt.datetime.now(UTC) - u["created_at"]).total_seconds()) < 60
    with pytest.raises(Duplicate) as e:  # emails compare case-insensitively
        client.create_user(email.upper())
    assert e.value.code == "duplicate"
    with pytest.raises(InvalidArgument):
        client.create_user("no-at-sign")


def test_get_user(client):
    u = new_user(client, password_hash="h1")
    got = client.get_user(u["id"])
    assert got == u
    with pytest.raises(NotFound) as e:
        client.get_user(str(uuid.uuid4()))
    assert e.value.code == "not_found"
    with pytest.raises(InvalidArgument):
        client.get_user("not-a-uuid")


def test_get_user_by_email(client):
    email = unique_email("MixedCase")
    u = client.create_user(email)
    got = client.get_user_by_email(email.lower())
    assert got["id"] == u["id"] and got["email"] == email  # the stored case comes back
    with pytest.raises(NotFound):
        client.get_user_by_email(unique_email("nobody"))


def test_update_user(client):
    u = new_user(client, password_hash="old", metadata={"a": 1, "b": 2})
    new_email = unique_email("moved")
    got = client.update_user(u["id"], email=new_email, metadata_merge={"b": 3, "c": {"d": True}})
    assert got["email"] == new_email
    assert got["metadata"] == {"a": 1, "b": 3, "c": {"d": True}}
    assert got["password_hash"] == "old"  # not given: unchanged
    assert got["updated_at"] >= u["updated_at"]
    cleared = client.update_user(u["id"], password_hash=None)  # nil clears it
    assert cleared["password_hash"] is None
    assert client.get_user(u["id"])["password_hash"] is None
    replaced = client.update_user(u["id"], metadata={"only": "this"})
    assert replaced["metadata"] == {"only": "this"}
    with pytest.raises(InvalidArgument):
        client.update_user(u["id"])  # nothing to change
    with pytest.raises(NotFound):
        client.update_user(str(uuid.uuid4()), metadata={})


def test_verify_email(client):
    u = new_user(client)
    at = dt.datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)
    got = client.verify_email(u["id"], at=at)
    assert got["email_verified_at"] == at  # microseconds survive both ways
    # A naive datetime is taken as UTC; an aware one in another zone is converted.
    plus2 = dt.timezone(dt.timedelta(hours=2))
    got = client.verify_email(u["id"], at=dt.datetime(2024, 5, 1, 14, 0, tzinfo=plus2))
    assert got["email_verified_at"] == dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    got = client.verify_email(u["id"], at=dt.datetime(2020, 1, 2, 3, 4, 5))
    assert got["email_verified_at"] == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    # Integer milliseconds since the epoch, and before 1970 (the 96-bit form).
    got = client.verify_email(u["id"], at=1_700_000_000_123)
    assert got["email_verified_at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    old = dt.datetime(1960, 6, 1, 0, 0, 0, 500, tzinfo=UTC)
    assert client.verify_email(u["id"], at=old)["email_verified_at"] == old
    now = client.verify_email(u["id"])["email_verified_at"]  # default: now
    assert abs((dt.datetime.now(UTC) - now).total_seconds()) < 60
    with pytest.raises(NotFound):
        client.verify_email(str(uuid.uuid4()))


def test_delete_user(client):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=3600)
    assert client.delete_user(u["id"]) == {"deleted": 1}
    with pytest.raises(NotFound):
        client.get_user(u["id"])
    with pytest.raises(NotFound):  # its sessions went with it
        client.get_session(token=s["token"])
    with pytest.raises(NotFound):
        client.delete_user(u["id"])


def test_search_users(client):
    tag = uuid.uuid4().hex[:10]
    u = client.create_user(f"searchable{tag}@example.com", metadata={"city": f"kyoto{tag}"})
    found = client.search_users(f"searchable{tag}")
    assert [x["id"] for x in found["users"]] == [u["id"]]
    assert "password_hash" not in found["users"][0]  # never in search results
    by_meta = client.search_users(f"kyoto{tag}", limit=5)
    assert [x["id"] for x in by_meta["users"]] == [u["id"]]
    assert client.search_users(f"nothing{tag}")["users"] == []
    with pytest.raises(InvalidArgument):
        client.search_users("x", limit=0)


def test_list_users(client):
    ids = {new_user(client)["id"] for _ in range(3)}
    seen = []
    after = None
    while True:
        page = client.list_users(limit=2, after=after)
        assert len(page["users"]) <= 2
        seen += [x["id"] for x in page["users"]]
        for x in page["users"]:
            assert "password_hash" not in x
        after = page["next"]
        if after is None:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))  # pages do not overlap
    with pytest.raises(InvalidArgument):
        client.list_users(after="not a cursor")


# -- sessions -------------------------------------------------------------------


def test_create_session(client):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=3600, user_agent="pytest", ip_address="192.0.2.7",
                              metadata={"device": "laptop"})
    assert len(s["token"]) == 43
    assert s["user_id"] == u["id"]
    assert s["user_agent"] == "pytest" and s["ip_address"] == "192.0.2.7"
    assert s["metadata"] == {"device": "laptop"}
    left = (s["expires_at"] - dt.datetime.now(UTC)).total_seconds()
    assert 3500 < left <= 3600
    exp = (dt.datetime.now(UTC) + dt.timedelta(days=2)).replace(microsecond=654321)
    s2 = client.create_session(u["id"], expires_at=exp)
    assert s2["expires_at"] == exp
    assert s2["token"] != s["token"]
    with pytest.raises(ForeignKey) as e:
        client.create_session(str(uuid.uuid4()), ttl_s=60)
    assert e.value.code == "foreign_key"
    with pytest.raises(InvalidArgument):
        client.create_session(u["id"], ttl_s=60, expires_at=exp)  # not both


def test_get_session(client):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=3600)
    by_token = client.get_session(token=s["token"])
    by_id = client.get_session(id=s["id"])
    assert by_token["id"] == by_id["id"] == s["id"]
    assert "token" not in by_token  # returned only by create_session
    with pytest.raises(NotFound):
        client.get_session(token="x" * 43)
    with pytest.raises(InvalidArgument):
        client.get_session()  # neither token nor id


def test_extend_session(client):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=60)
    longer = client.extend_session(token=s["token"], ttl_s=7200)
    assert longer["expires_at"] > s["expires_at"]
    exp = (dt.datetime.now(UTC) + dt.timedelta(hours=5)).replace(microsecond=0)
    assert client.extend_session(id=s["id"], expires_at=exp)["expires_at"] == exp
    with pytest.raises(NotFound):
        client.extend_session(id=str(uuid.uuid4()), ttl_s=60)


def test_delete_session(client):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=3600)
    assert client.delete_session(token=s["token"]) == {"deleted": 1}
    with pytest.raises(NotFound):
        client.get_session(id=s["id"])
    with pytest.raises(NotFound):
        client.delete_session(id=s["id"])


def test_list_sessions(client):
    u = new_user(client)
    first = client.create_session(u["id"], ttl_s=3600)
    second = client.create_session(u["id"], ttl_s=3600)
    got = client.list_sessions(u["id"])["sessions"]
    assert [x["id"] for x in got] == [second["id"], first["id"]]  # newest first
    assert client.list_sessions(str(uuid.uuid4())) == {"sessions": []}
    with pytest.raises(InvalidArgument):
        client.list_sessions("nope")


def test_delete_user_sessions(client):
    u = new_user(client)
    keep = client.create_session(u["id"], ttl_s=3600)
    for _ in range(2):
        client.create_session(u["id"], ttl_s=3600)
    assert client.delete_user_sessions(u["id"], except_=keep["id"]) == {"deleted": 2}
    assert [x["id"] for x in client.list_sessions(u["id"])["sessions"]] == [keep["id"]]
    assert client.delete_user_sessions(u["id"]) == {"deleted": 1}
    with pytest.raises(InvalidArgument):
        client.delete_user_sessions(u["id"], except_="not-a-uuid")


def test_cleanup_expired_sessions(client, cluster, database):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=3600)
    # Expire it behind the daemon's back, with plain SQL (as other programs may).
    dbname = database.rsplit("dbname=", 1)[1]
    cluster.psql(dbname, f"UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE id = '{s['id']}'")
    r = client.cleanup_expired_sessions()
    assert r["deleted"] >= 1
    assert cluster.psql(dbname, f"SELECT count(*) FROM sessions WHERE id = '{s['id']}'") == "0"
    with pytest.raises(InvalidArgument):
        client.call("cleanup_expired_sessions", actor=u["id"])


def test_get_session_include_expired(client, cluster, database):
    u = new_user(client)
    s = client.create_session(u["id"], ttl_s=3600)
    assert client.get_session(token=s["token"])["id"] == s["id"]  # the plain lookup, which may fill the cache
    assert client.get_session(token=s["token"], include_expired=True)["id"] == s["id"]  # a live one too
    # Expire it behind the daemon's back, with plain SQL.
    dbname = database.rsplit("dbname=", 1)[1]
    cluster.psql(dbname, f"UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE id = '{s['id']}'")
    wait_until(lambda: _not_found(lambda: client.get_session(token=s["token"])), 10, what="the expiry to be seen")
    for key in ({"token": s["token"]}, {"id": s["id"]}):
        got = client.get_session(include_expired=True, **key)
        assert got["id"] == s["id"] and got["user_id"] == u["id"], key
        assert got["expires_at"] < dt.datetime.now(dt.timezone.utc), got
        with pytest.raises(NotFound):
            client.get_session(**key)  # absent: today's behaviour
        with pytest.raises(NotFound):
            client.get_session(include_expired=False, **key)
    with pytest.raises(NotFound):
        client.get_session(token="never-issued", include_expired=True)
    with pytest.raises(BadRequest):
        client.call("get_session", {"token": s["token"], "include_expired": "yes"})


def _not_found(fn) -> bool:
    try:
        fn()
    except NotFound:
        return True
    return False


def test_list_audit(client):
    u = new_user(client, password_hash="secret-hash")
    client.update_user(u["id"], metadata={"x": 1})
    entries = client.list_audit(record_id=u["id"], table="users")["entries"]
    assert [e["operation"] for e in entries] == ["UPDATE", "INSERT"]  # newest first
    for e in entries:
        assert e["table"] == "users" and e["record_id"] == u["id"]
        assert isinstance(e["created_at"], dt.datetime)
        for data in (e["old_data"], e["new_data"]):
            assert data is None or "password_hash" not in data
    page = client.list_audit(record_id=u["id"], limit=1)
    assert len(page["entries"]) == 1 and page["next"] is not None
    rest = client.list_audit(record_id=u["id"], limit=1, before=page["next"])
    assert rest["entries"][0]["operation"] == "INSERT"
    with pytest.raises(InvalidArgument):
        client.list_audit(table="passwords")


# -- errors -----------------------------------------------------------------------


def test_error_classes_carry_their_code():
    codes = {"bad_request": BadRequest, "unsupported_version": UnsupportedVersion, "unknown_op": UnknownOp,
             "invalid_argument": InvalidArgument, "not_found": NotFound, "duplicate": Duplicate,
             "foreign_key": ForeignKey, "forbidden": Forbidden, "conflict": torii_client.Conflict,
             "timeout": Timeout, "overloaded": torii_client.Overloaded, "unavailable": torii_client.Unavailable,
             "storage": torii_client.Storage, "internal": torii_client.Internal}
    for code, cls in codes.items():
        err = torii_client.error_from_code(code, "m", "op")
        assert type(err) is cls and err.code == code and isinstance(err, ToriiError)
        assert cls("x").code == code
    future = torii_client.error_from_code("brand_new_code", "m")
    assert type(future) is ToriiError and future.code == "brand_new_code"
    with pytest.raises(torii_client.Internal):
        torii_client.result_of_reply({"id": 1})


def test_unknown_op_and_bad_request(client):
    with pytest.raises(UnknownOp):
        client.call("no_such_operation")
    with pytest.raises(BadRequest):
        client.call("get_user", {"id": 42})  # wrong msgpack type
    with pytest.raises(InvalidArgument) as e:
        client.call("get_user", {"id": str(uuid.uuid4()), "idd": 1})  # unknown argument key
    assert "idd" in e.value.message


def test_unsupported_version_maps_to_its_class(daemon):
    # Client always sends v=1; a raw DEALER shows how another version is answered.
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    try:
        s.connect(daemon.request_endpoint)
        s.send_multipart([b"", msgpack.packb({"op": "ping", "v": 2, "id": "x"})])
        assert s.poll(10000), "no reply"
        reply = torii_client.unpackb(s.recv_multipart()[-1])
        assert reply["id"] == "x"
        with pytest.raises(UnsupportedVersion):
            torii_client.result_of_reply(reply)
    finally:
        s.close()


def test_forbidden_for_an_actor(client):
    alice = new_user(client)
    bob = new_user(client)
    with pytest.raises(Forbidden) as e:  # writing a row for another user
        client.create_session(bob["id"], ttl_s=60, actor=alice["id"])
    assert e.value.code == "forbidden"
    with pytest.raises(NotFound):  # another user's row is invisible
        client.get_user(bob["id"], actor=alice["id"])
    assert client.get_user(alice["id"], actor=alice["id"])["id"] == alice["id"]


# -- deadlines ------------------------------------------------------------------------


def test_local_timeout_when_nothing_answers():
    # Nothing listens there: the request never leaves, the deadline still holds.
    from conftest import free_port
    with Client(f"tcp://127.0.0.1:{free_port()}", timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(Timeout) as e:
            c.ping()
        took = time.monotonic() - t0
        assert e.value.local is True and e.value.code == "timeout"
        assert 0.25 <= took < 2.0
        assert c.client_stats["timeouts"] == 1 and c.client_stats["sent"] == 0


def test_daemon_timeout_while_a_row_is_locked(client, cluster, database):
    u = new_user(client)
    dbname = database.rsplit("dbname=", 1)[1]
    holder = subprocess.Popen(["psql", cluster.conninfo(dbname), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                               f"BEGIN; SELECT id FROM users WHERE id = '{u['id']}' FOR UPDATE; "
                               "SELECT pg_sleep(20); COMMIT;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: cluster.psql(dbname, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                                "'%pg_sleep(20)%' AND state = 'active' AND pid <> pg_backend_pid()")
                   == "1", 20, what="the row lock to be held")
        t0 = time.monotonic()
        with pytest.raises(Timeout) as e:
            client.update_user(u["id"], metadata={"late": True}, timeout=0.5)
        assert time.monotonic() - t0 < 5
        # Whether the daemon said so or the client gave up first, it is a timeout.
        assert e.value.code == "timeout"
        assert client.client_stats["retries"] == 0  # a write is never sent twice
    finally:
        holder.kill()
        holder.wait()
    # The write was rolled back by the cancel: nothing changed.
    assert client.get_user(u["id"])["metadata"] == {}
    # The client stays usable after a timeout (a late reply would be dropped).
    assert client.ping()["protocol"] == 1


# -- several endpoints ------------------------------------------------------------------


@pytest.fixture
def two_daemons(daemon_factory, cluster):
    db = cluster.create_database()
    a = daemon_factory(db, dict(BASE_SETTINGS))
    b = daemon_factory(db, dict(BASE_SETTINGS))
    yield a, b
    for d in (a, b):
        if d.proc is not None and d.proc.poll() is None:
            os.kill(d.proc.pid, signal.SIGCONT)
        d.close()


def use_both(c: Client, a, b) -> None:
    """Calls until both endpoints have answered (both connections are up)."""
    seen = set()
    wait_until(lambda: seen.add(c.ping() and c.last_endpoint) or seen >= {a.request_endpoint, b.request_endpoint},
               20, what="both endpoints to answer")


def test_round_robin_over_two_daemons(two_daemons):
    a, b = two_daemons
    with Client([a.request_endpoint, b.request_endpoint], timeout=5) as c:
        use_both(c, a, b)
        used = []
        for _ in range(4):
            c.ping()
            used.append(c.last_endpoint)
        assert used.count(a.request_endpoint) == 2 and used.count(b.request_endpoint) == 2


def test_failover_when_the_first_daemon_is_killed(two_daemons):
    a, b = two_daemons
    with Client([a.request_endpoint, b.request_endpoint], timeout=5) as c:
        use_both(c, a, b)
        u = c.create_user(unique_email("before"))
        a.kill()
        # ZeroMQ notices the closed connection on its own thread; from then on
        # (ZMQ_IMMEDIATE) nothing is handed to the dead endpoint. A write sent in
        # the instant before that would rightly be a Timeout (outcome unknown).
        dead = c._endpoints[0].socket
        wait_until(lambda: not dead.poll(0, zmq.POLLOUT), 5, what="the closed connection to be noticed")
        # Every call, reads and writes, is answered by the survivor well within
        # its deadline: the dead endpoint's closed connection is skipped.
        for i in range(6):
            t0 = time.monotonic()
            assert c.get_user(u["id"])["id"] == u["id"]
            c.create_user(unique_email(f"after{i}"))
            assert time.monotonic() - t0 < 4.5
            assert c.last_endpoint == b.request_endpoint
        # The killed daemon comes back on its port: it is used again.
        a.start()
        wait_until(lambda: c.ping() and c.last_endpoint == a.request_endpoint, 20,
                   what="the restarted daemon to be used again")


def test_a_hung_daemon_delays_reads_but_never_repeats_writes(two_daemons):
    a, b = two_daemons
    with Client([a.request_endpoint, b.request_endpoint], timeout=3) as reader, \
            Client([a.request_endpoint, b.request_endpoint], timeout=3) as writer:
        use_both(reader, a, b)
        use_both(writer, a, b)
        u = writer.create_user(unique_email("hung"))
        os.kill(a.proc.pid, signal.SIGSTOP)  # connected, but answers nothing
        try:
            # A read that lands on the hung daemon is sent again to the other one
            # once its share of the deadline passes; then the hung one goes last.
            for _ in range(3):
                t0 = time.monotonic()
                assert reader.get_user(u["id"])["id"] == u["id"]
                assert time.monotonic() - t0 < 3
                assert reader.last_endpoint == b.request_endpoint
            assert reader.client_stats["retries"] == 1
            # A write that lands on the hung daemon is not repeated: its outcome
            # is unknown, the caller gets a Timeout.
            outcomes = []
            for i in range(2):  # round-robin: one of the two lands on the hung daemon
                try:
                    writer.update_user(u["id"], metadata_merge={f"w{i}": i})
                    outcomes.append("ok")
                except Timeout as e:
                    assert e.local
                    outcomes.append("timeout")
            assert sorted(outcomes) == ["ok", "timeout"]
            assert writer.client_stats["retries"] == 0
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # The write the caller gave up on was queued: the resumed daemon applies it.
        wait_until(lambda: len(reader.get_user(u["id"])["metadata"]) == 2, 20, what="the queued write to apply")


# -- CURVE ---------------------------------------------------------------------------------


def write_pair(prefix: str):
    public, secret = zmq.curve_keypair()
    with open(prefix + ".key", "w") as f:
        f.write("# secret key\n" + secret.decode() + "\n")
    os.chmod(prefix + ".key", 0o600)
    with open(prefix + ".pub", "w") as f:
        f.write("# public key\n\n" + public.decode() + "\n")
    return public.decode(), secret.decode()


def test_curve(daemon_factory, cluster, tmp_path):
    if not zmq.has("curve"):
        pytest.fail("libzmq without CURVE")
    keys = tmp_path / "keys"
    auth = keys / "authorized"
    auth.mkdir(parents=True)
    write_pair(str(keys / "server"))
    app_pub, _ = write_pair(str(keys / "app"))
    write_pair(str(keys / "stranger"))
    (auth / "app.pub").write_text(app_pub + "\n")
    app = CurveKeys.from_files(str(keys / "server.pub"), str(keys / "app.key"))
    assert app.client_public_key == app_pub  # derived from the secret key
    assert app.client_secret_key not in repr(app)
    settings = dict(BASE_SETTINGS)
    settings["security.curve_secret_key_file"] = f'"{keys / "server.key"}"'
    settings["security.curve_authorized_keys_dir"] = f'"{auth}"'
    d = daemon_factory(cluster.create_database(), settings, ready_curve=app)

    with Client(d.request_endpoint, curve=app) as c:
        assert c.ping()["protocol"] == 1
        assert c.create_user(unique_email("curve"))["id"]
    # Without CURVE, or with a key that is not authorized: no reply at all.
    with Client(d.request_endpoint, timeout=1) as plain:
        with pytest.raises(Timeout):
            plain.ping()
    stranger = CurveKeys.from_files(str(keys / "server.pub"), str(keys / "stranger.key"), str(keys / "stranger.pub"))
    with Client(d.request_endpoint, curve=stranger, timeout=1) as c:
        with pytest.raises(Timeout):
            c.ping()
    # The Subscriber takes the same keys and gets heartbeats.
    with torii_client.Subscriber(d.event_endpoint, heartbeat_ms=100, curve=app) as sub:
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="a CURVE subscriber to be live")


def test_key_files(tmp_path):
    good = tmp_path / "good.pub"
    public, secret = zmq.curve_keypair()
    good.write_text("# comment\n\n  " + public.decode() + "  \n")
    assert torii_client.read_key_file(str(good)) == public.decode()
    assert torii_client.public_from_secret(secret.decode()) == public.decode()
    bad = tmp_path / "bad.key"
    bad.write_text(secret.decode()[:-1] + "\n")
    with pytest.raises(ValueError) as e:
        torii_client.read_key_file(str(bad))
    assert secret.decode()[:-1] not in str(e.value)  # never echo key text
    two = tmp_path / "two.pub"
    two.write_text(public.decode() + "\n" + public.decode() + "\n")
    with pytest.raises(ValueError):
        torii_client.read_key_file(str(two))
    with pytest.raises(ValueError):
        Client("tcp://127.0.0.1:1", curve=CurveKeys("short", public.decode(), secret.decode()))
