"""Console pages for changes, through the test client: list, create (type and template), detail (plans,
CIs with impact, risk, conflicts, votes), and the form posts behind them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from modules.changes.models import CabMember, CabVote, Change
from modules.changes.services import blackout_create, change_ci_add, change_transition
from modules.people.services import person_for_user
from modules.records.models import ActivityEntry
from tenants.models import Tenant

from .factories import T0, admin, ci, hours, normal, rel, template, to_authorise

ClientFor = Callable[..., Client]


def test_list_create_and_detail_pages(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        template(name="Rotate certificates")
    console = client_for(tech_a)
    form = console.get("/t/acme/changes/new/")
    assert form.status_code == 200
    assert "Rotate certificates" in form.content.decode() and 'value="emergency"' in form.content.decode()
    created = console.post(
        "/t/acme/changes/new/",
        {
            "change_type": "normal",
            "short_description": "Upgrade the firewall",
            "implementation_plan": "flash",
            "backout_plan": "reflash old image",
            "test_plan": "ping",
            "planned_start": "2030-07-01T10:00",
            "planned_end": "2030-07-01T12:00",
        },
    )
    assert created.status_code == 302 and created["Location"] == "/t/acme/changes/CHG0000001/"
    with tenant_context(tenant_a):
        change = Change.objects.get(number="CHG0000001")
    # Read in the tenant's time zone (Europe/London, summer time), stored in UTC.
    assert change.planned_start == dt.datetime(2030, 7, 1, 9, 0, tzinfo=dt.UTC)
    listed = console.get("/t/acme/changes/?q=firewall")
    assert listed.status_code == 200 and "Upgrade the firewall" in listed.content.decode()
    partial = console.get("/t/acme/changes/?change_type=emergency", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"No changes." in partial.content
    detail = console.get("/t/acme/changes/CHG0000001/")
    page = detail.content.decode()
    assert detail.status_code == 200
    for text in (
        "reflash old image",
        "Very high",
        "2030-07-01 10:00",
        "Risk assessment",
        "No conflicts",
        "<strong>Created</strong>",
    ):
        assert text in page, text


def test_standard_change_form_needs_a_template(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    console = client_for(tech_a)
    refused = console.post("/t/acme/changes/new/", {"change_type": "standard"})
    assert refused.status_code == 422
    assert "an active standard change template is required" in refused.content.decode()
    with tenant_context(tenant_a):
        tpl = template()
        assert Change.objects.count() == 0
    made = console.post(
        "/t/acme/changes/new/",
        {
            "change_type": "standard",
            "template": str(tpl.pk),
            "planned_start": "2030-01-10T08:00",
            "planned_end": "2030-01-10T09:00",
        },
    )
    assert made.status_code == 302
    submitted = console.post("/t/acme/changes/CHG0000001/actions/", {"action": "submit"})
    assert submitted.status_code == 302
    with tenant_context(tenant_a):
        assert Change.objects.get(number="CHG0000001").state == "scheduled"
    page = console.get("/t/acme/changes/CHG0000001/").content.decode()
    assert "Pre-approved standard change" in page and "Restart app pool" in page


def test_detail_shows_cis_impact_conflicts_and_the_cab_votes_from_the_console(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    voter = make_user("cab@acme.example")
    tenant_membership_set(user=voter, tenant=tenant_a, role="cab_member")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        server, app = ci("vm07"), ci("intranet", "application")
        rel(app, "runs_on", server)
        other = normal(tech, short_description="Intranet release")
        change_ci_add(actor=tech, change=other, ci_id=app.pk)
        change_transition(actor=tech, change=other, action="submit")
        blackout_create(actor=admin(), name="Audit week", start=T0 - hours(1), end=T0 + hours(1))
        change = normal(tech, short_description="Resize vm07")
        person = person_for_user(user_id=voter.pk, display_name=voter.full_name, email=voter.email)
        CabMember.objects.create(person=person)
        server_id = str(server.pk)
    console = client_for(tech_a)
    assert console.post("/t/acme/changes/CHG0000002/cis/", {"ci_id": server_id}).status_code == 302
    risk = console.post(
        "/t/acme/changes/CHG0000002/risk/",
        {
            "answer_done_before": "yes",
            "answer_backout_tested": "yes",
            "answer_downtime": "yes",
            "answer_users_affected": "few",
        },
    )
    assert risk.status_code == 302
    with tenant_context(tenant_a):
        assert Change.objects.get(pk=change.pk).risk == "moderate"  # 3 from answers + 1 impacted CI
        to_authorise(tech, Change.objects.get(pk=change.pk))
    page = console.get("/t/acme/changes/CHG0000002/").content.decode()
    for text in (
        "vm07",
        "impacts: intranet (1)",
        "Overlaps",
        "CHG0000001",
        "dependent CI",
        "Audit week",
        "Your vote",
    ):
        assert text in page, text
    voting = client_for(voter)
    assert voting.get("/t/acme/changes/CHG0000002/").status_code == 200
    voted = voting.post("/t/acme/changes/CHG0000002/votes/", {"decision": "approve", "comment": "ok"})
    assert voted.status_code == 302
    refused = console.post("/t/acme/changes/CHG0000002/votes/", {"decision": "approve"})
    assert refused.status_code == 403 and "only CAB members may vote" in refused.content.decode()
    early = console.post("/t/acme/changes/CHG0000002/actions/", {"action": "schedule"})
    assert early.status_code == 409 and "pending" in early.content.decode()
    with tenant_context(tenant_a):
        assert list(CabVote.objects.values_list("decision", "comment")) == [("approve", "ok")]


def test_console_refusals_render_and_write_nothing(
    client_for: ClientFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        normal(actor_in(tenant_a, tech_a))
        entries = ActivityEntry.objects.count()
    console = client_for(tech_a)
    closing = console.post("/t/acme/changes/CHG0000001/actions/", {"action": "close"})
    assert closing.status_code == 409 and "it is Draft" in closing.content.decode()
    user = client_for(end_user_a)
    assert user.get("/t/acme/changes/").status_code == 403
    assert user.get("/t/acme/changes/CHG0000001/").status_code == 403
    assert user.post("/t/acme/changes/CHG0000001/actions/", {"action": "cancel"}).status_code == 403
    assert (
        user.post("/t/acme/changes/new/", {"change_type": "normal", "short_description": "x"}).status_code
        == 403
    )
    with tenant_context(tenant_a):
        assert (Change.objects.count(), ActivityEntry.objects.count()) == (1, entries)
