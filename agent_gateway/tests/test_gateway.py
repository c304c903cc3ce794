"""The agent gateway over real HTTP (uvicorn, the test database): enrolment, signed requests and every
refusal of decision 0018, reports into the inbox, credential rotation and clones, commands with four-eyes
approval, signed envelopes and results. A refusal writes nothing but its audit row."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.utils import timezone
from django_tenants.utils import tenant_context

from agent_gateway import gateway as gateway_module
from agent_gateway.models import (
    Agent,
    AgentCredential,
    AgentStatus,
    Command,
    CommandStatus,
    CredentialState,
    EnrolmentToken,
    Report,
)
from agent_gateway.services import agent_decide, agent_revoke, command_approve, command_request
from controlplane.accounts.models import SecurityEvent
from controlplane.problems import PermissionDenied

from .conftest import AgentClient, GatewayServer, World, report

pytestmark = pytest.mark.django_db(transaction=True)


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def enrolled(gateway: GatewayServer, world: World, **token_options: Any) -> AgentClient:
    agent = AgentClient(gateway.url)
    assert agent.enrol(world.token(**token_options)).status_code == 201
    return agent


def until(check: Any, timeout: float = 3.0) -> Any:
    """Poll ``check()`` until it is truthy (NOTIFY reaches the gateway's listener asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


# --- enrolment -------------------------------------------------------------------------------------------


def test_enrolment_gives_the_agent_its_own_key_bound_to_the_tokens_tenant(
    gateway: GatewayServer, world: World
) -> None:
    token = world.token(site="London office")
    agent = AgentClient(gateway.url)
    response = agent.enrol(token, hostname="web-01")
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["status"] == "active" and answer["tenant"] == {"name": "Acme Corp"}
    assert answer["intervals"]["poll"] == 60 and len(b64d(answer["server_key"])) == 32
    row = Agent.objects.get(pk=answer["agent_id"])
    assert (row.tenant_id, row.hostname, row.site, row.status) == (
        world.tenant.pk,
        "web-01",
        "London office",
        "active",
    )
    credential = AgentCredential.objects.get(agent=row)
    assert bytes(credential.public_key) == agent.public and credential.state == CredentialState.ACTIVE
    stored = EnrolmentToken.objects.get(tenant=world.tenant)
    assert stored.uses == 1 and token not in str(stored.__dict__) and stored.prefix in token
    assert SecurityEvent.objects.filter(verb="agent.enrolled", tenant_id=world.tenant.pk).count() == 1
    # The agent's first signed request works.
    assert agent.send("GET", "/agent/v1/commands").json() == {"commands": [], "poll_after": 60}


@pytest.mark.parametrize("problem", ["unknown", "expired", "used-up", "revoked"])
def test_a_bad_enrolment_token_is_refused_with_one_answer_and_nothing_enrolled(
    gateway: GatewayServer, world: World, problem: str
) -> None:
    token = world.token(max_uses=1)
    if problem == "unknown":
        token = token[:-4] + "AAAA"
    elif problem == "expired":
        EnrolmentToken.objects.update(expires_at=timezone.now())
    elif problem == "used-up":
        assert AgentClient(gateway.url).enrol(token).status_code == 201
    elif problem == "revoked":
        EnrolmentToken.objects.update(revoked_at=timezone.now())
    before = Agent.objects.count()
    response = AgentClient(gateway.url).enrol(token, hostname="intruder")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/enrolment-token-invalid"
    assert Agent.objects.count() == before and not Agent.objects.filter(hostname="intruder").exists()
    refusal = SecurityEvent.objects.get(verb="agent.enrol.refused")
    assert refusal.details["reason"] == problem and refusal.details["hostname"] == "intruder"


def test_enrolment_must_be_signed_by_the_key_it_registers(gateway: GatewayServer, world: World) -> None:
    agent = AgentClient(gateway.url)
    value = {
        "token": world.token(),
        "public_key": base64.urlsafe_b64encode(agent.public).decode(),
        "hostname": "h",
        "os": "linux",
        "agent_version": "1",
    }
    response = agent.send(
        "POST", "/agent/v1/enrol", value, agent_id="enrol", key=Ed25519PrivateKey.generate()
    )
    assert response.status_code == 401 and Agent.objects.count() == 0
    assert EnrolmentToken.objects.get().uses == 0


def test_a_replayed_enrolment_enrols_nothing_more(gateway: GatewayServer, world: World) -> None:
    token = world.token(max_uses=5)
    agent = AgentClient(gateway.url)
    assert agent.enrol(token).status_code == 201
    again = AgentClient(gateway.url, key=agent.key)  # the same request again: the same key
    assert again.enrol(token).status_code == 409
    assert Agent.objects.count() == 1 and EnrolmentToken.objects.get().uses == 1


def test_an_agent_waits_in_the_approval_queue_until_accepted(gateway: GatewayServer, world: World) -> None:
    agent = AgentClient(gateway.url)
    answer = agent.enrol(world.token(requires_approval=True)).json()
    assert answer["status"] == "pending"
    refused = agent.send("POST", "/agent/v1/reports", {"reports": [report()]})
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/agent-pending"
    assert Report.objects.count() == 0
    row = Agent.objects.get(pk=agent.agent_id)
    with tenant_context(world.tenant):
        agent_decide(actor=world.actor(world.tech, "technician"), agent=row, approve=True)
    assert until(lambda: agent.send("POST", "/agent/v1/reports", {"reports": [report()]}).status_code == 202)
    assert SecurityEvent.objects.filter(verb="agent.approved", actor_user_id=world.tech.pk).count() == 1


# --- reports ---------------------------------------------------------------------------------------------


def test_reports_land_in_the_inbox_under_the_credentials_tenant(gateway: GatewayServer, world: World) -> None:
    agent = enrolled(gateway, world)
    sent = [report("heartbeat"), report("metrics")]
    response = agent.send(
        "POST",
        "/agent/v1/reports",
        {"reports": sent},
        # Nothing the agent says picks the tenant: not the host, not a header.
        extra_headers={"Host": "globex.localhost", "X-Tenant": str(world.other.pk)},
    )
    assert response.status_code == 202, response.text
    assert sorted(response.json()["accepted"]) == sorted(r["id"] for r in sent)
    rows = {str(r.id): r for r in Report.objects.all()}
    assert set(rows) == {r["id"] for r in sent}
    assert {r.tenant_id for r in rows.values()} == {world.tenant.pk}
    assert rows[sent[1]["id"]].data["cpu_percent"] == 12.5 and rows[sent[1]["id"]].type == "metrics"
    # Sent again (the acknowledgement was lost): duplicates, nothing new.
    again = agent.send("POST", "/agent/v1/reports", {"reports": sent})
    assert again.status_code == 202 and again.json() == {
        "accepted": [],
        "duplicates": [r["id"] for r in sent],
    }
    assert Report.objects.count() == 2
    until(lambda: Agent.objects.get(pk=agent.agent_id).last_seen_at is not None, timeout=8)
    assert Agent.objects.get(pk=agent.agent_id).last_ip == "127.0.0.1"


def test_invalid_reports_are_refused_naming_the_field_and_none_is_stored(
    gateway: GatewayServer, world: World
) -> None:
    agent = enrolled(gateway, world)
    bad = report("metrics", cpu_percent=250)
    response = agent.send("POST", "/agent/v1/reports", {"reports": [report(), bad]})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "reports[1].data.cpu_percent",
            "message": "data.cpu_percent must be smaller than or equal to 100",
        }
    ]
    unknown = report()
    unknown["data"]["shell"] = "rm -rf /"
    assert agent.send("POST", "/agent/v1/reports", {"reports": [unknown]}).status_code == 422
    assert agent.send("POST", "/agent/v1/reports", {"reports": []}).status_code == 422
    assert Report.objects.count() == 0


