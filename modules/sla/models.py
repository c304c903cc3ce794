"""SLA engine models: calendars, contracts, policies, escalation levels, timers. Tenant plane.

Words follow ITIL 4 service level management (service hours, service level targets, agreements) and the
shapes of ServiceNow's SLA definitions (``contract_sla``: start, pause, stop conditions, duration,
schedule) and task SLAs (``task_sla``: stage, business elapsed time, planned end time, has breached).
Every stored datetime is UTC; targets are minutes (as entered), timer durations seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, models

from modules.records.models import Record


def tenant_time_zone() -> str:
    """The current tenant's time zone (``Tenant.time_zone``), UTC outside a tenant."""
    tenant = getattr(connection, "tenant", None)
    return str(getattr(tenant, "time_zone", "") or "UTC")


class RecordType(models.TextChoices):
    INCIDENT = "incident", "Incident"
    SERVICE_REQUEST = "service_request", "Service request"


class TimerKind(models.TextChoices):
    """Response: opened -> first acknowledgement. Resolution: opened -> resolved (ITIL 4: "time to
    respond" and "time to resolve"; ServiceNow's response and resolution SLA definitions)."""

    RESPONSE = "response", "Response"
    RESOLUTION = "resolution", "Resolution"


class BusinessCalendar(Record):
    """Service hours: a time zone, weekly working intervals (``WorkingHours``), public holidays of a
    country/subdivision (the ``holidays`` package) and closed days (``ClosedDay``). UUIDv7 key (named in
    API paths, so an id means one calendar on the whole platform)."""

    name = models.CharField(max_length=120, unique=True)
    time_zone = models.CharField(max_length=64, default=tenant_time_zone)
    holiday_country = models.CharField(max_length=3, blank=True)
    holiday_subdivision = models.CharField(max_length=10, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class WorkingHours(models.Model):
    """One working interval of a weekday (0 = Monday), local wall-clock time. ``end`` 00:00 means midnight
    at the end of the day (24:00). Intervals of one weekday never overlap (checked by the services)."""

    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField()
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["calendar", "weekday", "start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="working_hours_weekday"),
        ]

    @property
    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes after local midnight; end 1440 for 24:00."""
        end = self.end.hour * 60 + self.end.minute
        return self.start.hour * 60 + self.start.minute, end or 1440


class ClosedDay(models.Model):
    """A local date on which the tenant does not work (besides public holidays)."""

    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="closed_days")
    date = models.DateField()
    name = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["calendar", "date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="uniq_closed_day")]


class Contract(Record):
    """The MSP's agreement with this client (ITIL 4: service level agreement). Active on the local dates
    ``starts_on`` .. ``ends_on`` (inclusive; no end = open-ended) when ``active``."""

    name = models.CharField(max_length=160, unique=True)
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True)
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.PROTECT, related_name="contracts")

    class Meta:
        ordering = ["-starts_on", "id"]

    def __str__(self) -> str:
        return self.name

    def covers(self, day: dt.date) -> bool:
        return self.active and self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)


class SLAPolicy(Record):
    """One service level target set of a contract (ServiceNow: an SLA definition). A record gets the
    first policy of the active contract, by ``order``, whose conditions all match: ``record_type``;
    ``priorities`` (list of 1-5, empty = any); ``category`` (blank = any); ``configuration_item_id``
    (the affected CI or service, null = any). Targets in minutes, either may be null (no timer of that
    kind). ``business_time`` false = calendar time (24x7); true = the ``calendar`` (or the contract's)."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(max_length=160)
    order = models.IntegerField(default=100)
    record_type = models.CharField(max_length=20, choices=RecordType.choices)
    priorities = models.JSONField(default=list, blank=True)
    category = models.CharField(max_length=100, blank=True)
    configuration_item_id = models.UUIDField(null=True, blank=True)
    response_target_minutes = models.PositiveIntegerField(null=True, blank=True)
    resolution_target_minutes = models.PositiveIntegerField(null=True, blank=True)
    business_time = models.BooleanField(default=True)
    calendar = models.ForeignKey(
        BusinessCalendar, on_delete=models.PROTECT, null=True, blank=True, related_name="policies"
    )

    class Meta:
        ordering = ["contract", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "name"], name="uniq_policy_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def target_minutes(self, kind: str) -> int | None:
        return self.response_target_minutes if kind == TimerKind.RESPONSE else self.resolution_target_minutes


class EscalationLevel(models.Model):
    """What to do when a timer of ``kind`` has used ``percent`` of its target (ServiceNow: SLA workflow
    at 50/75/100 %; ours default to 75, 90 and 100 %). ``actions`` (validated by the services)::

        {"notify_assignee": bool, "notify_group": bool,          # the record's current assignee/group
         "notify_persons": [person id], "notify_groups": [group id],
         "reassign_group": group id | null, "reassign_person": person id | null,
         "raise_priority": bool}                                 # one step higher, incidents only
    """

    policy = models.ForeignKey(SLAPolicy, on_delete=models.CASCADE, related_name="levels")
    kind = models.CharField(max_length=12, choices=TimerKind.choices)
    percent = models.PositiveSmallIntegerField()
    actions = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["policy", "kind", "percent"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "kind", "percent"], name="uniq_escalation_level"),
            models.CheckConstraint(
                condition=models.Q(percent__gte=1, percent__lte=1000), name="escalation_percent_range"
            ),
        ]


