"""Tenants (PROTOCOL.md section 6, issue 26) through torii_client.Client against
a real toriid: one Client per tenant on one daemon. The same email signs up in
two tenants as two users; a session of one tenant is not found in the other;
a tenant nobody created is not found."""
from __future__ import annotations

import uuid

import pytest

from torii_client import Client, Duplicate, NotFound
from conftest import unique_email


def new_tenant(client: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    created = client.create_tenant(name)
    assert created["name"] == name and created["created_at"] is not None
    return name


def test_one_client_per_tenant_keeps_users_and_sessions_apart(daemon, client):
    name = new_tenant(client)
    assert name in [t["name"] for t in client.list_tenants()["tenants"]]
    with pytest.raises(Duplicate):
        client.create_tenant(name)
    email = unique_email("tenant")
    with Client(daemon.request_endpoint, timeout=10, tenant=name) as mine, \
            Client(daemon.request_endpoint, timeout=10, tenant="default") as dflt:
        ua = mine.create_user(email)
        ud = client.create_user(email.upper())
        assert ua["id"] != ud["id"]
        with pytest.raises(Duplicate):
            mine.create_user(email)  # unique per tenant
        assert mine.get_user_by_email(email)["id"] == ua["id"]
        assert dflt.get_user_by_email(email)["id"] == ud["id"]  # naming "default" is naming none
        with pytest.raises(NotFound):
            client.get_user(ua["id"])

        sa = mine.create_session(ua["id"], ttl_s=600)
        sd = client.create_session(ud["id"], ttl_s=600)
        assert mine.get_session(token=sa["token"])["user_id"] == ua["id"]
        assert client.get_session(token=sd["token"])["user_id"] == ud["id"]
        for other in (client, dflt):
            with pytest.raises(NotFound):
                other.get_session(token=sa["token"])
            with pytest.raises(NotFound):
                other.get_session(id=sa["id"])
            with pytest.raises(NotFound):
                other.delete_session(token=sa["token"])
        with pytest.raises(NotFound):
            mine.get_session(token=sd["token"])
        assert mine.get_session(token=sa["token"])["id"] == sa["id"]  # the failed deletes changed nothing


def test_a_tenant_nobody_created_is_not_found(daemon):
    with Client(daemon.request_endpoint, timeout=10, tenant="no-such-tenant") as ghost:
        with pytest.raises(NotFound) as e:
            ghost.get_user_by_email(unique_email("ghost"))
        assert "no-such-tenant" in str(e.value)