def test_a_body_over_the_limit_is_refused_with_413(gateway: GatewayServer, world: World) -> None:
    agent = enrolled(gateway, world)
    big = {"reports": [report("heartbeat", agent_version="x" * 20)], "padding": "x" * (1024 * 1024)}
    response = agent.send("POST", "/agent/v1/reports", big)
    assert response.status_code == 413 and Report.objects.count() == 0
    assert SecurityEvent.objects.get(verb="agent.refused").details["reason"] == "too-large"


def test_tampered_replayed_late_and_unknown_requests_are_refused_and_audited(
    gateway: GatewayServer, world: World
) -> None:
    agent = enrolled(gateway, world)
    body = json.dumps({"reports": [report()]}).encode()
    headers = agent.headers("POST", "/agent/v1/reports", body)
    import httpx

    tampered = httpx.post(
        gateway.url + "/agent/v1/reports", content=body.replace(b"3600", b"3601"), headers=headers
    )
    assert tampered.status_code == 401 and tampered.json()["type"] == "/problems/signature-invalid"
    first = httpx.post(gateway.url + "/agent/v1/reports", content=body, headers=headers)
    assert first.status_code == 202
    replay = httpx.post(gateway.url + "/agent/v1/reports", content=body, headers=headers)
    assert replay.status_code == 401 and replay.json()["type"] == "/problems/replayed"
    late = agent.send("POST", "/agent/v1/reports", {"reports": [report()]}, timestamp=int(time.time()) - 600)
    assert late.status_code == 401 and late.json()["type"] == "/problems/clock-skew" and late.headers["date"]
    stranger = AgentClient(gateway.url, agent_id=str(uuid.uuid4()))
    unknown = stranger.send("POST", "/agent/v1/reports", {"reports": [report()]})
    assert unknown.status_code == 401 and unknown.json()["type"] == "/problems/agent-unknown"
    assert Report.objects.count() == 1
    reasons = set(
        SecurityEvent.objects.filter(verb="agent.refused").values_list("details__reason", flat=True)
    )
    assert {"signature-invalid", "replayed", "agent-unknown"} <= reasons


