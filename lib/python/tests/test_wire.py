"""What each typed method puts on the wire, checked on a ROUTER socket of the
test's own: the op name, the args exactly (None left out, nil only where it
means something, bytes as msgpack bin, datetimes as the timestamp extension),
the request keys, and that the result comes back as sent. The section-5
methods are covered here too, since the daemon of this branch lacks them."""
from __future__ import annotations

import datetime as dt
import threading

import msgpack
import pytest
import zmq

import torii_client
from torii_client import UNSET, Client

UTC = dt.timezone.utc
AT = dt.datetime(2025, 6, 7, 8, 9, 10, 111213, tzinfo=UTC)
UID = "0b5e5c3e-8d1e-4c1a-9d5e-4f7f3b1a2c3d"


class Router:
    """Answers every request with ok and records the raw body it got."""

    def __init__(self, hold_first: bool = False) -> None:
        self.hold_first = hold_first  # keep the first request's reply until release() is set
        self.release = threading.Event()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.bodies = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            raw = frames[-1]
            # Decoded without the client's codec: timestamps stay Timestamp, bin stays bytes.
            body = msgpack.unpackb(raw, raw=False, timestamp=0)
            self.bodies.append(body)
            if self.hold_first and len(self.bodies) == 1:
                self.release.wait(30)
            self.sock.send_multipart(frames[:-1] + [msgpack.packb(
                {"id": body["id"], "ok": True, "result": {"echo": body.get("args"), "at": msgpack.Timestamp(1, 5000)}},
                use_bin_type=True)])

    def close(self) -> None:
        self.stop.set()
        self.release.set()
        self.thread.join()
        self.sock.close()
        self.ctx.term()


@pytest.fixture
def wire():
    r = Router()
    with Client(r.endpoint, timeout=5) as c:
        yield c, r
    r.close()


