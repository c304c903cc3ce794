"""Group commit of the gateway's writes (decision 0018, "Writing reports").

Every signed request hands its nonce, and a reports request its reports, to the batcher and waits. The
batcher writes everything waiting in one transaction: the nonces first (``ON CONFLICT DO NOTHING
RETURNING``: a nonce already seen means a replay, and that request's reports are not written), then the
reports (``ON CONFLICT (id) DO NOTHING RETURNING id``: an id already in the inbox is a duplicate). After
the commit every waiting request gets its answer, so a report is acknowledged only once it is durable.
While one batch commits the next one fills: one transaction per batch, not per request, and no timer
adds latency when the gateway is idle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from .validation import ReportIn

log = logging.getLogger(__name__)

MAX_ITEMS = 1000  # requests per transaction

NONCE_SQL = """
INSERT INTO agent_gateway_nonce (agent_id, nonce, seen_at)
SELECT a, n, %s FROM unnest(%b::uuid[], %b::varchar[]) AS t(a, n)
ON CONFLICT DO NOTHING
RETURNING agent_id, nonce
"""

REPORT_SQL = """
INSERT INTO agent_gateway_report (id, agent_id, tenant_id, type, collected_at, received_at, data)
SELECT i, a, t, ty, c, %s, d::jsonb
FROM unnest(%b::uuid[], %b::uuid[], %b::bigint[], %b::varchar[], %b::timestamptz[], %b::text[])
    AS u(i, a, t, ty, c, d)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
# The arrays go as binary parameters (%b): in text format psycopg escapes every quote of the reports'
# JSON with a regex callback, which cost more than all the rest of a report's work (profiled).


@dataclass(slots=True)
class Outcome:
    """A request's answer from the batch: ``replayed`` (its nonce was seen before; nothing written), else
    which of its reports are new (``accepted``) and which the inbox already had (``duplicates``)."""

    replayed: bool = False
    accepted: list[uuid.UUID] = field(default_factory=list)
    duplicates: list[uuid.UUID] = field(default_factory=list)


@dataclass(slots=True)
class _Item:
    agent_id: uuid.UUID
    tenant_id: int
    nonce: str
    reports: list[ReportIn]
    future: asyncio.Future[Outcome]


class Batcher:
    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.queue: list[_Item] = []
        self.wake = asyncio.Event()

    async def submit(
        self, *, agent_id: uuid.UUID, tenant_id: int, nonce: str, reports: list[ReportIn] | None = None
    ) -> Outcome:
        """Queue one request's nonce and reports and wait for the batch that writes them. Raises what the
        database raised (the gateway answers 503; the agent retries)."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.queue.append(_Item(agent_id, tenant_id, nonce, reports or [], future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        """The flush loop (one task per gateway process)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                batch, self.queue = self.queue[:MAX_ITEMS], self.queue[MAX_ITEMS:]
                await self._write_and_answer(batch)

    async def _write_and_answer(self, batch: list[_Item]) -> None:
        """Write a batch and answer its waiters. A failed batch is written again request by request, so
        one request the database refuses fails alone (503) and the others go through."""
        try:
            outcomes = await self._write(batch)
        except Exception as exc:
            if len(batch) > 1:
                log.warning("agent gateway batch of %d requests failed; writing them one by one", len(batch))
                for item in batch:
                    await self._write_and_answer([item])
                return
            log.exception("agent gateway request of agent %s failed", batch[0].agent_id)
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)

    async def _write(self, batch: list[_Item]) -> list[Outcome]:
        now = dt.datetime.now(dt.UTC)
        outcomes = [Outcome() for _ in batch]
        # The first request with a given (agent, nonce) in the batch competes with the database; a
        # later one in the same batch is a replay of it.
        first: dict[tuple[uuid.UUID, str], int] = {}
        for index, item in enumerate(batch):
            key = (item.agent_id, item.nonce)
            if key in first:
                outcomes[index].replayed = True
            else:
                first[key] = index
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(NONCE_SQL, (now, [k[0] for k in first], [k[1] for k in first]))
            fresh = {(row[0], row[1]) for row in await cursor.fetchall()}
            for key, index in first.items():
                if key not in fresh:
                    outcomes[index].replayed = True
            rows: dict[uuid.UUID, int] = {}  # report id -> index of the request that brings it first
            columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
            for index, item in enumerate(batch):
                if outcomes[index].replayed:
                    continue
                for report in item.reports:
                    if report.id in rows:
                        continue
                    rows[report.id] = index
                    for column, value in zip(
                        columns,
                        (
                            report.id,
                            item.agent_id,
                            item.tenant_id,
                            report.type,
                            report.collected_at,
                            report.data_json,
                        ),
                        strict=True,
                    ):
                        column.append(value)
            new: set[uuid.UUID] = set()
            if rows:
                cursor = await conn.execute(REPORT_SQL, (now, *columns))
                new = {row[0] for row in await cursor.fetchall()}
        for index, item in enumerate(batch):
            if outcomes[index].replayed:
                continue
            for report in item.reports:
                if report.id in new and rows.get(report.id) == index:
                    outcomes[index].accepted.append(report.id)
                else:
                    outcomes[index].duplicates.append(report.id)
        return outcomes
