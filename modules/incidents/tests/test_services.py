"""Incident services, called directly inside a tenant: numbering, the priority matrix, edits, the state
machine (hold reasons, resolution details, reopen window, cancel), comments, auto-close and matrix changes.

Every denial also checks that nothing was written: no incident row changed, no activity entry, no comment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from controlplane.problems import InvalidInput, PermissionDenied
from modules.incidents.models import Incident, IncidentSettings, PriorityRule, ResolutionCode
from modules.incidents.services import (
    IncidentNotEditable,
    InvalidTransition,
    allowed_actions,
    incident_autoclose,
    incident_comment,
    incident_create,
    incident_transition,
    incident_update,
    priority_matrix_set,
)
from modules.people.models import Group
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, Comment, NumberSequence
from modules.records.selectors import activity_list, comment_list
from tenants.models import Tenant

ALL_ACTIONS = ["start", "hold", "resume", "resolve", "close", "reopen", "cancel"]
DEFAULT_MATRIX = {
    (1, 1): 1,
    (1, 2): 2,
    (1, 3): 3,
    (2, 1): 2,
    (2, 2): 3,
    (2, 3): 4,
    (3, 1): 3,
    (3, 2): 4,
    (3, 3): 4,
}


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    """A technician actor, with the connection inside tenant A for the whole test."""
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


@pytest.fixture
def alice(tech: Actor, tenant_a: Tenant, end_user_a: User) -> Actor:
    return actor_in(tenant_a, end_user_a, "end_user")


@pytest.fixture
def carol(tech: Actor, tenant_a: Tenant) -> Actor:
    """A second end user of tenant A."""
    user = make_user("carol@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="end_user")
    return actor_in(tenant_a, user, "end_user")


@pytest.fixture
def owner(tech: Actor, tenant_a: Tenant) -> Actor:
    return actor_in(tenant_a, make_user("owner@northwind.example"), "owner")


def act(
    actor: Actor,
    incident: Incident,
    action: str,
    *,
    hold_reason: str = "",
    resolution_code: str = "",
    resolution_notes: str = "",
    comment: str = "",
    now: dt.datetime | None = None,
) -> Incident:
    return incident_transition(
        actor=actor,
        incident=incident,
        action=action,
        hold_reason=hold_reason,
        resolution_code=resolution_code,
        resolution_notes=resolution_notes,
        comment=comment,
        now=now,
    )


def resolve(actor: Actor, incident: Incident, *, now: dt.datetime | None = None) -> Incident:
    return act(
        actor,
        incident,
        "resolve",
        resolution_code="solved_permanently",
        resolution_notes="replaced cable",
        now=now,
    )


def closed(actor: Actor, incident: Incident, *, now: dt.datetime | None = None) -> Incident:
    return act(actor, resolve(actor, incident, now=now), "close", now=now)


def snapshot(incident: Incident) -> dict[str, Any]:
    """Every stored column of the incident, read back from the database."""
    row = Incident.objects.filter(pk=incident.pk).values().get()
    return dict(row)


def writes() -> tuple[int, int, int]:
    """Counts of the rows any incident write adds: incidents, activity entries, comments."""
    return Incident.objects.count(), ActivityEntry.objects.count(), Comment.objects.count()


def field_names(exc: pytest.ExceptionInfo[Any]) -> list[str]:
    return [error["field"] for error in exc.value.extra["errors"]]


# Create


def test_create_numbers_are_sequential_and_per_tenant(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_ab)
        first = incident_create(actor=actor, short_description="first")
        second = incident_create(actor=actor, short_description="second")
        assert (first.number, second.number) == ("INC0000001", "INC0000002")
    with tenant_context(tenant_b):
        actor = actor_in(tenant_b, tech_ab)
        assert incident_create(actor=actor, short_description="globex").number == "INC0000001"
        assert Incident.objects.count() == 1
    with tenant_context(tenant_a):
        assert (
            incident_create(actor=actor_in(tenant_a, tech_ab), short_description="x").number == "INC0000003"
        )


@pytest.mark.parametrize(("impact", "urgency"), sorted(DEFAULT_MATRIX))
def test_create_takes_priority_from_the_matrix(tech: Actor, impact: int, urgency: int) -> None:
    incident = incident_create(actor=tech, short_description="x", impact=impact, urgency=urgency)
    incident.refresh_from_db()
    assert (incident.impact, incident.urgency, incident.priority) == (
        impact,
        urgency,
        DEFAULT_MATRIX[(impact, urgency)],
    )


def test_create_opens_a_new_incident_and_records_incident_created(tech: Actor) -> None:
    group = Group.objects.create(name="Network")
    incident = incident_create(
        actor=tech,
        short_description="  VPN drops  ",
        description="every hour",
        impact=1,
        urgency=2,
        contact_type="phone",
        assignment_group=group,
    )
    incident.refresh_from_db()
    assert tech.person is not None
    assert (incident.state, incident.short_description, incident.priority) == ("new", "VPN drops", 2)
    assert incident.caller == tech.person and incident.opened_by == tech.person  # no caller: the opener
    assert (incident.contact_type, incident.assignment_group, incident.assigned_to) == ("phone", group, None)
    assert (incident.reassignment_count, incident.reopen_count) == (0, 0)

    entry = ActivityEntry.objects.get(record_id=incident.pk)
    assert (entry.verb, entry.record_type, entry.source) == ("incident.created", "incident", "console")
    assert (entry.actor_user_id, entry.actor_person_id) == (tech.user_id, tech.person_id)
    assert entry.changes == {
        "short_description": [None, "VPN drops"],
        "description": [None, "every hour"],
        "category": [None, ""],
        "subcategory": [None, ""],
        "contact_type": [None, "phone"],
        "impact": [None, 1],
        "urgency": [None, 2],
        "assignment_group": [None, {"id": str(group.pk), "name": "Network"}],
        "assigned_to": [None, None],
        "caller": [None, {"id": str(tech.person.pk), "name": tech.person.display_name}],
        "priority": [None, 2],
        "state": [None, "new"],
    }


def test_end_user_reports_for_themselves_without_assignment(tech: Actor, alice: Actor, carol: Actor) -> None:
    group = Group.objects.create(name="Network")
    assert carol.person is not None and tech.person is not None
    incident = incident_create(
        actor=alice,
        short_description="wifi",
        caller=carol.person,
        assignment_group=group,
        assigned_to=tech.person,
        contact_type="phone",
    )
    incident.refresh_from_db()
    assert incident.caller == alice.person and incident.opened_by == alice.person
    assert (incident.assignment_group, incident.assigned_to) == (None, None)
    assert incident.contact_type == Incident.ContactType.PORTAL
    entry = ActivityEntry.objects.get(record_id=incident.pk)
    assert entry.verb == "incident.created" and entry.actor_user_id == alice.user_id


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_create_without_short_description_writes_nothing(tech: Actor, text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        incident_create(actor=tech, short_description=text)
    assert exc.value.status == 422
    assert field_names(exc) == ["short_description"]
    assert writes() == (0, 0, 0)
    assert not NumberSequence.objects.filter(prefix="INC").exists()  # no number was spent
    assert incident_create(actor=tech, short_description="real").number == "INC0000001"


def test_create_without_a_matrix_cell_writes_nothing_and_spends_no_number(tech: Actor) -> None:
    PriorityRule.objects.filter(impact=1, urgency=3).delete()
    with pytest.raises(InvalidInput) as exc:
        incident_create(actor=tech, short_description="x", impact=1, urgency=3)
    assert field_names(exc) == ["impact"]
    assert writes() == (0, 0, 0)
    assert incident_create(actor=tech, short_description="y").number == "INC0000001"


# Update


def test_update_recomputes_priority_when_impact_or_urgency_change(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="slow", impact=3, urgency=3)
    assert incident.priority == 4
    incident = incident_update(actor=tech, incident=incident, impact=1)
    assert (incident.impact, incident.urgency, incident.priority) == (1, 3, 3)
    incident = incident_update(actor=tech, incident=incident, urgency=1)
    assert incident.priority == 1
    incident = incident_update(actor=tech, incident=incident, impact=2, urgency=3)
    incident.refresh_from_db()
    assert incident.priority == 4

    changes = [
        e.changes
        for e in ActivityEntry.objects.filter(record_id=incident.pk, verb="incident.updated").order_by("at")
    ]
    assert changes == [
        {"impact": [3, 1], "priority": [4, 3]},
        {"urgency": [3, 1], "priority": [3, 1]},
        {"impact": [1, 2], "urgency": [1, 3], "priority": [1, 4]},
    ]


def test_update_of_impact_with_the_same_priority_logs_no_priority_change(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x", impact=2, urgency=3)  # priority 4
    incident = incident_update(actor=tech, incident=incident, impact=3)  # 3 x 3 is also 4
    assert incident.priority == 4
    entry = ActivityEntry.objects.get(record_id=incident.pk, verb="incident.updated")
    assert entry.changes == {"impact": [2, 3]}


def test_reassignment_count_grows_only_when_a_set_group_or_assignee_changes(
    tech: Actor, owner: Actor
) -> None:
    desk, network = Group.objects.create(name="Desk"), Group.objects.create(name="Network")
    assert tech.person is not None and owner.person is not None
    incident = incident_create(actor=tech, short_description="slow")

    incident = incident_update(actor=tech, incident=incident, assignment_group=desk)
    assert incident.reassignment_count == 0  # first assignment
    incident = incident_update(actor=tech, incident=incident, assigned_to=tech.person)
    assert incident.reassignment_count == 0  # first assignee
    incident = incident_update(actor=tech, incident=incident, assignment_group=desk, assigned_to=tech.person)
    assert incident.reassignment_count == 0  # no change at all
    incident = incident_update(actor=tech, incident=incident, description="more detail")
    assert incident.reassignment_count == 0  # other fields are no reassignment
    incident = incident_update(actor=tech, incident=incident, assignment_group=network)
    assert incident.reassignment_count == 1
    incident = incident_update(actor=tech, incident=incident, assigned_to=owner.person)
    assert incident.reassignment_count == 2
    incident.refresh_from_db()
    assert incident.reassignment_count == 2

    last = (
        ActivityEntry.objects.filter(record_id=incident.pk, verb="incident.updated").order_by("-at").first()
    )
    assert last is not None
    assert last.changes == {
        "assigned_to": [
            {"id": str(tech.person.pk), "name": tech.person.display_name},
            {"id": str(owner.person.pk), "name": owner.person.display_name},
        ],
        "reassignment_count": [1, 2],
    }


def test_update_logs_old_and_new_values_and_a_no_op_logs_nothing(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="printer", category="hardware")
    incident = incident_update(
        actor=tech, incident=incident, short_description="printer on fire", category="hardware"
    )
    entry = ActivityEntry.objects.get(record_id=incident.pk, verb="incident.updated")
    assert entry.changes == {"short_description": ["printer", "printer on fire"]}
    assert (entry.actor_user_id, entry.actor_person_id) == (tech.user_id, tech.person_id)

    before = snapshot(incident)
    incident_update(actor=tech, incident=incident, short_description="printer on fire")
    assert snapshot(incident) == before
    assert ActivityEntry.objects.filter(record_id=incident.pk).count() == 2


@pytest.mark.parametrize("final", ["closed", "canceled"])
def test_update_of_a_closed_or_canceled_incident_is_refused_and_changes_nothing(
    tech: Actor, final: str
) -> None:
    incident = incident_create(actor=tech, short_description="x")
    incident = closed(tech, incident) if final == "closed" else act(tech, incident, "cancel")
    before, counts = snapshot(incident), writes()
    with pytest.raises(IncidentNotEditable) as exc:
        incident_update(actor=tech, incident=incident, short_description="changed", impact=1)
    assert exc.value.status == 409 and exc.value.slug == "incident-not-editable"
    assert snapshot(incident) == before and writes() == counts


def test_update_by_an_end_user_is_refused_even_on_their_own_incident(tech: Actor, alice: Actor) -> None:
    incident = incident_create(actor=alice, short_description="mine")
    before, counts = snapshot(incident), writes()
    with pytest.raises(PermissionDenied) as exc:
        incident_update(actor=alice, incident=incident, impact=1, urgency=1)
    assert exc.value.status == 403
    assert snapshot(incident) == before and writes() == counts


def test_update_of_an_unknown_or_protected_field_is_refused(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidInput) as exc:
        incident_update(actor=tech, incident=incident, state="closed", priority=1, impact=1)
    assert field_names(exc) == ["priority", "state"]
    assert snapshot(incident) == before and writes() == counts


def test_update_to_an_empty_short_description_is_refused(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidInput) as exc:
        incident_update(actor=tech, incident=incident, short_description="  ", impact=1)
    assert field_names(exc) == ["short_description"]
    assert snapshot(incident) == before and writes() == counts


# Transitions


def test_full_path_from_new_to_closed(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="printer")
    assert allowed_actions(incident=incident, actor=tech) == ["start", "hold", "resolve", "cancel"]

    incident = act(tech, incident, "start")
    assert incident.state == "in_progress"
    incident = act(tech, incident, "hold", hold_reason="awaiting_vendor")
    assert (incident.state, incident.hold_reason) == ("on_hold", "awaiting_vendor")
    assert allowed_actions(incident=incident, actor=tech) == ["start", "resume", "resolve", "cancel"]
    incident = act(tech, incident, "resume")
    assert (incident.state, incident.hold_reason) == ("in_progress", "")
    resolved_at = timezone.now()
    incident = act(
        tech,
        incident,
        "resolve",
        resolution_code="solved_permanently",
        resolution_notes="  replaced cable  ",
        now=resolved_at,
    )
    assert (incident.state, incident.resolution_code, incident.resolution_notes) == (
        "resolved",
        "solved_permanently",
        "replaced cable",
    )
    assert (incident.resolved_at, incident.resolved_by) == (resolved_at, tech.person)
    assert allowed_actions(incident=incident, actor=tech) == ["close", "reopen"]
    closed_at = resolved_at + dt.timedelta(hours=1)
    incident = act(tech, incident, "close", now=closed_at)
    incident.refresh_from_db()
    assert (incident.state, incident.closed_at, incident.resolved_at) == ("closed", closed_at, resolved_at)
    assert allowed_actions(incident=incident, actor=tech) == ["reopen"]

    history = [
        (e.verb, e.changes) for e in ActivityEntry.objects.filter(record_id=incident.pk).order_by("at", "id")
    ]
    assert [verb for verb, _ in history] == [
        "incident.created",
        "incident.start",
        "incident.hold",
        "incident.resume",
        "incident.resolve",
        "incident.close",
    ]
    assert history[1][1] == {"state": ["new", "in_progress"]}
    assert history[2][1] == {"state": ["in_progress", "on_hold"], "hold_reason": ["", "awaiting_vendor"]}
    assert history[3][1] == {"state": ["on_hold", "in_progress"], "hold_reason": ["awaiting_vendor", ""]}
    assert history[4][1] == {
        "state": ["in_progress", "resolved"],
        "resolution_code": ["", "solved_permanently"],
        "resolved_at": [None, resolved_at.isoformat()],
    }
    assert history[5][1] == {"state": ["resolved", "closed"], "closed_at": [None, closed_at.isoformat()]}


@pytest.mark.parametrize("reason", ["", "because", "on_hold"])
def test_hold_without_a_valid_reason_is_refused_and_writes_nothing(tech: Actor, reason: str) -> None:
    incident = act(tech, incident_create(actor=tech, short_description="x"), "start")
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidInput) as exc:
        act(tech, incident, "hold", hold_reason=reason)
    assert field_names(exc) == ["hold_reason"]
    assert snapshot(incident) == before and before["state"] == "in_progress"
    assert writes() == counts


@pytest.mark.parametrize(
    ("code", "notes", "fields"),
    [
        ("", "", ["resolution_code", "resolution_notes"]),
        ("", "replaced cable", ["resolution_code"]),
        ("solved_permanently", "   ", ["resolution_notes"]),
        ("no_such_code", "replaced cable", ["resolution_code"]),
    ],
)
def test_resolve_without_code_or_notes_is_refused_naming_the_fields(
    tech: Actor, code: str, notes: str, fields: list[str]
) -> None:
    incident = incident_create(actor=tech, short_description="x")
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidInput) as exc:
        act(tech, incident, "resolve", resolution_code=code, resolution_notes=notes, comment="done")
    assert exc.value.status == 422
    assert field_names(exc) == fields
    assert snapshot(incident) == before and writes() == counts


def test_resolve_with_an_inactive_code_is_refused(tech: Actor) -> None:
    ResolutionCode.objects.filter(code="solved_workaround").update(active=False)
    incident = incident_create(actor=tech, short_description="x")
    counts = writes()
    with pytest.raises(InvalidInput) as exc:
        act(tech, incident, "resolve", resolution_code="solved_workaround", resolution_notes="n")
    assert field_names(exc) == ["resolution_code"]
    assert writes() == counts


def test_invalid_transition_is_a_409_with_the_allowed_actions(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidTransition) as exc:
        act(tech, incident, "close")
    assert (exc.value.status, exc.value.slug) == (409, "invalid-transition")
    assert exc.value.extra == {
        "current_state": "new",
        "allowed_actions": ["start", "hold", "resolve", "cancel"],
    }
    with pytest.raises(InvalidTransition):
        act(tech, incident, "resume")
    with pytest.raises(InvalidTransition):
        act(tech, incident, "reopen")
    assert snapshot(incident) == before and writes() == counts


def test_unknown_action_is_invalid_input(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    counts = writes()
    with pytest.raises(InvalidInput) as exc:
        act(tech, incident, "escalate")
    assert field_names(exc) == ["action"]
    assert writes() == counts


def test_reopen_a_closed_incident_inside_the_window(tech: Actor) -> None:
    closed_at = timezone.now()
    incident = closed(tech, incident_create(actor=tech, short_description="x"), now=closed_at)
    window = IncidentSettings.objects.get(pk=1).reopen_window_days
    assert window == 14

    incident = act(tech, incident, "reopen", now=closed_at + dt.timedelta(days=window - 1))
    incident.refresh_from_db()
    assert (incident.state, incident.reopen_count) == ("in_progress", 1)
    assert (incident.closed_at, incident.resolved_at, incident.resolved_by, incident.resolution_code) == (
        None,
        None,
        None,
        "",
    )
    entry = ActivityEntry.objects.get(record_id=incident.pk, verb="incident.reopen")
    assert entry.changes["state"] == ["closed", "in_progress"]
    assert entry.changes["reopen_count"] == [0, 1]

    # A resolved (not yet closed) incident reopens whenever; the count keeps growing.
    incident = act(tech, resolve(tech, incident), "reopen")
    assert (incident.state, incident.reopen_count) == ("in_progress", 2)


def test_reopen_after_the_window_is_refused_and_changes_nothing(tech: Actor) -> None:
    IncidentSettings.objects.filter(pk=1).update(reopen_window_days=3)
    closed_at = timezone.now()
    incident = closed(tech, incident_create(actor=tech, short_description="x"), now=closed_at)
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidTransition) as exc:
        act(tech, incident, "reopen", now=closed_at + dt.timedelta(days=3, seconds=1))
    assert exc.value.status == 409
    assert exc.value.extra == {"current_state": "closed", "allowed_actions": []}
    assert snapshot(incident) == before and writes() == counts

    incident = act(tech, incident, "reopen", now=closed_at + dt.timedelta(days=3))  # the last moment
    assert (incident.state, incident.reopen_count) == ("in_progress", 1)


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_cancel_is_final(tech: Actor, action: str) -> None:
    incident = act(tech, incident_create(actor=tech, short_description="dup"), "cancel")
    assert incident.state == "canceled"
    assert allowed_actions(incident=incident, actor=tech) == []
    before, counts = snapshot(incident), writes()
    with pytest.raises(InvalidTransition) as exc:
        act(
            tech,
            incident,
            action,
            hold_reason="awaiting_vendor",
            resolution_code="solved_permanently",
            resolution_notes="n",
        )
    assert exc.value.extra == {"current_state": "canceled", "allowed_actions": []}
    assert snapshot(incident) == before and writes() == counts


def test_end_user_reopens_their_own_resolved_incident_with_a_comment(tech: Actor, alice: Actor) -> None:
    incident = resolve(tech, incident_create(actor=alice, short_description="mine"))
    assert allowed_actions(incident=incident, actor=alice) == ["reopen"]
    incident = act(alice, incident, "reopen", comment="  still broken  ")
    assert (incident.state, incident.reopen_count) == ("in_progress", 1)
    comment = Comment.objects.get(record_id=incident.pk)
    assert (comment.body, comment.is_work_note, comment.author) == ("still broken", False, alice.person)
    verbs = list(
        ActivityEntry.objects.filter(record_id=incident.pk, actor_user_id=alice.user_id).values_list(
            "verb", flat=True
        )
    )
    assert verbs == ["incident.created", "incident.reopen", "comment.added"]


def test_end_user_cannot_reopen_another_callers_incident(tech: Actor, alice: Actor, carol: Actor) -> None:
    incident = resolve(tech, incident_create(actor=carol, short_description="carol's"))
    assert allowed_actions(incident=incident, actor=alice) == []
    before, counts = snapshot(incident), writes()
    with pytest.raises(PermissionDenied):
        act(alice, incident, "reopen", comment="me too")
    assert snapshot(incident) == before and writes() == counts


def test_end_user_cannot_reopen_their_own_closed_incident(tech: Actor, alice: Actor) -> None:
    incident = closed(tech, incident_create(actor=alice, short_description="mine"))
    assert allowed_actions(incident=incident, actor=alice) == []
    before, counts = snapshot(incident), writes()
    with pytest.raises(PermissionDenied):
        act(alice, incident, "reopen")
    assert snapshot(incident) == before and writes() == counts


@pytest.mark.parametrize("action", ["start", "hold", "resume", "resolve", "close", "cancel"])
def test_end_user_cannot_work_their_own_incident(tech: Actor, alice: Actor, action: str) -> None:
    incident = incident_create(actor=alice, short_description="mine")
    if action in ("resume", "close"):
        incident = act(tech, incident, "hold", hold_reason="awaiting_user_info")
        incident = resolve(tech, incident) if action == "close" else incident
    assert action not in allowed_actions(incident=incident, actor=alice)
    before, counts = snapshot(incident), writes()
    with pytest.raises(PermissionDenied):
        act(
            alice,
            incident,
            action,
            hold_reason="awaiting_vendor",
            resolution_code="resolved_by_caller",
            resolution_notes="fixed it myself",
        )
    assert snapshot(incident) == before and writes() == counts


# Comments


def test_work_notes_are_hidden_from_end_users(tech: Actor, alice: Actor) -> None:
    incident = incident_create(actor=alice, short_description="mine")
    note = incident_comment(actor=tech, incident=incident, body="caller's manager approved", work_note=True)
    public = incident_comment(actor=tech, incident=incident, body="on my way")
    reply = incident_comment(actor=alice, incident=incident, body="thanks")

    assert list(comment_list(actor=tech, record_id=incident.pk)) == [note, public, reply]
    assert list(comment_list(actor=alice, record_id=incident.pk)) == [public, reply]
    assert (note.is_work_note, public.is_work_note, reply.is_work_note) == (True, False, False)
    assert [e.verb for e in activity_list(actor=tech, record_id=incident.pk)] == [
        "incident.created",
        "work_note.added",
        "comment.added",
        "comment.added",
    ]
    assert [e.verb for e in activity_list(actor=alice, record_id=incident.pk)] == [
        "incident.created",
        "comment.added",
        "comment.added",
    ]


def test_end_user_cannot_add_a_work_note(tech: Actor, alice: Actor) -> None:
    incident = incident_create(actor=alice, short_description="mine")
    counts = writes()
    with pytest.raises(PermissionDenied):
        incident_comment(actor=alice, incident=incident, body="psst", work_note=True)
    assert writes() == counts


def test_empty_comment_is_refused(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    counts = writes()
    with pytest.raises(InvalidInput) as exc:
        incident_comment(actor=tech, incident=incident, body="  ")
    assert field_names(exc) == ["body"]
    assert writes() == counts


# Auto-close


def test_autoclose_closes_due_resolved_incidents_once(tech: Actor) -> None:
    now = timezone.now()
    days = IncidentSettings.objects.get(pk=1).autoclose_after_days
    due = resolve(
        tech, incident_create(actor=tech, short_description="old"), now=now - dt.timedelta(days=days + 1)
    )
    fresh = resolve(
        tech, incident_create(actor=tech, short_description="new"), now=now - dt.timedelta(days=days - 1)
    )
    working = act(tech, incident_create(actor=tech, short_description="open"), "start")
    fresh_before, working_before = snapshot(fresh), snapshot(working)

    assert incident_autoclose(now=now) == 1
    due.refresh_from_db()
    assert (due.state, due.closed_at) == ("closed", now)
    assert snapshot(fresh) == fresh_before and snapshot(working) == working_before
    entry = ActivityEntry.objects.get(record_id=due.pk, verb="incident.close")
    assert (entry.source, entry.actor_user_id, entry.at) == ("system", None, now)

    counts = writes()
    assert incident_autoclose(now=now) == 0
    assert writes() == counts
    assert incident_autoclose(now=now + dt.timedelta(days=2)) == 1  # the fresh one comes due
    fresh.refresh_from_db()
    assert fresh.state == "closed"


def test_autoclose_follows_the_tenant_setting(tech: Actor) -> None:
    IncidentSettings.objects.filter(pk=1).update(autoclose_after_days=2)
    now = timezone.now()
    incident = resolve(
        tech, incident_create(actor=tech, short_description="x"), now=now - dt.timedelta(days=3)
    )
    assert incident_autoclose(now=now) == 1
    incident.refresh_from_db()
    assert incident.state == "closed"


# Priority matrix


def matrix() -> dict[tuple[int, int], int]:
    return {(r.impact, r.urgency): r.priority for r in PriorityRule.objects.all()}


def test_admin_changes_a_matrix_cell_and_new_incidents_follow(tech: Actor, owner: Actor) -> None:
    existing = incident_create(actor=tech, short_description="before", impact=3, urgency=3)
    priority_matrix_set(actor=owner, cells=[(3, 3, 5), (1, 1, 1)])
    assert matrix() == {**DEFAULT_MATRIX, (3, 3): 5}
    entries = ActivityEntry.objects.filter(verb="priority_matrix.changed")
    assert [(e.record_type, e.changes, e.actor_user_id) for e in entries] == [
        ("priority_matrix", {"3x3": [4, 5]}, owner.user_id)
    ]
    assert incident_create(actor=tech, short_description="after", impact=3, urgency=3).priority == 5
    existing.refresh_from_db()
    assert existing.priority == 4  # kept until its impact or urgency changes


def test_technician_cannot_change_the_matrix(tech: Actor) -> None:
    counts = ActivityEntry.objects.count()
    with pytest.raises(PermissionDenied) as exc:
        priority_matrix_set(actor=tech, cells=[(3, 3, 5)])
    assert exc.value.status == 403
    assert matrix() == DEFAULT_MATRIX
    assert ActivityEntry.objects.count() == counts


@pytest.mark.parametrize("bad", [(0, 1, 1), (4, 1, 1), (1, 0, 1), (1, 4, 1), (1, 1, 0), (1, 1, 6)])
def test_matrix_cells_out_of_range_are_refused_and_nothing_changes(
    tech: Actor, owner: Actor, bad: tuple[int, int, int]
) -> None:
    with pytest.raises(InvalidInput) as exc:
        priority_matrix_set(actor=owner, cells=[(3, 3, 5), bad])
    assert field_names(exc) == ["cells[1]"]
    assert matrix() == DEFAULT_MATRIX  # the valid first cell was not applied either
    assert not ActivityEntry.objects.filter(verb="priority_matrix.changed").exists()


# History


def test_activity_history_is_append_only(tech: Actor) -> None:
    incident = incident_create(actor=tech, short_description="x")
    entry = ActivityEntry.objects.get(record_id=incident.pk)
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        ActivityEntry.objects.filter(pk=entry.pk).update(verb="forged")
    with pytest.raises(TypeError):
        ActivityEntry.objects.filter(pk=entry.pk).delete()
    assert ActivityEntry.objects.get(pk=entry.pk).verb == "incident.created"
