"""The default matrix reproduces the one the shared ServiceNow log was recorded with."""

from __future__ import annotations

import csv
from pathlib import Path

from django_tenants.utils import tenant_context

from modules.incidents.servicenow import LEVELS, PRIORITIES
from modules.incidents.services import priority_for
from tenants.models import Tenant

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "servicenow_incident_event_log.csv"


def test_default_matrix_gives_every_recorded_priority(tenant_a: Tenant) -> None:
    with DATA.open(newline="") as stream:
        recorded = {
            (LEVELS[r["impact"]], LEVELS[r["urgency"]], PRIORITIES[r["priority"]])
            for r in csv.DictReader(stream)
        }
    assert len({(i, u) for i, u, _ in recorded}) == 8  # every pair but impact 1 x urgency 3 occurs
    with tenant_context(tenant_a):
        assert {(i, u, priority_for(impact=i, urgency=u)) for i, u, _ in recorded} == recorded
