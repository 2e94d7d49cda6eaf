"""Section 5 of PROTOCOL.md (accounts, passkeys, secure tokens, login guard,
JWT revocation) through torii_client.Client, against a real toriid.

These operations are built by other branches; a daemon without them answers
``unknown_op`` and these tests fail. They are written from the contract and
are meant to pass once the section-5 daemon is merged."""
from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from torii_client import (Client, Conflict, Duplicate, Forbidden, InvalidArgument, NotFound, Subscriber)
from conftest import HEARTBEAT_MS, unique_email, wait_until

UTC = dt.timezone.utc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def new_user(client: Client, **kw):
    return client.create_user(unique_email("s5"), **kw)


# -- users: name, locked_at, get_or_create ------------------------------------------


def test_user_name_and_lock(client):
    u = new_user(client, name="Ada Lovelace")
    assert u["name"] == "Ada Lovelace" and u["locked_at"] is None
    at = dt.datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    got = client.update_user(u["id"], name="Ada", locked_at=at)
    assert got["name"] == "Ada" and got["locked_at"] == at
    cleared = client.update_user(u["id"], name=None, locked_at=None)  # nil clears either
    assert cleared["name"] is None and cleared["locked_at"] is None
    with pytest.raises(InvalidArgument):
        client.create_user(unique_email(), name="x" * 256)  # more than 255 bytes


def test_email_verified_at_on_create_and_update(client):
    at = dt.datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    u = new_user(client, email_verified_at=at)
    assert u["email_verified_at"] == at
    assert client.update_user(u["id"], email_verified_at=None)["email_verified_at"] is None  # nil clears it
    assert client.update_user(u["id"], email_verified_at=at)["email_verified_at"] == at
    assert new_user(client)["email_verified_at"] is None


def test_get_or_create_user(client):
    email = unique_email("GoC")
    first = client.get_or_create_user(email, name="First")
    assert first["created"] is True and first["user"]["email"] == email and first["user"]["name"] == "First"
    again = client.get_or_create_user(email.lower(), name="Ignored")
    assert again["created"] is False and again["user"]["id"] == first["user"]["id"]
    with pytest.raises(InvalidArgument):
        client.get_or_create_user("not an email")


# -- OAuth -----------------------------------------------------------------------------


def test_oauth_accounts(client):
    u = new_user(client)
    other = new_user(client)
    subject = uuid.uuid4().hex
    acct = client.link_oauth_account(u["id"], "github", subject)
    assert (acct["user_id"], acct["provider"], acct["subject"]) == (u["id"], "github", subject)
    assert isinstance(acct["created_at"], dt.datetime)
    again = client.link_oauth_account(u["id"], "github", subject)  # the same triple: the existing one
    assert again["created_at"] == acct["created_at"]
    with pytest.raises(Duplicate):
        client.link_oauth_account(other["id"], "github", subject)
    assert client.get_oauth_account("github", subject)["user_id"] == u["id"]
    assert acct["user_torii_id"] is None  # the user has no metadata.torii_id
    assert client.get_user_by_oauth("github", subject)["id"] == u["id"]
    client.link_oauth_account(u["id"], "google.com", "g-" + subject)
    listed = client.list_oauth_accounts(u["id"])["accounts"]
    assert [(a["provider"], a["subject"]) for a in listed] == [("github", subject), ("google.com", "g-" + subject)]
    assert client.unlink_oauth_account(u["id"], "github", subject=subject) == {"deleted": 1}
    with pytest.raises(NotFound):
        client.get_oauth_account("github", subject)
    with pytest.raises(NotFound):
        client.get_user_by_oauth("github", subject)
    assert client.unlink_oauth_account(u["id"], "google.com") == {"deleted": 1}
    with pytest.raises(InvalidArgument):
        client.link_oauth_account(u["id"], "Not Valid!", subject)  # provider is [a-z0-9_.-]


