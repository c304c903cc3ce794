"""notification_emit: one event per key, recipients resolved, deliveries under unique keys, sent only
after commit."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput
from modules.incidents.services import incident_create, incident_update
from modules.notifications.models import (
    EmailDelivery,
    Notification,
    NotificationEvent,
    NotificationPreference,
    WebhookDelivery,
    WebhookEndpoint,
)
from modules.notifications.services import notification_emit
from modules.people.models import Group, GroupMembership, Person
from tenants.models import Tenant

from .factories import emit_args


def test_emit_tells_persons_and_active_group_members_once_and_not_the_actor(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        assert actor.person is not None
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        dave = Person.objects.create(display_name="Dave", email="")  # in-app only
        gone = Person.objects.create(display_name="Gone", email="gone@acme.example", is_active=False)
        group = Group.objects.create(name="Network")
        for person in (carol, dave, gone, actor.person):
            GroupMembership.objects.create(group=group, person=person)
        WebhookEndpoint.objects.create(url="https://1.1.1.1/a", event_types=["record.assigned"], secret="s")
        WebhookEndpoint.objects.create(url="https://1.1.1.1/b", event_types=["sla.breached"], secret="s")

        written = notification_emit(**emit_args(key="k1"), persons=[carol], groups=[group], actor=actor)

        event = NotificationEvent.objects.get()
        assert written == 2 + 1 + 1  # in-app carol and dave, email carol, one subscribed endpoint
        assert sorted(Notification.objects.values_list("person__display_name", flat=True)) == [
            "Carol",
            "Dave",
        ]
        assert list(EmailDelivery.objects.values_list("key", "address", "state")) == [
            (f"k1:email:{carol.pk}", "carol@acme.example", "pending")
        ]
        hook = WebhookDelivery.objects.get()
        assert (hook.endpoint.url, hook.idempotency_key, hook.state) == (
            "https://1.1.1.1/a",
            str(event.pk),
            "pending",
        )
        assert event.actor_person == actor.person
        assert event.critical is False


def test_the_same_key_again_writes_nothing_and_returns_zero(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        assert notification_emit(**emit_args(key="same"), persons=[carol]) == 2
        assert notification_emit(**emit_args(key="same", title="another title"), persons=[carol]) == 0
        assert NotificationEvent.objects.count() == 1
        assert NotificationEvent.objects.get().title == "Printer on fire"
        assert (Notification.objects.count(), EmailDelivery.objects.count()) == (1, 1)


def test_opt_out_skips_non_critical_email_but_not_critical_events_nor_in_app(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        erin = Person.objects.create(display_name="Erin", email="erin@acme.example")
        NotificationPreference.objects.create(person=carol, email_opt_out=True)
        NotificationPreference.objects.create(person=erin, muted_events=["record.commented"])

        notification_emit(**emit_args(key="a", event="record.commented"), persons=[carol, erin])
        notification_emit(**emit_args(key="b", event="record.assigned"), persons=[carol, erin])
        notification_emit(**emit_args(key="c", event="sla.breached"), persons=[carol, erin])
        notification_emit(**emit_args(key="d", event="sla.warning"), persons=[carol], critical=True)

        assert sorted(EmailDelivery.objects.values_list("key", flat=True)) == sorted(
            [f"b:email:{erin.pk}", f"c:email:{carol.pk}", f"c:email:{erin.pk}", f"d:email:{carol.pk}"]
        )
        assert Notification.objects.count() == 7
        assert list(NotificationEvent.objects.order_by("key").values_list("key", "critical")) == [
            ("a", False),
            ("b", False),
            ("c", True),
            ("d", True),
        ]


def test_deliveries_are_enqueued_only_after_commit(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant_a):
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            notification_emit(**emit_args(key="x"), persons=[carol])
        assert len(callbacks) == 1
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert notification_emit(**emit_args(key="x"), persons=[carol]) == 0
            no_email = Person.objects.create(display_name="Nomail", email="")
            notification_emit(**emit_args(key="y"), persons=[no_email])  # in-app only: nothing to send
        assert callbacks == []


def test_a_rolled_back_service_emits_nothing(
    tenant_a: Tenant, tech_a: User, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        incident = incident_create(actor=actor, short_description="VPN drops")
        with (
            django_capture_on_commit_callbacks(execute=False) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            incident_update(actor=actor, incident=incident, assigned_to=carol)
            assert NotificationEvent.objects.count() == 1  # written inside the transaction ...
            raise RuntimeError("the request failed after the service")
        assert callbacks == []  # ... and gone with it: nothing enqueued, nothing stored
        assert (NotificationEvent.objects.count(), EmailDelivery.objects.count()) == (0, 0)
        assert Notification.objects.count() == 0


def test_bad_event_names_are_refused(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        with pytest.raises(InvalidInput):
            notification_emit(**emit_args(key="k", event="assigned"))
        with pytest.raises(InvalidInput):
            notification_emit(**emit_args(key=""))
        assert NotificationEvent.objects.count() == 0
