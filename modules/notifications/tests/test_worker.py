"""End to end through a real broker and worker: a committed change sends its email (real SMTP server)
and webhook (real HTTP server) from the worker, in the right tenant; the beat sweep, woken by the
tenant's wake-up, sends what is left."""

from __future__ import annotations

from typing import Any

from celery.contrib.testing.worker import start_worker
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.celery import app
from controlplane.workindex.models import TenantWakeup
from modules.incidents.services import incident_create, incident_update
from modules.notifications.models import EmailDelivery, WebhookDelivery
from modules.notifications.services import webhook_endpoint_create
from modules.notifications.tasks import notification_sweep_task
from modules.people.models import Person
from tenants.models import Tenant

from .conftest import Mailbox, free_port, wait_for


def attempts(tenant: Tenant, address: str) -> int:
    with tenant_context(tenant):
        return EmailDelivery.objects.filter(address=address).values_list("attempts", flat=True).first() or 0


def states(tenant: Tenant) -> tuple[list[str], list[str]]:
    with tenant_context(tenant):
        return (
            list(EmailDelivery.objects.order_by("pk").values_list("state", flat=True)),
            list(WebhookDelivery.objects.order_by("created_at").values_list("state", flat=True)),
        )


def test_a_committed_assignment_is_mailed_and_posted_by_the_worker_and_the_sweep_sends_the_rest(
    committed_tenant: Tenant, smtp: Mailbox, receiver: Any, settings: Any
) -> None:
    server = receiver([200])
    user = make_user("admin@northwind.example")
    with tenant_context(committed_tenant):
        actor = actor_in(committed_tenant, user, "admin")
        webhook_endpoint_create(actor=actor, url=server.url, event_types=["record.assigned"])
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        incident = incident_create(actor=actor, short_description="Printer jammed")

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        with tenant_context(committed_tenant):
            incident_update(actor=actor, incident=incident, assigned_to=carol)  # commits, then enqueues
        wait_for(lambda: states(committed_tenant) == (["sent"], ["delivered"]))
        assert states(committed_tenant) == (["sent"], ["delivered"])

        # The SMTP server is unreachable for the next one: the worker's attempt fails and is kept for
        # the sweep; once its retry time has come (set here instead of waiting 30 s), beat sends it.
        smtp_port = settings.EMAIL_PORT
        settings.EMAIL_PORT = free_port()
        with tenant_context(committed_tenant):
            incident = incident.__class__.objects.get(pk=incident.pk)
            dan = Person.objects.create(display_name="Dan", email="dan@acme.example")
            incident_update(actor=actor, incident=incident, assigned_to=dan)
        # The email attempt and the webhook post are separate tasks: wait for both.
        wait_for(
            lambda: (
                attempts(committed_tenant, "dan@acme.example") == 1
                and states(committed_tenant)[1] == ["delivered", "delivered"]
            )
        )
        assert states(committed_tenant) == (["sent", "pending"], ["delivered", "delivered"])
        settings.EMAIL_PORT = smtp_port
        # The failed attempt moved the tenant's wake-up to its retry time; beat reads only that.
        wakeup = TenantWakeup.objects.get(tenant=committed_tenant, kind="notifications")
        with tenant_context(committed_tenant):
            pending = EmailDelivery.objects.get(state="pending")
            assert wakeup.due_at == pending.next_attempt_at
            EmailDelivery.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now())
        TenantWakeup.objects.filter(pk=wakeup.pk).update(due_at=timezone.now())
        notification_sweep_task.delay()  # sent from public, like beat
        wait_for(lambda: states(committed_tenant)[0] == ["sent", "sent"])

    assert states(committed_tenant) == (["sent", "sent"], ["delivered", "delivered"])
    assert attempts(committed_tenant, "dan@acme.example") == 2
    assert [m["To"] for m in smtp.messages] == ["carol@acme.example", "dan@acme.example"]
    assert [b["record"]["number"] for b in server.bodies()] == [incident.number, incident.number]
    assert all(b["tenant"] == "acme" for b in server.bodies())