# Exact (msgpack.Timestamp.from_datetime goes through a float and loses the microseconds).
TS = msgpack.Timestamp(int((AT - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()), 111213000)
CRED = b"\x00\x01cred"

CASES = [
    # section 2
    (lambda c: c.ping(), "ping", None),
    (lambda c: c.stats(), "stats", None),
    (lambda c: c.create_user("a@x.io", metadata={"k": [1]}), "create_user", {"email": "a@x.io", "metadata": {"k": [1]}}),
    (lambda c: c.get_user(UID), "get_user", {"id": UID}),
    (lambda c: c.get_user_by_email("a@x.io"), "get_user_by_email", {"email": "a@x.io"}),
    (lambda c: c.update_user(UID, password_hash=None, metadata_merge={"a": 1}), "update_user",
     {"id": UID, "password_hash": None, "metadata_merge": {"a": 1}}),
    (lambda c: c.update_user(UID, email="b@x.io"), "update_user", {"id": UID, "email": "b@x.io"}),
    (lambda c: c.update_user(UID, name=None, locked_at=AT), "update_user", {"id": UID, "name": None, "locked_at": TS}),
    (lambda c: c.verify_email(UID, at=AT), "verify_email", {"id": UID, "at": TS}),
    (lambda c: c.verify_email(UID, at=1234), "verify_email", {"id": UID, "at": 1234}),
    (lambda c: c.delete_user(UID), "delete_user", {"id": UID}),
    (lambda c: c.search_users("q", limit=5, offset=0), "search_users", {"query": "q", "limit": 5, "offset": 0}),
    (lambda c: c.list_users(after="cur"), "list_users", {"after": "cur"}),
    (lambda c: c.create_session(UID, ttl_s=60, ip_address="::1"), "create_session",
     {"user_id": UID, "ttl_s": 60, "ip_address": "::1"}),
    (lambda c: c.create_session(UID, expires_at=AT), "create_session", {"user_id": UID, "expires_at": TS}),
    (lambda c: c.get_session(token="t"), "get_session", {"token": "t"}),
    (lambda c: c.extend_session(id=UID, ttl_s=5), "extend_session", {"id": UID, "ttl_s": 5}),
    (lambda c: c.delete_session(token="t"), "delete_session", {"token": "t"}),
    (lambda c: c.list_sessions(UID), "list_sessions", {"user_id": UID}),
    (lambda c: c.delete_user_sessions(UID, except_=UID), "delete_user_sessions", {"user_id": UID, "except": UID}),
    (lambda c: c.cleanup_expired_sessions(), "cleanup_expired_sessions", None),
    (lambda c: c.list_audit(table="users", limit=3), "list_audit", {"table": "users", "limit": 3}),
    # section 5
    (lambda c: c.create_user("a@x.io", name="Ada"), "create_user", {"email": "a@x.io", "name": "Ada"}),
    (lambda c: c.get_or_create_user("a@x.io", name="Ada"), "get_or_create_user", {"email": "a@x.io", "name": "Ada"}),
    (lambda c: c.link_oauth_account(UID, "github", "42"), "link_oauth_account",
     {"user_id": UID, "provider": "github", "subject": "42"}),
    (lambda c: c.get_oauth_account("github", "42"), "get_oauth_account", {"provider": "github", "subject": "42"}),
    (lambda c: c.get_user_by_oauth("github", "42"), "get_user_by_oauth", {"provider": "github", "subject": "42"}),
    (lambda c: c.list_oauth_accounts(UID), "list_oauth_accounts", {"user_id": UID}),
    (lambda c: c.unlink_oauth_account(UID, "github"), "unlink_oauth_account", {"user_id": UID, "provider": "github"}),
    (lambda c: c.put_oauth_state("s", "v", 60), "put_oauth_state", {"state": "s", "verifier": "v", "ttl_s": 60}),
    (lambda c: c.take_oauth_state("s"), "take_oauth_state", {"state": "s"}),
    (lambda c: c.add_passkey(UID, CRED, bytearray(b"pk"), sign_count=3), "add_passkey",
     {"user_id": UID, "credential_id": CRED, "public_key": b"pk", "sign_count": 3}),
    (lambda c: c.get_passkey(CRED), "get_passkey", {"credential_id": CRED}),
    (lambda c: c.list_passkeys(UID), "list_passkeys", {"user_id": UID}),
    (lambda c: c.use_passkey(CRED, sign_count=4), "use_passkey", {"credential_id": CRED, "sign_count": 4}),
    (lambda c: c.delete_passkey(memoryview(CRED)), "delete_passkey", {"credential_id": CRED}),
    (lambda c: c.delete_user_passkeys(UID), "delete_user_passkeys", {"user_id": UID}),
    (lambda c: c.put_passkey_challenge("cid", b"\xffch", 30, user_id=UID), "put_passkey_challenge",
     {"challenge_id": "cid", "challenge": b"\xffch", "ttl_s": 30, "user_id": UID}),
    (lambda c: c.take_passkey_challenge("cid"), "take_passkey_challenge", {"challenge_id": "cid"}),
    (lambda c: c.create_token(UID, "magic_link", 600), "create_token",
     {"user_id": UID, "purpose": "magic_link", "ttl_s": 600}),
    (lambda c: c.check_token("t", "magic_link"), "check_token", {"token": "t", "purpose": "magic_link"}),
    (lambda c: c.use_token("t", "magic_link"), "use_token", {"token": "t", "purpose": "magic_link"}),
    (lambda c: c.delete_user_tokens(UID, purpose="password_reset"), "delete_user_tokens",
     {"user_id": UID, "purpose": "password_reset"}),
    (lambda c: c.record_login_failure("a@x.io", window_s=60, max_failures=5), "record_login_failure",
     {"email": "a@x.io", "window_s": 60, "max_failures": 5}),
    (lambda c: c.login_failures("a@x.io", since=AT), "login_failures", {"email": "a@x.io", "since": TS}),
    (lambda c: c.clear_login_failures("a@x.io"), "clear_login_failures", {"email": "a@x.io"}),
    (lambda c: c.set_user_lock("a@x.io", None), "set_user_lock", {"email": "a@x.io", "locked_at": None}),
    (lambda c: c.set_user_lock("a@x.io", AT), "set_user_lock", {"email": "a@x.io", "locked_at": TS}),
    (lambda c: c.get_user_lock("a@x.io"), "get_user_lock", {"email": "a@x.io"}),
    (lambda c: c.revoke_jwt("j", AT, user_id=UID), "revoke_jwt", {"jti": "j", "expires_at": TS, "user_id": UID}),
    (lambda c: c.revoke_user_jwts(UID), "revoke_user_jwts", {"user_id": UID}),
    (lambda c: c.is_jwt_revoked("j", user_id=UID, issued_at=AT), "is_jwt_revoked",
     {"jti": "j", "user_id": UID, "issued_at": TS}),
    (lambda c: c.list_jwt_revocations(limit=10), "list_jwt_revocations", {"limit": 10}),
]


@pytest.mark.parametrize("invoke,op,args", CASES, ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)])
def test_method_wire_format(wire, invoke, op, args):
    c, r = wire
    result = invoke(c)
    body = r.bodies[-1]
    assert body["op"] == op
    assert body.get("args") == args
    assert body["v"] == 1 and isinstance(body["id"], int)
    assert 0 < body["timeout_ms"] <= 5000
    assert "actor" not in body
    assert result["at"] == dt.datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)  # ext -1 decoded to UTC datetime


