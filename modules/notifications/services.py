"""Notification writes: record an event and its deliveries (the outbox), send them, and the settings.

How it fits together (docs/decisions/0008-notifications-outbox.md):
- ``notification_emit`` runs in the caller's transaction. It writes one NotificationEvent under the
  caller's ``key`` (same key again: nothing new), one in-app Notification per recipient, one
  EmailDelivery per recipient who gets email and one WebhookDelivery per subscribed endpoint, each
  under a unique key; after commit it enqueues one send task per email and webhook delivery. A rolled
  back change therefore notifies nobody, and nothing slow (SMTP, HTTP) runs in the request.
- ``email_delivery_send`` and ``webhook_delivery_attempt`` run in the worker: each locks its row
  (``SKIP LOCKED``: a second copy of the task running at the same time does nothing), sends only what
  is still pending and due, and records the outcome in the same transaction. A sent row is never sent
  again, however often its task is delivered.
- Every pending delivery is covered by the tenant's control-plane wake-up (``TenantWakeup``, kind
  ``notifications``), written in the same transaction: a delivery handed to the broker is looked at
  again ENQUEUE_LEASE later (in case the message was lost), a failed attempt at its ``next_attempt_at``.
  Beat (``tasks.notification_sweep_task``) reads only the due wake-ups and wakes those tenants;
  ``notification_deliver_due`` (the tenant's task) enqueues what is due and moves the wake-up to the
  tenant's next due time, or deletes it when nothing is pending. Retries survive restarts, and a tenant
  with nothing pending costs beat nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import smtplib
import socket
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import InvalidInput, PermissionDenied
from controlplane.workindex.services import workindex_wakeup_recompute, workindex_wakeup_set
from modules.people.models import GroupMembership, Person
from modules.records.actor import Actor
from modules.records.services import activity_record

from .models import (
    CRITICAL_EVENT_TYPES,
    EVENT_TYPES,
    DeliveryState,
    EmailDelivery,
    Notification,
    NotificationEvent,
    NotificationPreference,
    NotificationSettings,
    WebhookDelivery,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

EVENT_NAME = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
# Retries: 30 s after the first failure, doubling, capped at 6 h; 14 attempts span 26.5 h (>= 24 h, the
# window GitHub, Stripe and Standard Webhooks retry in). Email uses the same schedule.
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 6 * 3600
MAX_ATTEMPTS = 14
WEBHOOK_TIMEOUT_SECONDS = 5.0
RESPONSE_SNIPPET_CHARS = 200
# What a webhook payload may carry from an event's context: states and ids, never text people wrote.
WEBHOOK_CONTEXT_KEYS = ("state", "previous_state", "approval_id", "step", "level")
SETTINGS_RECORD_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:notification-settings")
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# The tenant's control-plane wake-up (controlplane.workindex TenantWakeup) for pending deliveries.
WAKEUP_KIND = "notifications"
# A delivery handed to the broker is looked at again after this long, in case the message was lost (a
# broker that was down, a worker that died); a copy sent meanwhile does nothing (the row is locked or sent).
ENQUEUE_LEASE = dt.timedelta(minutes=5)


def retry_delay(attempt: int) -> dt.timedelta:
    """The wait after failed attempt number ``attempt`` (1-based): 30 s x 2^(attempt-1), at most 6 h."""
    return dt.timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_CAP_SECONDS))


def _schema_name() -> str:
    return str(getattr(connection, "schema_name", "public"))


def recipients_resolve(
    *, persons: Sequence[Person] = (), groups: Sequence[Any] = (), exclude: Person | None = None
) -> list[Person]:
    """The people told: ``persons`` then the members of ``groups`` (people.Group), each once, in that
    order; inactive persons and ``exclude`` (the actor who caused the event) are left out."""
    ordered: dict[uuid.UUID, Person] = {}
    for person in persons:
        ordered.setdefault(person.pk, person)
    if groups:
        members = Person.objects.filter(
            pk__in=GroupMembership.objects.filter(group__in=[g.pk for g in groups]).values("person_id")
        ).order_by("display_name", "id")
        for person in members:
            ordered.setdefault(person.pk, person)
    fresh = {p.pk: p for p in Person.objects.filter(pk__in=list(ordered), is_active=True)}
    return [fresh[pk] for pk in ordered if pk in fresh and (exclude is None or pk != exclude.pk)]


def role_holders(*, role: str) -> list[Person]:
    """The active persons of this tenant whose users hold tenant role ``role`` (``approver``...) here:
    the people a tenant-role approval step asks. Reads the control plane's memberships by the
    connection's tenant (one query), then the directory by user id."""
    from controlplane.accounts.models import TenantMembership

    tenant = getattr(connection, "tenant", None)
    if tenant is None or not role:
        return []
    user_ids = TenantMembership.objects.filter(tenant_id=tenant.pk, role=role).values_list(
        "user_id", flat=True
    )
    return list(
        Person.objects.filter(user_id__in=list(user_ids), is_active=True).order_by("display_name", "id")
    )


