"""The retry sweep reads the control plane's wake-ups, never loops over tenants: beat sends a task only to
tenants whose earliest pending delivery is due, the tenant's task moves its wake-up to the next retry
time or deletes it, and a delivery committed while that task runs keeps its wake-up."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from django.db import connection, connections, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.workindex.models import TenantWakeup
from controlplane.workindex.services import workindex_wakeup_set
from modules.notifications.models import WebhookDelivery
from modules.notifications.services import (
    ENQUEUE_LEASE,
    notification_deliver_due,
    notification_emit,
    webhook_delivery_attempt,
    webhook_endpoint_create,
)
from modules.notifications.tasks import notification_sweep_task
from modules.people.models import Person
from tenants.models import Tenant

from .conftest import wait_for
from .factories import emit_args

SECOND = dt.timedelta(seconds=1)
DELIVER_DUE = "modules.notifications.tasks.notification_deliver_due_task"
SEND_WEBHOOK = "modules.notifications.tasks.webhook_delivery_send_task"


def hooked(tenant: Tenant, url: str, email: str) -> None:
    """An admin of ``tenant`` subscribes ``url`` to record.assigned."""
    with tenant_context(tenant):
        webhook_endpoint_create(
            actor=actor_in(tenant, make_user(email), "admin"), url=url, event_types=["record.assigned"]
        )


def wakeups() -> dict[str, dt.datetime]:
    return dict(TenantWakeup.objects.filter(kind="notifications").values_list("tenant__slug", "due_at"))


def sweep(at: dt.datetime) -> int:
    return int(notification_sweep_task(now=at.isoformat()))


def failed_once(tenant: Tenant, key: str) -> tuple[WebhookDelivery, dt.datetime]:
    """Emit record.assigned in ``tenant`` and make its webhook's first attempt (the receiver fails it).
    Returns the delivery and the attempt's time."""
    with tenant_context(tenant):
        notification_emit(**emit_args(key=key))
        t0 = timezone.now()
        assert webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk, now=t0) == "pending"
        return WebhookDelivery.objects.get(), t0


def test_a_tenant_with_nothing_pending_gets_no_task(
    tenant_a: Tenant, tenant_b: Tenant, published: list[Any]
) -> None:
    with tenant_context(tenant_a):  # in-app only (no email address, no endpoint): nothing to retry
        nobody = Person.objects.create(display_name="No Mail")
        assert notification_emit(**emit_args(key="k"), persons=[nobody]) == 1
    assert wakeups() == {}
    assert sweep(timezone.now() + dt.timedelta(days=2)) == 0
    assert published == []


def test_a_pending_retry_wakes_exactly_its_tenant_when_due(
    tenant_a: Tenant, tenant_b: Tenant, receiver: Any, published: list[Any]
) -> None:
    failing = receiver([500])
    hooked(tenant_a, failing.url, "admin@acme.example")
    hooked(tenant_b, receiver([200]).url, "admin@globex.example")
    delivery, t0 = failed_once(tenant_a, "a")
    with tenant_context(tenant_b):  # handed to the broker: looked at again only after the lease
        notification_emit(**emit_args(key="b"))
    emitted_b = wakeups()["globex"]
    assert emitted_b > t0 + ENQUEUE_LEASE - 10 * SECOND
    assert wakeups() == {"acme": t0 + 30 * SECOND, "globex": emitted_b}
    assert delivery.next_attempt_at == t0 + 30 * SECOND

    assert sweep(t0 + 29 * SECOND) == 0  # nobody due yet
    assert published == []
    assert sweep(t0 + 30 * SECOND) == 1  # the retry time of acme's delivery: acme only
    assert published == [(DELIVER_DUE, tenant_a.schema_name)]
    assert sweep(emitted_b) == 2  # both due: each tenant once
    assert published[1:] == [(DELIVER_DUE, tenant_a.schema_name), (DELIVER_DUE, tenant_b.schema_name)]
    tenant_b.status = Tenant.Status.SUSPENDED
    tenant_b.save(update_fields=["status"])
    assert sweep(emitted_b) == 1  # a suspended tenant is not woken
    assert published[3:] == [(DELIVER_DUE, tenant_a.schema_name)]


