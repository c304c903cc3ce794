"""Alert rules on the real database (0018 "Alerts → incidents"): each kind fires after N minutes and not
before, repeats merge into the open alert, clearing resolves the incident (or only notes it when someone
is assigned), an approved change's window mutes the CI, offline agents."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.changes.models import Change, ChangeCI
from modules.cmdb.models import ConfigurationItem
from modules.incidents.models import Incident
from modules.incidents.services import incident_update
from modules.monitoring.ingest import offline_evaluate
from modules.monitoring.models import Alert, AlertRule
from modules.monitoring.services import alert_rule_create, alert_rule_update
from modules.records.actor import Actor
from modules.records.models import Comment
from tenants.models import Tenant

from .factories import AGENT, at, minutes


def rule(kind: str = "cpu", **values: Any) -> AlertRule:
    values.setdefault("threshold", 90 if kind in ("cpu", "memory", "disk") else None)
    values.setdefault("minutes", 5)
    return alert_rule_create(actor=Actor.system(), name=f"{kind} rule", kind=kind, **values)


def notes(incident: Incident) -> list[str]:
    return list(
        Comment.objects.filter(record_id=incident.pk, is_work_note=True)
        .order_by("created_at")
        .values_list("body", flat=True)
    )


@pytest.mark.parametrize(
    ("kind", "firing", "calm", "extra"),
    [
        ("cpu", {"cpu": 95}, {"cpu": 50}, {}),
        ("memory", {"memory": 95}, {"memory": 50}, {}),
        ("disk", {"disks": (20, 96)}, {"disks": (20, 40)}, {}),
        ("service_stopped", {"stopped": ("nginx",)}, {}, {"service": "nginx"}),
    ],
)
def test_each_kind_fires_after_n_minutes_and_not_before(
    tenant_a: Tenant, kind: str, firing: dict[str, Any], calm: dict[str, Any], extra: dict[str, Any]
) -> None:
    with tenant_context(tenant_a):
        watched = rule(kind, impact=1, urgency=2, **extra)
        minutes(0, 2, **calm)
        minutes(3, 7, **firing)  # above from minute 3: 4 minutes held at minute 7
        assert not Alert.objects.exists()
        assert not Incident.objects.exists()
        minutes(8, 8, **firing)  # 5 minutes held
        alert = Alert.objects.get()
        incident = alert.incident
        assert incident is not None
        ci = ConfigurationItem.objects.get(external_ref=f"agent:{AGENT}")
        assert (alert.rule, alert.state, alert.ci, alert.agent_id, alert.repeat_count) == (
            watched,
            "open",
            ci,
            AGENT,
            0,
        )
        assert (incident.category, incident.contact_type, incident.caller_id) == (
            "monitoring",
            "monitoring",
            None,
        )
        assert (incident.configuration_item, incident.impact, incident.urgency) == (ci, 1, 2)
        assert incident.short_description.startswith("web-01: ")


def test_a_gap_in_the_samples_does_not_cover_the_window(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        rule()
        minutes(0, 2, cpu=95)
        minutes(9, 12, cpu=95)  # held 3 minutes since the gap, 12 minutes since the first
        assert not Alert.objects.exists()
        minutes(13, 14, cpu=95)
        assert Alert.objects.filter(state="open").count() == 1


def test_repeats_merge_into_the_open_alert_with_a_note_at_most_every_30_minutes(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        rule()
        minutes(0, 5, cpu=95)
        minutes(6, 45, cpu=97)
        alert = Alert.objects.get()
        assert alert.incident is not None
        assert (alert.repeat_count, alert.last_fired_at) == (40, at(45))
        assert Incident.objects.count() == 1
        assert len(notes(alert.incident)) == 1  # at minute 35, 30 minutes after opening
        assert notes(alert.incident)[0].startswith("Monitoring: still firing (30 repeats)")


def test_clearing_resolves_the_incident_with_a_note(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        rule()
        minutes(0, 5, cpu=95)
        minutes(6, 6, cpu=40)
        alert = Alert.objects.get()
        assert (alert.state, alert.cleared_at) == ("cleared", at(6))
        incident = alert.incident
        assert incident is not None
        incident.refresh_from_db()
        assert incident.state == "resolved"
        assert incident.resolution_notes.startswith(
            "Monitoring: the condition cleared at 2026-12-02 09:06 UTC"
        )
        # Firing again opens a new alert and a new incident.
        minutes(7, 12, cpu=95)
        assert Alert.objects.filter(state="open").count() == 1
        assert Incident.objects.count() == 2


def test_clearing_an_assigned_incident_only_notes_it(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        rule()
        minutes(0, 5, cpu=95)
        alert = Alert.objects.get()
        tech = actor_in(tenant_a, tech_a)
        assert alert.incident is not None
        incident_update(actor=tech, incident=alert.incident, assigned_to=tech.person)
        minutes(6, 6, cpu=40)
        incident = Incident.objects.get()
        assert incident.state == "new"
        assert notes(incident)[-1].startswith("Monitoring: the condition cleared at 2026-12-02 09:06 UTC")
        assert Alert.objects.get().state == "cleared"


def test_an_approved_change_window_mutes_the_ci(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        rule()
        minutes(0, 0, cpu=10)  # the computer CI exists from the first report
        ci = ConfigurationItem.objects.get(external_ref=f"agent:{AGENT}")
        change = Change.objects.create(
            number="CHG0000001",
            change_type="normal",
            short_description="Patch web-01",
            state="scheduled",
            planned_start=at(1),
            planned_end=at(20),
        )
        ChangeCI.objects.create(change=change, configuration_item=ci)
        minutes(1, 19, cpu=95)
        alert = Alert.objects.get()
        assert (alert.state, alert.incident, alert.muted_by_change_id) == ("open", None, change.pk)
        assert alert.muted_by_change == "CHG0000001 Patch web-01"
        assert not Incident.objects.exists()
        minutes(20, 20, cpu=95)  # the window is over and it still fires
        alert.refresh_from_db()
        assert alert.incident is not None
        assert Incident.objects.count() == 1


def test_a_change_not_approved_does_not_mute(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        rule()
        minutes(0, 0, cpu=10)
        ci = ConfigurationItem.objects.get(external_ref=f"agent:{AGENT}")
        change = Change.objects.create(
            number="CHG0000001",
            change_type="normal",
            short_description="Patch web-01",
            state="authorise",
            planned_start=at(0),
            planned_end=at(60),
        )
        ChangeCI.objects.create(change=change, configuration_item=ci)
        minutes(1, 6, cpu=95)
        assert Alert.objects.get().incident is not None


def test_offline_fires_after_n_minutes_and_clears(tenant_a: Tenant) -> None:
    other = AGENT.__class__("01900000-0000-7000-8000-0000000000ff")
    with tenant_context(tenant_a):
        rule("offline", minutes=10)
        agents = {AGENT: ("web-01", at(0)), other: ("never", None)}
        offline_evaluate(agents=agents, now=at(9))
        assert not Alert.objects.exists()
        offline_evaluate(agents=agents, now=at(10))
        alert = Alert.objects.get()
        assert alert.incident is not None
        assert alert.ci.name == "web-01"  # made for the alert: the agent never reported
        offline_evaluate(agents=agents, now=at(11))
        alert.refresh_from_db()
        assert alert.repeat_count == 1
        offline_evaluate(agents={AGENT: ("web-01", at(12))}, now=at(12))
        alert.refresh_from_db()
        assert alert.state == "cleared"
        alert.incident.refresh_from_db()
        assert alert.incident.state == "resolved"
        # An agent no longer active (revoked) has its open offline alert cleared.
        offline_evaluate(agents={AGENT: ("web-01", at(12))}, now=at(30))
        assert Alert.objects.filter(state="open").count() == 1
        offline_evaluate(agents={}, now=at(31))
        assert not Alert.objects.filter(state="open").exists()


def test_disabling_a_rule_clears_its_open_alerts_and_leaves_the_incident(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        watched = rule()
        minutes(0, 5, cpu=95)
        alert_rule_update(actor=Actor.system(), rule=watched, enabled=False)
        assert Alert.objects.get().state == "cleared"
        assert Incident.objects.get().state == "new"
        minutes(6, 20, cpu=95)
        assert Alert.objects.count() == 1


def test_a_batch_applied_twice_counts_one_repeat(tenant_a: Tenant) -> None:
    from modules.monitoring.ingest import reports_apply

    from .factories import metrics_data, report

    with tenant_context(tenant_a):
        rule()
        minutes(0, 5, cpu=95)
        batch = [report("metrics", at(6), metrics_data(cpu=95))]
        reports_apply(reports=batch, now=at(6))
        reports_apply(reports=batch, now=at(6) + dt.timedelta(seconds=30))
        assert Alert.objects.get().repeat_count == 1


def test_an_incident_the_tenant_refuses_keeps_the_alert_without_one(tenant_a: Tenant) -> None:
    from modules.incidents.models import PriorityRule

    with tenant_context(tenant_a):
        PriorityRule.objects.filter(impact=1, urgency=1).delete()  # no priority for this cell
        rule(impact=1, urgency=1)
        minutes(0, 5, cpu=95)  # the refused incident rolls back to its savepoint only
        alert = Alert.objects.get()
        assert (alert.state, alert.incident) == ("open", None)
        assert not Incident.objects.exists()
        assert ConfigurationItem.objects.filter(external_ref=f"agent:{AGENT}").exists()
        # Tried again every 30 minutes, not on every sample; once the cell exists, the incident opens.
        PriorityRule.objects.create(impact=1, urgency=1, priority=1)
        minutes(6, 34, cpu=95)
        assert not Incident.objects.exists()
        minutes(35, 35, cpu=95)
        alert.refresh_from_db()
        assert alert.incident is not None and alert.incident.priority == 1


def test_a_second_offline_rule_fires_beside_an_open_alert_of_the_first(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        rule("offline", minutes=10)
        rule("offline", minutes=60)
        agents: dict[uuid.UUID, tuple[str, dt.datetime | None]] = {AGENT: ("web-01", at(0))}
        offline_evaluate(agents=agents, now=at(10))
        assert Alert.objects.filter(state="open").count() == 1
        offline_evaluate(agents=agents, now=at(60))
        assert Alert.objects.filter(state="open").count() == 2
