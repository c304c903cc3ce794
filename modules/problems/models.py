"""Problems and known errors (ITIL 4 problem management). Tenant plane.

States follow ServiceNow's problem model (New, Assess, Root Cause Analysis, Fix in Progress, Resolved,
Closed, with Cancel from any open state); known errors follow ITIL 4 (a problem with a documented root
cause and workaround) as ServiceNow's known error articles do (draft, published, retired).
"""

from __future__ import annotations

from django.db import models

from modules.records.models import Record


class Problem(Record):
    class State(models.TextChoices):
        NEW = "new", "New"
        ASSESSED = "assessed", "Assessed"
        ROOT_CAUSE_ANALYSIS = "root_cause_analysis", "Root cause analysis"
        FIX_IN_PROGRESS = "fix_in_progress", "Fix in progress"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"
        CANCELLED = "cancelled", "Cancelled"

    class RcaMethod(models.TextChoices):
        FIVE_WHYS = "five_whys", "Five whys"
        FISHBONE = "fishbone", "Fishbone (Ishikawa)"
        KEPNER_TREGOE = "kepner_tregoe", "Kepner-Tregoe"
        FAULT_TREE = "fault_tree", "Fault tree analysis"
        OTHER = "other", "Other"

    class ResolutionCode(models.TextChoices):
        """ServiceNow's problem resolution codes."""

        FIX_APPLIED = "fix_applied", "Fix applied"
        RISK_ACCEPTED = "risk_accepted", "Risk accepted"
        DUPLICATE = "duplicate", "Duplicate"
        CANNOT_REPRODUCE = "cannot_reproduce", "Cannot reproduce"

    OPEN_STATES = (State.NEW, State.ASSESSED, State.ROOT_CAUSE_ANALYSIS, State.FIX_IN_PROGRESS)

    # Keys problems brought in by an import (``servicenow:Problem ID 2``).
    external_ref = models.CharField(max_length=200, null=True, blank=True, unique=True)
    number = models.CharField(max_length=20, unique=True)
    short_description = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    subcategory = models.CharField(max_length=100, blank=True)
    configuration_item = models.ForeignKey(
        "cmdb.ConfigurationItem", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    impact = models.PositiveSmallIntegerField(default=2)
    urgency = models.PositiveSmallIntegerField(default=2)
    priority = models.PositiveSmallIntegerField()
    assignment_group = models.ForeignKey(
        "people.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    assigned_to = models.ForeignKey(
        "people.Person", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    opened_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    opened_at = models.DateTimeField()
    state = models.CharField(max_length=30, choices=State.choices, default=State.NEW)
    rca_method = models.CharField(max_length=20, choices=RcaMethod.choices, blank=True)
    rca_findings = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    workaround = models.TextField(blank=True)
    fix_notes = models.TextField(blank=True)
    resolution_code = models.CharField(max_length=30, choices=ResolutionCode.choices, blank=True)
    resolution_notes = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            models.Index(fields=["state", "priority"], name="problem_state_priority"),
            models.Index(fields=["assigned_to", "state"], name="problem_assignee_state"),
            models.Index(fields=["opened_at", "id"], name="problem_opened"),
            # The console list's sort columns, each with id as its tiebreak (records.listing.sort_apply).
            models.Index(fields=["priority", "id"], name="problem_priority_id"),
            models.Index(fields=["state", "id"], name="problem_state_id"),
            models.Index(fields=["updated_at", "id"], name="problem_updated"),
            models.Index(fields=["short_description", "id"], name="problem_title"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.short_description}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


class KnownError(Record):
    """A known error: symptoms, the root cause, a workaround and the permanent fix (when known)."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        RETIRED = "retired", "Retired"

    number = models.CharField(max_length=20, unique=True)
    problem = models.ForeignKey(Problem, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    title = models.CharField(max_length=200)
    symptoms = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    workaround = models.TextField(blank=True)
    permanent_fix = models.TextField(blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"


class ProblemSettings(models.Model):
    """Per-tenant problem rules (one row, pk 1): when recurring incidents become a problem candidate."""

    # A candidate needs at least this many incidents ...
    candidate_min_incidents = models.PositiveIntegerField(default=3)
    # ... opened within this many days (counted back from now).
    candidate_window_days = models.PositiveIntegerField(default=30)