def _wants_email(person: Person, event: str, critical: bool, preferences: dict[Any, Any]) -> bool:
    if not person.email:
        return False
    if critical:
        return True
    preference = preferences.get(person.pk)
    if preference is None:
        return True
    return not preference.email_opt_out and event not in (preference.muted_events or [])


def notification_emit(
    *,
    event: str,
    record_type: str,
    record_id: uuid.UUID,
    number: str,
    title: str,
    persons: Sequence[Person] = (),
    groups: Sequence[Any] = (),
    critical: bool = False,
    key: str,
    context: dict[str, Any] | None = None,
    actor: Actor | None = None,
    skip_actor: bool = True,
) -> int:
    """Record event ``event`` about a record and its deliveries, in the caller's transaction; send after
    commit. Returns how many deliveries were written (in-app + email + webhook); 0 when ``key`` was
    recorded before (nothing is written then), or when nobody and no endpoint is told.

    - ``event``: ``<noun>.<verb>``, e.g. one of models.EVENT_TYPES; ``record_type`` a records.registry
      kind (``incident``); ``number`` (``INC0000042``) and ``title`` are shown in subjects and payloads.
    - ``persons`` and the members of ``groups`` (people.Group) are told, each once; inactive persons are
      skipped, and so is ``actor``'s person when ``skip_actor`` (nobody is told of their own change).
    - ``critical`` (or an event in CRITICAL_EVENT_TYPES: sla.breached, approval.requested) emails even
      people who opted out of non-critical email. People without an email address get in-app only.
    - ``key`` makes the event idempotent: the emitting service derives it from what caused it
      (``f"record.assigned:{activity_entry.pk}"``), so running that service again emits nothing.
    - ``context``: JSON values the templates show (``state``, ``comment``...). Webhook payloads carry
      only WEBHOOK_CONTEXT_KEYS of it.
    Raises InvalidInput for an event name that is not ``<noun>.<verb>`` or an empty key.
    """
    if not EVENT_NAME.match(event) or not key:
        raise InvalidInput(
            f"bad notification event {event!r} or key {key!r}",
            errors=[{"field": "event", "message": "<noun>.<verb> and a key"}],
        )
    critical = critical or event in CRITICAL_EVENT_TYPES
    actor_person = actor.person if actor is not None else None
    candidate = NotificationEvent(
        key=key[:200],
        event=event,
        record_type=record_type,
        record_id=record_id,
        number=number,
        title=title[:300],
        critical=critical,
        actor_person=actor_person,
        context=context or {},
    )
    # INSERT ... ON CONFLICT DO NOTHING: a concurrent emitter of the same key waits for ours, then
    # inserts nothing; without a savepoint, whose rollback django-tenants once mishandled (#1262).
    NotificationEvent.objects.bulk_create([candidate], ignore_conflicts=True)
    stored = NotificationEvent.objects.filter(key=candidate.key).values_list("pk", flat=True).first()
    if stored != candidate.pk:
        return 0
    recipients = recipients_resolve(
        persons=persons, groups=groups, exclude=actor_person if skip_actor else None
    )
    Notification.objects.bulk_create([Notification(event=candidate, person=p) for p in recipients])
    preferences = {
        p.person_id: p for p in NotificationPreference.objects.filter(person__in=[r.pk for r in recipients])
    }
    domain = settings.EMAIL_MESSAGE_DOMAIN
    emails = EmailDelivery.objects.bulk_create(
        [
            EmailDelivery(
                key=f"{candidate.key}:email:{person.pk}",
                event=candidate,
                person=person,
                address=person.email,
                message_id=f"<{uuid.uuid4().hex}.{record_id}@{domain}>",
            )
            for person in recipients
            if _wants_email(person, event, critical, preferences)
        ]
    )
    endpoints = WebhookEndpoint.objects.filter(active=True, event_types__contains=[event])
    hooks = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=endpoint, event=candidate, idempotency_key=str(candidate.pk))
            for endpoint in endpoints
        ]
    )
    email_ids, hook_ids, schema = [e.pk for e in emails], [str(h.pk) for h in hooks], _schema_name()
    if email_ids or hook_ids:
        # Sent after commit; the wake-up (same transaction) makes good a lost message.
        workindex_wakeup_set(kind=WAKEUP_KIND, due_at=timezone.now() + ENQUEUE_LEASE)
        transaction.on_commit(
            lambda: deliveries_enqueue(schema_name=schema, email_ids=email_ids, webhook_ids=hook_ids)
        )
    return len(recipients) + len(emails) + len(hooks)


