"""The daily rollup's SLA outcomes: a resolution timer counts as met or breached on the tenant's local
day it stopped, moves when a policy change turns met into breached, is taken back by a reopen, and the
nightly rebuild gives the same counts as the live updates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.workindex.models import TenantDailyRollup
from controlplane.workindex.services import workindex_rollup_rebuild
from modules.records.actor import Actor
from modules.sla.services import policy_update, sla_refresh
from tenants.models import Tenant

from .factories import ADMIN, contract, london_calendar, policy
from .test_timers import act, london_incident, utc

RESOLVED_DAY = dt.date(2024, 12, 27)  # resolved Fri 27 Dec 2024 13:00 UTC = 13:00 in London


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


def outcomes(tenant: Tenant) -> dict[dt.date, tuple[int, int]]:
    rows = TenantDailyRollup.objects.filter(tenant=tenant, record_type="incident").exclude(
        sla_met=0, sla_breached=0
    )
    return {row.day: (row.sla_met, row.sla_breached) for row in rows}


def test_outcomes_follow_the_resolution_timer_and_the_rebuild_agrees(tech: Actor, tenant_a: Tenant) -> None:
    p3 = policy(contract(london_calendar()), response_target_minutes=60, resolution_target_minutes=20 * 60)
    incident = london_incident(tech)  # resolved within 19 business hours of 20: met
    assert outcomes(tenant_a) == {RESOLVED_DAY: (1, 0)}
    sla_refresh(record_type="incident", record_id=incident.pk)  # refreshing again counts nothing more
    assert outcomes(tenant_a) == {RESOLVED_DAY: (1, 0)}

    policy_update(actor=ADMIN, policy=p3, resolution_target_minutes=18 * 60)
    sla_refresh(record_type="incident", record_id=incident.pk)
    assert outcomes(tenant_a) == {RESOLVED_DAY: (0, 1)}

    workindex_rollup_rebuild(days=400, now=utc(2025, 1, 6, 9))
    assert outcomes(tenant_a) == {RESOLVED_DAY: (0, 1)}

    act(tech, incident, "reopen", utc(2024, 12, 30, 9))  # running again: no outcome
    assert outcomes(tenant_a) == {}
    workindex_rollup_rebuild(days=400, now=utc(2025, 1, 6, 9))
    assert outcomes(tenant_a) == {}


def test_the_rebuild_restores_counts_lost_from_the_rollup(tech: Actor, tenant_a: Tenant) -> None:
    policy(contract(london_calendar()), response_target_minutes=60, resolution_target_minutes=20 * 60)
    london_incident(tech)
    TenantDailyRollup.objects.filter(tenant=tenant_a).update(sla_met=0, sla_breached=7)
    workindex_rollup_rebuild(days=400, now=utc(2025, 1, 6, 9))
    assert outcomes(tenant_a) == {RESOLVED_DAY: (1, 0)}
