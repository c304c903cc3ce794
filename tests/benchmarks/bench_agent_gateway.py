"""Benchmark: the agent gateway's report ingest and command polls (issue 7), beside a naive gateway.

Simulated agents (BENCH_AGENTS, default 2,000, enrolled by bulk insert) send pre-signed requests over
loopback from a load generator in this process (asyncio, raw HTTP/1.1 keep-alive connections,
BENCH_CONNECTIONS at once, default 32): 4 KB report requests (one metrics report each) and command polls.
The servers are separate processes, one uvicorn worker each: ours (``agent_gateway.asgi``) and the naive
one (``tests/benchmarks/naive_gateway.py``: ORM lookups and one ``update_or_create`` per field). For each:
requests per second, p50/p95 latency, and requests per server CPU-second (the gateway process's user +
system time, psutil; PostgreSQL's backends are reported apart), since the load generator shares the
machine's cores. Targets (issue 7): >= 1,000 reports/s and >= 2,000 polls/s with p95 <= 50 ms.
Then the report task applies the whole inbox as a worker would (reports applied per second). Written
to .data/bench/agent_gateway.json.

Sizes: BENCH_AGENTS, BENCH_REPORTS (requests per run, default 15,000), BENCH_POLLS (default 30,000),
BENCH_NAIVE_FRACTION (the naive runs send this share of the requests, default 0.1: it is much slower).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import connection
from psycopg import sql

from agent_gateway.models import Agent, AgentCredential, AgentStatus, CredentialState
from agent_gateway.signing import key_id_of
from agent_gateway.tasks import agent_reports_process
from controlplane.providers.models import Provider
from tenants.models import Tenant
from tenants.services import tenant_provision

from .measure import percentile, write_result

AGENTS = int(os.environ.get("BENCH_AGENTS", "2000"))
REPORTS = int(os.environ.get("BENCH_REPORTS", "15000"))
POLLS = int(os.environ.get("BENCH_POLLS", "30000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
NAIVE_FRACTION = float(os.environ.get("BENCH_NAIVE_FRACTION", "0.1"))
REPORT_BYTES = 4096
ROOT = Path(settings.ROOT_DIR)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    db = settings.DATABASES["default"]
    host, port, user = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432, db.get("USER") or "postgres"
    if str(host).startswith("/"):
        return f"postgresql://{user}@/{db['NAME']}?host={host}&port={port}"
    return f"postgresql://{user}@{host}:{port}/{db['NAME']}"


class Server:
    """A uvicorn process serving ``app`` on the test database; ``cpu()`` is its CPU seconds so far."""

    def __init__(self, app: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            env=env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.1)

    def cpu(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on the machine (its backends do the writing)."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("postgres", "postmaster"):
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return total


def enrol_agents(tenant: Tenant, count: int) -> list[tuple[str, Ed25519PrivateKey, str]]:
    """``count`` active agents with their keys, by bulk insert (enrolment is not what is measured)."""
    keys = [Ed25519PrivateKey.generate() for _ in range(count)]
    agents = [
        Agent(tenant=tenant, hostname=f"bench-{i:05d}", os="linux", status=AgentStatus.ACTIVE)
        for i in range(count)
    ]
    Agent.objects.bulk_create(agents, batch_size=1000)
    credentials = []
    out = []
    for agent, key in zip(agents, keys, strict=True):
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        credentials.append(
            AgentCredential(
                agent=agent, key_id=key_id_of(public), public_key=public, state=CredentialState.ACTIVE
            )
        )
        out.append((str(agent.pk), key, key_id_of(public)))
    AgentCredential.objects.bulk_create(credentials, batch_size=1000)
    return out


def metrics_report(size: int) -> dict[str, Any]:
    """A metrics report whose request body is about ``size`` bytes (watched services fill it)."""
    data: dict[str, Any] = {
        "cpu_percent": 37.5,
        "memory_percent": 61.2,
        "disks": [{"mount": "/", "percent": 71.0}, {"mount": "/var", "percent": 44.5}],
        "load": [0.42, 0.37, 0.31],
        "services": [],
    }
    report = {"id": str(uuid.uuid4()), "type": "metrics", "collected_at": "", "data": data}
    i = 0
    while len(json.dumps({"reports": [report]})) < size - 60:
        data["services"].append(
            {"name": f"service-{i:03d}.service", "status": "running" if i % 7 else "stopped"}
        )
        i += 1
    return report


def signed_request(method: str, path: str, body: bytes, agent: tuple[str, Ed25519PrivateKey, str]) -> bytes:
    """The raw HTTP/1.1 request, signed as decision 0018 says."""
    agent_id, key, key_id = agent
    timestamp, nonce = str(int(time.time())), b64(secrets.token_bytes(16))
    message = "\n".join(["itsm-agent-v1", method, path, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Agent-Id: {agent_id}\r\nX-Agent-Key-Id: {key_id}\r\n"
        f"X-Agent-Timestamp: {timestamp}\r\nX-Agent-Nonce: {nonce}\r\n"
        f"X-Agent-Signature: {b64(key.sign(message.encode()))}\r\n\r\n"
    )
    return head.encode() + body


def report_requests(agents: list[Any], count: int) -> list[bytes]:
    template = metrics_report(REPORT_BYTES)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    requests = []
    for i in range(count):
        report = {**template, "id": str(uuid.uuid4()), "collected_at": now}
        body = json.dumps({"reports": [report]}, separators=(",", ":")).encode()
        requests.append(signed_request("POST", "/agent/v1/reports", body, agents[i % len(agents)]))
    return requests


def poll_requests(agents: list[Any], count: int) -> list[bytes]:
    return [signed_request("GET", "/agent/v1/commands", b"", agents[i % len(agents)]) for i in range(count)]


async def _connection_loop(
    port: int, work: Iterator[bytes], latencies: list[float], statuses: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in work:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000.0)
            statuses[status] += 1
    finally:
        writer.close()


def blast(port: int, requests: list[bytes], connections: int) -> dict[str, Any]:
    """Send every request over ``connections`` keep-alive connections; wall time, statuses, latencies."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    work = iter(requests)

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_connection_loop(port, work, latencies, statuses) for _ in range(connections)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    return {"elapsed": elapsed, "latencies": latencies, "statuses": dict(statuses)}


