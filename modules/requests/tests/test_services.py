"""Service request services inside a tenant: ordering, approval steps (manager, person, group, tenant
role; modes one and all), rejection, delegation, reminders, fulfilment tasks, cancellation, and who may
do what. Every denial also checks that nothing was written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput, NotFound, PermissionDenied
from modules.people.models import Person
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, Comment, SearchDocument
from modules.records.registry import record_get
from modules.requests import selectors
from modules.requests.models import Approval, FulfilmentTask, RequestedItem, ServiceRequest
from modules.requests.services import (
    ApprovalNotPending,
    InvalidTransition,
    StepSpec,
    approval_decide,
    approval_delegate,
    approval_resend,
    catalog_category_create,
    catalog_item_create,
    request_cancel,
    request_submit,
    task_transition,
    task_update,
)
from tenants.models import Tenant

from .factories import LAPTOP_SCHEMA, end_user, group, item, person

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ANSWERS = {"reason": "old one broke", "model": "standard"}


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


@pytest.fixture
def manager(tech: Actor) -> Person:
    return person("Morgan")


@pytest.fixture
def alice(manager: Person) -> Person:
    return person("Alice", manager=manager)


def order(
    actor: Actor, catalog_item: Any, variables: dict[str, Any] | None = None, **kw: Any
) -> ServiceRequest:
    return request_submit(
        actor=actor,
        items=[{"catalog_item": catalog_item, "variables": ANSWERS if variables is None else variables}],
        now=NOW,
        **kw,
    )


def approvals(request: ServiceRequest) -> list[tuple[int, str, str]]:
    return [
        (a.step, a.approver.display_name if a.approver else f"role:{a.approver_role}", a.state)
        for a in Approval.objects.filter(request=request)
        .select_related("approver")
        .order_by("step", "approver__display_name")
    ]


def verbs(request: ServiceRequest) -> list[str]:
    return list(
        ActivityEntry.objects.filter(record_id=request.pk).order_by("id").values_list("verb", flat=True)
    )


def pending_for(request: ServiceRequest, who: Person) -> Approval:
    return Approval.objects.get(request=request, approver=who, state=Approval.State.PENDING)


def counts() -> tuple[int, ...]:
    return (
        ServiceRequest.objects.count(),
        RequestedItem.objects.count(),
        Approval.objects.count(),
        FulfilmentTask.objects.count(),
        ActivityEntry.objects.count(),
        Comment.objects.count(),
    )


def snapshot() -> list[dict[str, Any]]:
    return [dict(row) for row in Approval.objects.order_by("id").values()]


def test_no_approval_goes_in_progress_with_tasks_then_fulfilled(tech: Actor, alice: Person) -> None:
    desk = group("Desk", person("Terry"))
    laptop = item(tech, schema=LAPTOP_SCHEMA, fulfilment_group=desk, hours=48)
    monitor = item(tech, name="Monitor", hours=72)
    request = request_submit(
        actor=end_user(alice),
        items=[
            {"catalog_item": laptop, "variables": ANSWERS, "quantity": 1},
            {"catalog_item": monitor.pk, "variables": {}, "quantity": 2},
        ],
        now=NOW,
    )
    assert (request.number, request.state, request.short_description) == (
        "REQ0000001",
        "in_progress",
        "Laptop, Monitor",
    )
    assert (request.requested_for, request.opened_by) == (alice, alice)
    assert request.due_at == NOW + dt.timedelta(hours=72)
    assert request.approved_at == NOW
    items = list(RequestedItem.objects.filter(request=request).order_by("number"))
    assert [(i.number, i.state, i.quantity, i.variables) for i in items] == [
        ("RITM0000001", "in_progress", 1, ANSWERS),
        ("RITM0000002", "in_progress", 2, {}),
    ]
    tasks = list(FulfilmentTask.objects.order_by("number"))
    assert [(t.number, t.assignment_group, t.state, t.short_description) for t in tasks] == [
        ("SCTASK0000001", desk, "open", "Fulfil Laptop for Alice"),
        ("SCTASK0000002", None, "open", "Fulfil Monitor (x2) for Alice"),
    ]
    assert Approval.objects.count() == 0
    task_transition(actor=tech, task=tasks[0], action="start", now=NOW)
    task_transition(actor=tech, task=tasks[0], action="complete", now=NOW)
    request.refresh_from_db()
    assert request.state == "in_progress"
    assert RequestedItem.objects.get(number="RITM0000001").state == "fulfilled"
    task_transition(actor=tech, task=tasks[1], action="skip", comment="already has one", now=NOW)
    request.refresh_from_db()
    assert (request.state, request.closed_at) == ("fulfilled", NOW)
    assert verbs(request) == [
        "service_request.submitted",
        "service_request.approved",
        "service_request.in_progress",
        "task.start",
        "task.complete",
        "requested_item.fulfilled",
        "task.skip",
        "work_note.added",
        "requested_item.fulfilled",
        "service_request.fulfilled",
    ]
    document = SearchDocument.objects.get(record_id=request.pk)
    assert (document.record_type, document.visibility, document.owner_person_id, document.state) == (
        "service_request",
        "owner",
        alice.pk,
        "fulfilled",
    )


def test_one_step_manager_approval(tech: Actor, alice: Person, manager: Person) -> None:
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    request = order(end_user(alice), laptop)
    assert request.state == "pending_approval"
    assert approvals(request) == [(1, "Morgan", "pending")]
    assert FulfilmentTask.objects.count() == 0
    assert [a.pk for a in selectors.approval_list_for(actor=end_user(manager))] == [
        pending_for(request, manager).pk
    ]
    assert list(selectors.approval_list_for(actor=end_user(alice))) == []
    approval_decide(
        actor=end_user(manager),
        approval=pending_for(request, manager),
        decision="approve",
        comment="ok",
        now=NOW,
    )
    request.refresh_from_db()
    assert request.state == "in_progress"
    decided = Approval.objects.get(request=request)
    assert (decided.state, decided.comment, decided.decided_at, decided.decided_by) == (
        "approved",
        "ok",
        NOW,
        manager,
    )
    assert FulfilmentTask.objects.count() == 1
    assert verbs(request) == [
        "service_request.submitted",
        "service_request.pending_approval",
        "approval.requested",
        "approval.approved",
        "service_request.approved",
        "service_request.in_progress",
    ]


def test_two_ordered_steps_second_in_mode_all(tech: Actor, alice: Person, manager: Person) -> None:
    cfo, cio = person("Casey"), person("Chris")
    board = group("Board", cfo, cio)
    laptop = item(
        tech,
        steps=[
            StepSpec(order=2, mode="all", approver_group=board),
            StepSpec(order=1, approver_role="requester_manager"),
        ],
    )
    request = order(end_user(alice), laptop)
    assert approvals(request) == [
        (1, "Morgan", "pending"),
        (2, "Casey", "not_requested"),
        (2, "Chris", "not_requested"),
    ]
    with pytest.raises(ApprovalNotPending):  # step 2 waits for step 1
        approval_decide(actor=end_user(cfo), approval=Approval.objects.get(approver=cfo), decision="approve")
    approval_decide(actor=end_user(manager), approval=pending_for(request, manager), decision="approve")
    assert approvals(request) == [(1, "Morgan", "approved"), (2, "Casey", "pending"), (2, "Chris", "pending")]
    approval_decide(actor=end_user(cfo), approval=pending_for(request, cfo), decision="approve")
    request.refresh_from_db()
    assert request.state == "pending_approval"
    assert approvals(request) == [
        (1, "Morgan", "approved"),
        (2, "Casey", "approved"),
        (2, "Chris", "pending"),
    ]
    approval_decide(actor=end_user(cio), approval=pending_for(request, cio), decision="approve")
    request.refresh_from_db()
    assert request.state == "in_progress"
    assert FulfilmentTask.objects.count() == 1


def test_group_approval_in_mode_one_is_decided_by_the_first_member(tech: Actor, alice: Person) -> None:
    sam, sky = person("Sam"), person("Sky")
    security = group("Security", sam, sky)
    access = item(tech, name="VPN access", steps=[StepSpec(order=1, mode="one", approver_group=security)])
    request = order(end_user(alice), access)
    assert approvals(request) == [(1, "Sam", "pending"), (1, "Sky", "pending")]
    assert Approval.objects.get(approver=sam).via_group == security
    approval_decide(actor=end_user(sky), approval=pending_for(request, sky), decision="approve")
    request.refresh_from_db()
    assert request.state == "in_progress"
    assert approvals(request) == [(1, "Sam", "skipped"), (1, "Sky", "approved")]


def test_rejection_ends_the_request_and_skips_the_rest(tech: Actor, alice: Person, manager: Person) -> None:
    cfo = person("Casey")
    laptop = item(
        tech,
        steps=[StepSpec(order=1, approver_role="requester_manager"), StepSpec(order=2, approver_person=cfo)],
    )
    request = order(end_user(alice), laptop)
    before = counts()
    with pytest.raises(InvalidInput) as refused:
        approval_decide(actor=end_user(manager), approval=pending_for(request, manager), decision="reject")
    assert refused.value.extra["errors"] == [{"field": "comment", "message": "say why"}]
    assert counts() == before
    approval_decide(
        actor=end_user(manager),
        approval=pending_for(request, manager),
        decision="reject",
        comment="no budget",
        now=NOW,
    )
    request.refresh_from_db()
    assert (request.state, request.closed_at) == ("rejected", NOW)
    assert approvals(request) == [(1, "Morgan", "rejected"), (2, "Casey", "skipped")]
    assert list(RequestedItem.objects.values_list("state", flat=True)) == ["rejected"]
    assert FulfilmentTask.objects.count() == 0
    assert verbs(request)[-3:] == ["approval.rejected", "approval.skipped", "service_request.rejected"]
    with pytest.raises(ApprovalNotPending):
        approval_decide(actor=end_user(cfo), approval=Approval.objects.get(approver=cfo), decision="approve")
    with pytest.raises(InvalidTransition):
        request_cancel(actor=end_user(alice), request=request)


def test_tenant_role_step_is_decided_by_a_holder_of_the_role(tech: Actor, alice: Person) -> None:
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="approver")])
    request = order(end_user(alice), laptop)
    assert approvals(request) == [(1, "role:approver", "pending")]
    holder = end_user(person("Pat"), role="approver")
    assert [a.request_id for a in selectors.approval_list_for(actor=holder)] == [request.pk]
    assert selectors.service_request_get(actor=holder, service_request_id=request.pk) == request
    before = counts()
    with pytest.raises(PermissionDenied):
        approval_decide(actor=end_user(alice), approval=Approval.objects.get(), decision="approve")
    assert counts() == before
    approval_decide(actor=holder, approval=Approval.objects.get(), decision="approve")
    assert Approval.objects.get().decided_by == holder.person
    request.refresh_from_db()
    assert request.state == "in_progress"


def test_only_the_approver_decides_and_a_denial_writes_nothing(
    tech: Actor, alice: Person, manager: Person
) -> None:
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    request = order(end_user(alice), laptop)
    approval = pending_for(request, manager)
    before, rows = counts(), snapshot()
    for intruder in (tech, end_user(alice), end_user(person("Eve"))):
        with pytest.raises(PermissionDenied):
            approval_decide(actor=intruder, approval=approval, decision="approve")
    with pytest.raises(InvalidInput):
        approval_decide(actor=end_user(manager), approval=approval, decision="maybe")
    assert (counts(), snapshot()) == (before, rows)
    approval_decide(actor=end_user(manager), approval=approval, decision="approve")
    with pytest.raises(ApprovalNotPending):
        approval_decide(actor=end_user(manager), approval=approval, decision="approve")


def test_delegate_hands_the_decision_over(tech: Actor, alice: Person, manager: Person) -> None:
    deputy, other = person("Dee"), person("Oli")
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    request = order(end_user(alice), laptop)
    approval = pending_for(request, manager)
    before = counts()
    with pytest.raises(PermissionDenied):
        approval_delegate(actor=end_user(alice), approval=approval, delegate_to=deputy)
    with pytest.raises(InvalidInput) as same:
        approval_delegate(actor=end_user(manager), approval=approval, delegate_to=manager)
    assert same.value.extra["errors"] == [{"field": "delegate_to", "message": "already the approver"}]
    with pytest.raises(InvalidInput) as own:  # nobody approves their own order
        approval_delegate(actor=end_user(manager), approval=approval, delegate_to=alice)
    assert own.value.extra["errors"][0]["field"] == "delegate_to"
    assert tech.person is not None
    with pytest.raises(PermissionDenied):  # a technician cannot take the decision for themselves
        approval_delegate(actor=tech, approval=approval, delegate_to=tech.person)
    assert counts() == before
    approval_delegate(actor=end_user(manager), approval=approval, delegate_to=deputy)
    approval.refresh_from_db()
    assert (approval.approver, approval.delegated_from, approval.state) == (deputy, manager, "pending")
    with pytest.raises(PermissionDenied):
        approval_decide(actor=end_user(manager), approval=approval, decision="approve")
    approval_delegate(actor=tech, approval=approval, delegate_to=other)  # technicians may re-delegate
    approval.refresh_from_db()
    assert (approval.approver, approval.delegated_from) == (other, deputy)
    approval_decide(actor=end_user(other), approval=approval, decision="approve")
    request.refresh_from_db()
    assert request.state == "in_progress"
    assert verbs(request).count("approval.delegated") == 2
    with pytest.raises(ApprovalNotPending):
        approval_delegate(actor=tech, approval=approval, delegate_to=deputy)


def test_resend_counts_reminders(tech: Actor, alice: Person, manager: Person) -> None:
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    request = order(end_user(alice), laptop)
    approval = pending_for(request, manager)
    before = counts()
    with pytest.raises(PermissionDenied):
        approval_resend(actor=end_user(alice), approval=approval)
    assert counts() == before
    approval_resend(actor=tech, approval=approval, now=NOW)
    approval_resend(actor=tech, approval=approval, now=NOW + dt.timedelta(days=1))
    approval.refresh_from_db()
    assert (approval.reminder_count, approval.resent_at) == (2, NOW + dt.timedelta(days=1))
    entry = ActivityEntry.objects.filter(record_id=request.pk, verb="approval.resent").last()
    assert entry is not None and entry.changes["reminder_count"] == [1, 2]
    approval_decide(actor=end_user(manager), approval=approval, decision="approve")
    with pytest.raises(ApprovalNotPending):
        approval_resend(actor=tech, approval=approval)


def test_end_user_orders_for_themselves_only(tech: Actor, alice: Person) -> None:
    bob = person("Bob")
    laptop = item(tech, schema=LAPTOP_SCHEMA)
    before = counts()
    with pytest.raises(PermissionDenied):
        order(end_user(alice), laptop, requested_for=bob)
    assert counts() == before
    on_behalf = order(tech, laptop, requested_for=bob)
    assert (on_behalf.requested_for, on_behalf.opened_by) == (bob, tech.person)


def test_bad_order_reports_every_bad_field_and_writes_nothing(tech: Actor, alice: Person) -> None:
    laptop = item(tech, schema=LAPTOP_SCHEMA)
    hidden = item(tech, name="Retired phone")
    hidden.active = False
    hidden.save()
    before = counts()
    with pytest.raises(InvalidInput) as refused:
        request_submit(
            actor=end_user(alice),
            items=[
                {"catalog_item": laptop, "variables": {"model": "developer", "ram_gb": 2}, "quantity": 0},
                {"catalog_item": hidden.pk, "variables": {}},
            ],
        )
    assert refused.value.extra["errors"] == [
        {"field": "items[0].quantity", "message": "1-100"},
        {"field": "variables.reason", "message": "required", "item": 0},
        {"field": "variables.ram_gb", "message": "2 is less than the minimum of 8", "item": 0},
        {"field": "variables.justification", "message": "required", "item": 0},
        {"field": "items[1].catalog_item", "message": "no such active item"},
    ]
    assert counts() == before
    with pytest.raises(InvalidInput):
        request_submit(actor=end_user(alice), items=[])
    assert counts() == before


def test_approval_that_cannot_be_routed_refuses_the_order(tech: Actor) -> None:
    orphan = person("Orphan")  # no manager
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    empty = item(tech, name="Server", steps=[StepSpec(order=1, approver_group=group("Nobody"))])
    before = counts()
    with pytest.raises(InvalidInput) as no_manager:
        order(end_user(orphan), laptop)
    assert no_manager.value.extra["errors"] == [
        {"field": "requested_for", "message": "has no manager to approve this item"}
    ]
    with pytest.raises(InvalidInput) as no_members:
        order(end_user(orphan), empty)
    assert no_members.value.extra["errors"][0]["field"] == "items[0].catalog_item"
    assert counts() == before


def test_catalog_writes_are_for_technicians_and_admins(tech: Actor, alice: Person) -> None:
    before = counts()
    with pytest.raises(PermissionDenied):
        catalog_category_create(actor=end_user(alice), name="Hardware")
    assert counts() == before
    hardware = catalog_category_create(actor=end_user(person("Cleo"), role="client_admin"), name="Hardware")
    with pytest.raises(PermissionDenied):
        catalog_item_create(actor=end_user(alice), name="Laptop", category=hardware)
    with pytest.raises(InvalidInput) as dup:
        catalog_category_create(actor=tech, name="hardware")
    assert dup.value.extra["errors"] == [{"field": "name", "message": "already used"}]
    with pytest.raises(InvalidInput) as no_steps:
        catalog_item_create(actor=tech, name="Laptop", category=hardware, approval_required=True)
    assert no_steps.value.extra["errors"] == [
        {"field": "approval_steps", "message": "at least one step when approval is required"}
    ]
    with pytest.raises(InvalidInput) as bad_steps:
        catalog_item_create(
            actor=tech,
            name="Laptop",
            category=hardware,
            approval_required=True,
            approval_steps=[StepSpec(order=1, approver_role="ceo"), StepSpec(order=1, mode="most")],
        )
    assert bad_steps.value.extra["errors"] == [
        {
            "field": "approval_steps[0].approver_role",
            "message": "one of requester_manager, approver, client_admin",
        },
        {"field": "approval_steps[1].order", "message": "another step has this order"},
        {"field": "approval_steps[1].mode", "message": "one of one, all"},
        {"field": "approval_steps[1]", "message": "name an approver person, role or group"},
    ]


def test_tasks_assign_and_refuse_bad_transitions(tech: Actor, alice: Person) -> None:
    terry, uma = person("Terry"), person("Uma")
    desk = group("Desk", terry)
    laptop = item(tech, fulfilment_group=desk)
    request = order(end_user(alice), laptop, variables={})
    task = FulfilmentTask.objects.get()
    before = counts()
    with pytest.raises(PermissionDenied):
        task_transition(actor=end_user(alice), task=task, action="complete")
    with pytest.raises(PermissionDenied):
        task_update(actor=end_user(alice), task=task, assigned_to=terry)
    with pytest.raises(InvalidInput) as outsider:
        task_update(actor=tech, task=task, assigned_to=uma)
    assert outsider.value.extra["errors"] == [
        {"field": "assigned_to", "message": "not a member of the assignment group"}
    ]
    assert counts() == before
    task_update(actor=tech, task=task, assigned_to=terry)
    task.refresh_from_db()
    assert task.assigned_to == terry
    task_transition(actor=tech, task=task, action="complete")
    for action in ("start", "complete", "skip"):
        with pytest.raises(InvalidTransition):
            task_transition(actor=tech, task=task, action=action)
    with pytest.raises(InvalidTransition):
        task_update(actor=tech, task=task, short_description="again")
    request.refresh_from_db()
    assert request.state == "fulfilled"


def test_cancel_skips_approvals_and_tasks(tech: Actor, alice: Person, manager: Person) -> None:
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    waiting = order(end_user(alice), laptop)
    before = counts()
    with pytest.raises(PermissionDenied):  # the approver sees the request but may not cancel it
        request_cancel(actor=end_user(manager), request=waiting)
    assert counts() == before
    request_cancel(actor=end_user(alice), request=waiting, reason="found a spare", now=NOW)
    waiting.refresh_from_db()
    assert (waiting.state, waiting.closed_at) == ("cancelled", NOW)
    assert approvals(waiting) == [(1, "Morgan", "skipped")]
    assert Comment.objects.get(record_id=waiting.pk).body == "found a spare"
    with pytest.raises(InvalidTransition):
        request_cancel(actor=tech, request=waiting)

    running = order(tech, item(tech, name="Mouse"), variables={}, requested_for=alice)
    request_cancel(actor=tech, request=running)
    assert list(FulfilmentTask.objects.values_list("state", flat=True)) == ["closed_skipped"]
    assert list(RequestedItem.objects.filter(request=running).values_list("state", flat=True)) == [
        "cancelled"
    ]


def test_who_sees_which_request(tech: Actor, alice: Person, manager: Person) -> None:
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    mine = order(end_user(alice), laptop)
    bob = person("Bob", manager=manager)
    bobs = order(end_user(bob), item(tech, name="Mouse"), variables={})
    assert set(selectors.service_request_list(actor=tech)) == {mine, bobs}
    assert list(selectors.service_request_list(actor=end_user(alice))) == [mine]
    assert list(selectors.service_request_list(actor=end_user(manager))) == [mine]  # awaiting them
    with pytest.raises(NotFound):
        selectors.service_request_get(actor=end_user(alice), service_request_id=bobs.pk)
    with pytest.raises(NotFound):
        selectors.service_request_get(actor=end_user(alice), service_request_id="nonsense")
    assert record_get(actor=end_user(alice), record_type="service_request", record_id=mine.pk) == mine
    with pytest.raises(NotFound):
        selectors.task_get(actor=end_user(alice), task_id=FulfilmentTask.objects.get().pk)
    with pytest.raises(NotFound):
        selectors.approval_get(actor=end_user(bob), approval_id=Approval.objects.get().pk)


def test_requests_of_one_tenant_are_missing_in_another(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_ab)
        request = order(tech, item(tech), variables={})
    with tenant_context(tenant_b):
        tech_b = actor_in(tenant_b, tech_ab)
        with pytest.raises(NotFound):
            selectors.service_request_get(actor=tech_b, service_request_id=request.pk)
        assert list(selectors.service_request_list(actor=tech_b)) == []
        assert ServiceRequest.objects.count() == 0
    assert timezone.now() > NOW
