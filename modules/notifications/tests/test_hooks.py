"""Events the incident and service request services emit: who is told, under which key."""

from __future__ import annotations

import datetime as dt

from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from modules.incidents.services import (
    incident_comment,
    incident_create,
    incident_transition,
    incident_update,
)
from modules.notifications.models import EmailDelivery, Notification, NotificationEvent
from modules.people.models import Group, GroupMembership, Person
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from modules.requests.models import Approval
from modules.requests.services import (
    StepSpec,
    approval_decide,
    approval_delegate,
    approval_resend,
    request_submit,
)
from modules.requests.tests.factories import item
from tenants.models import Tenant


def told() -> list[tuple[str, str]]:
    """(event, person name) of every in-app notification, oldest event first."""
    return list(
        Notification.objects.order_by("event__occurred_at", "event__id", "person__display_name").values_list(
            "event__event", "person__display_name"
        )
    )


def test_incident_assignment_comments_and_state_changes_tell_the_right_people(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        assert tech.person is not None
        carol = Person.objects.create(display_name="Carol (caller)", email="carol@acme.example")
        dan = Person.objects.create(display_name="Dan", email="dan@acme.example")
        erin = Person.objects.create(display_name="Erin", email="erin@acme.example")
        network = Group.objects.create(name="Network")
        GroupMembership.objects.create(group=network, person=erin)
        GroupMembership.objects.create(group=network, person=tech.person)  # the actor: not told
        caller = Actor(user_id=None, person=carol, role="end_user", source="portal")

        incident = incident_create(actor=tech, short_description="Wi-Fi down", caller=carol)
        assert told() == []  # nobody assigned yet
        incident_update(actor=tech, incident=incident, assignment_group=network)
        incident_update(actor=tech, incident=incident, assigned_to=dan)
        incident_update(actor=tech, incident=incident, impact=1)  # no assignment change: nobody told
        incident_comment(actor=tech, incident=incident, body="Rebooting the AP.")
        incident_comment(actor=tech, incident=incident, body="internal", work_note=True)
        incident_comment(actor=caller, incident=incident, body="Still down here.")
        incident_transition(actor=tech, incident=incident, action="start")

        assert told() == [
            ("record.assigned", "Erin"),
            ("record.assigned", "Dan"),
            ("record.commented", "Carol (caller)"),
            ("record.commented", "Dan"),
            ("record.state_changed", "Carol (caller)"),
        ]
        entries = ActivityEntry.objects.filter(record_id=incident.pk, verb="incident.updated").order_by("at")
        assert list(
            NotificationEvent.objects.filter(event="record.assigned")
            .order_by("occurred_at")
            .values_list("key", flat=True)
        ) == [
            f"record.assigned:{entries[0].pk}",
            f"record.assigned:{entries[1].pk}",
        ]
        state = NotificationEvent.objects.get(event="record.state_changed")
        assert (state.context["state"], state.context["previous_state"]) == ("in_progress", "new")
        assert EmailDelivery.objects.count() == 5


def test_approval_requests_reach_the_approver_on_submit_resend_and_delegation(
    tenant_a: Tenant, tech_a: User
) -> None:
    now = dt.datetime(2031, 3, 3, 9, tzinfo=dt.UTC)
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        morgan = Person.objects.create(display_name="Morgan", email="morgan@acme.example")
        alice = Person.objects.create(display_name="Alice", email="alice@acme.example", manager=morgan)
        nina = Person.objects.create(display_name="Nina", email="nina@acme.example")
        laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
        request = request_submit(
            actor=Actor(user_id=None, person=alice, role="end_user"),
            items=[{"catalog_item": laptop}],
            now=now,
        )
        approval = Approval.objects.get(request=request)
        approval_resend(actor=tech, approval=approval, now=now)
        approval_delegate(actor=tech, approval=approval, delegate_to=nina, now=now)

        assert told() == [
            ("approval.requested", "Morgan"),
            ("approval.requested", "Morgan"),
            ("approval.requested", "Nina"),
        ]
        events = list(NotificationEvent.objects.order_by("occurred_at", "id"))
        assert all(e.critical and e.number == request.number for e in events)
        assert [e.context["reminder"] for e in events] == [0, 1, 0]
        assert EmailDelivery.objects.count() == 3
        approval_decide(
            actor=Actor(user_id=None, person=nina, role="end_user"), approval=approval, decision="approve"
        )
        assert NotificationEvent.objects.count() == 3  # deciding requests nothing more


def test_a_tenant_role_approval_asks_every_holder_of_the_role(tenant_a: Tenant, tech_a: User) -> None:
    approver = make_user("approver@acme.example")
    tenant_membership_set(user=approver, tenant=tenant_a, role="approver")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        holder = actor_in(tenant_a, approver, "approver").person
        alice = Person.objects.create(display_name="Alice", email="alice@acme.example")
        laptop = item(tech, steps=[StepSpec(order=1, approver_role="approver")])
        request_submit(
            actor=Actor(user_id=None, person=alice, role="end_user"), items=[{"catalog_item": laptop}]
        )
        assert holder is not None
        assert told() == [("approval.requested", holder.display_name)]