def measure(server: Server, requests: list[bytes], connections: int) -> dict[str, Any]:
    warm = max(1, len(requests) // 20)
    blast(server.port, requests[:warm], connections)  # connections, caches, the first batches
    cpu, pg = server.cpu(), postgres_cpu()
    run = blast(server.port, requests[warm:], connections)
    cpu, pg = server.cpu() - cpu, postgres_cpu() - pg
    done = len(run["latencies"])
    return {
        "requests": done,
        "per_second": round(done / run["elapsed"], 1),
        "p50_ms": round(percentile(run["latencies"], 0.5), 1),
        "p95_ms": round(percentile(run["latencies"], 0.95), 1),
        "statuses": run["statuses"],
        "server_cpu_s": round(cpu, 2),
        "per_server_cpu_second": round(done / cpu, 1) if cpu else None,
        "postgres_cpu_s": round(pg, 2),
    }


@pytest.mark.django_db(transaction=True)
def test_agent_gateway_benchmark() -> None:
    from .naive_gateway import table_create

    provider = Provider.objects.create(name="Bench MSP", slug="bench-msp")
    tenant = tenant_provision(provider=provider, name="Bench client", slug="bench-client")
    agents = enrol_agents(tenant, AGENTS)
    table_create()
    results: dict[str, Any] = {
        "agents": AGENTS,
        "connections": CONNECTIONS,
        "report_body_bytes": REPORT_BYTES,
    }
    ours = Server("agent_gateway.asgi:application")
    try:
        results["reports"] = measure(ours, report_requests(agents, REPORTS), CONNECTIONS)
        results["polls"] = measure(ours, poll_requests(agents, POLLS), CONNECTIONS)
    finally:
        ours.stop()
    naive = Server("tests.benchmarks.naive_gateway:application")
    try:
        results["naive_reports"] = measure(
            naive, report_requests(agents, int(REPORTS * NAIVE_FRACTION)), CONNECTIONS
        )
        results["naive_polls"] = measure(
            naive, poll_requests(agents, int(POLLS * NAIVE_FRACTION)), CONNECTIONS
        )
    finally:
        naive.stop()
    for kind in ("reports", "polls"):
        ratio = results[kind]["per_second"] / max(results[f"naive_{kind}"]["per_second"], 0.1)
        results[f"{kind}_speedup_vs_naive"] = round(ratio, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM agent_gateway_report")
        results["inbox_rows"] = cursor.fetchone()[0]
    # The workers' side: the report task applies the inbox (metrics samples, roll-ups, alert rules,
    # each agent's CI) in chunks of 2,000, as a Celery worker would.
    started = time.perf_counter()
    applied = agent_reports_process(tenant_id=tenant.pk, seconds=600.0)
    elapsed = time.perf_counter() - started
    results["processing"] = {
        "reports": applied,
        "per_second": round(applied / elapsed, 1),
        "seconds": round(elapsed, 2),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(tenant.schema_name)))
    path = write_result("agent_gateway", results)
    print(json.dumps(results, indent=2), f"\nwritten to {path}")
    assert results["reports"]["statuses"] == {202: results["reports"]["requests"]}
    assert results["polls"]["statuses"] == {200: results["polls"]["requests"]}
