"""Timer replay: from a record's history to its SLA timers. Pure functions (no database writes).

A timer is derived only from the record's ``opened_at`` and its activity history (``ActivityEntry``:
``verb``, ``at``, ``source``, ``changes`` = field -> [old, new]), replayed in ``(at, id)`` order, so the
same history always gives the same timers: recomputing after a policy change, a second run, or an import
(whose entries carry the source system's timestamps) answers as a fresh computation.

Rules (ITIL 4 service level management: response and resolution targets measured in agreed service
hours, with time spent waiting on the customer excluded; ServiceNow SLA definitions: start, pause and
stop conditions):

Incidents
- Both timers start at ``opened_at``.
- Response stops at the first acknowledgement: the first entry after which the state is no longer
  ``new``, or in which ``assigned_to`` is set by someone other than the system, whichever comes first.
  Either is a person of the provider taking the record on (ServiceNow's response definitions stop on
  "State is not New" or "Assigned to is not empty"; taking both avoids counting a technician who
  assigned a call to themselves but left it New as unanswered). An assignment made by the system (an
  escalation's reassignment) is routing, not an answer, so it does not count.
- Resolution pauses while the incident is On Hold for the customer (``awaiting_user_info``), a vendor
  (``awaiting_vendor``) or a problem (``awaiting_problem``): time the provider cannot act (ServiceNow's
  default pause condition). ``awaiting_evidence`` (the provider collecting logs) does not pause. It
  stops at resolved, closed or canceled; a reopen resumes it with the elapsed time kept.

Service requests (modules/requests: submitted, pending approval, approved, in progress, fulfilled,
rejected, cancelled)
- Both timers start at ``opened_at`` and pause while the request is ``pending_approval``: the client's
  own approver holds it, which the provider cannot shorten (ServiceNow's requested-item SLAs start only
  after approval; pausing gives the same elapsed time and keeps one start rule).
- Response stops at the first fulfilment action by a person: a task started, completed or skipped, or a
  task assigned to someone; or when the request reaches a final state.
- Resolution stops at fulfilled, rejected or cancelled.

A stopped timer is met when its elapsed business time is at most the target, breached otherwise. Times
are UTC; durations are exact ``timedelta`` values here and whole seconds once stored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calendar import Calendar, business_deadline_after, business_time_between

RUN, PAUSE, STOP = "run", "pause", "stop"
ZERO = dt.timedelta(0)

INCIDENT_PAUSING_HOLDS = frozenset({"awaiting_user_info", "awaiting_vendor", "awaiting_problem"})
INCIDENT_FINAL = frozenset({"resolved", "closed", "canceled"})
REQUEST_FINAL = frozenset({"fulfilled", "rejected", "cancelled"})
REQUEST_PAUSED = frozenset({"pending_approval"})
TASK_ACTIONS = frozenset({"task.start", "task.complete", "task.skip"})


@dataclass(frozen=True)
class HistoryEntry:
    """What the replay reads of one ActivityEntry."""

    at: dt.datetime
    verb: str
    source: str
    changes: dict[str, Any]


@dataclass
class Trace:
    """A timer's running spans (UTC; the last one open, ``end`` None, while the timer runs) and its
    current condition."""

    segments: list[tuple[dt.datetime, dt.datetime | None]] = field(default_factory=list)
    stopped_at: dt.datetime | None = None
    paused_since: dt.datetime | None = None

    @property
    def running(self) -> bool:
        return bool(self.segments) and self.segments[-1][1] is None


def _new_value(changes: dict[str, Any], name: str) -> Any:
    pair = changes.get(name)
    if isinstance(pair, list | tuple) and len(pair) == 2:
        return pair[1]
    return None


def _trace(observations: Iterable[tuple[dt.datetime, str]]) -> Trace:
    trace = Trace()
    current, opened = None, None
    for at, status in observations:
        if status == current:
            continue
        if current == RUN:
            trace.segments.append((opened, at))  # type: ignore[arg-type]
        if status == RUN:
            opened = at
        current = status
        trace.stopped_at = at if status == STOP else None
        trace.paused_since = at if status == PAUSE else None
    if current == RUN:
        trace.segments.append((opened, None))  # type: ignore[arg-type]
    return trace


def replay(*, record_type: str, opened_at: dt.datetime, entries: Sequence[HistoryEntry]) -> dict[str, Trace]:
    """Replay a record's history: ``{"response": Trace, "resolution": Trace}`` by the rules of the module
    docstring. ``entries`` in ``(at, id)`` order; an entry dated before ``opened_at`` counts at
    ``opened_at``. Raises ValueError for an unknown record type."""
    if record_type not in ("incident", "service_request"):
        raise ValueError(f"no SLA rules for {record_type!r}")
    incident = record_type == "incident"
    state = "new" if incident else "submitted"
    hold = ""
    acknowledged = False
    response: list[tuple[dt.datetime, str]] = [(opened_at, RUN)]
    resolution: list[tuple[dt.datetime, str]] = [(opened_at, RUN)]
    for entry in entries:
        at = max(entry.at, opened_at)
        changes = entry.changes or {}
        own_verb = entry.verb.startswith("incident." if incident else "service_request.")
        if own_verb and _new_value(changes, "state"):
            state = str(_new_value(changes, "state"))
        if incident and own_verb and "hold_reason" in changes:
            hold = str(_new_value(changes, "hold_reason") or "")
        if incident:
            status = (
                STOP
                if state in INCIDENT_FINAL
                else PAUSE
                if state == "on_hold" and hold in INCIDENT_PAUSING_HOLDS
                else RUN
            )
        else:
            status = STOP if state in REQUEST_FINAL else PAUSE if state in REQUEST_PAUSED else RUN
        resolution.append((at, status))
        if acknowledged:
            continue
        by_person = entry.source != "system"
        if incident:
            assigned = own_verb and by_person and bool(_new_value(changes, "assigned_to"))
            acknowledged = state != "new" or assigned
        else:
            acted = entry.verb in TASK_ACTIONS or (
                entry.verb == "task.updated" and bool(_new_value(changes, "assigned_to"))
            )
            acknowledged = status == STOP or (by_person and acted)
        response.append((at, STOP if acknowledged else status))
    return {"response": _trace(response), "resolution": _trace(resolution)}


def instant_at(
    calendar: Calendar, segments: Sequence[tuple[dt.datetime, dt.datetime | None]], amount: dt.timedelta
) -> dt.datetime | None:
    """The UTC instant at which the running spans have accumulated ``amount`` of business time (an open
    last span runs on forever); None when closed spans never reach it."""
    total = ZERO
    for start, end in segments:
        if end is None:
            return business_deadline_after(calendar, start, amount - total)
        span = business_time_between(calendar, start, end)
        if total + span >= amount:
            return business_deadline_after(calendar, start, amount - total)
        total += span
    return None


def percent_seconds(target_seconds: int, percent: int) -> int:
    """``percent`` % of a target in whole seconds, rounded up (100 % is the target itself)."""
    return -(-target_seconds * percent // 100)


@dataclass(frozen=True)
class TimerState:
    """A computed timer. ``elapsed`` is business time of the running spans up to ``now`` (exact);
    ``due_at`` / ``breached_at`` UTC as on SLATimer; ``thresholds`` maps an escalation level id to the
    instant its share of the target is used up (running timers only)."""

    kind: str
    stage: str
    started_at: dt.datetime
    stopped_at: dt.datetime | None
    paused_since: dt.datetime | None
    elapsed: dt.timedelta
    target_seconds: int
    due_at: dt.datetime | None
    breached_at: dt.datetime | None
    thresholds: dict[int, dt.datetime]


def timer_compute(
    *,
    kind: str,
    trace: Trace,
    calendar: Calendar,
    target_seconds: int,
    started_at: dt.datetime,
    now: dt.datetime,
    levels: Iterable[tuple[int, int]] = (),
) -> TimerState:
    """Compute one timer at ``now`` (UTC) from its trace. ``levels``: ``(level id, percent)`` of the
    escalation levels of this timer's kind. Stage: running, paused, met (stopped, elapsed <= target) or
    breached (stopped, elapsed > target)."""
    target = dt.timedelta(seconds=target_seconds)
    closed = [(a, b if b is not None else max(a, now)) for a, b in trace.segments]
    elapsed = sum((business_time_between(calendar, a, b) for a, b in closed), ZERO)
    extended: list[tuple[dt.datetime, dt.datetime | None]] = list(trace.segments)
    if extended and extended[-1][1] is not None:
        extended[-1] = (extended[-1][0], None)  # the deadline it had when it stopped
    if trace.stopped_at is not None:
        stage = "breached" if elapsed > target else "met"
        due_at = instant_at(calendar, extended, target)
    elif trace.running:
        stage, due_at = "running", instant_at(calendar, extended, target)
    else:
        stage, due_at = "paused", None
    breached_at = instant_at(calendar, closed, target) if elapsed > target else None
    thresholds: dict[int, dt.datetime] = {}
    if stage == "running":
        for level_id, percent in levels:
            when = instant_at(
                calendar, trace.segments, dt.timedelta(seconds=percent_seconds(target_seconds, percent))
            )
            if when is not None:
                thresholds[level_id] = when
    return TimerState(
        kind=kind,
        stage=stage,
        started_at=started_at,
        stopped_at=trace.stopped_at,
        paused_since=trace.paused_since,
        elapsed=elapsed,
        target_seconds=target_seconds,
        due_at=due_at,
        breached_at=breached_at,
        thresholds=thresholds,
    )


@dataclass(frozen=True)
class Conditions:
    """A policy's conditions (empty priorities / blank category / null CI = any)."""

    record_type: str
    priorities: tuple[int, ...]
    category: str
    configuration_item_id: uuid.UUID | None


def conditions_match(
    conditions: Conditions,
    *,
    record_type: str,
    priority: int | None,
    categories: Sequence[str],
    configuration_item_id: uuid.UUID | None,
) -> bool:
    """Whether a record matches a policy's conditions. Records without a priority (service requests)
    match only policies without priorities; a category compares case-insensitively with any of the
    record's categories (an incident's category; a request's catalog categories)."""
    if conditions.record_type != record_type:
        return False
    if conditions.priorities and priority not in conditions.priorities:
        return False
    if conditions.category and conditions.category.casefold() not in {c.casefold() for c in categories}:
        return False
    return not (
        conditions.configuration_item_id is not None
        and conditions.configuration_item_id != configuration_item_id
    )