class SLATimer(models.Model):
    """One timer of one record, derived from the record's history by ``services.sla_refresh`` (never
    edited by hand). ``elapsed_business_seconds`` counts working time (calendar time for 24x7 policies)
    of the running spans as of ``computed_at``; ``target_seconds`` the policy's target; ``due_at`` when
    the target is used up if the timer runs on (null while paused; for a stopped timer, the deadline it
    had when it stopped); ``breached_at`` when the target was used up, if it was (ServiceNow's
    ``has_breached``). Stage: running, paused, met (stopped within target), breached (stopped late)."""

    class Stage(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        MET = "met", "Met"
        BREACHED = "breached", "Breached"

    record_type = models.CharField(max_length=20, choices=RecordType.choices)
    record_id = models.UUIDField()
    policy = models.ForeignKey(SLAPolicy, on_delete=models.PROTECT, related_name="timers")
    kind = models.CharField(max_length=12, choices=TimerKind.choices)
    stage = models.CharField(max_length=10, choices=Stage.choices)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True)
    paused_since = models.DateTimeField(null=True)
    elapsed_business_seconds = models.BigIntegerField(default=0)
    target_seconds = models.BigIntegerField()
    due_at = models.DateTimeField(null=True)
    breached_at = models.DateTimeField(null=True)
    # When this timer's next escalation level not yet run falls due (UTC; null: none left). The work
    # index keeps the earliest per record for the cross-client sweep; this copy keeps the timer whole.
    next_escalation_at = models.DateTimeField(null=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["record_id", "kind"]
        constraints = [models.UniqueConstraint(fields=["record_id", "kind"], name="uniq_sla_timer")]
        indexes = [
            models.Index(
                fields=["next_escalation_at"],
                name="sla_timer_escalation_due",
                condition=models.Q(next_escalation_at__isnull=False),
            )
        ]

    @property
    def breached(self) -> bool:
        return self.breached_at is not None


class EscalationRun(models.Model):
    """One escalation level done for one timer: the unique constraint is what makes each level run once,
    whatever the number of sweeps, deliveries or workers. ``notified`` records the event and recipients
    (``{"event", "persons": [ids], "groups": [ids], "key"}``); ``done`` the other actions' results."""

    timer = models.ForeignKey(SLATimer, on_delete=models.CASCADE, related_name="runs")
    level = models.ForeignKey(EscalationLevel, on_delete=models.CASCADE, related_name="runs")
    ran_at = models.DateTimeField()
    notified: models.JSONField[Any, Any] = models.JSONField(default=dict)
    done: models.JSONField[Any, Any] = models.JSONField(default=dict)

    class Meta:
        ordering = ["ran_at", "id"]
        constraints = [models.UniqueConstraint(fields=["timer", "level"], name="uniq_escalation_run")]
