"""Every tenant service that opens or changes a record writes its work index row in the same transaction:
incidents (and the ServiceNow import), service requests and their fulfilment tasks, problems, changes, and
the group members behind "my groups". Closed or final records lose their row; a rolled-back service
leaves none."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import PermissionDenied
from controlplane.workindex.models import WorkGroupMember, WorkItem
from controlplane.workindex.services import NoTenant, WorkEntry, workindex_reconcile, workindex_upsert
from modules.changes.services import change_create, change_transition
from modules.incidents.models import Incident
from modules.incidents.servicenow import servicenow_import
from modules.incidents.services import incident_create, incident_transition, incident_update
from modules.people.models import Group, GroupMembership, Person
from modules.people.services import group_member_add, group_member_remove
from modules.problems.services import problem_create, problem_transition
from modules.records.actor import Actor
from modules.requests.models import FulfilmentTask, ServiceRequest
from modules.requests.services import request_cancel, request_submit, task_transition, task_update
from modules.requests.tests.factories import item
from tenants.models import Tenant

DATA = Path(__file__).resolve().parents[4] / "tests" / "data" / "servicenow_incident_event_log.csv"


def person_of(actor: Actor) -> Person:
    assert actor.person is not None
    return actor.person


def row(record_id: uuid.UUID) -> Any:
    """The index row of a record (without ids and times that are not the record's), or None."""
    found = WorkItem.objects.filter(record_id=record_id).values(
        "tenant__slug",
        "record_type",
        "number",
        "title",
        "state",
        "priority",
        "assigned_person_id",
        "assigned_user_id",
        "assignment_group_id",
    )
    return found.first()


def test_incident_row_follows_create_assign_resolve_and_reopen(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        desk = Group.objects.create(name="Service Desk")
        incident = incident_create(actor=actor, short_description="Mail is down", impact=1, urgency=1)
        created = row(incident.pk)
        incident_update(actor=actor, incident=incident, assignment_group=desk, assigned_to=actor.person)
        assigned = row(incident.pk)
        opened_at = WorkItem.objects.get(record_id=incident.pk).opened_at
        incident_transition(
            actor=actor, incident=incident, action="resolve", resolution_code="solved_permanently",
            resolution_notes="restarted",
        )  # fmt: skip
        resolved = row(incident.pk)
        incident_transition(actor=actor, incident=incident, action="reopen", comment="again")
        reopened = row(incident.pk)

    base = {
        "tenant__slug": "acme",
        "record_type": "incident",
        "number": "INC0000001",
        "title": "Mail is down",
    }
    assert created == {
        **base,
        "state": "new",
        "priority": 1,
        "assigned_person_id": None,
        "assigned_user_id": None,
        "assignment_group_id": None,
    }
    assert assigned == {
        **base,
        "state": "new",
        "priority": 1,
        "assigned_person_id": actor.person_id,
        "assigned_user_id": tech_a.pk,
        "assignment_group_id": desk.pk,
    }
    assert opened_at == incident.opened_at
    assert resolved is None
    assert reopened == {**assigned, "state": "in_progress"}


def test_a_rolled_back_service_leaves_no_row(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        with pytest.raises(RuntimeError), transaction.atomic():
            incident = incident_create(actor=actor, short_description="Printer jam")
            assert row(incident.pk) is not None  # written inside the transaction ...
            raise RuntimeError("the request fails after the service")
        assert Incident.objects.count() == 0
    assert WorkItem.objects.count() == 0  # ... and gone with it


def test_a_closed_incident_edited_by_nobody_keeps_no_row_and_a_cancel_removes_it(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        kept = incident_create(actor=actor, short_description="VPN slow")
        cancelled = incident_create(actor=actor, short_description="Duplicate of VPN slow")
        incident_transition(actor=actor, incident=cancelled, action="cancel")
        incident_transition(actor=actor, incident=kept, action="hold", hold_reason="awaiting_vendor")
    assert list(WorkItem.objects.values_list("number", "state")) == [("INC0000001", "on_hold")]


def test_work_index_writes_need_a_tenant(db: None) -> None:
    entry = WorkEntry(
        record_type="incident",
        record_id=uuid.uuid4(),
        number="INC0000001",
        title="x",
        state="new",
        is_open=True,
        opened_at=timezone.now(),
    )
    with pytest.raises(NoTenant):
        workindex_upsert(entry=entry)
    assert WorkItem.objects.count() == 0


def test_service_request_and_its_tasks_have_rows_until_fulfilled(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        desk = Group.objects.create(name="Desk")
        GroupMembership.objects.create(group=desk, person=person_of(actor))
        laptop = item(actor, fulfilment_group=desk)
        request = request_submit(actor=actor, items=[{"catalog_item": laptop}])
        task = FulfilmentTask.objects.get(requested_item__request=request)
        submitted = {r: row(pk) for r, pk in (("request", request.pk), ("task", task.pk))}
        task_update(actor=actor, task=task, assigned_to=actor.person)
        assigned = row(task.pk)
        task_transition(actor=actor, task=task, action="complete")
        request.refresh_from_db()
        fulfilled = (request.state, row(request.pk), row(task.pk))

    assert submitted == {
        "request": {
            "tenant__slug": "acme",
            "record_type": "service_request",
            "number": "REQ0000001",
            "title": "Laptop",
            "state": "in_progress",
            "priority": None,
            "assigned_person_id": None,
            "assigned_user_id": None,
            "assignment_group_id": None,
        },
        "task": {
            "tenant__slug": "acme",
            "record_type": "fulfilment_task",
            "number": "SCTASK0000001",
            "title": f"Fulfil Laptop for {actor.person}",
            "state": "open",
            "priority": None,
            "assigned_person_id": None,
            "assigned_user_id": None,
            "assignment_group_id": desk.pk,
        },
    }
    assert assigned is not None
    assert (assigned["assigned_person_id"], assigned["assigned_user_id"]) == (actor.person_id, tech_a.pk)
    assert fulfilled == ("fulfilled", None, None)


def test_cancelling_a_request_removes_its_row_and_its_tasks_rows(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        request = request_submit(actor=actor, items=[{"catalog_item": item(actor)}])
        before = sorted(WorkItem.objects.values_list("record_type", flat=True))
        request_cancel(actor=actor, request=request, reason="not needed")
        assert ServiceRequest.objects.get().state == "cancelled"
    assert before == ["fulfilment_task", "service_request"]
    assert WorkItem.objects.count() == 0


def test_problem_and_change_rows_follow_their_state(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        problem = problem_create(
            actor=actor, short_description="Mail keeps failing", assigned_to=actor.person
        )
        change = change_create(actor=actor, change_type="normal", short_description="Patch mail server")
        opened = sorted(WorkItem.objects.values_list("record_type", "number", "state", "assigned_user_id"))
        problem_transition(actor=actor, problem=problem, action="cancel")
        change_transition(actor=actor, change=change, action="cancel")
    assert opened == [("change", "CHG0000001", "draft", None), ("problem", "PRB0000001", "new", tech_a.pk)]
    assert WorkItem.objects.count() == 0


def test_the_servicenow_import_indexes_its_open_incidents_as_the_services_would(tenant_a: Tenant) -> None:
    # The shared log, with the first 30 incidents cut after their first two updates (still open then).
    with DATA.open(newline="") as stream:
        reader = csv.DictReader(stream)
        rows = list(reader)
    cut = sorted({r["number"] for r in rows})[:30]
    kept = [r for r in rows if r["number"] not in cut or int(r["sys_mod_count"]) <= 1]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(kept)
    with tenant_context(tenant_a):
        servicenow_import(stream=io.StringIO(out.getvalue()), time_zone="Europe/London")
        states = dict(Incident.objects.values_list("number", "state"))
    open_numbers = {n for n, state in states.items() if state in Incident.OPEN_STATES}
    indexed = dict(WorkItem.objects.filter(record_type="incident").values_list("number", "state"))
    report = workindex_reconcile(tenant=tenant_a, fix=False)

    assert 0 < len(open_numbers) <= 30 < len(states)
    assert indexed == {n: states[n] for n in open_numbers}
    # The bulk path wrote what the per-record function expects (problems and changes it opened too).
    assert report.differences == []


def test_group_membership_of_a_user_is_mirrored_for_my_groups(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        desk = Group.objects.create(name="Desk")
        caller = Person.objects.create(display_name="Caller without login")
        group_member_add(actor=actor, group=desk, person=person_of(actor))
        group_member_add(actor=actor, group=desk, person=caller)
        mirrored = list(WorkGroupMember.objects.values_list("tenant_id", "group_id", "user_id"))
        group_member_remove(actor=actor, group=desk, person=person_of(actor))
        members = list(GroupMembership.objects.values_list("person__display_name", flat=True))
    assert mirrored == [(tenant_a.pk, desk.pk, tech_a.pk)]
    assert members == ["Caller without login"]
    assert WorkGroupMember.objects.count() == 0


def test_end_users_cannot_change_groups_and_nothing_is_written(tenant_a: Tenant, end_user_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, end_user_a, role="end_user")
        desk = Group.objects.create(name="Desk")
        with pytest.raises(PermissionDenied):
            group_member_add(actor=actor, group=desk, person=person_of(actor))
        assert GroupMembership.objects.count() == 0
    assert WorkGroupMember.objects.count() == 0


def test_group_members_are_kept_per_tenant(tenant_a: Tenant, tenant_b: Tenant, tech_ab: User) -> None:
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            actor = actor_in(tenant, tech_ab)
            group_member_add(actor=actor, group=Group.objects.create(name="Desk"), person=person_of(actor))
    assert sorted(WorkGroupMember.objects.values_list("tenant__slug", "user_id")) == [
        ("acme", tech_ab.pk),
        ("globex", tech_ab.pk),
    ]
