"""What the review found could block others (decision 0018): text PostgreSQL cannot store is refused at
the door, a batch the database refuses is retried request by request, a report that cannot be applied is
dropped without blocking its tenant's inbox, command output with NUL is kept, and "restart a service"
never reaches reboot.target."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from django_tenants.utils import tenant_context
from psycopg_pool import AsyncConnectionPool

from agent_gateway.batcher import Batcher
from agent_gateway.gateway import conninfo
from agent_gateway.models import Agent, AgentStatus, Command, CommandStatus, Report
from agent_gateway.services import command_request, command_result_record
from agent_gateway.tasks import agent_reports_process
from agent_gateway.validation import Invalid, ReportIn, reports_parse
from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput
from modules.cmdb.models import ConfigurationItem
from tenants.models import Tenant

from .conftest import report

NOW = dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    "body",
    [
        b'{"reports": [{"id": "%s", "type": "metrics", "collected_at": "%s", "data": {"cpu_percent": NaN,'
        b' "memory_percent": 1, "disks": [], "load": [0, 0, 0]}}]}',
        b'{"reports": [{"id": "%s", "type": "heartbeat", "collected_at": "%s", "data": {"uptime_seconds": 1,'
        b' "agent_version": "0.1\\u0000"}}]}',
        b'{"reports": [{"id": "%s", "type": "heartbeat", "collected_at": "%s", "data": {"uptime_seconds": 1,'
        b' "agent_version": "\\ud800"}}]}',
    ],
    ids=["nan", "nul", "lone-surrogate"],
)
def test_text_postgresql_cannot_store_is_refused(body: bytes) -> None:
    stamp = NOW.isoformat().replace("+00:00", "Z")
    with pytest.raises(Invalid):
        reports_parse(body % (str(uuid.uuid4()).encode(), stamp.encode()), now=NOW)


@pytest.mark.django_db(transaction=True)
def test_a_batch_the_database_refuses_is_written_again_request_by_request(tenant_a: Tenant) -> None:
    agent = Agent.objects.create(tenant=tenant_a, hostname="pc", status=AgentStatus.ACTIVE)
    good = ReportIn(id=uuid.uuid4(), type="heartbeat", collected_at=NOW, data_json='{"uptime_seconds": 1}')
    bad = ReportIn(id=uuid.uuid4(), type="heartbeat", collected_at=NOW, data_json="not json")

    async def run() -> tuple[object, object]:
        pool = AsyncConnectionPool(
            conninfo(), min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
        )
        await pool.open()
        batcher = Batcher(pool)
        task = asyncio.create_task(batcher.run())
        try:
            first, second = await asyncio.gather(
                batcher.submit(agent_id=agent.pk, tenant_id=tenant_a.pk, nonce="n" * 22, reports=[bad]),
                batcher.submit(agent_id=agent.pk, tenant_id=tenant_a.pk, nonce="m" * 22, reports=[good]),
                return_exceptions=True,
            )
            return first, second
        finally:
            task.cancel()
            await pool.close()

    first, second = asyncio.run(run())
    assert isinstance(first, Exception)
    assert getattr(second, "accepted", None) == [good.id]
    assert list(Report.objects.values_list("id", flat=True)) == [good.id]


@pytest.mark.django_db
def test_a_report_that_cannot_be_applied_is_dropped_and_the_rest_applied(tenant_a: Tenant) -> None:
    agent = Agent.objects.create(tenant=tenant_a, hostname="pc-9", status=AgentStatus.ACTIVE)
    ok, broken = report("heartbeat"), report("metrics")
    for item, data in ((ok, ok["data"]), (broken, {"cpu_percent": 1})):  # the second misses its fields
        Report.objects.create(
            id=item["id"], agent_id=agent.pk, tenant_id=tenant_a.pk, type=item["type"],
            collected_at=NOW, received_at=NOW, data=data,
        )  # fmt: skip
    assert agent_reports_process(tenant_id=tenant_a.pk) == 2
    assert not Report.objects.exists()
    with tenant_context(tenant_a):
        assert ConfigurationItem.objects.filter(external_ref=f"agent:{agent.pk}").exists()


@pytest.mark.django_db
def test_output_with_nul_is_kept_and_reboot_is_no_service(tenant_a: Tenant, tech_a: User) -> None:
    agent = Agent.objects.create(tenant=tenant_a, hostname="pc", status=AgentStatus.ACTIVE)
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        for unit in ("reboot.target", "poweroff.target", "dbus.socket"):
            with pytest.raises(InvalidInput):
                command_request(actor=actor, agent=agent, kind="restart_service", params={"service": unit})
        command = command_request(actor=actor, agent=agent, kind="collect_inventory")
    Command.objects.filter(pk=command.pk).update(status=CommandStatus.DELIVERED)
    done = command_result_record(
        agent_id=agent.pk, command_id=command.pk, status="succeeded", exit_code=0, output="a\x00b", reason=""
    )
    assert Command.objects.get(pk=done.pk).output == "a\ufffdb" and Command.objects.count() == 1
