"""``manage.py workindex_reconcile``: rebuilds the expected rows from each tenant schema, reports every
difference (missing, stale with its columns, extra) per tenant and fixes them unless --dry-run; SLA
columns are not compared and survive a fix."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.workindex.models import WorkGroupMember, WorkItem
from controlplane.workindex.services import workindex_sla_set
from modules.incidents.services import incident_create
from modules.people.models import Group, GroupMembership, Person
from modules.records.actor import Actor
from tenants.models import Tenant

DUE = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def person_of(actor: Actor) -> Person:
    assert actor.person is not None
    return actor.person


def reconcile(*args: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    try:
        call_command("workindex_reconcile", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue().strip().splitlines()


@pytest.fixture
def damaged(tenant_a: Tenant, tenant_b: Tenant, tech_ab: User) -> dict[str, uuid.UUID]:
    """Tenant A: a deleted row, a stale row (with SLA columns set) and an extra row; tenant B intact."""
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_ab)
        deleted = incident_create(actor=actor, short_description="Deleted row")
        stale = incident_create(actor=actor, short_description="Stale row")
        workindex_sla_set(
            record_id=stale.pk,
            response_due_at=DUE,
            resolution_due_at=DUE + dt.timedelta(hours=4),
            sla_paused=False,
            breached=True,
            next_escalation_at=DUE,
        )
        desk = Group.objects.create(name="Desk")
        GroupMembership.objects.create(group=desk, person=person_of(actor))  # as before the mirror existed
    with tenant_context(tenant_b):
        incident_create(actor=actor_in(tenant_b, tech_ab), short_description="Fine")
    WorkItem.objects.filter(record_id=deleted.pk).delete()
    WorkItem.objects.filter(record_id=stale.pk).update(title="Old title", state="on_hold", priority=1)
    extra = uuid.uuid4()
    WorkItem.objects.create(
        tenant=tenant_a,
        provider_id=tenant_a.provider_id,
        record_type="incident",
        record_id=extra,
        number="INC0000099",
        title="No such record",
        state="new",
        opened_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return {"deleted": deleted.pk, "stale": stale.pk, "extra": extra, "group": desk.pk}


def test_dry_run_reports_each_difference_and_changes_nothing(
    damaged: dict[str, uuid.UUID], tech_ab: User
) -> None:
    before = sorted(WorkItem.objects.values_list("record_id", "title", "state"))

    code, lines = reconcile("--dry-run")

    assert code == 1
    assert lines == [
        f"acme: missing group_member user {tech_ab.pk} ({damaged['group']})",
        f"acme: missing incident INC0000001 ({damaged['deleted']})",
        f"acme: stale incident INC0000002 ({damaged['stale']}): title, state, priority",
        f"acme: extra incident INC0000099 ({damaged['extra']})",
        "acme: 2 missing, 1 stale, 1 extra (found)",
        "globex: 0 missing, 0 stale, 0 extra (found)",
        json.dumps({"tenants": 2, "missing": 2, "stale": 1, "extra": 1, "fixed": False}),
    ]
    assert sorted(WorkItem.objects.values_list("record_id", "title", "state")) == before
    assert WorkGroupMember.objects.count() == 0


def test_fix_makes_the_index_match_and_keeps_sla_columns(
    damaged: dict[str, uuid.UUID], tenant_a: Tenant, tech_ab: User
) -> None:
    code, lines = reconcile("--tenant", "acme")
    again_code, again = reconcile("--dry-run")

    assert code == 0
    assert lines[-2:] == [
        "acme: 2 missing, 1 stale, 1 extra (fixed)",
        json.dumps({"tenants": 1, "missing": 2, "stale": 1, "extra": 1, "fixed": True}),
    ]
    assert (again_code, again[-1]) == (
        0,
        json.dumps({"tenants": 2, "missing": 0, "stale": 0, "extra": 0, "fixed": False}),
    )
    assert sorted(
        WorkItem.objects.filter(tenant=tenant_a).values_list("number", "title", "state", "priority")
    ) == [
        ("INC0000001", "Deleted row", "new", 3),
        ("INC0000002", "Stale row", "new", 3),
    ]
    stale = WorkItem.objects.get(record_id=damaged["stale"])
    assert (stale.sla_due_at, stale.breached, stale.next_escalation_at) == (DUE, True, DUE)
    assert not WorkItem.objects.filter(record_id=damaged["extra"]).exists()
    assert list(WorkGroupMember.objects.values_list("tenant__slug", "user_id")) == [("acme", tech_ab.pk)]


def test_extra_group_members_are_removed(tenant_a: Tenant, tech_a: User) -> None:
    WorkGroupMember.objects.create(tenant=tenant_a, group_id=uuid.uuid4(), user_id=tech_a.pk)
    code, lines = reconcile("--tenant", "acme")
    assert code == 0
    assert lines[-2] == "acme: 0 missing, 0 stale, 1 extra (fixed)"
    assert WorkGroupMember.objects.count() == 0


def test_unknown_tenant_is_an_error(db: None) -> None:
    with pytest.raises(CommandError, match="no tenant with slug 'nope'"):
        call_command("workindex_reconcile", "--tenant", "nope", stdout=io.StringIO())