def test_each_agent_is_rate_limited(
    gateway: GatewayServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "RATE_PER_MINUTE", 3)
    agent = enrolled(gateway, world)
    answers = [agent.send("GET", "/agent/v1/commands").status_code for _ in range(4)]
    assert answers[:3] == [200, 200, 200] and answers[3] == 429
    limited = agent.send("GET", "/agent/v1/commands")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    refusal = SecurityEvent.objects.get(verb="agent.refused", details__reason="rate-limited")
    assert refusal.details["agent"] == agent.agent_id and refusal.tenant_id == world.tenant.pk
    other = enrolled(gateway, world)
    assert other.send("GET", "/agent/v1/commands").status_code == 200


# --- revocation and rotation -----------------------------------------------------------------------------


def test_a_revoked_agent_is_refused(gateway: GatewayServer, world: World) -> None:
    agent = enrolled(gateway, world)
    assert agent.send("GET", "/agent/v1/commands").status_code == 200
    with tenant_context(world.tenant):
        agent_revoke(actor=world.actor(world.tech, "technician"), agent=Agent.objects.get(pk=agent.agent_id))
    refused = until(lambda: agent.send("GET", "/agent/v1/commands").status_code == 401)
    assert refused
    assert agent.send("GET", "/agent/v1/commands").json()["type"] == "/problems/agent-revoked"
    assert SecurityEvent.objects.filter(verb="agent.revoked").count() == 1


