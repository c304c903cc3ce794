"""Console pages for problems, known errors and candidates, through the test client."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.models import Incident
from modules.problems import services
from modules.problems.models import KnownError, Problem
from modules.records.models import ActivityEntry
from tenants.models import Tenant

from .factories import incident, problem

ClientFor = Callable[..., Client]


def test_create_edit_link_act_and_comment_in_the_console(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        linked = incident(actor, "mail bounces")
        person_id = actor.person_id
    console = client_for(tech_a)
    form = console.get("/t/acme/problems/new/")
    assert form.status_code == 200 and "New problem" in form.content.decode()
    created = console.post(
        "/t/acme/problems/new/", {"short_description": "Mail outages", "impact": 1, "urgency": 1}
    )
    assert created.status_code == 302 and created["Location"] == "/t/acme/problems/PRB0000001/"
    edited = console.post(
        "/t/acme/problems/PRB0000001/edit/",
        {
            "short_description": "Mail outages",
            "impact": 1,
            "urgency": 1,
            "assigned_to": str(person_id),
            "rca_method": "five_whys",
            "rca_findings": "relay refuses TLS",
            "root_cause": "expired certificate",
            "workaround": "route through backup relay",
        },
    )
    assert edited.status_code == 302
    link = console.post("/t/acme/problems/PRB0000001/incidents/", {"incident": linked.number.lower()})
    assert link.status_code == 302
    unknown = console.post("/t/acme/problems/PRB0000001/incidents/", {"incident": "INC9999999"})
    assert unknown.status_code == 404 and "no such incident" in unknown.content.decode()
    refused = console.post("/t/acme/problems/PRB0000001/actions/", {"action": "close"})
    assert refused.status_code == 409
    for action in ("assess", "start_analysis", "start_fix"):
        assert console.post("/t/acme/problems/PRB0000001/actions/", {"action": action}).status_code == 302
    incomplete = console.post("/t/acme/problems/PRB0000001/actions/", {"action": "resolve"})
    assert (
        incomplete.status_code == 422
        and "resolve needs a resolution code and notes" in incomplete.content.decode()
    )
    resolved = console.post(
        "/t/acme/problems/PRB0000001/actions/",
        {
            "action": "resolve",
            "resolution_code": "fix_applied",
            "resolution_notes": "renewed certificate",
            "resolve_incidents": "on",
            "incident_resolution_code": "solved_permanently",
        },
    )
    assert resolved.status_code == 302
    console.post("/t/acme/problems/PRB0000001/comments/", {"body": "checked relay", "work_note": "on"})
    page = console.get("/t/acme/problems/PRB0000001/").content.decode()
    for text in (
        "Mail outages",
        "expired certificate",
        "Five whys",
        "Resolved",
        linked.number,
        "checked relay",
    ):
        assert text in page, text
    assert "<strong>Resolve</strong>" in page and "state: fix in progress → resolved" in page
    assert 'id="action-reanalyze"' in page and 'id="action-resolve"' not in page  # actions of the new state
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=linked.pk).state == "resolved"
        stored = Problem.objects.get(number="PRB0000001")
        assert (stored.state, stored.priority, stored.rca_method) == ("resolved", 1, "five_whys")


def test_unlink_and_known_error_from_problem(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        source = problem(actor, "Outlook hangs", description="Outlook freezes", root_cause="add-in")
        linked = incident(actor, "outlook frozen")
        services.problem_incident_link(actor=actor, problem=source, incident=linked)
    console = client_for(tech_a)
    unlinked = console.post(f"/t/acme/problems/{source.number}/incidents/{linked.number}/unlink/")
    assert unlinked.status_code == 302
    made = console.post(f"/t/acme/problems/{source.number}/known-errors/")
    assert made.status_code == 302 and made["Location"] == "/t/acme/problems/known-errors/KE0000001/"
    page = console.get("/t/acme/problems/known-errors/KE0000001/").content.decode()
    assert "Outlook hangs" in page and "add-in" in page and "known_error.created" in page
    incomplete = console.post("/t/acme/problems/known-errors/KE0000001/actions/", {"action": "publish"})
    assert incomplete.status_code == 422
    saved = console.post(
        "/t/acme/problems/known-errors/KE0000001/",
        {"title": "Outlook hangs", "symptoms": "Outlook freezes", "workaround": "safe mode"},
    )
    assert saved.status_code == 302
    published = console.post("/t/acme/problems/known-errors/KE0000001/actions/", {"action": "publish"})
    assert published.status_code == 302
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=linked.pk).problem_id is None
        assert KnownError.objects.get(number="KE0000001").state == "published"


def test_lists_search_and_fragment(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        problem(actor, "Mail outages")
        problem(actor, "VPN drops")
        services.known_error_create(actor=actor, title="Outlook add-in", symptoms="Outlook freezes on start")
        services.known_error_create(actor=actor, title="Printer", symptoms="paper jam")
    console = client_for(tech_a)
    listing = console.get("/t/acme/problems/").content.decode()
    assert "PRB0000001" in listing and "PRB0000002" in listing
    searched = console.get("/t/acme/problems/?q=vpn", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in searched and "VPN drops" in searched and "Mail outages" not in searched
    known = console.get("/t/acme/problems/known-errors/?q=freezing").content.decode()
    assert "KE0000001" in known and "KE0000002" not in known
    fragment = console.get("/t/acme/problems/known-errors/search/?q=freezing")
    body = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in body
    assert body.count("<li>") == 1 and "KE0000001" in body and "Outlook add-in" in body
    empty = console.get("/t/acme/problems/known-errors/search/?q=keyboard").content.decode()
    assert "No known error matches." in empty


def test_candidates_page_and_accept(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        for n in range(3):
            incident(actor, f"vpn {n}", category="network", subcategory="vpn")
    console = client_for(tech_a)
    page = console.get("/t/acme/problems/candidates/").content.decode()
    assert "Recurring incidents in network / vpn" in page and "3 incidents" in page
    accepted = console.post(
        "/t/acme/problems/candidates/accept/",
        {"key": "category:network/vpn", "short_description": "VPN drops"},
    )
    assert accepted.status_code == 302 and accepted["Location"] == "/t/acme/problems/PRB0000001/"
    gone = console.post("/t/acme/problems/candidates/accept/", {"key": "category:network/vpn"})
    assert gone.status_code == 404 and "no such problem candidate" in gone.content.decode()
    with tenant_context(tenant_a):
        assert Incident.objects.filter(problem__number="PRB0000001").count() == 3


def test_end_user_console_sees_nothing_and_writes_nothing(
    client_for: ClientFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        existing = problem(actor_in(tenant_a, tech_a), "Mail outages")
        services.known_error_create(
            actor=actor_in(tenant_a, tech_a), title="Mail relay", symptoms="mail bounces"
        )
        before = ActivityEntry.objects.count()
    console = client_for(end_user_a)
    listing = console.get("/t/acme/problems/")
    assert listing.status_code == 403 and "Mail outages" not in listing.content.decode()
    assert console.get(f"/t/acme/problems/{existing.number}/").status_code == 403
    created = console.post("/t/acme/problems/new/", {"short_description": "mine", "impact": 2, "urgency": 2})
    assert created.status_code == 403
    assert "(record.work)" in created.content.decode()
    search = console.get("/t/acme/problems/known-errors/search/?q=mail")
    assert search.status_code == 403 and "Mail relay" not in search.content.decode()
    assert (
        "Mail relay"
        in client_for(tech_a).get("/t/acme/problems/known-errors/search/?q=mail").content.decode()
    )
    with tenant_context(tenant_a):
        assert Problem.objects.count() == 1 and ActivityEntry.objects.count() == before
