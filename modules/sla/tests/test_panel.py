"""The SLA panel on the incident and service request detail pages: due times in the tenant's time zone,
elapsed and remaining business time, the escalation levels run, in two queries whatever the number of
timers; staff only."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.models import Incident
from modules.records.actor import Actor
from modules.requests.services import request_submit
from modules.sla.models import SLATimer
from modules.sla.selectors import sla_panel_get
from modules.sla.services import LevelSpec, sla_escalate, sla_refresh
from modules.sla.templatetags.sla import duration_text, relative_text
from tenants.models import Tenant

from .factories import contract, incident_opened, london_calendar, policy

# Monday 2 June 2025, 08:30 UTC = 09:30 BST in London (tenant A's zone), inside 09:00-17:00 hours.
OPENED = dt.datetime(2025, 6, 2, 8, 30, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def known_incident(tenant: Tenant, user: User) -> Incident:
    """A P3 incident opened at OPENED under a business-hours policy (response 60 min, resolution 8 h)
    whose response level at 75 % notifies the assignee, escalated 50 minutes in (one level run)."""
    tech = actor_in(tenant, user)
    policy(
        contract(london_calendar()),
        name="P3 office hours",
        priorities=[1, 2, 3],
        response_target_minutes=60,
        resolution_target_minutes=480,
        levels=[
            LevelSpec("response", 75, {"notify_assignee": True, "raise_priority": True}),
            LevelSpec("resolution", 75, {"notify_group": True}),
        ],
    )
    incident = incident_opened(tech, OPENED)
    sla_refresh(record_type="incident", record_id=incident.pk, now=OPENED + 10 * MINUTE)
    assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=OPENED + 50 * MINUTE) == 1
    return Incident.objects.get(pk=incident.pk)


def test_panel_shows_due_times_in_the_tenant_zone(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        incident = known_incident(tenant_a, tech_a)
    page = client_for(tech_a).get(f"/t/acme/incidents/{incident.number}/")
    body = page.content.decode()
    assert page.status_code == 200
    panel = body[body.index('<div class="card" id="sla-panel">') :]
    panel = panel[: panel.index("</div>")]
    assert "Times in Europe/London." in panel
    assert panel.count("<td>P3 office hours</td>") == 2
    # Response: 60 business minutes from 09:30 BST. Resolution: 8 h = 7 h 30 min on Monday (to 17:00)
    # and 30 min on Tuesday from 09:00 BST.
    assert "<th>Due</th><td><time>2025-06-02 10:30 BST</time> · overdue by " in panel
    assert "<th>Due</th><td><time>2025-06-03 09:30 BST</time> · overdue by " in panel
    assert panel.index("Response") < panel.index("Resolution")
    # The response level at 75 % ran at 09:20 UTC (10:20 BST): nobody to notify, priority raised P3 -> P2.
    assert (
        "<li>2025-06-02 10:20 BST · 75 % · sla.warning to nobody · priority raised from 3 to 2</li>" in panel
    )


def test_panel_selector_counts_business_time_at_a_given_moment_in_two_queries(
    tenant_a: Tenant, tech_a: User, django_assert_num_queries: Any
) -> None:
    with tenant_context(tenant_a):
        incident = known_incident(tenant_a, tech_a)
        tech = actor_in(tenant_a, tech_a)
        now = OPENED + 100 * MINUTE  # 10:10 UTC, 11:10 BST
        with django_assert_num_queries(2):
            shown = sla_panel_get(actor=tech, record_type="incident", record_id=incident.pk, now=now)
        end_user = sla_panel_get(
            actor=Actor(user_id=None, person=None, role="end_user"),
            record_type="incident",
            record_id=incident.pk,
            now=now,
        )
    assert end_user == []
    assert [(v.timer.kind, v.timer.stage, v.policy_name) for v in shown] == [
        ("response", "running", "P3 office hours"),
        ("resolution", "running", "P3 office hours"),
    ]
    response, resolution = shown
    assert (response.elapsed_seconds, response.remaining_seconds, response.due_in_seconds) == (
        100 * 60,
        -40 * 60,
        -40 * 60,
    )
    assert response.timer.due_at == dt.datetime(2025, 6, 2, 9, 30, tzinfo=dt.UTC)
    assert (resolution.elapsed_seconds, resolution.remaining_seconds) == (100 * 60, 380 * 60)
    assert resolution.due_in_seconds == (22 * 60 + 20) * 60  # Tuesday 08:30 UTC
    assert [(r.ran_at, r.percent, r.did) for r in response.runs] == [
        (OPENED + 50 * MINUTE, 75, ("sla.warning to nobody", "priority raised from 3 to 2"))
    ]
    assert resolution.runs == ()
    assert relative_text(response.due_in_seconds or 0) == "overdue by 40 min"
    assert relative_text(resolution.due_in_seconds or 0) == "in 22 h 20 min"
    assert duration_text(resolution.remaining_seconds) == "6 h 20 min"
    assert (duration_text(3 * 3600), duration_text(59), duration_text(-(2 * 3600 + 10 * 60 + 59))) == (
        "3 h",
        "0 min",
        "2 h 10 min",
    )


def test_panel_query_count_does_not_grow_with_the_runs(
    tenant_a: Tenant, tech_a: User, django_assert_num_queries: Any
) -> None:
    with tenant_context(tenant_a):
        incident = known_incident(tenant_a, tech_a)
        # Past every threshold of both timers (Wednesday): more runs, the same two queries.
        sla_escalate(
            record_type="incident", record_ids=[incident.pk], now=dt.datetime(2025, 6, 4, 12, tzinfo=dt.UTC)
        )
        tech = actor_in(tenant_a, tech_a)
        with django_assert_num_queries(2):
            shown = sla_panel_get(actor=tech, record_type="incident", record_id=incident.pk)
    assert [len(v.runs) for v in shown] == [1, 1]
    assert [v.timer.breached_at is not None for v in shown] == [True, True]


def test_request_detail_page_shows_its_resolution_timer(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    from modules.requests.tests.factories import item

    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        policy(
            contract(london_calendar(), starts_on=dt.date(2020, 1, 1)),
            name="Requests 24x7",
            record_type="service_request",
            priorities=[],
            resolution_target_minutes=2 * 24 * 60,
            business_time=False,
        )
        laptop = item(tech)
        request = request_submit(actor=tech, items=[{"catalog_item": laptop, "variables": {}}])
        timer = SLATimer.objects.get(record_id=request.pk)
    assert (timer.kind, timer.stage, timer.target_seconds) == ("resolution", "running", 2 * 86400)
    body = client_for(tech_a).get(f"/t/acme/requests/{request.number}/").content.decode()
    panel = body[body.index('id="sla-panel"') :]
    assert timer.due_at is not None
    due = timer.due_at.astimezone(zoneinfo.ZoneInfo("Europe/London"))
    assert "<td>Requests 24x7</td>" in panel and '<span class="badge">Running</span>' in panel
    assert f"<th>Due</th><td><time>{due:%Y-%m-%d %H:%M %Z}</time> · in " in panel
