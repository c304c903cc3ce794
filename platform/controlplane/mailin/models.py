"""Email in (email-to-ticket). Control plane (schema `public`).

An inbound address routes mail to one tenant; it says what a new message creates there (an incident, or
a service request for one catalog item). Mail arrives two ways: the SMTP listener (``mail_listen``) the
provider's MTA delivers to, or the IMAP poller for a mailbox configured on the address. Either way the raw
message is stored whole, as an InboundMessage, before anything else reads it; the tenant task then turns
it into a record or a comment (``modules.mailin.services.inbound_message_process``) and writes the
outcome back on the row. A message that cannot be read stays stored with status ``failed`` and its error.

Tenant-local ids (the catalog item, the resulting record) are plain UUID columns: they point into a tenant
schema, where no database constraint can reach.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class InboundAddress(models.Model):
    """An email address of a tenant's service desk, e.g. ``help@acme.example``. Unique, lower-case."""

    class Creates(models.TextChoices):
        INCIDENT = "incident", "Incident"
        SERVICE_REQUEST = "service_request", "Service request"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    address = models.EmailField(max_length=254, unique=True)
    creates = models.CharField(max_length=20, choices=Creates.choices, default=Creates.INCIDENT)
    # The catalog item a new message orders when ``creates`` is service_request (tenant-local uuid).
    catalog_item_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by_user_id = models.BigIntegerField(null=True)

    class Meta:
        ordering = ["address"]
        constraints = [
            models.CheckConstraint(condition=models.Q(address=Lower("address")), name="mailin_address_lower"),
            models.CheckConstraint(
                condition=~models.Q(creates="service_request") | models.Q(catalog_item_id__isnull=False),
                name="mailin_request_has_item",
            ),
        ]

    def __str__(self) -> str:
        return self.address


class InboundMailbox(models.Model):
    """The IMAP mailbox polled for an inbound address (optional; without one, mail comes by SMTP only).

    ``security``: ``tls`` (implicit TLS, usually port 993), ``starttls`` (port 143, upgraded) or ``none``
    (plain; for a server on the same host only). The password is write-only in the API and console and
    stored encrypted (``password_encrypted``: a Fernet token, ``crypto.secret_encrypt``; the poller
    decrypts it just before logging in).
    """

    class Security(models.TextChoices):
        TLS = "tls", "TLS"
        STARTTLS = "starttls", "STARTTLS"
        NONE = "none", "None (plain text)"

    address = models.OneToOneField(InboundAddress, on_delete=models.CASCADE, related_name="mailbox")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.TLS)
    username = models.CharField(max_length=255)
    password_encrypted = models.TextField()
    folder = models.CharField(max_length=255, default="INBOX")
    enabled = models.BooleanField(default=True)
    last_polled_at = models.DateTimeField(null=True)
    last_error = models.TextField(blank=True)


class InboundMessage(models.Model):
    """One received message, the raw bytes kept whole, and what became of it.

    ``received_at`` is UTC. ``envelope_sender`` is SMTP's MAIL FROM (empty for a null sender ``<>``; the
    IMAP poller takes the Return-Path header), ``envelope_recipients`` the RCPT TO addresses of this
    tenant (IMAP: the mailbox's address). ``source_key`` identifies a message in its mailbox
    (``<UIDVALIDITY>:<UID>``, RFC 3501) so a poll that crashed between storing and flagging does not
    store it twice. ``from_address``, ``subject`` and ``message_id`` are filled by processing.
    """

    class Via(models.TextChoices):
        SMTP = "smtp", "SMTP"
        IMAP = "imap", "IMAP"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.SET_NULL, null=True, related_name="+")
    address = models.ForeignKey(InboundAddress, on_delete=models.SET_NULL, null=True, related_name="+")
    mailbox = models.ForeignKey(InboundMailbox, on_delete=models.SET_NULL, null=True, related_name="+")
    via = models.CharField(max_length=4, choices=Via.choices)
    raw = models.BinaryField()
    size = models.PositiveIntegerField()
    received_at = models.DateTimeField(default=timezone.now)
    envelope_sender = models.CharField(max_length=512, blank=True)
    envelope_recipients = models.JSONField(default=list)
    source_key = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    reason = models.TextField(blank=True)  # why it was ignored, or the error that failed it
    attachment_errors = models.JSONField(default=list)  # [{"file_name", "message"}] refused attachments
    attempts = models.PositiveSmallIntegerField(default=0)  # times processing was (re)enqueued
    enqueued_at = models.DateTimeField(default=timezone.now)  # the last time processing was enqueued
    from_address = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    result_type = models.CharField(max_length=40, blank=True)  # incident, service_request, comment
    result_id = models.UUIDField(null=True)
    result_number = models.CharField(max_length=20, blank=True)
    processed_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "status", "received_at"], name="mailin_msg_tenant_status"),
            models.Index(fields=["tenant", "from_address", "received_at"], name="mailin_msg_sender"),
            models.Index(
                fields=["enqueued_at"], name="mailin_msg_pending", condition=models.Q(status="received")
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "source_key"],
                name="mailin_msg_once_per_mailbox",
                condition=models.Q(mailbox__isnull=False) & ~models.Q(source_key=""),
            ),
        ]

    def __str__(self) -> str:
        return f"inbound message {self.pk} ({self.status})"