def test_oauth_state(client):
    state = uuid.uuid4().hex
    r = client.put_oauth_state(state, "verifier-1", 600)
    assert 500 < (r["expires_at"] - now()).total_seconds() <= 600
    client.put_oauth_state(state, "verifier-2", 600)  # replaces
    assert client.take_oauth_state(state) == {"verifier": "verifier-2"}
    with pytest.raises(NotFound):  # at most once
        client.take_oauth_state(state)
    with pytest.raises(InvalidArgument):
        client.put_oauth_state(state, "v", 0)  # ttl <= 0


# -- passkeys ------------------------------------------------------------------------------


def test_passkeys(client):
    u = new_user(client)
    cred = os.urandom(32)
    pk = client.add_passkey(u["id"], cred, b"\x01public-key\x00", name="laptop")
    assert pk["credential_id"] == cred and isinstance(pk["credential_id"], bytes)
    assert pk["public_key"] == b"\x01public-key\x00" and pk["sign_count"] == 0 and pk["name"] == "laptop"
    assert pk["last_used_at"] is None
    with pytest.raises(Duplicate):
        client.add_passkey(u["id"], cred, b"k")
    assert client.get_passkey(cred)["user_id"] == u["id"]
    assert pk["user_torii_id"] is None and client.get_passkey(cred)["user_torii_id"] is None
    cred2 = os.urandom(16)
    client.add_passkey(u["id"], cred2, b"k2", sign_count=10)
    assert [p["credential_id"] for p in client.list_passkeys(u["id"])["passkeys"]] == [cred, cred2]

    used = client.use_passkey(cred, sign_count=5)
    assert used["sign_count"] == 5 and isinstance(used["last_used_at"], dt.datetime)
    with pytest.raises(Conflict) as e:  # not greater than the stored count: maybe cloned
        client.use_passkey(cred, sign_count=5)
    assert e.value.code == "conflict"
    assert client.get_passkey(cred)["sign_count"] == 5  # nothing changed
    assert client.use_passkey(cred, sign_count=6)["sign_count"] == 6

    assert client.delete_passkey(cred) == {"deleted": 1}
    with pytest.raises(NotFound):
        client.get_passkey(cred)
    with pytest.raises(NotFound):
        client.delete_passkey(cred)
    assert client.delete_user_passkeys(u["id"]) == {"deleted": 1}
    with pytest.raises(InvalidArgument):
        client.add_passkey(u["id"], b"", b"k")  # credential_id is 1..1023 bytes


def test_passkey_challenge(client):
    u = new_user(client)
    cid = uuid.uuid4().hex
    challenge = os.urandom(32)
    r = client.put_passkey_challenge(cid, challenge, 300, user_id=u["id"])
    assert isinstance(r["expires_at"], dt.datetime)
    got = client.take_passkey_challenge(cid)
    assert got["challenge"] == challenge and got["user_id"] == u["id"]
    with pytest.raises(NotFound):
        client.take_passkey_challenge(cid)
    anon = uuid.uuid4().hex
    client.put_passkey_challenge(anon, os.urandom(8), 300)
    assert client.take_passkey_challenge(anon)["user_id"] is None
    with pytest.raises(InvalidArgument):
        client.put_passkey_challenge(uuid.uuid4().hex, os.urandom(1025), 300)  # 1..1024 bytes


# -- secure tokens -----------------------------------------------------------------------------


