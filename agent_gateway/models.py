"""The agent gateway's control-plane rows (docs/decisions/0018-agent-gateway.md).

Enrolment tokens and agents belong to a tenant; an agent proves who it is with an Ed25519 key whose public
half is a credential here. Commands wait here for their agent; reports wait in the inbox until a tenant
task applies them. Every time is UTC.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from modules.records.models import uuid7


class EnrolmentToken(models.Model):
    """A secret that lets agents enrol into ``tenant`` (optionally at ``site``) until ``expires_at``, at
    most ``max_uses`` times, unless revoked. Only the SHA-256 of the token is kept; ``prefix`` (the first
    characters, shown in lists) identifies it to people. ``requires_approval``: new agents wait in the
    approval queue (status pending) until a technician accepts them."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="enrolment_tokens")
    label = models.CharField(max_length=100, blank=True)
    site = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=24)
    token_hash = models.CharField(max_length=64, unique=True)
    requires_approval = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField()
    uses = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]


class AgentStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    ACTIVE = "active", "Active"
    REJECTED = "rejected", "Rejected"
    REVOKED = "revoked", "Revoked"


class Agent(models.Model):
    """One enrolled agent: an endpoint of ``tenant``. ``hostname``, ``os`` and ``agent_version`` are what
    it said at enrolment (inventory reports keep its CI current). ``last_seen_at``/``last_ip``: its last
    authenticated request, written by the gateway in batches (seconds late at most)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="agents")
    enrolment_token = models.ForeignKey(
        EnrolmentToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    site = models.CharField(max_length=100, blank=True)
    hostname = models.CharField(max_length=253)
    os = models.CharField(max_length=32, blank=True)
    agent_version = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=10, choices=AgentStatus.choices)
    enrolled_at = models.DateTimeField(auto_now_add=True)
    enrolled_ip = models.GenericIPAddressField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)  # approved, rejected or revoked
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["hostname", "id"]
        indexes = [models.Index(fields=["tenant", "status"], name="agent_tenant_status")]

    def __str__(self) -> str:
        return self.hostname


class CredentialState(models.TextChoices):
    PENDING = "pending", "Pending (rotation)"
    ACTIVE = "active", "Active"
    SUPERSEDED = "superseded", "Superseded"
    REVOKED = "revoked", "Revoked"


class AgentCredential(models.Model):
    """An Ed25519 public key (32 raw bytes) an agent signs with. ``key_id``: the first 16 hex digits of the
    SHA-256 of the key, unique on the platform, so one key is never two agents'. A rotation adds a
    ``pending`` credential that becomes ``active`` at its first use, superseding the old one."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="credentials")
    key_id = models.CharField(max_length=16, unique=True)
    public_key = models.BinaryField(max_length=32)
    state = models.CharField(max_length=10, choices=CredentialState.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)  # superseded or revoked

    class Meta:
        ordering = ["created_at", "id"]


class SigningKey(models.Model):
    """The platform's Ed25519 key that signs commands. The private key is sealed (Fernet under a key derived
    from SECRET_KEY, controlplane.accounts.crypto); agents pin the public key at enrolment."""

    key_id = models.CharField(max_length=16, unique=True)
    public_key = models.BinaryField(max_length=32)
    private_key_sealed = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)


class CommandKind(models.TextChoices):
    COLLECT_INVENTORY = "collect_inventory", "Collect inventory now"
    RESTART_SERVICE = "restart_service", "Restart a service"
    RUN_SCRIPT = "run_script", "Run a script from the library"
    ROTATE_CREDENTIAL = "rotate_credential", "Rotate the agent's key"


class CommandStatus(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
    QUEUED = "queued", "Queued"  # approved and signed, not yet fetched
    DELIVERED = "delivered", "Delivered"  # fetched by the agent at least once
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected by the agent"
    DECLINED = "declined", "Declined"  # the approver said no
    EXPIRED = "expired", "Expired"


PENDING_COMMAND_STATUSES = (CommandStatus.QUEUED, CommandStatus.DELIVERED)


class Command(models.Model):
    """An allow-listed action for one agent. ``payload`` is the canonical JSON the agent receives, signed
    by ``signing_key`` once approved (``signature``); ``script`` is the approved script version it runs
    (name, interpreter, body, sha256, script id and version), frozen at request time. Who asked and who
    approved are kept here and in the security audit."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="commands")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=CommandKind.choices)
    params = models.JSONField(default=dict)
    script = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=CommandStatus.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    signing_key = models.ForeignKey(SigningKey, null=True, blank=True, on_delete=models.PROTECT)
    payload = models.BinaryField(null=True, blank=True)
    signature = models.BinaryField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    output = models.TextField(blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["agent", "status"], name="command_agent_status"),
            models.Index(fields=["tenant", "status"], name="command_tenant_status"),
        ]


class Report(models.Model):
    """The inbox: a report accepted by the gateway, waiting for its tenant task (which applies and deletes
    it). ``id`` is the agent's report id (a resent report is a duplicate); ``agent_id`` and ``tenant_id``
    come from the credential. Written by the gateway in batches with plain SQL (no foreign keys to check
    on the hot path; agents are never deleted while they have reports, tenants cascade by a task)."""

    id = models.UUIDField(primary_key=True)
    agent_id = models.UUIDField()
    tenant_id = models.BigIntegerField()
    type = models.CharField(max_length=12)
    collected_at = models.DateTimeField()
    received_at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["tenant_id", "received_at"], name="report_tenant_received")]


class Nonce(models.Model):
    """A request nonce seen from an agent in the last 600 s (replay protection). An UNLOGGED table
    (migration 0002): no WAL for 2,000 rows a second; after a database crash it is empty, which reopens
    the replay window of requests captured in the 10 minutes before (accepted, see 0018)."""

    pk = models.CompositePrimaryKey("agent_id", "nonce")
    agent_id = models.UUIDField()
    nonce = models.CharField(max_length=32)
    seen_at = models.DateTimeField(db_index=True)