def test_every_protocol_op_has_a_method():
    ops = {op for _, op, _ in CASES}
    assert len(ops) == 47  # 18 of section 2, 29 of section 5
    for op in ops:
        assert callable(getattr(Client, op)), op


def test_actor_timeout_and_ids(wire):
    c, r = wire
    c.get_user(UID, actor=UID, timeout=1.234)
    c.get_user(UID)
    first, second = r.bodies[-2:]
    assert first["actor"] == UID and 1000 < first["timeout_ms"] <= 1234
    assert "actor" not in second and second["id"] != first["id"]
    assert UNSET is torii_client.client.UNSET and not UNSET


def test_tenant_is_sent_only_when_set():
    r = Router()
    try:
        with Client(r.endpoint, timeout=5) as plain:
            plain.ping()
        with Client(r.endpoint, timeout=5, tenant="acme") as acme:
            acme.ping()
            acme.get_user(UID, actor=UID)
        # Unset: the body is exactly what it was before tenants.
        assert sorted(r.bodies[0]) == ["id", "op", "timeout_ms", "v"]
        assert r.bodies[1]["tenant"] == "acme" and sorted(r.bodies[1]) == ["id", "op", "tenant", "timeout_ms", "v"]
        assert r.bodies[2]["tenant"] == "acme" and r.bodies[2]["actor"] == UID
    finally:
        r.close()


def test_tenant_operations(wire):
    c, r = wire
    c.create_tenant("acme")
    assert r.bodies[-1]["op"] == "create_tenant" and r.bodies[-1]["args"] == {"name": "acme"}
    c.list_tenants()
    assert r.bodies[-1]["op"] == "list_tenants" and "args" not in r.bodies[-1]


@pytest.mark.parametrize("bad", ["", "Acme", "acme corp", "a" * 65, "a/b", "@acme", "*", "jörg", b"acme", 7])
def test_a_malformed_tenant_is_refused_before_connecting(bad):
    with pytest.raises(ValueError, match=r"\[a-z0-9_.-\]"):
        Client("tcp://127.0.0.1:1", tenant=bad)
    with Client("tcp://127.0.0.1:1", tenant="a" * 64) as c:
        assert c.tenant == "a" * 64
    assert torii_client.check_tenant_name(torii_client.DEFAULT_TENANT) == "default"


def test_timeout_ms_still_works_with_a_deprecation_warning(wire):
    c, r = wire
    with pytest.warns(DeprecationWarning, match="timeout_ms"):
        c.get_user(UID, timeout_ms=1234)
    assert 1000 < r.bodies[-1]["timeout_ms"] <= 1234
    with pytest.warns(DeprecationWarning, match="timeout_ms"):
        with Client(r.endpoint, timeout_ms=2500) as old:
            assert old.timeout == 2.5 and old.timeout_ms == 2500
    with pytest.raises(TypeError, match="both"), pytest.warns(DeprecationWarning):
        c.get_user(UID, timeout=1, timeout_ms=1000)


def test_errors_are_also_the_builtin_exceptions():
    assert issubclass(torii_client.Timeout, TimeoutError)
    assert issubclass(torii_client.Unavailable, ConnectionError)
    e = torii_client.error_from_code("timeout", "late", "get_user")
    assert isinstance(e, TimeoutError) and e.code == "timeout" and str(e) == "get_user: timeout: late"
    assert isinstance(torii_client.error_from_code("unavailable", "down"), ConnectionError)
    assert not isinstance(torii_client.error_from_code("not_found", "x"), OSError)


def test_one_version_number():
    import os
    import re
    pyproject = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")).read()
    assert 'dynamic = ["version"]' in pyproject and "torii_client._version.__version__" in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, re.M), "a second version number in pyproject.toml"
    assert re.fullmatch(r"\d+\.\d+\.\d+", torii_client.__version__)


def test_a_late_reply_is_dropped_and_the_client_stays_usable():
    r = Router(hold_first=True)
    try:
        with Client(r.endpoint, timeout=0.3) as c:
            with pytest.raises(torii_client.Timeout) as e:
                c.get_user(UID)
            assert e.value.local
            r.release.set()  # the late reply arrives now, before the next call's
            assert c.get_user(UID, timeout=5)["echo"] == {"id": UID}
            assert c.client_stats["dropped_replies"] == 1 and c.client_stats["timeouts"] == 1
            # The retry budget: with one endpoint, a read is not sent twice.
            assert c.client_stats["sent"] == 2
    finally:
        r.close()
