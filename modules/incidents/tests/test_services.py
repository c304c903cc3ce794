"""Incident services: numbering, priority, transitions, reopen window, auto-close, and denials that write nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput, PermissionDenied
from modules.incidents.models import Incident, IncidentSettings
from modules.incidents.services import (
    IncidentNotEditable,
    InvalidTransition,
    incident_autoclose,
    incident_create,
    incident_transition,
    incident_update,
)
from modules.people.models import Group
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from tenants.models import Tenant


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


def resolve(actor: Actor, incident: Incident, **kwargs: object) -> Incident:
    return incident_transition(
        actor=actor,
        incident=incident,
        action="resolve",
        resolution_code="solved_permanently",
        resolution_notes="replaced cable",
        **kwargs,  # type: ignore[arg-type]
    )


def test_numbers_are_per_tenant_and_sequential(tenant_a: Tenant, tenant_b: Tenant, tech_ab: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_ab)
        assert [incident_create(actor=actor, short_description=f"a{i}").number for i in range(2)] == [
            "INC0000001",
            "INC0000002",
        ]
    with tenant_context(tenant_b):
        assert (
            incident_create(actor=actor_in(tenant_b, tech_ab), short_description="b").number == "INC0000001"
        )


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"), [(1, 1, 1), (1, 2, 2), (2, 2, 3), (2, 3, 4), (3, 3, 4)]
)
def test_priority_comes_from_the_matrix(tech: Actor, impact: int, urgency: int, priority: int) -> None:
    assert (
        incident_create(actor=tech, short_description="x", impact=impact, urgency=urgency).priority
        == priority
    )


def test_empty_short_description_writes_nothing(tech: Actor) -> None:
    with pytest.raises(InvalidInput):
        incident_create(actor=tech, short_description="  ")
    assert Incident.objects.count() == 0 and ActivityEntry.objects.count() == 0


def test_end_users_report_for_themselves(tenant_a: Tenant, end_user_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, end_user_a, "end_user")
        group = Group.objects.create(name="Network")
        incident = incident_create(actor=actor, short_description="wifi", assignment_group=group)
        assert incident.caller == actor.person and incident.assignment_group is None
        assert incident.contact_type == Incident.ContactType.PORTAL


def test_update_recomputes_priority_counts_reassignments_and_logs_the_diff(tech: Actor) -> None:
    first, second = Group.objects.create(name="Desk"), Group.objects.create(name="Network")
    incident = incident_create(actor=tech, short_description="slow", impact=3, urgency=3)
    incident = incident_update(actor=tech, incident=incident, assignment_group=first, impact=1)
    assert (incident.priority, incident.reassignment_count) == (3, 0)  # first assignment is no reassignment
    incident = incident_update(actor=tech, incident=incident, assignment_group=second)
    assert incident.reassignment_count == 1
    entry = ActivityEntry.objects.filter(record_id=incident.pk, verb="incident.updated").first()
    assert entry is not None and entry.changes["priority"] == [4, 3] and entry.changes["impact"] == [3, 1]


def test_closed_incidents_and_end_users_cannot_edit(tech: Actor, tenant_a: Tenant, end_user_a: User) -> None:
    incident = resolve(tech, incident_create(actor=tech, short_description="x"))
    incident = incident_transition(actor=tech, incident=incident, action="close")
    entries = ActivityEntry.objects.count()
    with pytest.raises(IncidentNotEditable):
        incident_update(actor=tech, incident=incident, short_description="changed")
    with pytest.raises(PermissionDenied):
        incident_update(actor=actor_in(tenant_a, end_user_a, "end_user"), incident=incident, impact=1)
    incident.refresh_from_db()
    assert incident.short_description == "x" and ActivityEntry.objects.count() == entries


def test_the_whole_path_and_its_history(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="printer")
    for action, extra in [("start", {}), ("hold", {"hold_reason": "awaiting_vendor"}), ("resume", {})]:
        incident = incident_transition(actor=tech, incident=incident, action=action, **extra)  # type: ignore[arg-type]
    incident = resolve(tech, incident)
    incident = incident_transition(actor=tech, incident=incident, action="close")
    assert (incident.state, incident.hold_reason, incident.resolution_code) == (
        "closed",
        "",
        "solved_permanently",
    )
    assert incident.resolved_at is not None and incident.closed_at is not None
    verbs = list(ActivityEntry.objects.filter(record_id=incident.pk).values_list("verb", flat=True))
    assert verbs == [
        "incident.created",
        "incident.start",
        "incident.hold",
        "incident.resume",
        "incident.resolve",
        "incident.close",
    ]


@pytest.mark.parametrize(
    ("action", "details", "fields"),
    [
        ("hold", {}, {"hold_reason"}),
        ("resolve", {}, {"resolution_code", "resolution_notes"}),
        ("resolve", {"resolution_code": "no_such_code", "resolution_notes": "n"}, {"resolution_code"}),
    ],
)
def test_missing_details_are_refused_and_nothing_changes(
    tech: Actor, action: str, details: dict[str, str], fields: set[str]
) -> None:
    incident = incident_create(actor=tech, short_description="x")
    with pytest.raises(InvalidInput) as excinfo:
        incident_transition(actor=tech, incident=incident, action=action, **details)  # type: ignore[arg-type]
    assert {e["field"] for e in excinfo.value.extra["errors"]} == fields
    incident.refresh_from_db()
    assert incident.state == "new" and ActivityEntry.objects.filter(record_id=incident.pk).count() == 1


def test_actions_outside_their_states_are_409(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    with pytest.raises(InvalidTransition) as excinfo:
        incident_transition(actor=tech, incident=incident, action="close")
    assert excinfo.value.status == 409
    assert excinfo.value.extra["allowed_actions"] == ["start", "hold", "resolve", "cancel"]
    incident_transition(actor=tech, incident=incident, action="cancel")
    with pytest.raises(InvalidTransition):
        incident_transition(actor=tech, incident=incident, action="reopen")


def test_reopen_only_within_the_window(tech: Actor) -> None:
    now = timezone.now()
    window = IncidentSettings.objects.get(pk=1).reopen_window_days
    incident = resolve(tech, incident_create(actor=tech, short_description="x"))
    incident = incident_transition(actor=tech, incident=incident, action="close", now=now)
    incident = incident_transition(
        actor=tech, incident=incident, action="reopen", now=now + dt.timedelta(days=window - 1)
    )
    assert (incident.state, incident.reopen_count, incident.closed_at) == ("in_progress", 1, None)
    incident = resolve(tech, incident)
    incident = incident_transition(actor=tech, incident=incident, action="close", now=now)
    with pytest.raises(InvalidTransition):
        incident_transition(
            actor=tech, incident=incident, action="reopen", now=now + dt.timedelta(days=window + 1)
        )
    incident.refresh_from_db()
    assert (incident.state, incident.reopen_count) == ("closed", 1)


def test_end_users_may_only_reopen_their_own_resolved_incident(
    tenant_a: Tenant, tech_a: User, end_user_a: User, end_user_b: User
) -> None:
    with tenant_context(tenant_a):
        tech, alice = actor_in(tenant_a, tech_a), actor_in(tenant_a, end_user_a, "end_user")
        mallory = actor_in(tenant_a, end_user_b, "end_user")
        incident = resolve(tech, incident_create(actor=alice, short_description="mine"))
        with pytest.raises(PermissionDenied):
            incident_transition(actor=mallory, incident=incident, action="reopen")
        with pytest.raises(PermissionDenied):
            incident_transition(actor=alice, incident=incident, action="close")
        incident = incident_transition(
            actor=alice, incident=incident, action="reopen", comment="still broken"
        )
        assert incident.state == "in_progress"


def test_autoclose_closes_due_resolved_incidents_once(tech: Actor) -> None:
    now = timezone.now()
    due = resolve(tech, incident_create(actor=tech, short_description="old"), now=now - dt.timedelta(days=8))
    fresh = resolve(
        tech, incident_create(actor=tech, short_description="new"), now=now - dt.timedelta(days=1)
    )
    assert incident_autoclose(now=now) == 1
    assert incident_autoclose(now=now) == 0
    due.refresh_from_db()
    fresh.refresh_from_db()
    assert (due.state, fresh.state) == ("closed", "resolved")
    entry = ActivityEntry.objects.get(record_id=due.pk, verb="incident.close")
    assert entry.source == "system" and entry.actor_user_id is None


def test_activity_history_is_append_only(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    entry = ActivityEntry.objects.get(record_id=incident.pk)
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        ActivityEntry.objects.filter(pk=entry.pk).update(verb="forged")
    with pytest.raises(TypeError):
        ActivityEntry.objects.filter(pk=entry.pk).delete()
    assert ActivityEntry.objects.get(pk=entry.pk).verb == "incident.created"
