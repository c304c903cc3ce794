"""Console and portal pages for incidents, through the test client."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.models import Incident
from modules.incidents.services import incident_create, incident_transition
from modules.records.models import ActivityEntry, Comment
from tenants.models import Tenant


def new_incident(tenant: Tenant, user: User, text: str, **fields: object) -> Incident:
    with tenant_context(tenant):
        return incident_create(actor=actor_in(tenant, user), short_description=text, **fields)  # type: ignore[arg-type]


def test_queue_filters_and_search(client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant) -> None:
    new_incident(tenant_a, tech_a, "mail down", impact=1, urgency=1)
    new_incident(tenant_a, tech_a, "printer jam", impact=3, urgency=3)
    console = client_for(tech_a)

    assert {"mail down", "printer jam"} <= set(_rows(console.get("/t/acme/incidents/")))
    assert _rows(console.get("/t/acme/incidents/?priority=1")) == ["mail down"]
    assert _rows(console.get("/t/acme/incidents/?q=printer")) == ["printer jam"]
    partial = console.get("/t/acme/incidents/?q=mail", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"mail down" in partial.content


def _rows(response: object) -> list[str]:
    page = response.content.decode()  # type: ignore[attr-defined]
    return [text for text in ("mail down", "printer jam") if f"<td>{text}</td>" in page]


def test_create_edit_and_act_on_an_incident_in_the_console(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    console = client_for(tech_a)
    created = console.post(
        "/t/acme/incidents/new/",
        {"short_description": "VPN drops", "impact": 1, "urgency": 2, "contact_type": "phone"},
    )
    assert created.status_code == 302 and created["Location"] == "/t/acme/incidents/INC0000001/"
    edited = console.post(
        "/t/acme/incidents/INC0000001/edit/",
        {"short_description": "VPN drops hourly", "impact": 1, "urgency": 1, "contact_type": "phone"},
    )
    assert edited.status_code == 302
    refused = console.post("/t/acme/incidents/INC0000001/actions/", {"action": "resolve"})
    assert refused.status_code == 422
    assert "resolve needs a resolution code and notes" in refused.content.decode()
    conflict = console.post("/t/acme/incidents/INC0000001/actions/", {"action": "close"})
    assert conflict.status_code == 409
    resolved = console.post(
        "/t/acme/incidents/INC0000001/actions/",
        {
            "action": "resolve",
            "resolution_code": "solved_remotely_permanently",
            "resolution_notes": "Reset tunnel",
        },
    )
    assert resolved.status_code == 302
    console.post("/t/acme/incidents/INC0000001/comments/", {"body": "checked logs", "work_note": "on"})
    page = console.get("/t/acme/incidents/INC0000001/").content.decode()
    assert "VPN drops hourly" in page and "1 - Critical" in page and "Resolved" in page
    assert "<strong>Resolve</strong>" in page and "state: new → resolved" in page and "checked logs" in page
    with tenant_context(tenant_a):
        incident = Incident.objects.get(number="INC0000001")
        assert (incident.state, incident.priority) == ("resolved", 1)
        assert list(ActivityEntry.objects.filter(record_id=incident.pk).values_list("verb", flat=True)) == [
            "incident.created",
            "incident.updated",
            "incident.resolve",
            "work_note.added",
        ]


def test_portal_report_reply_and_reopen(end_user_a: User, tech_a: User, tenant_a: Tenant) -> None:
    portal = Client(HTTP_HOST="acme.localhost")
    portal.force_login(end_user_a)
    reported = portal.post(
        "/report/", {"short_description": "Screen flickers", "description": "since Monday", "urgency": 2}
    )
    assert reported.status_code == 302
    number = reported["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert portal.post(f"/incidents/{number}/", {"body": "still flickering"}).status_code == 302
    with tenant_context(tenant_a):
        incident = Incident.objects.get(number=number)
        assert incident.caller is not None and incident.caller.user_id == end_user_a.pk
        assert incident.contact_type == "self_service"
        assert list(Comment.objects.filter(record_id=incident.pk).values_list("body", "is_work_note")) == [
            ("still flickering", False)
        ]
        incident_transition(
            actor=actor_in(tenant_a, tech_a),
            incident=incident,
            action="resolve",
            resolution_code="solved_permanently",
            resolution_notes="new cable",
        )
    assert portal.post(f"/incidents/{number}/", {"body": "not fixed", "reopen": "1"}).status_code == 302
    with tenant_context(tenant_a):
        incident.refresh_from_db()
        assert (incident.state, incident.reopen_count) == ("in_progress", 1)
    page = portal.get("/").content.decode()
    assert number in page and "Screen flickers" in page


def test_portal_hides_other_callers_incidents(end_user_a: User, tech_a: User, tenant_a: Tenant) -> None:
    other = new_incident(tenant_a, tech_a, "server room heat")
    portal = Client(HTTP_HOST="acme.localhost")
    portal.force_login(end_user_a)
    assert portal.get(f"/incidents/{other.number}/").status_code == 404
    assert portal.post(f"/incidents/{other.number}/", {"body": "hi"}).status_code == 404
    with tenant_context(tenant_a):
        assert not Comment.objects.filter(record_id=other.pk).exists()