def test_secure_tokens(client):
    u = new_user(client)
    t = client.create_token(u["id"], "password_reset", 900)
    assert len(t["token"]) == 43 and t["purpose"] == "password_reset" and t["used_at"] is None
    checked = client.check_token(t["token"], "password_reset")
    assert checked["id"] == t["id"] and "token" not in checked
    assert client.check_token(t["token"], "password_reset")["used_at"] is None  # check does not use it
    with pytest.raises(NotFound):
        client.check_token(t["token"], "magic_link")  # wrong purpose
    used = client.use_token(t["token"], "password_reset")
    assert isinstance(used["used_at"], dt.datetime)
    with pytest.raises(NotFound):
        client.use_token(t["token"], "password_reset")  # exactly once
    with pytest.raises(NotFound):
        client.check_token(t["token"], "password_reset")
    client.create_token(u["id"], "magic_link", 900)
    client.create_token(u["id"], "email_verification", 900)
    assert client.delete_user_tokens(u["id"], purpose="magic_link") == {"deleted": 1}
    assert client.delete_user_tokens(u["id"])["deleted"] >= 1
    with pytest.raises(InvalidArgument):
        client.create_token(u["id"], "launch_codes", 900)
    assert t["user_torii_id"] is None and used["user_torii_id"] is None  # no metadata.torii_id


def test_results_carry_the_users_torii_id(client):
    """OAuth accounts, passkeys and secure tokens name the user's Torii id
    (metadata.torii_id) in user_torii_id, read in the same statement."""
    torii_id = "usr_" + uuid.uuid4().hex[:20]
    u = new_user(client, metadata={"torii_id": torii_id})
    subject = uuid.uuid4().hex
    assert client.link_oauth_account(u["id"], "github", subject)["user_torii_id"] == torii_id
    assert client.get_oauth_account("github", subject)["user_torii_id"] == torii_id
    assert [a["user_torii_id"] for a in client.list_oauth_accounts(u["id"])["accounts"]] == [torii_id]
    cred = os.urandom(16)
    assert client.add_passkey(u["id"], cred, b"k")["user_torii_id"] == torii_id
    assert client.get_passkey(cred)["user_torii_id"] == torii_id
    assert client.use_passkey(cred)["user_torii_id"] == torii_id
    assert [p["user_torii_id"] for p in client.list_passkeys(u["id"])["passkeys"]] == [torii_id]
    t = client.create_token(u["id"], "magic_link", 900)
    assert t["user_torii_id"] == torii_id
    assert client.check_token(t["token"], "magic_link")["user_torii_id"] == torii_id
    assert client.use_token(t["token"], "magic_link")["user_torii_id"] == torii_id
    # As the user itself (row-level security shows its own users row).
    assert client.get_passkey(cred, actor=u["id"])["user_torii_id"] == torii_id
    assert client.get_oauth_account("github", subject, actor=u["id"])["user_torii_id"] == torii_id


# -- login guard ------------------------------------------------------------------------------


def test_login_guard(client):
    u = new_user(client)
    email = u["email"].upper()  # failures are per lower-cased email
    results = [client.record_login_failure(email, ip_address="192.0.2.1", max_failures=3) for _ in range(3)]
    assert [r["failures"] for r in results] == [1, 2, 3]
    assert [r["locked"] for r in results] == [False, False, True]
    locked_at = client.get_user(u["id"])["locked_at"]
    assert isinstance(locked_at, dt.datetime)
    assert client.get_user_lock(u["email"]) == {"locked_at": locked_at}
    f = client.login_failures(u["email"])
    assert f["count"] == 3 and isinstance(f["latest_at"], dt.datetime)
    assert client.login_failures(u["email"], since=now() + dt.timedelta(minutes=1))["count"] == 0
    assert client.clear_login_failures(u["email"]) == {"deleted": 3}
    assert client.set_user_lock(u["email"], None) == {}
    assert client.get_user_lock(u["email"]) == {"locked_at": None}
    # No reply tells whether a user has the email.
    ghost = unique_email("ghost")
    assert client.record_login_failure(ghost) == {"failures": 1, "locked": False}
    assert client.set_user_lock(ghost, now()) == {}
    assert client.get_user_lock(ghost) == {"locked_at": None}
    with pytest.raises(Forbidden):  # not a user-owned table: refused for an actor
        client.record_login_failure(u["email"], actor=u["id"])
    with pytest.raises(InvalidArgument):
        client.login_failures("no-at-sign")


# -- JWT revocation ------------------------------------------------------------------------------


