"""Monitoring: device metrics, alert rules and alerts, the script library. Tenant plane.

Agents are control-plane rows (``agent_gateway``); tables here refer to them by ``agent_id`` only (no
foreign key into public). Rules and retention: docs/decisions/0019-monitoring-and-discovery.md.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from modules.records.models import Record


class MetricSample(models.Model):
    """One metrics report of one agent, kept MONITORING_RAW_RETENTION_HOURS (48 h by default).

    The primary key is the report's id (made by the agent), so applying a batch twice inserts nothing
    twice. ``ci_id`` is the agent's computer CI (a plain id, not a foreign key: samples are many and
    short-lived, and a CI is never deleted). Percentages 0-100; ``disk`` is the fullest disk's percent;
    ``load1`` the 1-minute load average; ``stopped`` the watched services reported stopped.
    """

    id = models.UUIDField(primary_key=True)
    agent_id = models.UUIDField()
    ci_id = models.UUIDField()
    at = models.DateTimeField()
    cpu = models.FloatField()
    memory = models.FloatField()
    disk = models.FloatField(null=True)
    load1 = models.FloatField()
    stopped = ArrayField(models.CharField(max_length=128), default=list, blank=True)

    class Meta:
        ordering = ["agent_id", "at"]
        indexes = [
            models.Index(fields=["agent_id", "at"], name="metric_sample_agent_at"),
            models.Index(fields=["at"], name="metric_sample_at"),
        ]


class MetricRollup(models.Model):
    """Average and maximum of each metric per agent per hour (``hour``: the UTC hour's start), kept
    MONITORING_ROLLUP_RETENTION_DAYS (90 days by default). Recomputed from the raw samples of the hours a
    batch touched (INSERT ... ON CONFLICT DO UPDATE), so it is exact and safe to recompute."""

    agent_id = models.UUIDField()
    ci_id = models.UUIDField()
    hour = models.DateTimeField()
    samples = models.PositiveIntegerField()
    cpu_avg = models.FloatField()
    cpu_max = models.FloatField()
    memory_avg = models.FloatField()
    memory_max = models.FloatField()
    disk_avg = models.FloatField(null=True)
    disk_max = models.FloatField(null=True)
    load1_avg = models.FloatField()
    load1_max = models.FloatField()

    class Meta:
        ordering = ["agent_id", "hour"]
        constraints = [models.UniqueConstraint(fields=["agent_id", "hour"], name="uniq_metric_rollup")]
        indexes = [models.Index(fields=["hour"], name="metric_rollup_hour")]


class AlertRule(Record):
    """A condition watched on every agent of the tenant (0018, "Alerts → incidents"):

    - ``cpu`` / ``memory`` / ``disk``: every sample of the last ``minutes`` above ``threshold`` percent;
    - ``service_stopped``: the watched service ``service`` reported stopped for ``minutes``;
    - ``offline``: the agent not seen for ``minutes``.

    A firing rule opens an incident with ``impact`` and ``urgency`` (1 high .. 3 low).
    """

    class Kind(models.TextChoices):
        CPU = "cpu", "CPU above threshold"
        MEMORY = "memory", "Memory above threshold"
        DISK = "disk", "Disk above threshold"
        SERVICE_STOPPED = "service_stopped", "Service stopped"
        OFFLINE = "offline", "Agent offline"

    METRIC_KINDS = (Kind.CPU, Kind.MEMORY, Kind.DISK)

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    threshold = models.FloatField(null=True, blank=True)
    minutes = models.PositiveIntegerField(default=5)
    service = models.CharField(max_length=128, blank=True)
    impact = models.PositiveSmallIntegerField(default=2)
    urgency = models.PositiveSmallIntegerField(default=2)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def describe(self) -> str:
        """The condition in words: "CPU above 90% for 5 minutes"."""
        n = f"{self.minutes} minute{'s' if self.minutes != 1 else ''}"
        if self.kind in self.METRIC_KINDS:
            label = {"cpu": "CPU", "memory": "Memory", "disk": "Disk"}[self.kind]
            return f"{label} above {self.threshold:g}% for {n}"
        if self.kind == self.Kind.SERVICE_STOPPED:
            return f"Service {self.service} stopped for {n}"
        return f"Agent offline for {n}"


class Alert(Record):
    """One firing of a rule on one agent, open until the condition clears (at most one open alert per
    rule and agent). Repeats while open are counted (``repeat_count``, ``last_fired_at``) and noted on
    the incident at most every NOTE_EVERY minutes (``last_noted_at``). ``incident`` is null while the CI
    is muted by an approved change's window (``muted_by_change`` names it) or once the rule is gone.
    ``rule_name`` and ``kind`` keep what fired after the rule is edited or deleted."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLEARED = "cleared", "Cleared"

    rule = models.ForeignKey(AlertRule, on_delete=models.SET_NULL, null=True, related_name="alerts")
    rule_name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=AlertRule.Kind.choices)
    agent_id = models.UUIDField()
    ci = models.ForeignKey("cmdb.ConfigurationItem", on_delete=models.PROTECT, related_name="+")
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    detail = models.CharField(max_length=300, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    last_fired_at = models.DateTimeField(default=timezone.now)
    repeat_count = models.PositiveIntegerField(default=0)
    last_noted_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    muted_by_change_id = models.UUIDField(null=True, blank=True)
    muted_by_change = models.CharField(max_length=200, blank=True)  # "CHG0000042 Patch web01"

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "agent_id"], condition=models.Q(state="open"), name="uniq_open_alert"
            )
        ]
        indexes = [
            models.Index(fields=["state", "opened_at"], name="alert_state_opened"),
            models.Index(fields=["ci", "state"], name="alert_ci_state"),
        ]


class Script(Record):
    """A script of the tenant's library that a ``run_script`` command may run (0018, "Commands").

    ``parameters`` are the names the script reads as ``ITSM_PARAM_<NAME>`` environment variables.
    ``version`` starts at 1 and grows on every edit; ``sha256`` is the hex SHA-256 of ``body`` (UTF-8).
    ``author_user_id`` wrote this version; ``approved_by_user_id`` (someone else: four eyes) approved it,
    null until then and again after an edit. Control-plane user ids, no foreign key into public.
    """

    class Interpreter(models.TextChoices):
        SH = "sh", "POSIX shell (sh)"
        PYTHON = "python", "Python 3"

    name = models.CharField(max_length=100, unique=True)
    interpreter = models.CharField(max_length=10, choices=Interpreter.choices)
    body = models.TextField()
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    sha256 = models.CharField(max_length=64)
    author_user_id = models.BigIntegerField(null=True)
    approved_by_user_id = models.BigIntegerField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_approved(self) -> bool:
        return self.approved_by_user_id is not None
