"""The problem console page: the timeline and the inline actions (transition, assign, work note) that
answer htmx with the page's body and plain posts with a redirect; refusals write nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.people.models import Group
from modules.problems.models import Problem
from modules.problems.services import problem_comment
from modules.records.models import ActivityEntry, Comment
from tenants.models import Tenant

from .factories import problem, problem_in_fix

HTMX = {"HX-Request": "true"}


def _counts(tenant: Tenant, found: Problem) -> tuple[object, ...]:
    with tenant_context(tenant):
        fresh = Problem.objects.get(pk=found.pk)
        return (
            ActivityEntry.objects.filter(record_id=found.pk).count(),
            Comment.objects.filter(record_id=found.pk).count(),
            fresh.state,
            fresh.assignment_group_id,
            fresh.updated_at,
        )


def test_transition_by_htmx_and_plain_post(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        found = problem_in_fix(actor_in(tenant_a, tech_a))
    console = client_for(tech_a)
    url = f"/t/acme/problems/{found.number}/actions/"
    page = console.get(f"/t/acme/problems/{found.number}/").content.decode()
    forms = dict(re.findall(r'class="record-action" id="action-(\w+)"(.*?)</form>', page, re.S))
    assert set(forms) == {"resolve", "reanalyze", "cancel"}
    assert 'name="resolution_notes"' in forms["resolve"] and "resolution" not in forms["cancel"]
    before = _counts(tenant_a, found)
    refused = console.post(url, {"action": "resolve", "resolution_code": "fix_applied"}, headers=HTMX)
    body = refused.content.decode()
    assert refused.status_code == 422 and "<html" not in body
    assert 'id="resolve-resolution_notes_error">required<' in body
    assert 'aria-describedby="resolve-resolution_notes_error"' in body
    assert console.post(url, {"action": "close"}, headers=HTMX).status_code == 409
    assert _counts(tenant_a, found) == before
    swapped = console.post(
        url,
        {"action": "resolve", "resolution_code": "fix_applied", "resolution_notes": "renewed"},
        headers=HTMX,
    )
    body = swapped.content.decode()
    assert swapped.status_code == 200 and "<html" not in body and 'id="action-close"' in body
    assert "state: fix in progress → resolved" in body
    plain = console.post(url, {"action": "close"})
    assert plain.status_code == 302 and plain["Location"] == f"/t/acme/problems/{found.number}/"
    with tenant_context(tenant_a):
        assert Problem.objects.get(pk=found.pk).state == "closed"


def test_assess_without_assignment_shows_why_next_to_the_action(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        found = problem(actor_in(tenant_a, tech_a))
        network = Group.objects.create(name="Network team")
    console = client_for(tech_a)
    before = _counts(tenant_a, found)
    refused = console.post(f"/t/acme/problems/{found.number}/actions/", {"action": "assess"}, headers=HTMX)
    assert refused.status_code == 422 and "assign a group or a person first" in refused.content.decode()
    assert _counts(tenant_a, found) == before
    assigned = console.post(
        f"/t/acme/problems/{found.number}/assign/", {"assignment_group": str(network.pk)}, headers=HTMX
    )
    assert assigned.status_code == 200 and "assignment group: — → Network team" in assigned.content.decode()
    assessed = console.post(f"/t/acme/problems/{found.number}/actions/", {"action": "assess"})
    assert assessed.status_code == 302
    plain = console.post(f"/t/acme/problems/{found.number}/assign/", {"assignment_group": ""})
    assert plain.status_code == 302 and plain["Location"] == f"/t/acme/problems/{found.number}/"
    noted = console.post(
        f"/t/acme/problems/{found.number}/comments/", {"body": "plain note", "work_note": "on"}
    )
    assert noted.status_code == 302
    with tenant_context(tenant_a):
        stored = Problem.objects.get(pk=found.pk)
        assert (stored.state, stored.assignment_group_id) == ("assessed", None)
        assert Comment.objects.filter(record_id=found.pk, body="plain note", is_work_note=True).exists()


def test_work_note_by_htmx_and_end_user_refused(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        found = problem(actor_in(tenant_a, tech_a))
    swapped = client_for(tech_a).post(
        f"/t/acme/problems/{found.number}/comments/",
        {"body": "relay logs attached", "work_note": "on"},
        headers=HTMX,
    )
    body = swapped.content.decode()
    assert swapped.status_code == 200 and "relay logs attached" in body
    assert "tl-work_note note" in body[body.index('id="timeline"') :]
    before = _counts(tenant_a, found)
    user = client_for(end_user_a)
    for path, data in (("actions/", {"action": "cancel"}), ("comments/", {"body": "hi"}), ("assign/", {})):
        assert (
            400 <= user.post(f"/t/acme/problems/{found.number}/{path}", data, headers=HTMX).status_code < 500
        )
    assert _counts(tenant_a, found) == before


def _queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return sum(not q["sql"].startswith("SET search_path") for q in queries.captured_queries)


def test_the_page_issues_as_many_queries_with_1_and_30_timeline_entries(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        one, many = problem(tech, "one"), problem(tech, "many")
        for i in range(30):
            problem_comment(actor=tech, problem=many, body=f"note {i}", work_note=bool(i % 2))
    console = client_for(tech_a)
    _queries(console, f"/t/acme/problems/{one.number}/")
    assert _queries(console, f"/t/acme/problems/{one.number}/") == _queries(
        console, f"/t/acme/problems/{many.number}/"
    )


def test_create_and_edit_forms_show_errors_by_their_fields(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    console = client_for(tech_a)
    refused = console.post("/t/acme/problems/new/", {"short_description": "", "impact": 2, "urgency": 2})
    body = refused.content.decode()
    assert refused.status_code == 422 and 'href="#id_short_description"' in body
    assert 'aria-describedby="id_short_description_error"' in body and 'aria-invalid="true"' in body
    with tenant_context(tenant_a):
        assert not Problem.objects.exists()
        found = problem(actor_in(tenant_a, tech_a))
    edit = console.post(
        f"/t/acme/problems/{found.number}/edit/", {"short_description": "x", "impact": 7, "urgency": 2}
    )
    assert edit.status_code == 422 and 'id="id_impact_error"' in edit.content.decode()
