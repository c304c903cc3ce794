"""The change console page: the timeline and the inline actions (transition, assign, comment, CAB vote)
that answer htmx with the page's body and plain posts with a redirect; refusals write nothing."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.changes.models import Change
from modules.changes.services import change_comment
from modules.people.models import Person
from modules.records.models import ActivityEntry, Comment
from tenants.models import Tenant

from .factories import normal

HTMX = {"HX-Request": "true"}


def _counts(tenant: Tenant, found: Change) -> tuple[object, ...]:
    with tenant_context(tenant):
        fresh = Change.objects.get(pk=found.pk)
        return (
            ActivityEntry.objects.filter(record_id=found.pk).count(),
            Comment.objects.filter(record_id=found.pk).count(),
            fresh.state,
            fresh.assigned_to_id,
            fresh.updated_at,
        )


def test_transition_assign_and_comment_inline(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        found = normal(actor_in(tenant_a, tech_a))
        nina = Person.objects.create(display_name="Nina Network")
    console = client_for(tech_a)
    base = f"/t/acme/changes/{found.number}/"
    page = console.get(base).content.decode()
    assert set(re.findall(r'class="record-action" id="action-(\w+)"', page)) == {"submit", "cancel"}
    swapped = console.post(base + "actions/", {"action": "submit"}, headers=HTMX)
    body = swapped.content.decode()
    assert swapped.status_code == 200 and "<html" not in body and "state: draft → assess" in body
    assigned = console.post(base + "assign/", {"assigned_to": str(nina.pk)}, headers=HTMX)
    assert assigned.status_code == 200 and "assigned to: — → Nina Network" in assigned.content.decode()
    noted = console.post(base + "comments/", {"body": "window agreed", "work_note": "on"})
    assert noted.status_code == 302 and noted["Location"] == base
    htmx_note = console.post(base + "comments/", {"body": "CAB date set"}, headers=HTMX)
    assert htmx_note.status_code == 200 and "CAB date set" in htmx_note.content.decode()
    plain_assign = console.post(base + "assign/", {"assigned_to": ""})
    assert plain_assign.status_code == 302
    timeline = console.get(base).content.decode()
    timeline = timeline[timeline.index('id="timeline"') :]
    assert timeline.index("CAB date set") < timeline.index("window agreed") < timeline.index("Created")
    assert timeline.count("Assignment changed") == 2
    cancelled = console.post(base + "actions/", {"action": "cancel", "comment": "not needed"})
    assert cancelled.status_code == 302
    with tenant_context(tenant_a):
        assert Change.objects.get(pk=found.pk).state == "cancelled"


def test_refused_actions_write_nothing(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        found = normal(actor_in(tenant_a, tech_a))
    console = client_for(tech_a)
    base = f"/t/acme/changes/{found.number}/"
    before = _counts(tenant_a, found)
    assert console.post(base + "actions/", {"action": "close"}, headers=HTMX).status_code == 409
    unknown = console.post(
        base + "assign/", {"assigned_to": "00000000-0000-7000-8000-000000000000"}, headers=HTMX
    )
    assert unknown.status_code == 422 and 'id="assign-assigned_to_error"' in unknown.content.decode()
    empty = console.post(base + "comments/", {"body": ""}, headers=HTMX)
    assert empty.status_code == 422 and 'id="comment-body_error"' in empty.content.decode()
    vote = console.post(base + "votes/", {"decision": "approve"}, headers=HTMX)
    assert 400 <= vote.status_code < 500
    user = client_for(end_user_a)
    for path, data in (("actions/", {"action": "submit"}), ("comments/", {"body": "x", "work_note": "on"})):
        assert 400 <= user.post(base + path, data, headers=HTMX).status_code < 500
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
        one, many = normal(tech), normal(tech)
        for i in range(30):
            change_comment(actor=tech, change=many, body=f"note {i}", work_note=bool(i % 2))
    console = client_for(tech_a)
    _queries(console, f"/t/acme/changes/{one.number}/")
    assert _queries(console, f"/t/acme/changes/{one.number}/") == _queries(
        console, f"/t/acme/changes/{many.number}/"
    )


def test_the_change_form_shows_errors_by_their_fields(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    refused = client_for(tech_a).post("/t/acme/changes/new/", {"change_type": "normal"})
    body = refused.content.decode()
    assert refused.status_code == 422 and 'class="error-summary' in body
    assert 'href="#id_short_description"' in body and 'id="id_short_description_error"' in body
    with tenant_context(tenant_a):
        assert not Change.objects.exists()
