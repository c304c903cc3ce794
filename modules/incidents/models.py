"""Incidents (ITIL incident management). Tenant plane.

States and on-hold reasons follow ServiceNow's incident model (New, In Progress, On Hold with a reason,
Resolved, Closed, Canceled), which is also the model of the real data this project imports.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from modules.records.models import Record


class Impact(models.IntegerChoices):
    HIGH = 1, "1 - High"
    MEDIUM = 2, "2 - Medium"
    LOW = 3, "3 - Low"


Urgency = Impact  # the same three levels (ITIL)


class Priority(models.IntegerChoices):
    CRITICAL = 1, "1 - Critical"
    HIGH = 2, "2 - High"
    MODERATE = 3, "3 - Moderate"
    LOW = 4, "4 - Low"
    PLANNING = 5, "5 - Planning"


class Incident(Record):
    class State(models.TextChoices):
        NEW = "new", "New"
        IN_PROGRESS = "in_progress", "In Progress"
        ON_HOLD = "on_hold", "On Hold"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"
        CANCELED = "canceled", "Canceled"

    class HoldReason(models.TextChoices):
        AWAITING_USER_INFO = "awaiting_user_info", "Awaiting User Info"
        AWAITING_PROBLEM = "awaiting_problem", "Awaiting Problem"
        AWAITING_VENDOR = "awaiting_vendor", "Awaiting Vendor"
        AWAITING_EVIDENCE = "awaiting_evidence", "Awaiting Evidence"

    class ContactType(models.TextChoices):
        PHONE = "phone", "Phone"
        EMAIL = "email", "Email"
        PORTAL = "self_service", "Self-service"
        WALK_IN = "walk_in", "Walk-in"
        CHAT = "chat", "Chat"
        MONITORING = "monitoring", "Monitoring"
        API = "api", "API"

    OPEN_STATES = (State.NEW, State.IN_PROGRESS, State.ON_HOLD)

    number = models.CharField(max_length=20, unique=True)
    caller = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    opened_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    opened_at = models.DateTimeField()
    short_description = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    subcategory = models.CharField(max_length=100, blank=True)
    contact_type = models.CharField(max_length=20, choices=ContactType.choices, default=ContactType.PORTAL)
    impact = models.PositiveSmallIntegerField(choices=Impact.choices, default=Impact.MEDIUM)
    urgency = models.PositiveSmallIntegerField(choices=Impact.choices, default=Impact.MEDIUM)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    assignment_group = models.ForeignKey(
        "people.Group", on_delete=models.PROTECT, null=True, related_name="+"
    )
    assigned_to = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.NEW)
    hold_reason = models.CharField(max_length=30, choices=HoldReason.choices, blank=True)
    resolution_code = models.CharField(max_length=60, blank=True)
    resolution_notes = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True)
    resolved_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    closed_at = models.DateTimeField(null=True)
    reassignment_count = models.PositiveIntegerField(default=0)
    reopen_count = models.PositiveIntegerField(default=0)
    configuration_item = models.ForeignKey(
        "cmdb.ConfigurationItem", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The change request raised for (or related to) this incident: ServiceNow's ``rfc`` field.
    change = models.ForeignKey(
        "changes.Change", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    problem = models.ForeignKey(
        "problems.Problem", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Kept from an imported source for the modules that link them later (problems, changes, CMDB).
    source_problem_id = models.CharField(max_length=40, blank=True, db_index=True)
    source_rfc = models.CharField(max_length=40, blank=True, db_index=True)
    source_cmdb_ci = models.CharField(max_length=100, blank=True, db_index=True)
    source_fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            models.Index(fields=["state", "priority"], name="incident_state_priority"),
            models.Index(fields=["assigned_to", "state"], name="incident_assignee_state"),
            models.Index(fields=["caller", "state"], name="incident_caller_state"),
            models.Index(fields=["opened_at", "id"], name="incident_opened"),
            # The console list's sort columns, each with id as its tiebreak (records.listing.sort_apply):
            # the first page reads an index instead of sorting every row.
            models.Index(fields=["priority", "id"], name="incident_priority_id"),
            models.Index(fields=["state", "id"], name="incident_state_id"),
            models.Index(fields=["updated_at", "id"], name="incident_updated"),
            models.Index(fields=["short_description", "id"], name="incident_title"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(state="on_hold") | ~models.Q(hold_reason=""),
                name="incident_hold_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.short_description}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


class PriorityRule(models.Model):
    """One cell of the tenant's impact x urgency -> priority matrix (bigint key)."""

    impact = models.PositiveSmallIntegerField(choices=Impact.choices)
    urgency = models.PositiveSmallIntegerField(choices=Impact.choices)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)

    class Meta:
        ordering = ["impact", "urgency"]
        constraints = [models.UniqueConstraint(fields=["impact", "urgency"], name="uniq_priority_cell")]


class ResolutionCode(models.Model):
    """A resolution (close) code technicians may pick when resolving (bigint key)."""

    code = models.CharField(max_length=60, unique=True)
    label = models.CharField(max_length=120)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]


class IncidentSettings(models.Model):
    """Per-tenant incident rules (one row, pk 1)."""

    # A closed incident can be reopened within this many days of closing.
    reopen_window_days = models.PositiveIntegerField(default=14)
    # Resolved incidents close automatically after this many days (ServiceNow's default auto-close: 7).
    autoclose_after_days = models.PositiveIntegerField(default=7)


class SatisfactionResponse(models.Model):
    """The caller's answer to the satisfaction survey of a resolved incident (bigint key): a score from 1
    (very dissatisfied) to 5 (very satisfied) and an optional comment. One per incident (unique), given
    once. ``answered_at`` is UTC; the daily rollup counts the score on the tenant's local day of it
    (``controlplane.workindex`` satisfaction_sum / satisfaction_count)."""

    class Score(models.IntegerChoices):
        VERY_DISSATISFIED = 1, "1 - Very dissatisfied"
        DISSATISFIED = 2, "2 - Dissatisfied"
        NEUTRAL = 3, "3 - Neither satisfied nor dissatisfied"
        SATISFIED = 4, "4 - Satisfied"
        VERY_SATISFIED = 5, "5 - Very satisfied"

    incident = models.OneToOneField(Incident, on_delete=models.PROTECT, related_name="satisfaction")
    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    score = models.PositiveSmallIntegerField(choices=Score.choices)
    comment = models.TextField(blank=True, max_length=2000)
    answered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-answered_at", "-id"]
        indexes = [models.Index(fields=["answered_at"], name="satisfaction_answered")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=1, score__lte=5), name="satisfaction_score_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.score} for {self.incident_id}"