def deliveries_enqueue(*, schema_name: str, email_ids: Sequence[int], webhook_ids: Sequence[str]) -> None:
    """Send one task per delivery to tenant ``schema_name`` (named explicitly, so it never runs in public).

    A broker that is down loses nothing: the rows stay pending and the per-tenant sweep sends them; the
    error is logged, never raised into the request that already committed.
    """
    from controlplane.celery import send_to_tenant

    from .tasks import email_delivery_send_task, webhook_delivery_send_task

    try:
        for email_id in email_ids:
            send_to_tenant(email_delivery_send_task, schema_name=schema_name, delivery_id=email_id)
        for webhook_id in webhook_ids:
            send_to_tenant(webhook_delivery_send_task, schema_name=schema_name, delivery_id=webhook_id)
    except Exception:  # the sweep retries; the change itself is committed and must not fail now
        logger.exception("enqueueing notification deliveries failed; the sweep will send them")


# Email


def email_delivery_send(*, delivery_id: int, now: dt.datetime | None = None) -> bool:
    """Send one pending, due email delivery through Django's email backend (SMTP in production).

    Returns True when this call sent it. Safe to run twice and concurrently: the row is locked with
    SKIP LOCKED (a concurrent copy returns False at once), and a delivery that is sent, failed or not
    yet due (``next_attempt_at`` > ``now``, UTC) is left alone. An SMTP failure counts an attempt and
    sets ``next_attempt_at`` by ``retry_delay``; a permanent refusal (5xx) or the MAX_ATTEMPTS-th
    failure marks it failed. The row lock is held while sending, so the only way to send twice is a
    crash between the server's 250 and our commit; the resend then carries the same Message-ID.
    """
    from .emails import email_message_build

    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            EmailDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "person")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state != DeliveryState.PENDING or delivery.next_attempt_at > now:
            return False
        delivery.attempts += 1
        try:
            email_message_build(delivery=delivery).send(fail_silently=False)
        except (smtplib.SMTPException, OSError) as exc:
            permanent = isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600
            permanent = permanent or isinstance(exc, smtplib.SMTPRecipientsRefused)
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if permanent or delivery.attempts >= MAX_ATTEMPTS:
                delivery.state = DeliveryState.FAILED
            else:
                delivery.next_attempt_at = now + retry_delay(delivery.attempts)
                workindex_wakeup_set(kind=WAKEUP_KIND, due_at=delivery.next_attempt_at)
            delivery.save()
            return False
        delivery.state, delivery.sent_at, delivery.last_error = DeliveryState.SENT, now, ""
        delivery.save()
        return True