def test_rotation_supersedes_the_old_key_and_a_clone_still_using_it_is_refused(
    gateway: GatewayServer, world: World
) -> None:
    agent = enrolled(gateway, world)
    clone = AgentClient(gateway.url, key=agent.key, agent_id=agent.agent_id)
    new_key = Ed25519PrivateKey.generate()
    rotated = AgentClient(gateway.url, key=new_key, agent_id=agent.agent_id)
    answer = agent.send(
        "POST", "/agent/v1/credentials", {"public_key": base64.urlsafe_b64encode(rotated.public).decode()}
    )
    assert answer.status_code == 201
    # Until the new key is used, the old one still works (a lost answer must not lock the agent out).
    assert clone.send("GET", "/agent/v1/commands").status_code == 200
    assert rotated.send("GET", "/agent/v1/commands").status_code == 200
    states = dict(AgentCredential.objects.values_list("key_id", "state"))
    assert states == {agent.key_id if agent.key_id else "": "superseded", answer.json()["key_id"]: "active"}
    refused = until(lambda: clone.send("GET", "/agent/v1/commands").status_code == 401)
    assert refused
    assert clone.send("GET", "/agent/v1/commands").json()["type"] == "/problems/credential-superseded"
    assert SecurityEvent.objects.filter(verb="agent.clone_suspected").count() == 1
    assert rotated.send("GET", "/agent/v1/commands").status_code == 200


# --- commands --------------------------------------------------------------------------------------------


def verify_envelope(envelope: dict[str, str], server_key: str) -> dict[str, Any]:
    """What the agent does first: check the platform's signature with the key pinned at enrolment."""
    payload = b64d(envelope["payload"])
    Ed25519PublicKey.from_public_bytes(b64d(server_key)).verify(b64d(envelope["signature"]), payload)
    return dict(json.loads(payload))


