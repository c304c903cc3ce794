"""Outbound webhooks against a real HTTP server: signed payloads, idempotency keys, retries with
exponential backoff for more than a day, 410 disabling the endpoint, and sending once."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput
from modules.incidents.services import incident_create
from modules.notifications.models import NotificationEvent, WebhookDelivery, WebhookEndpoint
from modules.notifications.services import (
    MAX_ATTEMPTS,
    notification_emit,
    webhook_delivery_attempt,
    webhook_endpoint_create,
)
from modules.notifications.tasks import webhook_delivery_send_task
from modules.records.actor import Actor
from tenants.models import Tenant

from .conftest import free_port
from .factories import emit_args


def admin(tenant: Tenant, user: User) -> Actor:
    return actor_in(tenant, user, "admin")


def expected_signature(secret: str, request: dict[str, Any]) -> str:
    timestamp = request["headers"]["Webhook-Timestamp"]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + request["body"], hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def test_a_subscribed_endpoint_receives_a_signed_payload_without_descriptions(
    receiver: Any, tenant_a: Tenant, tech_a: User
) -> None:
    server = receiver([204])
    with tenant_context(tenant_a):
        actor = admin(tenant_a, tech_a)
        _, secret = webhook_endpoint_create(actor=actor, url=server.url, event_types=["record.assigned"])
        incident = incident_create(actor=actor, short_description="VPN drops", description="secret details")
        notification_emit(
            event="record.assigned",
            record_type="incident",
            record_id=incident.pk,
            number=incident.number,
            title=incident.short_description,
            key="assigned:1",
            context={"comment": "private words", "state": "new"},
        )
        notification_emit(**emit_args(key="other", event="sla.warning"))  # not subscribed
        delivery = WebhookDelivery.objects.get()
        event = NotificationEvent.objects.get(key="assigned:1")
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"

    [request] = server.requests
    assert request["path"] == "/hooks/itsm"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Webhook-Id"] == delivery.idempotency_key == str(event.pk)
    assert secret.startswith("whsec_") and len(secret) > 40
    assert request["headers"]["Webhook-Signature"] == expected_signature(secret, request)
    assert request["headers"]["Webhook-Signature"] != expected_signature(secret + "x", request)
    assert json.loads(request["body"]) == {
        "id": str(event.pk),
        "event": "record.assigned",
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "tenant": "acme",
        "record": {
            "type": "incident",
            "id": str(incident.pk),
            "number": incident.number,
            "title": "VPN drops",
        },
        "data": {"state": "new"},
    }
    assert b"secret details" not in request["body"] and b"private words" not in request["body"]


def test_a_failing_endpoint_is_retried_after_the_backoff_and_delivered_once(
    receiver: Any, tenant_a: Tenant, tech_a: User
) -> None:
    server = receiver([500, 200])
    with tenant_context(tenant_a):
        webhook_endpoint_create(actor=admin(tenant_a, tech_a), url=server.url, event_types=["sla.breached"])
        notification_emit(**emit_args(key="k", event="sla.breached"))
        delivery = WebhookDelivery.objects.get()
        t0 = timezone.now()
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0) == "pending"
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == t0 + dt.timedelta(seconds=30)
        assert (
            webhook_delivery_attempt(delivery_id=delivery.pk, now=t0 + dt.timedelta(seconds=29)) == "pending"
        )
        assert len(server.requests) == 1  # not due: nothing sent
        assert (
            webhook_delivery_attempt(delivery_id=delivery.pk, now=t0 + dt.timedelta(seconds=30))
            == "delivered"
        )
        assert (
            webhook_delivery_attempt(delivery_id=delivery.pk, now=t0 + dt.timedelta(hours=1)) == "delivered"
        )
        delivery.refresh_from_db()

    assert len(server.requests) == 2
    assert {r["headers"]["Webhook-Id"] for r in server.requests} == {delivery.idempotency_key}
    assert (delivery.attempt_count, delivery.state, delivery.next_attempt_at) == (2, "delivered", None)
    assert [(a["status"], a["response"]) for a in delivery.attempts_log] == [
        (500, "status 500 from receiver"),
        (200, "status 200 from receiver"),
    ]
    assert delivery.delivered_at == t0 + dt.timedelta(seconds=30)


def test_retries_back_off_exponentially_for_more_than_a_day_then_give_up(
    receiver: Any, tenant_a: Tenant, tech_a: User
) -> None:
    server = receiver([503])
    with tenant_context(tenant_a):
        webhook_endpoint_create(actor=admin(tenant_a, tech_a), url=server.url, event_types=["sla.breached"])
        notification_emit(**emit_args(key="k", event="sla.breached"))
        delivery = WebhookDelivery.objects.get()
        now, t0, delays = timezone.now(), timezone.now(), []
        while webhook_delivery_attempt(delivery_id=delivery.pk, now=now) == "pending":
            delivery.refresh_from_db()
            assert delivery.next_attempt_at is not None
            delays.append(int((delivery.next_attempt_at - now).total_seconds()))
            now = delivery.next_attempt_at
        delivery.refresh_from_db()

    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600, 21600]
    assert (delivery.attempt_count, delivery.state) == (MAX_ATTEMPTS, "failed") == (14, "failed")
    assert now - t0 >= dt.timedelta(hours=24)
    assert len(server.requests) == 14
    assert delivery.next_attempt_at is None


def test_410_gone_disables_the_endpoint(receiver: Any, tenant_a: Tenant, tech_a: User) -> None:
    server = receiver([410])
    with tenant_context(tenant_a):
        endpoint, _ = webhook_endpoint_create(
            actor=admin(tenant_a, tech_a), url=server.url, event_types=["sla.breached"]
        )
        notification_emit(**emit_args(key="k1", event="sla.breached"))
        assert webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk) == "failed"
        endpoint.refresh_from_db()
        assert endpoint.active is False
        assert endpoint.disabled_reason.startswith("answered 410 Gone")
        notification_emit(**emit_args(key="k2", event="sla.breached"))
        assert WebhookDelivery.objects.count() == 1  # an inactive endpoint gets nothing new
    assert len(server.requests) == 1


def test_an_unreachable_endpoint_records_the_error_and_stays_pending(
    settings: Any, tenant_a: Tenant, tech_a: User
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    with tenant_context(tenant_a):
        webhook_endpoint_create(
            actor=admin(tenant_a, tech_a),
            url=f"http://127.0.0.1:{free_port()}/hook",
            event_types=["sla.breached"],
        )
        notification_emit(**emit_args(key="k", event="sla.breached"))
        delivery = WebhookDelivery.objects.get()
        assert webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"
        delivery.refresh_from_db()
    [attempt] = delivery.attempts_log
    assert attempt["status"] is None
    assert attempt["error"].startswith("ConnectError")


def test_the_same_task_delivered_twice_posts_once(receiver: Any, tenant_a: Tenant, tech_a: User) -> None:
    server = receiver([200])
    with tenant_context(tenant_a):
        webhook_endpoint_create(actor=admin(tenant_a, tech_a), url=server.url, event_types=["sla.breached"])
        notification_emit(**emit_args(key="k", event="sla.breached"))
        pk = str(WebhookDelivery.objects.get().pk)
        first = webhook_delivery_send_task.apply(kwargs={"delivery_id": pk})
        second = webhook_delivery_send_task.apply(kwargs={"delivery_id": pk})
    assert (first.result, second.result) == ("delivered", "delivered")
    assert len(server.requests) == 1


def test_private_hosts_and_bad_event_types_are_refused_and_nothing_is_written(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = admin(tenant_a, tech_a)
        for url, event_types, fields in (
            ("http://127.0.0.1:8080/hook", ["sla.breached"], ["url"]),  # private, and not https
            ("https://169.254.169.254/latest", ["sla.breached"], ["url"]),  # cloud metadata
            ("https://10.0.0.5/hook", ["sla.breached"], ["url"]),
            ("https://user:pw@1.1.1.1/hook", ["sla.breached"], ["url"]),
            ("ftp://1.1.1.1/hook", ["record.assigned"], ["url"]),
            ("https://1.1.1.1/hook", ["record.exploded"], ["event_types"]),
            ("https://1.1.1.1/hook", [], ["event_types"]),
        ):
            with pytest.raises(InvalidInput) as caught:
                webhook_endpoint_create(actor=actor, url=url, event_types=event_types)
            assert [e["field"] for e in caught.value.extra["errors"]] == fields, url
        assert WebhookEndpoint.objects.count() == 0
        endpoint, _ = webhook_endpoint_create(
            actor=actor, url="https://1.1.1.1/hook", event_types=["sla.breached"]
        )
        assert endpoint.event_types == ["sla.breached"]
