"""Notifications of one tenant: events, their deliveries (email, in-app, webhooks) and the settings.

Tenant plane. Every row an event causes is written under a unique key in the transaction of the change
that caused it (an outbox): ``NotificationEvent.key`` makes the event idempotent, ``EmailDelivery.key``,
``Notification (event, person)`` and ``WebhookDelivery (endpoint, idempotency_key)`` make each delivery
idempotent. Workers send what is pending after commit; a row that is sent is never sent again.
All datetimes are UTC.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from modules.records.models import Record

# Event types (brief "Shared contracts"; ServiceNow's notification events and Jira's webhook events
# name the same moments). Critical events reach a person even when they opted out of email.
EVENT_TYPES = (
    "record.assigned",
    "record.commented",
    "record.state_changed",
    "sla.warning",
    "sla.breached",
    "approval.requested",
)
CRITICAL_EVENT_TYPES = frozenset({"sla.breached", "approval.requested"})


class NotificationEvent(Record):
    """One thing that happened to a record and that people or systems are told about.

    ``key`` is chosen by the service that emits it from what caused it (``record.assigned:<activity
    entry id>``), so a retried service finds its event and writes nothing new. ``context`` holds what
    templates show (state names, a comment's text for the email to its reader); webhooks never carry it
    beyond an allow-list (no descriptions, no comments).
    """

    key = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=60)
    record_type = models.CharField(max_length=40)
    record_id = models.UUIDField(db_index=True)
    number = models.CharField(max_length=40)
    title = models.CharField(max_length=300)
    critical = models.BooleanField(default=False)
    actor_person = models.ForeignKey(
        "people.Person", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    context = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "id"]


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailDelivery(models.Model):
    """One email of one event to one person. ``key`` = ``<event key>:email:<person id>``.

    ``message_id`` is fixed when the row is written, so a resend after an uncertain failure carries the
    same Message-ID (mail clients fold duplicates). ``attempts`` counts SMTP tries; ``next_attempt_at``
    is when the sweep tries again; ``last_error`` the last SMTP error.
    """

    key = models.CharField(max_length=260, unique=True)
    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="emails")
    person = models.ForeignKey("people.Person", on_delete=models.CASCADE, related_name="+")
    address = models.EmailField()
    message_id = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="email_delivery_due", condition=models.Q(state="pending")
            )
        ]


class Notification(Record):
    """The in-app delivery: one row per (event, person), shown under the bell until read."""

    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="notifications")
    person = models.ForeignKey("people.Person", on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "person"], name="uniq_notification_event_person")
        ]
        indexes = [
            models.Index(
                fields=["person", "created_at"], name="notification_unread", condition=models.Q(read_at=None)
            ),
            models.Index(fields=["person", "created_at"], name="notification_person"),
        ]


class NotificationPreference(models.Model):
    """A person's email preference. ``email_opt_out``: no email for non-critical events at all;
    ``muted_events``: non-critical event types they get no email for. Critical events always go; in-app
    notifications always appear."""

    person = models.OneToOneField("people.Person", on_delete=models.CASCADE, related_name="+")
    email_opt_out = models.BooleanField(default=False)
    muted_events = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class NotificationSettings(models.Model):
    """The tenant's email branding: one row (pk 1). Empty ``sender_name`` means the tenant's name."""

    sender_name = models.CharField(max_length=100, blank=True)
    reply_to = models.EmailField(blank=True)
    accent_colour = models.CharField(max_length=7, default="#1f3a5f")
    logo_url = models.URLField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class WebhookEndpoint(Record):
    """An outbound webhook of this tenant: ``url`` receives the subscribed ``event_types`` as signed JSON.

    ``secret`` signs every payload (HMAC-SHA256); it is shown once when created and stored to sign.
    An endpoint answering 410 Gone is deactivated (``active`` False, ``disabled_reason`` says why).
    """

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    secret = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        "people.Person", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]


class WebhookDelivery(Record):
    """One event sent to one endpoint, with every attempt. ``idempotency_key`` (sent as ``Webhook-Id``)
    is unique per endpoint: the receiver dedupes retries by it. ``attempts_log`` lists
    ``{"at", "status", "response", "error"}`` per attempt (status None when no HTTP answer came);
    ``next_attempt_at`` is when the sweep tries a pending delivery again (exponential backoff)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="webhook_deliveries")
    idempotency_key = models.CharField(max_length=260)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    attempts_log = models.JSONField(default=list)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "idempotency_key"], name="uniq_webhook_delivery_endpoint_key"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=models.Q(state="pending")
            )
        ]