# Webhooks


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex>``: HMAC-SHA256 with the endpoint's ``secret`` over ``"{timestamp}." + body`` (the
    scheme of Stripe's and Standard Webhooks' signatures, hex-encoded; docs/notifications.md)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def webhook_payload(*, event: NotificationEvent, tenant_slug: str) -> dict[str, Any]:
    """The JSON a webhook receives: event id and type, when it happened (UTC, ISO 8601), the tenant's
    slug and the record's type, id, number and title, plus allow-listed context (states, ids). Never a
    description or comment: those stay in the tenant's schema (ARCHITECTURE.md)."""
    return {
        "id": str(event.pk),
        "event": event.event,
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "tenant": tenant_slug,
        "record": {
            "type": event.record_type,
            "id": str(event.record_id),
            "number": event.number,
            "title": event.title,
        },
        "data": {k: event.context[k] for k in WEBHOOK_CONTEXT_KEYS if k in event.context},
    }


def webhook_host_allowed(url: str) -> bool:
    """Whether ``url``'s host resolves only to public addresses (no loopback, private, link-local such as
    cloud metadata, or reserved ranges), unless WEBHOOK_ALLOW_PRIVATE_HOSTS is set (development and
    tests). A guard against server-side request forgery (OWASP SSRF prevention cheat sheet)."""
    if settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        return True
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return bool(addresses) and all(a.is_global for a in addresses)


def _record_attempt(
    delivery: WebhookDelivery, now: dt.datetime, status: int | None, text: str, error: str
) -> None:
    delivery.attempt_count += 1
    delivery.attempts_log = [
        *delivery.attempts_log,
        {"at": now.isoformat(), "status": status, "response": text[:RESPONSE_SNIPPET_CHARS], "error": error},
    ]


def webhook_delivery_attempt(*, delivery_id: uuid.UUID | str, now: dt.datetime | None = None) -> str:
    """Make one attempt of a pending, due webhook delivery; returns the delivery's state afterwards
    (``pending``, ``delivered``, ``failed``; ``missing`` for a row that is gone or locked by a copy).

    POSTs the signed payload with a 5 s connect/read timeout, no redirects. 2xx: delivered. 410 Gone:
    the endpoint is deactivated and the delivery failed (the receiver asked us to stop, as Slack and
    Standard Webhooks define). Anything else (other statuses, timeouts, refused connections): retried
    after ``retry_delay(attempt)`` until MAX_ATTEMPTS, then failed. Safe to run twice: locked with SKIP
    LOCKED; delivered, failed and not-yet-due (``next_attempt_at`` > ``now``, UTC) rows are left alone.
    """
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "event")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return "missing"
        if delivery.state != WebhookDelivery.State.PENDING or (
            delivery.next_attempt_at is not None and delivery.next_attempt_at > now
        ):
            return str(delivery.state)
        endpoint = delivery.endpoint
        status: int | None = None
        text = error = ""
        if not endpoint.active:
            error = "endpoint inactive"
        elif not webhook_host_allowed(endpoint.url):
            error = "endpoint address refused (not a public address)"
        else:
            tenant_slug = getattr(getattr(connection, "tenant", None), "slug", "")
            body = json.dumps(
                webhook_payload(event=delivery.event, tenant_slug=tenant_slug), separators=(",", ":")
            ).encode()
            timestamp = int(now.timestamp())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "msp-itsm-webhooks/1",
                "Webhook-Id": delivery.idempotency_key,
                "Webhook-Timestamp": str(timestamp),
                "Webhook-Signature": webhook_signature(
                    secret=endpoint.secret, timestamp=timestamp, body=body
                ),
            }
            try:
                response = httpx.post(
                    endpoint.url,
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(WEBHOOK_TIMEOUT_SECONDS),
                    follow_redirects=False,
                )
                status, text = response.status_code, response.text
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        _record_attempt(delivery, now, status, text, error)
        if status is not None and 200 <= status < 300:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = (
                WebhookDelivery.State.DELIVERED,
                now,
                None,
            )
        elif status == 410 or not endpoint.active or error.startswith("endpoint address"):
            delivery.state, delivery.next_attempt_at = WebhookDelivery.State.FAILED, None
            if status == 410:
                endpoint.active, endpoint.disabled_reason = False, f"answered 410 Gone on {now.isoformat()}"
                endpoint.save(update_fields=["active", "disabled_reason", "updated_at"])
        elif delivery.attempt_count >= MAX_ATTEMPTS:
            delivery.state, delivery.next_attempt_at = WebhookDelivery.State.FAILED, None
        else:
            delivery.next_attempt_at = now + retry_delay(delivery.attempt_count)
            workindex_wakeup_set(kind=WAKEUP_KIND, due_at=delivery.next_attempt_at)
        delivery.save()
        return str(delivery.state)


