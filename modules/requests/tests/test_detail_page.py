"""The service request console page: the timeline (approvals, tasks, comments, SLA events) and the inline
actions on the request and its fulfilment tasks, by htmx (the page's body back) and by plain post
(redirect); refusals write nothing."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.people.models import Group
from modules.records.models import ActivityEntry, Comment
from modules.requests.models import CatalogItem, FulfilmentTask, ServiceRequest
from modules.requests.services import request_comment, request_submit
from tenants.models import Tenant

from .factories import group, item, person

HTMX = {"HX-Request": "true"}


def ordered(tenant: Tenant, user: User) -> ServiceRequest:
    with tenant_context(tenant):
        tech = actor_in(tenant, user)
        desk = Group.objects.filter(name="Desk").first() or group("Desk")
        laptop = CatalogItem.objects.filter(name="Laptop").first() or item(tech, fulfilment_group=desk)
        return request_submit(actor=tech, items=[{"catalog_item": laptop, "variables": {}}])


def _counts(tenant: Tenant, found: ServiceRequest) -> tuple[object, ...]:
    with tenant_context(tenant):
        task = FulfilmentTask.objects.get(requested_item__request=found)
        return (
            ActivityEntry.objects.filter(record_id=found.pk).count(),
            Comment.objects.filter(record_id=found.pk).count(),
            ServiceRequest.objects.get(pk=found.pk).state,
            (task.state, task.assigned_to_id, task.updated_at),
        )


def test_task_actions_and_assignment_inline(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    found = ordered(tenant_a, tech_a)
    with tenant_context(tenant_a):
        task = FulfilmentTask.objects.get(requested_item__request=found)
        pat = person("Pat")
        desk = task.assignment_group
        assert desk is not None
        desk.members.add(pat)
    console = client_for(tech_a)
    url = f"/t/acme/requests/tasks/{task.pk}/"
    assigned = console.post(url, {"assignment_group": str(desk.pk), "assigned_to": str(pat.pk)}, headers=HTMX)
    body = assigned.content.decode()
    assert assigned.status_code == 200 and "<html" not in body and f"Task {task.number} updated" in body
    started = console.post(url, {"action": "start"}, headers=HTMX)
    assert started.status_code == 200 and f"Task {task.number} start" in started.content.decode()
    completed = console.post(url, {"action": "complete"})
    assert completed.status_code == 302 and completed["Location"] == f"/t/acme/requests/{found.number}/"
    with tenant_context(tenant_a):
        assert FulfilmentTask.objects.get(pk=task.pk).state == "closed_complete"
        assert ServiceRequest.objects.get(pk=found.pk).state == "fulfilled"


def test_refused_task_action_shows_the_message_by_the_task_and_writes_nothing(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    found = ordered(tenant_a, tech_a)
    with tenant_context(tenant_a):
        task = FulfilmentTask.objects.get(requested_item__request=found)
        outsider = person("Outsider")
    console = client_for(tech_a)
    url = f"/t/acme/requests/tasks/{task.pk}/"
    before = _counts(tenant_a, found)
    refused = console.post(
        url,
        {"assignment_group": str(task.assignment_group_id), "assigned_to": str(outsider.pk)},
        headers=HTMX,
    )
    body = refused.content.decode()
    assert refused.status_code == 422 and "<html" not in body and f'id="task-{task.pk}_error"' in body
    assert console.post(url, {"action": "explode"}, headers=HTMX).status_code == 422
    empty = console.post(f"/t/acme/requests/{found.number}/comments/", {"body": " "}, headers=HTMX)
    assert empty.status_code == 422 and 'id="comment-body_error"' in empty.content.decode()
    user = client_for(end_user_a)
    assert 400 <= user.post(url, {"action": "start"}, headers=HTMX).status_code < 500
    assert _counts(tenant_a, found) == before


def test_comment_and_cancel_inline(client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User) -> None:
    found = ordered(tenant_a, tech_a)
    console = client_for(tech_a)
    base = f"/t/acme/requests/{found.number}/"
    noted = console.post(base + "comments/", {"body": "ordered from vendor", "work_note": "on"}, headers=HTMX)
    body = noted.content.decode()
    assert noted.status_code == 200 and "tl-work_note note" in body and "ordered from vendor" in body
    cancelled = console.post(base + "cancel/", {"reason": "duplicate"}, headers=HTMX)
    body = cancelled.content.decode()
    assert cancelled.status_code == 200 and "Cancelled" in body and 'id="action-cancel"' not in body
    again = console.post(base + "cancel/", {"reason": "twice"}, headers=HTMX)
    assert again.status_code == 409
    other = ordered(tenant_a, tech_a)
    plain_note = console.post(f"/t/acme/requests/{other.number}/comments/", {"body": "on its way"})
    assert plain_note.status_code == 302
    plain_cancel = console.post(f"/t/acme/requests/{other.number}/cancel/", {"reason": "changed mind"})
    assert plain_cancel.status_code == 302 and plain_cancel["Location"] == f"/t/acme/requests/{other.number}/"
    with tenant_context(tenant_a):
        assert ServiceRequest.objects.get(pk=other.pk).state == "cancelled"
        assert Comment.objects.filter(record_id=other.pk, body="on its way", is_work_note=False).exists()


def _queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return sum(not q["sql"].startswith("SET search_path") for q in queries.captured_queries)


def test_the_page_issues_as_many_queries_with_1_and_30_timeline_entries(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    one, many = ordered(tenant_a, tech_a), ordered(tenant_a, tech_a)
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        for i in range(30):
            request_comment(actor=tech, request=many, body=f"note {i}", work_note=bool(i % 2))
    console = client_for(tech_a)
    _queries(console, f"/t/acme/requests/{one.number}/")
    assert _queries(console, f"/t/acme/requests/{one.number}/") == _queries(
        console, f"/t/acme/requests/{many.number}/"
    )