def test_the_wakeup_moves_to_the_next_retry_time_and_goes_when_nothing_is_pending(
    tenant_a: Tenant, receiver: Any, published: list[Any]
) -> None:
    server = receiver([500, 500, 200])
    hooked(tenant_a, server.url, "admin@acme.example")
    delivery, t0 = failed_once(tenant_a, "a")
    assert wakeups() == {"acme": t0 + 30 * SECOND}
    with tenant_context(tenant_a):
        t1 = t0 + 30 * SECOND  # the tenant's task, woken at the retry time, hands the delivery over
        assert notification_deliver_due(now=t1) == 1
        assert published == [(SEND_WEBHOOK, tenant_a.schema_name)]
        assert wakeups() == {"acme": t1 + ENQUEUE_LEASE}
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t1) == "pending"  # fails again
        assert wakeups() == {"acme": t1 + 60 * SECOND}  # lowered to the second retry (1 min)
        assert notification_deliver_due(now=t1 + 10 * SECOND) == 0  # nothing due: stays on the retry
        assert wakeups() == {"acme": t1 + 60 * SECOND}
        t2 = t1 + 60 * SECOND
        assert notification_deliver_due(now=t2) == 1
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t2) == "delivered"
        assert notification_deliver_due(now=t2 + SECOND) == 0  # nothing pending: the wake-up goes
        assert wakeups() == {}
    assert sweep(t2 + dt.timedelta(days=2)) == 0
    assert published == [(SEND_WEBHOOK, tenant_a.schema_name)] * 2
    assert len(server.requests) == 3


def test_more_due_than_the_limit_keeps_the_tenant_due(
    tenant_a: Tenant, receiver: Any, published: list[Any]
) -> None:
    hooked(tenant_a, receiver([200]).url, "admin@acme.example")
    with tenant_context(tenant_a):
        for key in ("a", "b", "c"):
            notification_emit(**emit_args(key=key))
        times = list(
            WebhookDelivery.objects.order_by("next_attempt_at").values_list("next_attempt_at", flat=True)
        )
        now = timezone.now()
        assert notification_deliver_due(now=now, limit=2) == 2
        assert wakeups() == {"acme": times[2]}  # the third: due, not handed over, so due on the next tick
    assert published == [(SEND_WEBHOOK, tenant_a.schema_name)] * 2


def test_a_delivery_committed_while_the_tenant_task_runs_keeps_its_wakeup(
    committed_tenant: Tenant, published: list[Any]
) -> None:
    """The tenant's task finds nothing pending and would delete the wake-up; meanwhile another
    transaction writes a delivery and lowers the wake-up. The task waits for that transaction (it locks
    the wake-up row before reading), sees the delivery and keeps the tenant woken."""
    user = make_user("admin@northwind.example")
    with tenant_context(committed_tenant):
        actor = actor_in(committed_tenant, user, "admin")
        webhook_endpoint_create(actor=actor, url="https://1.1.1.1/hooks", event_types=["record.assigned"])
        workindex_wakeup_set(kind="notifications", due_at=timezone.now() - dt.timedelta(minutes=1))
    emitted, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def emitter() -> None:
        try:
            with tenant_context(committed_tenant), transaction.atomic():
                notification_emit(**emit_args(key="late"))
                emitted.set()
                release.wait(30)
        finally:
            connections.close_all()

    def tenant_task() -> None:
        try:
            with tenant_context(committed_tenant):
                results["enqueued"] = notification_deliver_due()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=emitter), threading.Thread(target=tenant_task)]
    threads[0].start()
    assert emitted.wait(30)
    threads[1].start()

    def task_waits_for_the_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(cursor.fetchone()[0])

    wait_for(task_waits_for_the_lock)
    assert task_waits_for_the_lock()
    release.set()
    for thread in threads:
        thread.join(30)
    assert results["enqueued"] == 0  # the delivery was not committed when the task listed what is due
    with tenant_context(committed_tenant):
        late = WebhookDelivery.objects.get()
    assert late.state == "pending"
    assert wakeups() == {"acme": late.next_attempt_at}  # kept, at the delivery's time: due on the next tick