def _pending_due(model: Any, now: dt.datetime, limit: int) -> list[Any]:
    return list(
        model.objects.filter(state="pending", next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def _next_unhandled_at(model: Any, handed: Sequence[Any], now: dt.datetime) -> dt.datetime | None:
    """The earliest ``next_attempt_at`` of ``model``'s pending deliveries, leaving out those in
    ``handed`` that are still due (they were just enqueued; ENQUEUE_LEASE covers them). A delivery
    enqueued and already failed again counts with its retry time; one that was due but not enqueued
    (over the limit, or committed after the due list was read) counts with its past time."""
    return (
        model.objects.filter(state="pending")
        .exclude(pk__in=list(handed), next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )


def notification_deliver_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """The tenant's sweep, woken by beat: enqueue a send task for every pending email and webhook
    delivery that is due (``next_attempt_at`` <= ``now``, UTC), at most ``limit`` of each, oldest first,
    then move the tenant's wake-up (``workindex_wakeup_recompute``, kind WAKEUP_KIND) to the earliest
    ``next_attempt_at`` of the pending deliveries it did not just enqueue (a past time when more than
    ``limit`` were due: beat wakes the tenant again on its next tick), or ``now`` + ENQUEUE_LEASE when
    it enqueued something (a failed attempt lowers the wake-up to its retry time; a lost message is
    looked at again then). Nothing pending: the wake-up is deleted and beat leaves the tenant alone.
    Returns how many were enqueued. Duplicates are harmless (the send services are idempotent)."""
    now = now or timezone.now()
    email_ids = _pending_due(EmailDelivery, now, limit)
    hook_ids = [str(pk) for pk in _pending_due(WebhookDelivery, now, limit)]
    deliveries_enqueue(schema_name=_schema_name(), email_ids=email_ids, webhook_ids=hook_ids)

    def earliest() -> dt.datetime | None:  # runs once the wake-up row is locked
        candidates = [
            _next_unhandled_at(EmailDelivery, email_ids, now),
            _next_unhandled_at(WebhookDelivery, hook_ids, now),
            now + ENQUEUE_LEASE if email_ids or hook_ids else None,
        ]
        return min((c for c in candidates if c is not None), default=None)

    workindex_wakeup_recompute(kind=WAKEUP_KIND, earliest=earliest)
    return len(email_ids) + len(hook_ids)


# In-app


def notification_read(
    *, actor: Actor, notification: Notification, now: dt.datetime | None = None
) -> Notification:
    """Mark one of the actor's notifications read (already read: unchanged). The caller fetched it
    through ``selectors.notification_get`` (NotFound for anyone else's)."""
    if notification.person_id != actor.person_id:
        raise PermissionDenied("not your notification")
    if notification.read_at is None:
        notification.read_at = now or timezone.now()
        notification.save(update_fields=["read_at", "updated_at"])
    return notification


def notification_read_all(*, actor: Actor, now: dt.datetime | None = None) -> int:
    """Mark every unread notification of the actor read. Returns how many were marked."""
    if actor.person_id is None:
        return 0
    now = now or timezone.now()
    return Notification.objects.filter(person_id=actor.person_id, read_at=None).update(
        read_at=now, updated_at=now
    )


@transaction.atomic
def preference_set(
    *, actor: Actor, email_opt_out: bool, muted_events: Sequence[str] = ()
) -> NotificationPreference:
    """Set the actor's email preference: ``email_opt_out`` (no email for non-critical events) and
    ``muted_events`` (non-critical event types without email). Critical events (sla.breached,
    approval.requested) always email. Raises InvalidInput naming ``muted_events`` for unknown or
    critical types, PermissionDenied for an actor without a person (the system)."""
    if actor.person is None:
        raise PermissionDenied("only people have notification preferences")
    bad = sorted({e for e in muted_events if e not in EVENT_TYPES or e in CRITICAL_EVENT_TYPES})
    if bad:
        raise InvalidInput(
            f"cannot mute: {', '.join(bad)}",
            errors=[{"field": "muted_events", "message": f"unknown or critical: {', '.join(bad)}"}],
        )
    preference, _ = NotificationPreference.objects.update_or_create(
        person=actor.person,
        defaults={"email_opt_out": email_opt_out, "muted_events": sorted(set(muted_events))},
    )
    return preference


@transaction.atomic
def notification_settings_set(*, actor: Actor, **changes: Any) -> NotificationSettings:
    """Change the tenant's email branding (admins only, PermissionDenied otherwise): ``sender_name``
    (<= 100 characters; empty = the tenant's name), ``reply_to`` (an address), ``accent_colour``
    (``#rrggbb``), ``logo_url`` (https URL). Raises InvalidInput naming each bad field; logs
    ``notification_settings.changed`` with old -> new."""
    if not actor.may(P.CONFIG_MANAGE):
        raise PermissionDenied("only admins may change email branding")
    from django.core.exceptions import ValidationError
    from django.core.validators import EmailValidator, URLValidator

    errors = []
    unknown = set(changes) - {"sender_name", "reply_to", "accent_colour", "logo_url"}
    errors += [{"field": f, "message": "not a setting"} for f in sorted(unknown)]
    if len(changes.get("sender_name") or "") > 100:
        errors.append({"field": "sender_name", "message": "at most 100 characters"})
    if changes.get("accent_colour") is not None and not HEX_COLOUR.match(changes["accent_colour"]):
        errors.append({"field": "accent_colour", "message": "#rrggbb"})
    for field, validator in (("reply_to", EmailValidator()), ("logo_url", URLValidator(schemes=["https"]))):
        if changes.get(field):
            try:
                validator(changes[field])
            except ValidationError:
                errors.append({"field": field, "message": "invalid"})
    if errors:
        raise InvalidInput("invalid email branding", errors=errors)
    current, _ = NotificationSettings.objects.select_for_update().get_or_create(pk=1)
    diff = {
        f: [getattr(current, f), v] for f, v in changes.items() if v is not None and getattr(current, f) != v
    }
    if diff:
        for field, (_, value) in diff.items():
            setattr(current, field, value)
        current.save()
        activity_record(
            actor=actor,
            verb="notification_settings.changed",
            record_type="notification_settings",
            record_id=SETTINGS_RECORD_ID,
            changes=diff,
        )
    return current


def _require_admin(actor: Actor) -> None:
    if not actor.may(P.CONFIG_MANAGE):
        raise PermissionDenied("only admins manage webhooks")


def webhook_url_check(url: str) -> None:
    """Raise InvalidInput naming ``url`` unless it is an absolute http(s) URL without credentials whose
    host resolves to public addresses only (see ``webhook_host_allowed``); https is required unless
    WEBHOOK_ALLOW_PRIVATE_HOSTS (development)."""
    parts = urlsplit(url)
    allowed_schemes = ("http", "https") if settings.WEBHOOK_ALLOW_PRIVATE_HOSTS else ("https",)
    message = ""
    if len(url) > 500 or parts.scheme not in allowed_schemes or not parts.hostname:
        message = f"an absolute {' or '.join(allowed_schemes)} URL"
    elif parts.username or parts.password:
        message = "no credentials in the URL"
    elif not webhook_host_allowed(url):
        message = "the host must resolve to public addresses"
    if message:
        raise InvalidInput(f"bad webhook url: {message}", errors=[{"field": "url", "message": message}])


@transaction.atomic
def webhook_endpoint_create(
    *, actor: Actor, url: str, event_types: Sequence[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Add a webhook endpoint receiving ``event_types`` (a non-empty subset of EVENT_TYPES). Admins only
    (PermissionDenied). Returns the endpoint and its signing secret (``whsec_`` + 32 random bytes,
    URL-safe base64): the only time the secret is shown. Raises InvalidInput naming ``url`` or
    ``event_types``; nothing is written then. Logs ``webhook_endpoint.created``."""
    _require_admin(actor)
    errors = []
    try:
        webhook_url_check(url)
    except InvalidInput as exc:
        errors += exc.extra["errors"]
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if not event_types or unknown:
        message = f"unknown: {', '.join(unknown)}" if unknown else "at least one event type"
        errors.append({"field": "event_types", "message": f"{message} (one of {', '.join(EVENT_TYPES)})"})
    if errors:
        raise InvalidInput("invalid webhook endpoint", errors=errors)
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        description=description[:200],
        event_types=[e for e in EVENT_TYPES if e in set(event_types)],
        secret=secret,
        created_by=actor.person,
    )
    activity_record(
        actor=actor,
        verb="webhook_endpoint.created",
        record_type="webhook_endpoint",
        record_id=endpoint.pk,
        changes={"url": [None, url], "event_types": [None, endpoint.event_types]},
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_set_active(
    *, actor: Actor, endpoint: WebhookEndpoint, active: bool, now: dt.datetime | None = None
) -> WebhookEndpoint:
    """Disable (``active=False``) or re-enable an endpoint; admins only (PermissionDenied). A disabled
    endpoint gets no new deliveries and its pending ones fail at their next attempt ("endpoint
    inactive"); ``disabled_reason`` says who disabled it when (UTC), and is cleared on re-enabling.
    No change when it is already so. Logs ``webhook_endpoint.disabled`` / ``webhook_endpoint.enabled``."""
    _require_admin(actor)
    if endpoint.active == active:
        return endpoint
    when = (now or timezone.now()).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    who = actor.person.display_name if actor.person is not None else "the system"
    reason = "" if active else f"disabled by {who} on {when}"
    changes = {"active": [endpoint.active, active], "disabled_reason": [endpoint.disabled_reason, reason]}
    endpoint.active, endpoint.disabled_reason = active, reason
    endpoint.save(update_fields=["active", "disabled_reason", "updated_at"])
    activity_record(
        actor=actor,
        verb="webhook_endpoint.enabled" if active else "webhook_endpoint.disabled",
        record_type="webhook_endpoint",
        record_id=endpoint.pk,
        changes=changes,
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its delivery log (admins only). Logs ``webhook_endpoint.deleted``."""
    _require_admin(actor)
    activity_record(
        actor=actor,
        verb="webhook_endpoint.deleted",
        record_type="webhook_endpoint",
        record_id=endpoint.pk,
        changes={"url": [endpoint.url, None]},
    )
    endpoint.delete()