def test_jwt_revocation(client):
    u = new_user(client)
    jti = uuid.uuid4().hex
    exp = (now() + dt.timedelta(hours=1)).replace(microsecond=0)
    assert client.revoke_jwt(jti, exp, user_id=u["id"]) == {}
    assert client.revoke_jwt(jti, exp, user_id=u["id"]) == {}  # idempotent
    assert client.is_jwt_revoked(jti) == {"revoked": True}
    assert client.is_jwt_revoked(uuid.uuid4().hex) == {"revoked": False}
    cutoff = now().replace(microsecond=0)
    assert client.revoke_user_jwts(u["id"], issued_before=cutoff) == {}
    other = uuid.uuid4().hex
    assert client.is_jwt_revoked(other, user_id=u["id"], issued_at=cutoff - dt.timedelta(minutes=5)) == \
        {"revoked": True}
    assert client.is_jwt_revoked(other, user_id=u["id"], issued_at=cutoff + dt.timedelta(minutes=5)) == \
        {"revoked": False}
    jtis, users, after = [], [], None
    while True:
        page = client.list_jwt_revocations(after=after, limit=1000)
        jtis += page["jtis"]
        users += page["users"]
        after = page["next"]
        if after is None:
            break
    assert {"jti": jti, "expires_at": exp} in jtis
    assert {"user_id": u["id"], "issued_before": cutoff} in users
    with pytest.raises(InvalidArgument):
        client.revoke_jwt("", exp)  # jti is 1..255 bytes


def test_actor_isolation_on_user_owned_tables(client):
    alice = new_user(client)
    bob = new_user(client)
    cred = os.urandom(16)
    client.add_passkey(bob["id"], cred, b"k")
    with pytest.raises(NotFound):  # another user's row is invisible
        client.get_passkey(cred, actor=alice["id"])
    with pytest.raises(Forbidden):  # writing a row for another user
        client.link_oauth_account(bob["id"], "github", uuid.uuid4().hex, actor=alice["id"])
    assert client.get_passkey(cred, actor=bob["id"])["user_id"] == bob["id"]


# -- events -------------------------------------------------------------------------------------


def test_section5_events(daemon, client):
    with Subscriber(daemon.event_endpoint, families=["oauth", "passkey", "jwt", "user"],
                    heartbeat_ms=HEARTBEAT_MS) as sub:
        seen = []
        sub.add_listener(seen.append, None)
        wait_until(sub.live, 20, poll=lambda: sub.poll(50), what="live")
        u = new_user(client)
        subject = uuid.uuid4().hex
        client.link_oauth_account(u["id"], "github", subject)
        cred = os.urandom(20)
        client.add_passkey(u["id"], cred, b"secret-ish public key")
        jti = uuid.uuid4().hex
        client.revoke_jwt(jti, now() + dt.timedelta(hours=1), user_id=u["id"])
        client.revoke_user_jwts(u["id"])
        client.set_user_lock(u["email"], now())
        client.delete_passkey(cred)
        client.unlink_oauth_account(u["id"], "github")

        def mine(topic):
            return [e for e in seen if e.topic == topic and (e.get("user_id") == u["id"] or e.get("id") == u["id"])]

        topics = ["oauth.linked", "passkey.added", "jwt.revoked", "jwt.user_revoked", "passkey.deleted",
                  "oauth.unlinked"]
        wait_until(lambda: all(mine(t) for t in topics) and any("locked_at" in (e.get("changed") or [])
                                                                 for e in mine("user.updated")),
                   20, poll=lambda: sub.poll(50), what="the section 5 events")
        assert mine("oauth.linked")[0].get("provider") == "github"
        assert mine("passkey.added")[0].get("credential_id") == cred
        assert mine("jwt.revoked")[0].get("jti") == jti
        assert isinstance(mine("jwt.user_revoked")[0].get("issued_before"), dt.datetime)
        for e in seen:
            for secret in ("token", "verifier", "challenge", "public_key", "token_hash"):
                assert secret not in e.body
        assert sub.live()
