"""Celery entry points of the agent gateway (decision 0018, "Writing reports: batches, then workers").

Beat runs, in the public schema: ``agent_reports_dispatch_task`` every 2 s (one message per tenant with
reports waiting), ``agent_offline_check_task`` every minute, ``agent_housekeeping_task`` every minute
(expired nonces and commands). ``agent_reports_process_task`` applies one tenant's reports inside
``tenant_context`` (the tenant is named in the message, never taken from the connection) and deletes
them in the same transaction: a crash leaves them in the inbox for the next message, and applying a
report twice changes nothing (modules.monitoring.ingest is idempotent per report id).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from controlplane.celery import app
from tenants.models import Tenant

from . import services
from .models import Agent, AgentStatus, Nonce, Report

log = logging.getLogger(__name__)

CHUNK = 2000  # reports per transaction
TASK_SECONDS = 10.0  # a task stops taking new chunks after this long; the next tick goes on
NONCE_LIFETIME = dt.timedelta(seconds=600)
LOCK_CLASS = 0x41474E54  # "AGNT": the advisory-lock class of the report task (the key is the tenant id)


def agent_reports_dispatch() -> int:
    """Send one ``agent_reports_process_task`` per tenant with reports in the inbox; returns how many."""
    tenant_ids = list(Report.objects.order_by().values_list("tenant_id", flat=True).distinct())
    for tenant_id in tenant_ids:
        agent_reports_process_task.apply_async(kwargs={"tenant_id": tenant_id})
    return len(tenant_ids)


def agent_reports_process(*, tenant_id: int, chunk: int = CHUNK, seconds: float = TASK_SECONDS) -> int:
    """Apply and delete ``tenant_id``'s waiting reports, oldest first, ``chunk`` per transaction, for at
    most ``seconds``. One task works a tenant at a time (a session advisory lock; another task for the same
    tenant returns at once), so a backlog never ties up every worker. A chunk that fails is applied again
    report by report, each in a savepoint: a report that still fails is logged and dropped, so one bad
    report never blocks its tenant's inbox. A tenant that is gone or suspended keeps its reports (a
    suspended tenant's agents are refused anyway). Returns how many reports were applied."""
    tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.ACTIVE).first()
    if tenant is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, tenant_id])
        if not cursor.fetchone()[0]:
            return 0
    try:
        return _process(tenant, chunk=chunk, seconds=seconds)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, tenant_id])


def _process(tenant: Tenant, *, chunk: int, seconds: float) -> int:
    from modules.monitoring.ingest import AgentReport, reports_apply

    applied = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with transaction.atomic():
            rows = list(
                Report.objects.select_for_update(skip_locked=True)
                .filter(tenant_id=tenant.pk)
                .order_by("received_at", "id")[:chunk]
            )
            if not rows:
                break
            agents = {a.pk: a for a in Agent.objects.filter(pk__in={r.agent_id for r in rows})}
            reports = [
                AgentReport(
                    id=row.id,
                    agent_id=row.agent_id,
                    hostname=agents[row.agent_id].hostname if row.agent_id in agents else "",
                    site=agents[row.agent_id].site if row.agent_id in agents else "",
                    type=row.type,
                    collected_at=row.collected_at,
                    data=row.data,
                )
                for row in rows
            ]
            now = timezone.now()
            try:
                with transaction.atomic(), tenant_context(tenant):
                    reports_apply(reports=reports, now=now)
            except Exception:
                log.exception(
                    "a chunk of %d reports failed in %s; applying them one by one",
                    len(rows),
                    tenant.schema_name,
                )
                for report in reports:
                    try:
                        with transaction.atomic(), tenant_context(tenant):
                            reports_apply(reports=[report], now=now)
                    except Exception:
                        log.exception(
                            "report %s of agent %s dropped: it cannot be applied", report.id, report.agent_id
                        )
            Report.objects.filter(pk__in=[row.id for row in rows]).delete()
        applied += len(rows)
        if len(rows) < chunk:
            break
    return applied


def agent_offline_check(*, now: dt.datetime | None = None) -> int:
    """Hand every active tenant's active agents with their last-seen times to its alert rules
    (``modules.monitoring.ingest.offline_evaluate``); returns how many tenants were checked."""
    from modules.monitoring.ingest import offline_evaluate

    now = now or timezone.now()
    by_tenant: dict[int, dict] = {}
    for agent_id, tenant_id, hostname, seen in Agent.objects.filter(status=AgentStatus.ACTIVE).values_list(
        "id", "tenant_id", "hostname", "last_seen_at"
    ):
        by_tenant.setdefault(tenant_id, {})[agent_id] = (hostname, seen)
    tenants = Tenant.objects.filter(pk__in=by_tenant, status=Tenant.Status.ACTIVE)
    for tenant in tenants:
        try:
            with tenant_context(tenant), transaction.atomic():
                offline_evaluate(agents=by_tenant[tenant.pk], now=now)
        except Exception:
            log.exception("offline check failed in %s", tenant.schema_name)
    return len(tenants)


def agent_housekeeping(*, now: dt.datetime | None = None) -> tuple[int, int]:
    """Forget nonces older than the replay window and expire commands past their lifetime; returns
    (nonces deleted, commands expired)."""
    now = now or timezone.now()
    nonces, _ = Nonce.objects.filter(seen_at__lt=now - NONCE_LIFETIME).delete()
    return nonces, services.commands_expire(now=now)


@app.task(acks_late=True)
def agent_reports_dispatch_task() -> int:
    return agent_reports_dispatch()


@app.task(acks_late=True)
def agent_reports_process_task(*, tenant_id: int) -> int:
    assert getattr(connection, "schema_name", "public") == "public"
    return agent_reports_process(tenant_id=tenant_id)


@app.task(acks_late=True)
def agent_offline_check_task() -> int:
    return agent_offline_check()


@app.task(acks_late=True)
def agent_housekeeping_task() -> tuple[int, int]:
    return agent_housekeeping()
