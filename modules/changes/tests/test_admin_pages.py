"""Console pages for editing a change and for the change module's admin data (standard change
templates, the CAB roster, blackout windows, quorums), the template PATCH route, and the conflicts a
standard change stores on submit. Denials answer 403/404 and write nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.providers.models import Provider
from modules.changes.models import BlackoutWindow, CabMember, Change, ChangeSettings, StandardChangeTemplate
from modules.changes.services import (
    blackout_create,
    change_ci_add,
    change_create,
    change_transition,
    template_update,
)
from modules.people.models import Person
from modules.records.models import ActivityEntry
from tenants.models import Tenant

from .factories import T0, admin, ci, hours, normal, template

ClientFor = Callable[..., Client]
BASE = "/t/acme/changes/"


@pytest.fixture
def owner(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


@pytest.fixture
def cab_user(tenant_a: Tenant) -> User:
    user = make_user("cab@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="cab_member")
    return user


def writes(tenant: Tenant) -> tuple[int, ...]:
    with tenant_context(tenant):
        return (
            ActivityEntry.objects.count(),
            StandardChangeTemplate.objects.count(),
            CabMember.objects.count(),
            BlackoutWindow.objects.count(),
        )


# Editing a change


def test_edit_page_updates_plans_window_and_assignment(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        change = normal(actor_in(tenant_a, tech_a))
    requester = str(change.requested_by_id)
    console = client_for(tech_a)
    detail = console.get(f"{BASE}{change.number}/").content.decode()
    assert f'href="{BASE}{change.number}/edit/"' in detail
    page = console.get(f"{BASE}{change.number}/edit/")
    body = page.content.decode()
    # T0 is 2030-03-04 22:00 UTC: London is on GMT then, so the form shows the same wall time.
    assert page.status_code == 200 and 'value="2030-03-04T22:00"' in body and "restore snapshot" in body
    assert "Post-implementation review" not in body  # outcome and review notes only once implementing
    saved = console.post(
        f"{BASE}{change.number}/edit/",
        {
            "short_description": "Patch the mail server (CU14)",
            "implementation_plan": "install CU14\r\nreboot",
            "backout_plan": "restore snapshot",
            "test_plan": "smoke test",
            "planned_start": "2030-07-01T10:00",
            "planned_end": "2030-07-01T11:30",
            "requested_by": requester,
        },
    )
    assert saved.status_code == 302 and saved["Location"] == f"{BASE}{change.number}/"
    with tenant_context(tenant_a):
        stored = Change.objects.get(pk=change.pk)
        entry = ActivityEntry.objects.filter(record_id=change.pk, verb="change.updated").get()
    assert stored.short_description == "Patch the mail server (CU14)"
    assert (stored.implementation_plan, str(stored.requested_by_id)) == ("install CU14\nreboot", requester)
    # Read in Europe/London summer time (UTC+1), stored in UTC.
    assert (stored.planned_start, stored.planned_end) == (
        dt.datetime(2030, 7, 1, 9, 0, tzinfo=dt.UTC),
        dt.datetime(2030, 7, 1, 10, 30, tzinfo=dt.UTC),
    )
    assert sorted(entry.changes) == [
        "implementation_plan",
        "planned_end",
        "planned_start",
        "short_description",
    ]


def test_edit_page_shows_the_window_error_and_writes_nothing(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        change = normal(actor_in(tenant_a, tech_a))
        before = ActivityEntry.objects.count()
    refused = client_for(tech_a).post(
        f"{BASE}{change.number}/edit/",
        {"short_description": "x", "planned_start": "2030-07-01T10:00", "planned_end": "2030-07-01T09:00"},
    )
    body = refused.content.decode()
    assert refused.status_code == 422
    assert '<ul class="errorlist" id="id_planned_end_error"><li>must be after planned_start</li></ul>' in body
    with tenant_context(tenant_a):
        assert Change.objects.get(pk=change.pk).short_description == "Patch the mail server"
        assert ActivityEntry.objects.count() == before


def test_edit_page_refuses_planning_fields_after_assess_but_assigns(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        change = normal(tech)
        change_transition(actor=tech, change=change, action="submit")
        change_transition(actor=tech, change=change, action="request_authorisation")
        person_id = str(tech.person.pk) if tech.person else ""
        before = ActivityEntry.objects.count()
    console = client_for(tech_a)
    current = {
        "short_description": "Patch the mail server",
        "implementation_plan": "patch",
        "backout_plan": "restore snapshot",
        "test_plan": "smoke test",
        "planned_start": "2030-03-04T22:00",
        "planned_end": "2030-03-05T00:00",
        "requested_by": person_id,
    }
    refused = console.post(f"{BASE}{change.number}/edit/", {**current, "test_plan": "new test"})
    body = refused.content.decode()
    assert refused.status_code == 409
    assert 'id="id_test_plan_error"><li>CHG0000001 is Authorise: cannot change test_plan</li>' in body
    with tenant_context(tenant_a):
        assert ActivityEntry.objects.count() == before
    assigned = console.post(f"{BASE}{change.number}/edit/", {**current, "assigned_to": person_id})
    assert assigned.status_code == 302
    with tenant_context(tenant_a):
        stored = Change.objects.get(pk=change.pk)
        assert (str(stored.assigned_to_id), stored.test_plan) == (person_id, "smoke test")


def test_edit_page_sets_outcome_and_review_notes_when_implementing(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        change = change_create(
            actor=tech,
            change_type="standard",
            template_id=template().pk,
            planned_start=T0,
            planned_end=T0 + hours(1),
        )
        change_transition(actor=tech, change=change, action="submit")
        change_transition(actor=tech, change=change, action="implement")
    console = client_for(tech_a)
    page = console.get(f"{BASE}{change.number}/edit/").content.decode()
    assert (
        "Post-implementation review" in page and 'name="implementation_plan"' in page and "disabled" in page
    )
    saved = console.post(
        f"{BASE}{change.number}/edit/",
        {
            "short_description": "Restart app pool",
            "planned_start": "2030-03-04T22:00",
            "planned_end": "2030-03-04T23:00",
            "requested_by": str(change.requested_by_id),
            "outcome": "successful",
            "review_notes": "went fine",
        },
    )
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        stored = Change.objects.get(pk=change.pk)
        assert (stored.outcome, stored.review_notes, stored.state) == ("successful", "went fine", "implement")


def test_edit_page_is_refused_to_cab_members_and_end_users(
    client_for: ClientFor, tech_a: User, cab_user: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        change = normal(actor_in(tenant_a, tech_a))
    before = writes(tenant_a)
    voter = client_for(cab_user)
    assert voter.get(f"{BASE}{change.number}/edit/").status_code == 403
    assert voter.post(f"{BASE}{change.number}/edit/", {"short_description": "mine"}).status_code == 403
    user = client_for(end_user_a)
    assert user.get(f"{BASE}{change.number}/edit/").status_code == 403
    assert user.post(f"{BASE}{change.number}/edit/", {"short_description": "mine"}).status_code == 403
    assert writes(tenant_a) == before
    with tenant_context(tenant_a):
        assert Change.objects.get(pk=change.pk).short_description == "Patch the mail server"


# Standard change templates


def test_template_update_service_retires_and_logs(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tpl = template()
        other = template(name="Rotate certificates")
        updated = template_update(actor=admin(), template=tpl, active=False, test_plan="browse the site")
        assert (updated.active, updated.test_plan) == (False, "browse the site")
        entry = ActivityEntry.objects.get(record_id=tpl.pk, verb="change_template.updated")
        assert entry.changes == {"active": [True, False], "test_plan": ["open the site", "browse the site"]}
        with pytest.raises(Exception) as taken:
            template_update(actor=admin(), template=tpl, name="Rotate certificates")
        assert getattr(taken.value, "status", None) == 409
        assert StandardChangeTemplate.objects.get(pk=other.pk).name == "Rotate certificates"


def test_template_patch_route(
    api_for: Callable[[User], Client], tech_a: User, owner: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tpl = template()
    url = f"/api/v1/t/acme/changes/templates/{tpl.pk}"
    before = writes(tenant_a)
    denied = api_for(tech_a).patch(url, {"active": False}, content_type="application/json")
    assert denied.status_code == 403 and denied.json()["type"].endswith("forbidden")
    assert writes(tenant_a) == before
    emptied = api_for(owner).patch(url, {"backout_plan": " "}, content_type="application/json")
    assert emptied.status_code == 422 and emptied.json()["errors"] == [
        {"field": "backout_plan", "message": "required"}
    ]
    retired = api_for(owner).patch(url, {"active": False, "category": "web"}, content_type="application/json")
    assert retired.status_code == 200
    assert (retired.json()["active"], retired.json()["category"], retired.json()["name"]) == (
        False,
        "web",
        "Restart app pool",
    )
    missing = api_for(owner).patch(
        "/api/v1/t/acme/changes/templates/0190c1d2-0000-7000-8000-000000000000",
        {"active": True},
        content_type="application/json",
    )
    assert missing.status_code == 404


def test_template_pages_list_create_and_edit(
    client_for: ClientFor, tech_a: User, owner: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tpl = template()
    console = client_for(owner)
    listing = console.get(f"{BASE}templates/")
    assert listing.status_code == 200 and "Restart app pool" in listing.content.decode()
    assert f"{BASE}templates/{tpl.pk}/edit/" in listing.content.decode()
    assert console.get(f"{BASE}templates/new/").status_code == 200
    made = console.post(
        f"{BASE}templates/new/",
        {
            "name": "Rotate certificates",
            "implementation_plan": "renew",
            "backout_plan": "old cert",
            "active": "on",
        },
    )
    assert made.status_code == 302 and made["Location"] == f"{BASE}templates/"
    edit = console.get(f"{BASE}templates/{tpl.pk}/edit/")
    assert edit.status_code == 200 and "recycle the pool" in edit.content.decode()
    retired = console.post(
        f"{BASE}templates/{tpl.pk}/edit/",
        {"name": "Restart app pool", "implementation_plan": "recycle", "backout_plan": "none needed"},
    )
    assert retired.status_code == 302
    with tenant_context(tenant_a):
        stored = StandardChangeTemplate.objects.get(pk=tpl.pk)
        assert (stored.active, stored.implementation_plan) == (False, "recycle")
        assert StandardChangeTemplate.objects.get(name="Rotate certificates").active is True
    assert "Retired" in console.get(f"{BASE}templates/").content.decode()


def test_template_form_errors_and_denials_write_nothing(
    client_for: ClientFor, tech_a: User, owner: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tpl = template()
        template(name="Rotate certificates")
    before = writes(tenant_a)
    console = client_for(owner)
    empty = console.post(f"{BASE}templates/{tpl.pk}/edit/", {"name": "Restart app pool", "backout_plan": "x"})
    assert empty.status_code == 422
    assert 'id="id_implementation_plan_error"><li>required</li>' in empty.content.decode()
    taken = console.post(
        f"{BASE}templates/{tpl.pk}/edit/",
        {"name": "Rotate certificates", "implementation_plan": "a", "backout_plan": "b", "active": "on"},
    )
    assert taken.status_code == 409
    assert 'id="id_name_error"><li>another template has this name</li>' in taken.content.decode()
    duplicate = console.post(
        f"{BASE}templates/new/", {"name": "Restart app pool", "implementation_plan": "a", "backout_plan": "b"}
    )
    assert duplicate.status_code == 409 and 'id="id_name_error"' in duplicate.content.decode()
    tech = client_for(tech_a)
    assert tech.get(f"{BASE}templates/").status_code == 200
    assert tech.get(f"{BASE}templates/new/").status_code == 403
    assert (
        tech.post(
            f"{BASE}templates/new/", {"name": "n", "implementation_plan": "a", "backout_plan": "b"}
        ).status_code
        == 403
    )
    assert tech.post(f"{BASE}templates/{tpl.pk}/edit/", {"name": "n"}).status_code == 403
    user = client_for(end_user_a)
    assert user.get(f"{BASE}templates/").status_code == 403
    assert user.post(f"{BASE}templates/{tpl.pk}/edit/", {"name": "n"}).status_code == 403
    assert writes(tenant_a) == before
    with tenant_context(tenant_a):
        assert StandardChangeTemplate.objects.get(pk=tpl.pk).implementation_plan == "recycle the pool"


# The CAB roster


def test_cab_page_adds_flags_and_removes_members(
    client_for: ClientFor, owner: User, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        person = Person.objects.create(display_name="Carol CAB")
    console = client_for(owner)
    page = console.get(f"{BASE}cab/")
    assert page.status_code == 200 and "Nobody is on the CAB yet." in page.content.decode()
    added = console.post(f"{BASE}cab/", {"person": str(person.pk)})
    assert added.status_code == 302 and added["Location"] == f"{BASE}cab/"
    flagged = console.post(f"{BASE}cab/", {"person": str(person.pk), "emergency": "on"})
    assert flagged.status_code == 302
    with tenant_context(tenant_a):
        member = CabMember.objects.get()
        assert (member.person_id, member.emergency) == (person.pk, True)
        verbs = list(ActivityEntry.objects.filter(record_type="cab").values_list("verb", flat=True))
        assert verbs == ["cab.member_added", "cab.member_changed"]
    listed = client_for(tech_a).get(f"{BASE}cab/").content.decode()
    assert "Carol CAB" in listed and "Remove" not in listed
    removed = console.post(f"{BASE}cab/{member.pk}/remove/")
    assert removed.status_code == 302
    with tenant_context(tenant_a):
        assert CabMember.objects.count() == 0
    assert console.post(f"{BASE}cab/{member.pk}/remove/").status_code == 404


def test_cab_page_errors_and_denials_write_nothing(
    client_for: ClientFor, owner: User, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        person = Person.objects.create(display_name="Carol CAB")
        member = CabMember.objects.create(person=Person.objects.create(display_name="Dan"))
    before = writes(tenant_a)
    unknown = client_for(owner).post(f"{BASE}cab/", {"person": "0190c1d2-0000-7000-8000-000000000000"})
    assert unknown.status_code == 422 and 'id="id_person_error"' in unknown.content.decode()
    tech = client_for(tech_a)
    assert tech.post(f"{BASE}cab/", {"person": str(person.pk)}).status_code == 403
    assert tech.post(f"{BASE}cab/{member.pk}/remove/").status_code == 403
    user = client_for(end_user_a)
    assert user.get(f"{BASE}cab/").status_code == 403
    assert user.post(f"{BASE}cab/", {"person": str(person.pk)}).status_code == 403
    assert user.post(f"{BASE}cab/{member.pk}/remove/").status_code == 403
    assert writes(tenant_a) == before


# Blackout windows


def test_blackout_page_adds_in_the_tenant_zone_and_removes(
    client_for: ClientFor, owner: User, tech_a: User, tenant_a: Tenant
) -> None:
    console = client_for(owner)
    assert console.get(f"{BASE}blackouts/").status_code == 200
    added = console.post(
        f"{BASE}blackouts/",
        {
            "name": "Month-end close",
            "start": "2030-07-31T18:00",
            "end": "2030-08-01T06:00",
            "reason": "finance",
        },
    )
    assert added.status_code == 302 and added["Location"] == f"{BASE}blackouts/"
    with tenant_context(tenant_a):
        window = BlackoutWindow.objects.get()
    assert (window.start, window.end) == (
        dt.datetime(2030, 7, 31, 17, 0, tzinfo=dt.UTC),
        dt.datetime(2030, 8, 1, 5, 0, tzinfo=dt.UTC),
    )
    listed = client_for(tech_a).get(f"{BASE}blackouts/").content.decode()
    assert "Month-end close" in listed and "2030-07-31 18:00" in listed and "Remove" not in listed
    assert console.post(f"{BASE}blackouts/{window.pk}/remove/").status_code == 302
    with tenant_context(tenant_a):
        assert BlackoutWindow.objects.count() == 0
        assert ActivityEntry.objects.filter(record_id=window.pk).count() == 2


def test_blackout_page_errors_and_denials_write_nothing(
    client_for: ClientFor, owner: User, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        window = blackout_create(actor=admin(), name="Audit", start=T0, end=T0 + hours(2))
    before = writes(tenant_a)
    backwards = client_for(owner).post(
        f"{BASE}blackouts/", {"name": "Bad", "start": "2030-07-31T18:00", "end": "2030-07-31T17:00"}
    )
    assert backwards.status_code == 422
    assert 'id="id_end_error"><li>must be after start</li>' in backwards.content.decode()
    unnamed = client_for(owner).post(
        f"{BASE}blackouts/", {"name": "", "start": "2030-07-31T18:00", "end": "2030-07-31T19:00"}
    )
    assert unnamed.status_code == 422 and 'id="id_name_error"><li>required</li>' in unnamed.content.decode()
    body = {"name": "Mine", "start": "2030-07-31T18:00", "end": "2030-07-31T19:00"}
    assert client_for(tech_a).post(f"{BASE}blackouts/", body).status_code == 403
    assert client_for(tech_a).post(f"{BASE}blackouts/{window.pk}/remove/").status_code == 403
    user = client_for(end_user_a)
    assert user.get(f"{BASE}blackouts/").status_code == 403
    assert user.post(f"{BASE}blackouts/", body).status_code == 403
    assert user.post(f"{BASE}blackouts/{window.pk}/remove/").status_code == 403
    assert writes(tenant_a) == before


# Quorums


def test_settings_page_admins_change_others_read(
    client_for: ClientFor, owner: User, tech_a: User, cab_user: User, end_user_a: User, tenant_a: Tenant
) -> None:
    console = client_for(owner)
    page = console.get(f"{BASE}settings/")
    assert page.status_code == 200 and 'name="cab_quorum" value="2"' in page.content.decode()
    before = writes(tenant_a)
    bad = console.post(f"{BASE}settings/", {"cab_quorum": "0", "ecab_quorum": "1"})
    assert bad.status_code == 422 and 'id="id_cab_quorum_error"><li>1-50 votes</li>' in bad.content.decode()
    tech = client_for(tech_a)
    read_only = tech.get(f"{BASE}settings/").content.decode()
    assert "Only admins change the quorums." in read_only and 'name="cab_quorum"' not in read_only
    assert tech.post(f"{BASE}settings/", {"cab_quorum": "3", "ecab_quorum": "1"}).status_code == 403
    assert client_for(cab_user).get(f"{BASE}settings/").status_code == 200
    assert client_for(end_user_a).get(f"{BASE}settings/").status_code == 403
    assert (
        client_for(end_user_a).post(f"{BASE}settings/", {"cab_quorum": "3", "ecab_quorum": "1"}).status_code
        == 403
    )
    assert writes(tenant_a) == before
    saved = console.post(f"{BASE}settings/", {"cab_quorum": "3", "ecab_quorum": "1"})
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        rules = ChangeSettings.objects.get(pk=1)
        assert (rules.cab_quorum, rules.ecab_quorum) == (3, 1)
        assert ActivityEntry.objects.filter(verb="change_settings.changed").count() == 1


def test_change_list_links_the_admin_pages(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    page = client_for(tech_a).get(BASE).content.decode()
    for url in ("templates/", "cab/", "blackouts/", "settings/"):
        assert f'href="{BASE}{url}"' in page, url


# Standard changes store their conflicts on submit


def test_standard_change_submit_records_blackout_and_ci_conflicts(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        server = ci("web01")
        other = normal(tech, short_description="Patch web01")
        change_ci_add(actor=tech, change=other, ci_id=server.pk)
        # A normal change stores its conflicts only on entering authorise, not on submit (draft -> assess).
        assert change_transition(actor=tech, change=other, action="submit").conflicts == []
        blackout_create(actor=admin(), name="Freeze", start=T0 - hours(1), end=T0 + hours(1))
        standard = change_create(
            actor=tech,
            change_type="standard",
            template_id=template().pk,
            planned_start=T0,
            planned_end=T0 + hours(1),
        )
        change_ci_add(actor=tech, change=standard, ci_id=server.pk)
        quiet = change_create(
            actor=tech,
            change_type="standard",
            template_id=StandardChangeTemplate.objects.get().pk,
            planned_start=T0 + hours(100),
            planned_end=T0 + hours(101),
        )
        submitted = change_transition(actor=tech, change=standard, action="submit")
        assert submitted.state == "scheduled"
        assert [(c["kind"], c.get("number") or c.get("name")) for c in submitted.conflicts] == [
            ("change", other.number),
            ("blackout", "Freeze"),
        ]
        verbs = list(
            ActivityEntry.objects.filter(record_id=standard.pk).order_by("at").values_list("verb", "changes")
        )
        assert verbs[-2][0] == "change.submit"
        assert verbs[-1] == ("change.conflicts_computed", {"conflicts": [other.number, "blackout: Freeze"]})
        clear = change_transition(actor=tech, change=quiet, action="submit")
        assert clear.conflicts == []
        assert ActivityEntry.objects.filter(
            record_id=quiet.pk, verb="change.conflicts_computed"
        ).get().changes == {"conflicts": []}
