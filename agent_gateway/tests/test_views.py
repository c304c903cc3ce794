"""The console pages of the agent gateway: a new enrolment token is shown once and never again, the
approval queue, the command form and four-eyes approval, and who is refused (writing nothing)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.test import Client

from agent_gateway.models import Agent, AgentStatus, Command, CommandStatus, EnrolmentToken
from agent_gateway.services import agent_enrol, token_hash
from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant, tenant_membership_set
from controlplane.providers.models import Provider
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_a(provider: Provider, tenant_a: Tenant) -> User:
    admin = make_user("admin.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=admin, provider=provider, role="admin"), tenant=tenant_a
    )
    return admin


def enrolled(token: str) -> Agent:
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    agent, _, _ = agent_enrol(token=token, public_key=key, hostname="pc-7", os="linux", agent_version="0.1.0")
    return agent


def test_a_new_token_is_shown_once_and_only_its_prefix_afterwards(
    tech_a: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(tech_a)
    made = client.post(
        "/t/acme/agents/tokens/",
        {
            "label": "Desks",
            "site": "Leeds",
            "expires_in_hours": "48",
            "max_uses": "5",
            "requires_approval": "on",
        },
    )
    assert made.status_code == 200
    secret = re.search(r'id="new-token">(itsm_enr_[A-Za-z0-9_-]{43})<', made.content.decode())
    assert secret, made.content.decode()[:2000]
    row = EnrolmentToken.objects.get()
    assert row.token_hash == token_hash(secret.group(1)) and secret.group(1) not in str(vars(row))
    assert (row.site, row.max_uses, row.requires_approval, row.created_by_id) == ("Leeds", 5, True, tech_a.pk)
    listing = client.get("/t/acme/agents/tokens/").content.decode()
    assert secret.group(1) not in listing and f"{row.prefix}…" in listing
    # The agent it enrols waits in the queue; accepting it makes it active.
    agent = enrolled(secret.group(1))
    assert (
        agent.status == AgentStatus.PENDING
        and "Accept pc-7" in client.get("/t/acme/agents/").content.decode()
    )
    assert client.post(f"/t/acme/agents/{agent.pk}/decide/", {"decision": "approve"}).status_code == 302
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE


def test_bad_token_options_are_refused_next_to_the_field(
    tech_a: User, client_for: Callable[..., Client]
) -> None:
    page = client_for(tech_a).post("/t/acme/agents/tokens/", {"expires_in_hours": "0", "max_uses": "1"})
    assert page.status_code == 422 and "itsm_enr_" not in page.content.decode()
    assert not EnrolmentToken.objects.exists()


def test_end_users_and_client_admins_never_reach_agents(
    tenant_a: Tenant, end_user_a: User, client_for: Callable[..., Client]
) -> None:
    boss = make_user("boss@acme.example")
    tenant_membership_set(user=boss, tenant=tenant_a, role="client_admin")
    for user in (end_user_a, boss):
        client = client_for(user)
        assert client.get("/t/acme/agents/").status_code in (403, 404)
        assert client.post(
            "/t/acme/agents/tokens/", {"expires_in_hours": "1", "max_uses": "1"}
        ).status_code in (403, 404)
    assert not EnrolmentToken.objects.exists()


def test_a_restart_is_queued_by_one_person_and_approved_by_another(
    tech_a: User, admin_a: User, client_for: Callable[..., Client]
) -> None:
    tech, admin = client_for(tech_a), client_for(admin_a)
    tech.post("/t/acme/agents/tokens/", {"expires_in_hours": "1", "max_uses": "1"})
    token = EnrolmentToken.objects.get()
    agent = Agent.objects.create(tenant=token.tenant, hostname="pc-8", status=AgentStatus.ACTIVE)
    queued = tech.post(f"/t/acme/agents/{agent.pk}/commands/", {"kind": "restart_service", "service": "cups"})
    assert queued.status_code == 302
    command = Command.objects.get()
    assert command.status == CommandStatus.AWAITING_APPROVAL and command.params == {"service": "cups"}
    # The technician cannot approve (no right, and it is their own); the page offers no button.
    assert (
        tech.post(f"/t/acme/agents/commands/{command.pk}/decide/", {"decision": "approve"}).status_code == 403
    )
    assert Command.objects.get().status == CommandStatus.AWAITING_APPROVAL
    page = admin.get("/t/acme/agents/").content.decode()
    assert "Commands waiting for approval" in page and "cups" in page
    assert (
        admin.post(f"/t/acme/agents/commands/{command.pk}/decide/", {"decision": "approve"}).status_code
        == 302
    )
    approved = Command.objects.get()
    assert approved.status == CommandStatus.QUEUED and approved.approved_by_id == admin_a.pk
    assert approved.signature is not None
    bad = tech.post(
        f"/t/acme/agents/{agent.pk}/commands/", {"kind": "restart_service", "service": "cups; reboot"}
    )
    assert bad.status_code == 422 and Command.objects.count() == 1
