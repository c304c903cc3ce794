"""Escalation levels run once each: in process, with two schedulers at once on separate database
connections (threads), with a task delivered twice to a real worker, and with a worker killed mid-task
(its transaction dies before commit, the redelivered task runs the levels once)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from psycopg import sql

from conftest import actor_in, make_user
from controlplane.celery import app
from controlplane.providers.models import Provider
from controlplane.workindex.models import WorkItem
from controlplane.workindex.selectors import workindex_escalations_due
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from modules.people.models import Group, Person
from modules.records.models import ActivityEntry
from modules.sla.models import EscalationRun, SLATimer
from modules.sla.services import LevelSpec, sla_escalate
from modules.sla.tasks import sla_escalate_batch_task, sla_escalation_sweep_task
from tenants.models import Tenant
from tenants.services import tenant_provision

from .factories import contract, indexed, london_calendar, policy

MINUTE = dt.timedelta(minutes=1)


def escalating_incident(tenant: Tenant) -> tuple[Incident, Group, Person]:
    """A P3 incident under a 60-minute 24x7 resolution target whose levels notify the assignee (75 %),
    reassign to the major incident team and raise the priority (90 %), and notify that team and a
    duty manager (100 %)."""
    tech = actor_in(tenant, make_user(f"tech@{tenant.slug}.example"))
    team = Group.objects.create(name="Major incident team")
    duty = Person.objects.create(display_name="Duty Manager", email="duty@northwind.example")
    policy(
        contract(london_calendar()),
        priorities=[1, 2, 3],
        resolution_target_minutes=60,
        business_time=False,
        levels=[
            LevelSpec("resolution", 75, {"notify_assignee": True}),
            LevelSpec("resolution", 90, {"reassign_group": str(team.pk), "raise_priority": True}),
            LevelSpec("resolution", 100, {"notify_group": True, "notify_persons": [str(duty.pk)]}),
        ],
    )
    incident = incident_create(actor=tech, short_description="Mail down", assigned_to=tech.person)
    indexed(incident)
    from modules.sla.services import sla_refresh

    sla_refresh(record_type="incident", record_id=incident.pk)
    return incident, team, duty


def runs(incident: Incident) -> list[tuple[int, str, list[str], list[str]]]:
    return [
        (r.level.percent, r.notified["event"], r.notified["persons"], r.notified["groups"])
        for r in EscalationRun.objects.filter(timer__record_id=incident.pk).order_by("level__percent")
    ]


def escalated(incident: Incident) -> list[int]:
    return [
        e.changes["percent"]
        for e in ActivityEntry.objects.filter(record_id=incident.pk, verb="sla.escalated").order_by(
            "at", "id"
        )
    ]


def test_levels_run_in_order_once_each_and_move_the_next_escalation_on(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        incident, team, duty = escalating_incident(tenant_a)
        opened = incident.opened_at
        row = WorkItem.objects.get(record_id=incident.pk)
        assert row.next_escalation_at == opened + 45 * MINUTE

        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=opened + 50 * MINUTE) == 1
        assert runs(incident) == [(75, "sla.warning", [str(incident.assigned_to_id)], [])]
        assert WorkItem.objects.get(record_id=incident.pk).next_escalation_at == opened + 54 * MINUTE

        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=opened + 55 * MINUTE) == 1
        incident.refresh_from_db()
        assert (incident.assignment_group_id, incident.priority, incident.urgency) == (team.pk, 2, 1)
        assert WorkItem.objects.get(record_id=incident.pk).next_escalation_at == opened + 60 * MINUTE

        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=opened + 61 * MINUTE) == 1
        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=opened + 90 * MINUTE) == 0
        assert runs(incident) == [
            (75, "sla.warning", [str(incident.assigned_to_id)], []),
            (90, "sla.warning", [], []),
            (100, "sla.breached", [str(duty.pk)], [str(team.pk)]),
        ]
        assert escalated(incident) == [75, 90, 100]
        row = WorkItem.objects.get(record_id=incident.pk)
        assert (row.next_escalation_at, row.breached) == (None, True)
        # The reassignment and the priority change went through the incident services, once.
        updates = ActivityEntry.objects.filter(
            record_id=incident.pk, verb="incident.updated", source="system"
        )
        assert [sorted(u.changes) for u in updates] == [["assignment_group", "priority", "urgency"]]


def test_several_due_levels_after_a_quiet_weekend_all_run_once(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        incident, _, _ = escalating_incident(tenant_a)
        later = incident.opened_at + dt.timedelta(days=2)
        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=later) == 3
        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=later) == 0
        assert escalated(incident) == [75, 90, 100]


# Committed data: workers and threads have their own database connections.


@pytest.fixture
def committed_tenant(transactional_db: None) -> Iterator[Tenant]:
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenant = tenant_provision(provider=provider, name="Acme Corp", slug="acme", time_zone="Europe/London")
    yield tenant
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name)))


def overdue_incident(tenant: Tenant) -> Incident:
    """An escalating incident opened two hours ago (every level due now), committed."""
    with tenant_context(tenant):
        incident, _, _ = escalating_incident(tenant)
        Incident.objects.filter(pk=incident.pk).update(opened_at=incident.opened_at - dt.timedelta(hours=2))
        from modules.sla.services import sla_refresh

        sla_refresh(record_type="incident", record_id=incident.pk)
        incident.refresh_from_db()
        return incident


def outcome(tenant: Tenant, incident: Incident) -> tuple[list[int], list[int], int]:
    with tenant_context(tenant):
        levels = sorted(
            EscalationRun.objects.filter(timer__record_id=incident.pk).values_list(
                "level__percent", flat=True
            )
        )
        return levels, escalated(incident), Incident.objects.get(pk=incident.pk).priority


def test_two_schedulers_at_once_run_each_level_once(committed_tenant: Tenant) -> None:
    incident = overdue_incident(committed_tenant)
    due = workindex_escalations_due(now=timezone.now(), limit=100)
    assert due == {(committed_tenant.schema_name, "incident"): [str(incident.pk)]}
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def scheduler() -> None:
        try:
            rows = workindex_escalations_due(now=timezone.now(), limit=100)
            barrier.wait(timeout=30)
            with tenant_context(committed_tenant):
                ids = [uuid.UUID(i) for i in rows[(committed_tenant.schema_name, "incident")]]
                results.append(sla_escalate(record_type="incident", record_ids=ids))
        except Exception as exc:  # reported below, with the thread's traceback
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [0, 3]
    assert outcome(committed_tenant, incident) == ([75, 90, 100], [75, 90, 100], 2)
    assert workindex_escalations_due(now=timezone.now(), limit=100) == {}


def wait_for(check: Any, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_a_task_delivered_twice_runs_each_level_once_on_a_real_worker(committed_tenant: Tenant) -> None:
    incident = overdue_incident(committed_tenant)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        sla_escalation_sweep_task.delay()  # from public, like beat
        sla_escalation_sweep_task.delay()  # a second scheduler's tick
        # The same ids once more, as a redelivered message.
        sla_escalate_batch_task.delay(batch=[[committed_tenant.schema_name, "incident", [str(incident.pk)]]])
        wait_for(lambda: len(outcome(committed_tenant, incident)[1]) >= 3)
        # Let the remaining deliveries run too (each finds its levels done).
        time.sleep(2)
    assert outcome(committed_tenant, incident) == ([75, 90, 100], [75, 90, 100], 2)


WORKER = textwrap.dedent(
    """
    import os, sys
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings.test"
    from django.conf import settings
    settings.DATABASES["default"]["NAME"] = sys.argv[1]
    import django
    django.setup()
    from controlplane.celery import app
    app.worker_main(["worker", "--pool=prefork", "--concurrency=1", "--without-mingle", "--without-gossip",
                     "--loglevel=WARNING", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE])
    """
)


def test_a_worker_killed_mid_task_leaves_nothing_and_the_redelivery_runs_once(
    committed_tenant: Tenant, tmp_path: Path
) -> None:
    incident = overdue_incident(committed_tenant)
    db = settings.DATABASES["default"]
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER']} dbname={db['NAME']}"
    if db.get("PASSWORD"):
        dsn += f" password={db['PASSWORD']}"
    # Hold the incident's work index row: the task blocks on it after claiming levels and reassigning.
    blocker = psycopg.connect(dsn)
    blocker.execute("SELECT 1 FROM workindex_workitem WHERE record_id = %s FOR UPDATE", [incident.pk])
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(settings.ROOT_DIR / "platform"), str(settings.ROOT_DIR)]),
    }
    worker = subprocess.Popen([sys.executable, str(script), db["NAME"]], env=env)  # noqa: S603
    monitor = psycopg.connect(dsn, autocommit=True)
    try:
        sla_escalate_batch_task.delay(batch=[[committed_tenant.schema_name, "incident", [str(incident.pk)]]])

        def waiting() -> bool:
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE %s AND pid <> pg_backend_pid()",
                ["%workindex_workitem%"],
            ).fetchone()
            return row is not None and row[0] > 0

        blocked = wait_for(waiting)
        assert blocked
        children = psutil.Process(worker.pid).children(recursive=True)
        assert children
        for child in children:
            child.send_signal(signal.SIGKILL)
        # Nothing the dying task wrote is visible: its transaction never committed.
        assert outcome(committed_tenant, incident) == ([], [], 3)
        blocker.rollback()
        assert wait_for(lambda: len(outcome(committed_tenant, incident)[1]) >= 3)
        time.sleep(1)
        assert outcome(committed_tenant, incident) == ([75, 90, 100], [75, 90, 100], 2)
    finally:
        blocker.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        monitor.close()


def test_one_sweep_message_carries_the_due_records_of_several_tenants(
    tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant
) -> None:
    """The tick reads every tenant's due records in one query and packs them into one message; the batch
    task escalates each inside its own tenant, and skips a suspended one."""
    from modules.sla.services import sla_refresh
    from modules.sla.tasks import sla_escalation_sweep

    incidents = {}
    for tenant in (tenant_a, tenant_b, tenant_c):
        with tenant_context(tenant):
            incident, _, _ = escalating_incident(tenant)
            Incident.objects.filter(pk=incident.pk).update(opened_at=timezone.now() - 50 * MINUTE)
            sla_refresh(record_type="incident", record_id=incident.pk)  # 75 % (45 min) is due
            incidents[tenant.slug] = incident
    Tenant.objects.filter(pk=tenant_c.pk).update(status=Tenant.Status.SUSPENDED)
    due = workindex_escalations_due(now=timezone.now(), limit=100)
    assert set(due) == {(tenant_a.schema_name, "incident"), (tenant_b.schema_name, "incident")}

    app.conf.task_always_eager = True  # the message runs here, in this test's transaction
    try:
        assert sla_escalation_sweep(now=timezone.now()) == 1
    finally:
        app.conf.task_always_eager = False
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            assert escalated(incidents[tenant.slug]) == [75]
    with tenant_context(tenant_c):
        assert escalated(incidents[tenant_c.slug]) == []


def test_raising_the_priority_out_of_the_policy_ends_its_escalation_cleanly(tenant_a: Tenant) -> None:
    """A P3-only policy whose 75 % level raises the priority: the raised incident (P2) matches no policy,
    so the refresh inside the action removes its timers. The escalation still commits (the level ran
    once, the change is recorded) and nothing stays due."""
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, make_user("tech@acme.example"))
        policy(
            contract(london_calendar()),
            priorities=[3],
            resolution_target_minutes=60,
            business_time=False,
            levels=[
                LevelSpec("resolution", 75, {"raise_priority": True}),
                LevelSpec("resolution", 90, {"notify_assignee": True}),
            ],
        )
        incident = incident_create(actor=tech, short_description="Disk filling up", assigned_to=tech.person)
        indexed(incident)
        from modules.sla.services import sla_refresh

        sla_refresh(record_type="incident", record_id=incident.pk)
        opened = incident.opened_at
        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=opened + 95 * MINUTE) == 1
        incident.refresh_from_db()
        assert incident.priority == 2
        assert escalated(incident) == [75]
        assert not SLATimer.objects.filter(record_id=incident.pk).exists()
        assert WorkItem.objects.get(record_id=incident.pk).next_escalation_at is None
        assert sla_escalate(record_type="incident", record_ids=[incident.pk], now=opened + 99 * MINUTE) == 0