def test_collect_inventory_is_signed_for_its_agent_delivered_and_its_result_recorded(
    gateway: GatewayServer, world: World
) -> None:
    agent = enrolled(gateway, world)
    other = enrolled(gateway, world)
    with tenant_context(world.tenant):
        command = command_request(
            actor=world.actor(world.tech, "technician"),
            agent=Agent.objects.get(pk=agent.agent_id),
            kind="collect_inventory",
        )
    assert command.status == CommandStatus.QUEUED
    envelopes = until(lambda: agent.send("GET", "/agent/v1/commands").json()["commands"])
    assert len(envelopes) == 1
    payload = verify_envelope(envelopes[0], agent.server_key)
    assert payload["id"] == str(command.pk) and payload["agent_id"] == agent.agent_id
    assert payload["kind"] == "collect_inventory" and payload["requested_by"] == "tech@northwind.example"
    assert payload["approved_by"] == "tech@northwind.example"
    assert other.send("GET", "/agent/v1/commands").json()["commands"] == []
    assert Command.objects.get(pk=command.pk).status == CommandStatus.DELIVERED
    # Another agent cannot answer for it.
    path = f"/agent/v1/commands/{command.pk}/result"
    assert other.send("POST", path, {"status": "succeeded", "exit_code": 0, "output": ""}).status_code == 404
    done = agent.send("POST", path, {"status": "succeeded", "exit_code": 0, "output": "sent"})
    assert done.status_code == 200
    stored = Command.objects.get(pk=command.pk)
    assert (stored.status, stored.exit_code, stored.output) == ("succeeded", 0, "sent")
    assert until(lambda: agent.send("GET", "/agent/v1/commands").json()["commands"] == [])
    verbs = list(
        SecurityEvent.objects.filter(details__command=str(command.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["agent.command.requested", "agent.command.approved", "agent.command.succeeded"]


def test_restarting_a_service_needs_another_persons_approval(gateway: GatewayServer, world: World) -> None:
    agent = enrolled(gateway, world)
    row = Agent.objects.get(pk=agent.agent_id)
    with tenant_context(world.tenant):
        command = command_request(
            actor=world.actor(world.tech, "technician"),
            agent=row,
            kind="restart_service",
            params={"service": "nginx"},
        )
        assert command.status == CommandStatus.AWAITING_APPROVAL and command.payload is None
        with pytest.raises(PermissionDenied):  # technicians do not approve
            command_approve(actor=world.actor(world.tech, "technician"), command=command)
        with pytest.raises(PermissionDenied):  # nor does the requester, whatever their role
            command_approve(actor=world.actor(world.tech, "admin"), command=command)
    assert Command.objects.get(pk=command.pk).status == CommandStatus.AWAITING_APPROVAL
    refusals = SecurityEvent.objects.filter(
        verb="agent.command.approval_refused", details__command=str(command.pk)
    )
    assert refusals.count() == 2 and set(refusals.values_list("actor_user_id", flat=True)) == {world.tech.pk}
    assert agent.send("GET", "/agent/v1/commands").json()["commands"] == []
    with tenant_context(world.tenant):
        command_approve(actor=world.actor(world.admin, "admin"), command=command)
    envelopes = until(lambda: agent.send("GET", "/agent/v1/commands").json()["commands"])
    payload = verify_envelope(envelopes[0], agent.server_key)
    assert payload["params"] == {"service": "nginx"} and payload["approved_by"] == "admin@northwind.example"
    approved = SecurityEvent.objects.get(verb="agent.command.approved", details__command=str(command.pk))
    assert approved.actor_user_id == world.admin.pk and approved.details["requested_by"] == world.tech.pk


def test_a_command_refused_by_the_agent_is_recorded(gateway: GatewayServer, world: World) -> None:
    agent = enrolled(gateway, world)
    with tenant_context(world.tenant):
        command = command_request(
            actor=world.actor(world.tech, "technician"),
            agent=Agent.objects.get(pk=agent.agent_id),
            kind="collect_inventory",
        )
    until(lambda: agent.send("GET", "/agent/v1/commands").json()["commands"])
    answer = agent.send(
        "POST",
        f"/agent/v1/commands/{command.pk}/result",
        {"status": "rejected", "reason": "signature does not verify"},
    )
    assert answer.status_code == 200
    assert Command.objects.get(pk=command.pk).status == CommandStatus.REJECTED
    assert SecurityEvent.objects.filter(verb="agent.command.rejected_by_agent").count() == 1


def test_commands_go_to_active_agents_only_and_bad_parameters_write_nothing(
    gateway: GatewayServer, world: World
) -> None:
    agent = enrolled(gateway, world, requires_approval=True)
    row = Agent.objects.get(pk=agent.agent_id)
    from controlplane.problems import Conflict, InvalidInput

    with tenant_context(world.tenant):
        actor = world.actor(world.tech, "technician")
        with pytest.raises(Conflict):
            command_request(actor=actor, agent=row, kind="collect_inventory")
        Agent.objects.filter(pk=row.pk).update(status=AgentStatus.ACTIVE)
        row.refresh_from_db()
        with pytest.raises(InvalidInput):
            command_request(
                actor=actor, agent=row, kind="restart_service", params={"service": "nginx; rm -rf /"}
            )
        with pytest.raises(InvalidInput):
            command_request(actor=actor, agent=row, kind="format_disk")
        with pytest.raises(PermissionDenied):
            command_request(actor=world.actor(world.tech, "end_user"), agent=row, kind="collect_inventory")
    assert Command.objects.count() == 0
    assert not SecurityEvent.objects.filter(verb__startswith="agent.command").exists()


def test_enrolment_attempts_are_limited_per_address(
    gateway: GatewayServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "ENROL_RATE_PER_MINUTE", 2)
    answers = [AgentClient(gateway.url).enrol("itsm_enr_guess").status_code for _ in range(3)]
    assert answers == [401, 401, 429]
    assert SecurityEvent.objects.filter(verb="agent.enrol.refused").count() == 2


def test_the_report_schemas_are_published(gateway: GatewayServer, world: World) -> None:
    import httpx

    answer = httpx.get(gateway.url + "/agent/v1/schemas/metrics.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/schema+json"
    assert answer.json()["title"].startswith("Agent metrics")
    assert httpx.get(gateway.url + "/agent/v1/schemas/secrets.json").status_code == 404
