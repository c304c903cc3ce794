"""Monitoring pages through the real middleware: who may see and change what (a refusal writes
nothing), form errors, four-eyes approval on the page, the device section of an agent's CI page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant, tenant_membership_set
from controlplane.providers.models import Provider
from modules.cmdb.models import ConfigurationItem
from modules.monitoring.ingest import reports_apply
from modules.monitoring.models import AlertRule, Script
from modules.monitoring.services import alert_rule_create, script_create
from modules.records.actor import Actor
from modules.records.models import uuid7
from tenants.models import Tenant

from .factories import AGENT, metrics_data, report

BASE = "/t/acme/monitoring"
RULE = {
    "name": "CPU high",
    "kind": "cpu",
    "threshold": "90",
    "minutes": "5",
    "impact": "2",
    "urgency": "2",
    "enabled": "on",
}


def test_technicians_manage_rules_and_client_admins_are_refused(
    tenant_a: Tenant, tech_a: User, client_for: Callable[..., Client]
) -> None:
    client_admin = make_user("ca@acme.example")
    tenant_membership_set(user=client_admin, tenant=tenant_a, role="client_admin")
    tech, other = client_for(tech_a), client_for(client_admin)
    assert tech.get(f"{BASE}/rules/").status_code == 200
    bad = tech.post(f"{BASE}/rules/new/", {**RULE, "threshold": ""})
    assert bad.status_code == 422
    assert "a percentage from 0 to below 100" in bad.content.decode()
    assert tech.post(f"{BASE}/rules/new/", RULE).status_code == 302
    for url in (f"{BASE}/", f"{BASE}/rules/", f"{BASE}/scripts/"):
        assert other.get(url).status_code == 403
    assert other.post(f"{BASE}/rules/new/", {**RULE, "name": "Theirs"}).status_code == 403
    with tenant_context(tenant_a):
        rule = AlertRule.objects.get()
        assert rule.name == "CPU high"
    assert other.post(f"{BASE}/rules/{rule.pk}/delete/").status_code == 403
    edit = tech.post(f"{BASE}/rules/{rule.pk}/", {**RULE, "minutes": "10"})
    assert edit.status_code == 302
    assert tech.post(f"{BASE}/rules/{rule.pk}/delete/").status_code == 302
    with tenant_context(tenant_a):
        assert not AlertRule.objects.exists()


def test_script_approval_on_the_page_needs_a_second_person(
    provider: Provider, tenant_a: Tenant, tech_a: User, client_for: Callable[..., Client]
) -> None:
    admin = make_user("admin.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=admin, provider=provider, role="admin"), tenant=tenant_a
    )
    tech, boss = client_for(tech_a), client_for(admin)
    created = tech.post(
        f"{BASE}/scripts/new/",
        {"name": "Clean temp", "interpreter": "sh", "parameters": "DAYS, PATH", "body": "rm -rf /tmp/x\n"},
    )
    assert created.status_code == 302
    with tenant_context(tenant_a):
        script = Script.objects.get()
        assert script.parameters == ["DAYS", "PATH"]
    page = f"{BASE}/scripts/{script.pk}/"
    assert "Approve version 1" not in tech.get(page).content.decode()
    assert "Approve version 1" in boss.get(page).content.decode()
    # The technician may not approve (route), nor the admin what they wrote (service): nothing written.
    assert tech.post(f"{page}approve/", {"version": "1"}).status_code == 403
    edited = boss.post(
        page,
        {"name": "Clean temp", "interpreter": "sh", "parameters": "DAYS PATH", "body": "rm -rf /tmp/y\n"},
    )
    assert edited.status_code == 302
    assert boss.post(f"{page}approve/", {"version": "2"}).status_code == 403
    assert boss.post(f"{page}approve/", {"version": "1"}).status_code == 409
    with tenant_context(tenant_a):
        script.refresh_from_db()
        assert (script.version, script.approved_by_user_id) == (2, None)
        # Another admin approves version 2.
        second = make_user("admin2.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=second, provider=provider, role="admin"), tenant=tenant_a
    )
    assert client_for(second).post(f"{page}approve/", {"version": "2"}).status_code == 302
    with tenant_context(tenant_a):
        script.refresh_from_db()
        assert script.approved_by_user_id == second.pk


def test_an_agent_ci_page_shows_metrics_and_open_alerts(
    tenant_a: Tenant, tech_a: User, end_user_a: User, client_for: Callable[..., Client]
) -> None:
    now = timezone.now()
    with tenant_context(tenant_a):
        alert_rule_create(actor=Actor.system(), name="CPU high", kind="cpu", threshold=90, minutes=5)
        script_create(actor=actor_in(tenant_a, tech_a), name="s", interpreter="sh", body="true\n")
        samples = [report("metrics", now - dt.timedelta(minutes=m), metrics_data(cpu=95)) for m in range(11)]
        reports_apply(reports=samples, now=now)
        ci = ConfigurationItem.objects.get(external_ref=f"agent:{AGENT}")
    body = client_for(tech_a).get(f"/t/acme/cmdb/{ci.number}/").content.decode()
    assert "Device metrics" in body
    assert body.count('class="chart" role="img"') == 2  # 24 hours and 30 days
    assert "CPU high" in body and "INC0000001" in body
    # An end user who owns no agent CI sees no device section anywhere (and this CI is not theirs).
    assert client_for(end_user_a).get(f"/t/acme/cmdb/{ci.number}/").status_code == 404
    alerts: Any = client_for(tech_a).get(f"{BASE}/").content.decode()
    assert "INC0000001" in alerts


def test_another_tenants_rule_or_script_answers_like_a_missing_one(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, client_for: Callable[..., Client]
) -> None:
    with tenant_context(tenant_b):
        theirs = actor_in(tenant_b, tech_ab)
        rule = alert_rule_create(actor=theirs, name="B rule", kind="offline", minutes=10)
        script = script_create(actor=theirs, name="B script", interpreter="sh", body="true\n")
    client = client_for(tech_ab)
    for url in (f"{BASE}/rules/{{}}/", f"{BASE}/scripts/{{}}/"):
        mine = client.get(url.format(rule.pk if "rules" in url else script.pk))
        missing = client.get(url.format(uuid7()))
        assert mine.status_code == missing.status_code == 404
    assert client.post(f"{BASE}/rules/{rule.pk}/delete/").status_code == 404
    with tenant_context(tenant_b):
        assert AlertRule.objects.filter(pk=rule.pk).exists()
