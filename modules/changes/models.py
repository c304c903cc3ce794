"""Changes and the change advisory board (ITIL 4 change enablement). Tenant plane.

Types, states and the risk assessment follow ServiceNow's change model (standard changes from
pre-approved templates, normal changes assessed then authorised by the CAB, emergency changes authorised
by the emergency CAB and reviewed afterwards; states New/Assess/Authorize/Scheduled/Implement/Review/
Closed/Canceled, named here draft/assess/authorise/...). All datetimes are aware and stored in UTC.
"""

from __future__ import annotations

from django.db import models

from modules.records.models import Record


class Risk(models.TextChoices):
    LOW = "low", "Low"
    MODERATE = "moderate", "Moderate"
    HIGH = "high", "High"
    VERY_HIGH = "very_high", "Very high"


class StandardChangeTemplate(Record):
    """A pre-approved recipe for a standard change: its plans are copied into each change made from it,
    and its risk is low by definition (ITIL 4: standard changes are pre-authorised)."""

    name = models.CharField(max_length=160, unique=True)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    implementation_plan = models.TextField(blank=True)
    backout_plan = models.TextField(blank=True)
    test_plan = models.TextField(blank=True)
    risk = models.CharField(max_length=12, choices=Risk.choices, default=Risk.LOW, editable=False)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Change(Record):
    class Type(models.TextChoices):
        STANDARD = "standard", "Standard"
        NORMAL = "normal", "Normal"
        EMERGENCY = "emergency", "Emergency"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        ASSESS = "assess", "Assess"
        AUTHORISE = "authorise", "Authorise"
        SCHEDULED = "scheduled", "Scheduled"
        IMPLEMENT = "implement", "Implement"
        REVIEW = "review", "Review"
        CLOSED = "closed", "Closed"
        CANCELLED = "cancelled", "Cancelled"

    class Outcome(models.TextChoices):
        SUCCESSFUL = "successful", "Successful"
        SUCCESSFUL_WITH_ISSUES = "successful_with_issues", "Successful with issues"
        FAILED = "failed", "Failed"
        ROLLED_BACK = "rolled_back", "Rolled back"

    FINAL_STATES = (State.CLOSED, State.CANCELLED)

    number = models.CharField(max_length=20, unique=True)
    # Keys changes brought in by an import (``servicenow:CHG0000047``).
    external_ref = models.CharField(max_length=200, null=True, blank=True, unique=True)
    change_type = models.CharField(max_length=12, choices=Type.choices)
    template = models.ForeignKey(
        StandardChangeTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="changes"
    )
    short_description = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    justification = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    requested_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    assignment_group = models.ForeignKey(
        "people.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    assigned_to = models.ForeignKey(
        "people.Person", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    implementation_plan = models.TextField(blank=True)
    backout_plan = models.TextField(blank=True)
    test_plan = models.TextField(blank=True)
    planned_start = models.DateTimeField(null=True, blank=True)
    planned_end = models.DateTimeField(null=True, blank=True)
    actual_start = models.DateTimeField(null=True, blank=True)
    actual_end = models.DateTimeField(null=True, blank=True)
    risk = models.CharField(max_length=12, choices=Risk.choices, default=Risk.LOW)
    # question key -> chosen answer value (see RiskQuestion)
    risk_answers = models.JSONField(default=dict, blank=True)
    # {"cis": n, "impacted_cis": n, "business_services": n, "score": {...}} from the CMDB's impact analysis
    impact_summary = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.DRAFT)
    outcome = models.CharField(max_length=30, choices=Outcome.choices, blank=True)
    review_notes = models.TextField(blank=True)
    # The schedule conflicts last computed (when the change entered authorise), as the CAB saw them.
    conflicts = models.JSONField(default=list, blank=True)
    configuration_items = models.ManyToManyField(
        "cmdb.ConfigurationItem", through="ChangeCI", related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "planned_start"], name="change_state_start"),
            models.Index(fields=["planned_start", "planned_end"], name="change_window"),
            models.Index(fields=["created_at", "id"], name="change_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(planned_start__isnull=True)
                | models.Q(planned_end__isnull=True)
                | models.Q(planned_end__gt=models.F("planned_start")),
                name="change_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.short_description}"

    @property
    def is_open(self) -> bool:
        return self.state not in self.FINAL_STATES


class ChangeCI(models.Model):
    """A configuration item the change touches (the "affected CIs" of ServiceNow). Bigint key."""

    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="change_cis")
    configuration_item = models.ForeignKey(
        "cmdb.ConfigurationItem", on_delete=models.PROTECT, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["change", "configuration_item"], name="uniq_change_ci"),
        ]
        indexes = [models.Index(fields=["configuration_item"], name="change_ci_ci")]


class CabMember(models.Model):
    """A person on the tenant's change advisory board; ``emergency`` members also sit on the emergency
    CAB (ECAB) that authorises emergency changes. Removing the row ends the membership."""

    person = models.OneToOneField("people.Person", on_delete=models.PROTECT, related_name="+")
    emergency = models.BooleanField(default=False)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "id"]


class CabVote(models.Model):
    """One CAB member's vote on one change; a member changes it by voting again (while in authorise)."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        ABSTAIN = "abstain", "Abstain"

    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="votes")
    member = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["change", "member"], name="uniq_cab_vote")]


class BlackoutWindow(Record):
    """A period (UTC) in which no change should be implemented, e.g. a client's month-end close."""

    name = models.CharField(max_length=160)
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="blackout_ordered"),
        ]

    def __str__(self) -> str:
        return self.name


class ChangeSettings(models.Model):
    """Per-tenant CAB rules (one row, pk 1, seeded): how many counted votes make a quorum."""

    cab_quorum = models.PositiveSmallIntegerField(default=2)
    ecab_quorum = models.PositiveSmallIntegerField(default=1)


class RiskQuestion(models.Model):
    """One question of the risk assessment. ``answers`` is ``[{"value", "label", "weight"}]``; the risk
    score adds up the weights of the chosen answers (seeded from ServiceNow's default risk assessment)."""

    key = models.SlugField(max_length=40, unique=True)
    text = models.CharField(max_length=200)
    answers = models.JSONField()
    order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.text
