"""Timers replayed from history: an incident through a weekend, Christmas holidays and holds in
Europe/London; business deadlines in America/New_York across the March change; recomputation after a
policy change equals a fresh computation; service requests pause while their approval is pending."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.workindex.models import WorkItem
from modules.incidents.models import Incident
from modules.incidents.servicenow import servicenow_import
from modules.incidents.services import incident_transition
from modules.records.actor import Actor
from modules.requests.models import Approval, FulfilmentTask
from modules.requests.services import StepSpec, approval_decide, request_submit, task_transition
from modules.requests.tests.factories import end_user, item, person
from modules.sla.models import SLATimer
from modules.sla.services import calendar_create, policy_update, sla_refresh, sla_refresh_many
from tenants.models import Tenant

from .factories import ADMIN, contract, incident_opened, indexed, london_calendar, office_hours, policy

UTC = dt.UTC


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


def timer(incident: Any, kind: str) -> SLATimer:
    return SLATimer.objects.get(record_id=incident.pk, kind=kind)


def shape(t: SLATimer) -> tuple[Any, ...]:
    return (t.stage, t.elapsed_business_seconds, t.target_seconds, t.due_at, t.stopped_at, t.breached_at)


def act(actor: Actor, incident: Incident, action: str, at: dt.datetime, hold_reason: str = "") -> Incident:
    return incident_transition(
        actor=actor,
        incident=incident,
        action=action,
        hold_reason=hold_reason,
        resolution_code="solved_permanently",
        resolution_notes="mailbox moved",
        now=at,
    )


def london_incident(tech: Actor) -> Incident:
    """Opened Thu 19 Dec 2024 15:00 (London = UTC in winter); holds for the customer and a vendor, a
    hold awaiting evidence that does not pause; Christmas Day and Boxing Day in between."""
    incident = incident_opened(tech, utc(2024, 12, 19, 15))
    incident = act(tech, incident, "start", utc(2024, 12, 19, 15, 30))
    incident = act(tech, incident, "hold", utc(2024, 12, 20, 12), "awaiting_user_info")
    incident = act(tech, incident, "resume", utc(2024, 12, 23, 10))
    incident = act(tech, incident, "hold", utc(2024, 12, 24, 11), "awaiting_vendor")
    incident = act(tech, incident, "start", utc(2024, 12, 24, 16))
    incident = act(tech, incident, "hold", utc(2024, 12, 27, 10), "awaiting_evidence")
    return act(tech, incident, "resolve", utc(2024, 12, 27, 13))


def test_incident_replayed_through_weekend_holidays_and_holds_in_london(tech: Actor) -> None:
    p3 = policy(contract(london_calendar()), response_target_minutes=60, resolution_target_minutes=20 * 60)
    incident = london_incident(tech)

    # Saturday: paused since Friday 12:00 after Thu 15-17 and Fri 09-12 (5 h); no deadline while paused.
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2024, 12, 21, 10))
    resolution = timer(incident, "resolution")
    assert (resolution.stage, resolution.elapsed_business_seconds, resolution.due_at) == (
        "paused",
        18000,
        None,
    )
    assert resolution.paused_since == utc(2024, 12, 20, 12)

    # Monday noon: running again since 10:00 (7 h); 13 h left: Mon 12-17, Tue 09-17 -> due Tue 17:00.
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2024, 12, 23, 12))
    resolution = timer(incident, "resolution")
    assert shape(resolution) == ("running", 25200, 72000, utc(2024, 12, 24, 17), None, None)

    # Resolved Fri 27 13:00: Mon 10-17 (7) + Tue 09-11 (2) + Tue 16-17 (1) + Fri 09-13 (4) + 5 = 19 h, met.
    # The deadline it had: 6 h left at Tue 16:00 -> Tue 16-17, (25th, 26th holidays), Fri 09-14.
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2025, 1, 6, 9))
    resolution = timer(incident, "resolution")
    assert shape(resolution) == ("met", 68400, 72000, utc(2024, 12, 27, 14), utc(2024, 12, 27, 13), None)
    response = timer(incident, "response")
    assert shape(response) == ("met", 1800, 3600, utc(2024, 12, 19, 16), utc(2024, 12, 19, 15, 30), None)
    assert p3.timers.count() == 2


def test_recomputing_after_a_policy_change_equals_a_fresh_computation(tech: Actor) -> None:
    p3 = policy(contract(london_calendar()), response_target_minutes=60, resolution_target_minutes=20 * 60)
    incident = london_incident(tech)
    now = utc(2025, 1, 6, 9)
    sla_refresh(record_type="incident", record_id=incident.pk, now=now)
    before = [shape(t) for t in SLATimer.objects.filter(record_id=incident.pk)]
    sla_refresh(record_type="incident", record_id=incident.pk, now=now)
    assert [shape(t) for t in SLATimer.objects.filter(record_id=incident.pk)] == before

    policy_update(actor=ADMIN, policy=p3, resolution_target_minutes=18 * 60)
    sla_refresh(record_type="incident", record_id=incident.pk, now=now)
    recomputed = [shape(t) for t in SLATimer.objects.filter(record_id=incident.pk)]
    # 18 h are used up on Fri 27 at 12:00 (15 h by Tue 17:00, then Fri 09-12): breached by one hour.
    assert shape(timer(incident, "resolution")) == (
        "breached",
        68400,
        64800,
        utc(2024, 12, 27, 12),
        utc(2024, 12, 27, 13),
        utc(2024, 12, 27, 12),
    )

    SLATimer.objects.filter(record_id=incident.pk).delete()
    sla_refresh(record_type="incident", record_id=incident.pk, now=now)
    assert [shape(t) for t in SLATimer.objects.filter(record_id=incident.pk)] == recomputed


def test_business_deadlines_in_new_york_across_the_march_change_are_utc(tech: Actor) -> None:
    eastern = calendar_create(
        actor=ADMIN,
        name="New York office",
        time_zone="America/New_York",
        holiday_country="US",
        working_hours=office_hours(),
    )
    policy(contract(eastern), resolution_target_minutes=4 * 60)
    # Fri 8 March 2024 16:00 EST = 21:00 UTC. 1 h on Friday; Monday 09:00 EDT = 13:00 UTC; + 3 h.
    incident = incident_opened(tech, utc(2024, 3, 8, 21))
    indexed(incident)
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2024, 3, 11, 14))
    resolution = timer(incident, "resolution")
    assert shape(resolution) == ("running", 2 * 3600, 4 * 3600, utc(2024, 3, 11, 16), None, None)
    row = WorkItem.objects.get(record_id=incident.pk)
    assert (row.resolution_due_at, row.response_due_at, row.sla_due_at) == (
        utc(2024, 3, 11, 16),
        None,
        utc(2024, 3, 11, 16),
    )
    # Default levels at 75 / 90 / 100 % of 4 h: 3 h in at 15:00 UTC Monday is the next one.
    assert row.next_escalation_at == utc(2024, 3, 11, 15)
    assert (row.sla_paused, row.breached) == (False, False)

    # The same target in calendar time (24x7) is four real hours later.
    policy_update(actor=ADMIN, policy=resolution.policy, business_time=False)
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2024, 3, 11, 14))
    # Running, 65 real hours in, breached at 01:00 UTC on Saturday.
    assert shape(timer(incident, "resolution")) == (
        "running",
        65 * 3600,
        4 * 3600,
        utc(2024, 3, 9, 1),
        None,
        utc(2024, 3, 9, 1),
    )
    assert WorkItem.objects.get(record_id=incident.pk).breached is True


def test_holds_for_the_customer_pause_but_awaiting_evidence_does_not(tech: Actor) -> None:
    policy(contract(london_calendar()), resolution_target_minutes=60, business_time=False)
    incident = incident_opened(tech, utc(2025, 2, 3, 9))
    incident = act(tech, incident, "hold", utc(2025, 2, 3, 9, 10), "awaiting_evidence")
    incident = act(tech, incident, "start", utc(2025, 2, 3, 9, 20))
    incident = act(tech, incident, "hold", utc(2025, 2, 3, 9, 30), "awaiting_problem")
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2025, 2, 3, 12))
    resolution = timer(incident, "resolution")
    assert (resolution.stage, resolution.elapsed_business_seconds) == ("paused", 30 * 60)


def test_a_reopen_resumes_the_resolution_timer_with_its_elapsed_time(tech: Actor) -> None:
    policy(contract(london_calendar()), resolution_target_minutes=120, business_time=False)
    incident = incident_opened(tech, utc(2025, 2, 3, 9))
    incident = act(tech, incident, "resolve", utc(2025, 2, 3, 10))
    incident = act(tech, incident, "reopen", utc(2025, 2, 3, 12))
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2025, 2, 3, 12, 30))
    resolution = timer(incident, "resolution")
    assert shape(resolution) == ("running", 90 * 60, 7200, utc(2025, 2, 3, 13), None, None)


def test_no_matching_policy_means_no_timers(tech: Actor) -> None:
    policy(contract(london_calendar()), resolution_target_minutes=60)  # priority 3 only
    incident = incident_opened(tech, utc(2025, 2, 3, 9), impact=1, urgency=1)  # priority 1
    sla_refresh(record_type="incident", record_id=incident.pk, now=utc(2025, 2, 3, 12))
    assert SLATimer.objects.filter(record_id=incident.pk).count() == 0


def test_a_request_pauses_while_its_approval_is_pending(tech: Actor) -> None:
    policy(
        contract(london_calendar()),
        name="Requests",
        record_type="service_request",
        priorities=[],
        response_target_minutes=4 * 60,
        resolution_target_minutes=8 * 60,
        business_time=False,
    )
    manager = person("Morgan")
    alice = person("Alice", manager=manager)
    laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    t0 = utc(2026, 3, 2, 9)
    request = request_submit(
        actor=end_user(alice),
        items=[{"catalog_item": laptop, "variables": {"reason": "old one broke", "model": "standard"}}],
        now=t0,
    )
    approval = Approval.objects.get(request=request)
    approval_decide(
        actor=end_user(manager), approval=approval, decision="approve", now=t0 + dt.timedelta(hours=2)
    )
    task = FulfilmentTask.objects.get(requested_item__request=request)
    task_transition(actor=tech, task=task, action="start", now=t0 + dt.timedelta(hours=3))
    task_transition(actor=tech, task=task, action="complete", now=t0 + dt.timedelta(hours=6))
    sla_refresh(record_type="service_request", record_id=request.pk, now=t0 + dt.timedelta(days=1))
    response, resolution = timer(request, "response"), timer(request, "resolution")
    # Two hours pending approval count for neither timer.
    assert shape(response) == (
        "met",
        3600,
        14400,
        t0 + dt.timedelta(hours=6),
        t0 + dt.timedelta(hours=3),
        None,
    )
    assert shape(resolution) == (
        "met",
        4 * 3600,
        28800,
        t0 + dt.timedelta(hours=10),
        t0 + dt.timedelta(hours=6),
        None,
    )


def test_imported_history_gives_the_same_timers_as_a_fresh_computation(tech: Actor) -> None:

    policy(
        contract(london_calendar(), starts_on=dt.date(2010, 1, 1)),
        priorities=[],
        resolution_target_minutes=8 * 60,
        response_target_minutes=60,
    )
    log = Path(__file__).resolve().parents[3] / "tests" / "data" / "servicenow_incident_event_log.csv"
    lines = log.open(encoding="utf-8").readlines()[:80]
    report = servicenow_import(stream=io.StringIO("".join(lines)), time_zone="Europe/London")
    assert report.incidents > 0
    ids = list(Incident.objects.values_list("pk", flat=True))
    now = utc(2025, 1, 1)

    def snapshot() -> list[tuple[Any, ...]]:
        return [
            (t.record_id, t.kind, *shape(t), t.started_at)
            for t in SLATimer.objects.order_by("record_id", "kind")
        ]

    assert sla_refresh_many(record_type="incident", record_ids=ids, now=now) == len(ids)
    imported = snapshot()
    assert len(imported) == 2 * len(ids)
    SLATimer.objects.all().delete()
    sla_refresh_many(record_type="incident", record_ids=ids, now=now)
    assert snapshot() == imported
