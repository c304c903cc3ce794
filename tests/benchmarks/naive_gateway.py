"""The naive agent gateway the benchmark compares ours with (issue 7): the same protocol done the obvious
way, so the figures say what the design buys. Not used by the product.

Per request: the agent and its key read through the ORM, the signature verified (the same Ed25519 check),
the body validated with ``jsonschema`` (interpreted, not compiled), and every top-level field of every
report written with its own ``update_or_create`` (one SELECT and one INSERT or UPDATE each, each in its
own transaction); a poll reads the agent's commands through the ORM. Served by uvicorn like ours
(``uvicorn tests.benchmarks.naive_gateway:application``), Django's ORM called through ``sync_to_async``.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.test")
django.setup()

import jsonschema  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.db import connection, models  # noqa: E402

from agent_gateway.models import AgentCredential, Command  # noqa: E402
from agent_gateway.signing import public_key_load, signature_valid, signed_string  # noqa: E402
from agent_gateway.validation import SCHEMA_DIR  # noqa: E402

SCHEMAS = {
    name: json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    for name in ("heartbeat", "metrics", "inventory")
}


class NaiveReportField(models.Model):
    """One field of the latest report of each type per agent (created by the benchmark, not migrated)."""

    agent_id = models.UUIDField()
    name = models.CharField(max_length=100)
    value = models.JSONField()

    objects: ClassVar[models.Manager[NaiveReportField]] = models.Manager()

    class Meta:
        app_label = "agent_gateway"
        managed = False
        db_table = "bench_naive_report_field"


TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_naive_report_field (
    id bigserial PRIMARY KEY, agent_id uuid NOT NULL, name varchar(100) NOT NULL, value jsonb NOT NULL,
    UNIQUE (agent_id, name)
)
"""


def table_create() -> None:
    with connection.cursor() as cursor:
        cursor.execute(TABLE_SQL)


def _handle(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    credential = (
        AgentCredential.objects.select_related("agent")
        .filter(key_id=headers.get("x-agent-key-id", ""), agent_id=headers.get("x-agent-id", ""))
        .first()
    )
    if credential is None or credential.agent.status != "active":
        return 401, {"title": "unknown agent"}
    message = signed_string(
        method=method,
        path=path,
        timestamp=headers.get("x-agent-timestamp", ""),
        nonce=headers.get("x-agent-nonce", ""),
        body=body,
    )
    if not signature_valid(
        public_key_load(bytes(credential.public_key)), headers.get("x-agent-signature", ""), message
    ):
        return 401, {"title": "bad signature"}
    agent_id = credential.agent_id
    if method == "GET":
        commands = list(Command.objects.filter(agent_id=agent_id, status__in=["queued", "delivered"]))
        return 200, {"commands": [str(c.pk) for c in commands], "poll_after": 60}
    document = json.loads(body)
    accepted = []
    for report in document["reports"]:
        jsonschema.validate(report["data"], SCHEMAS[report["type"]])
        for name, value in report["data"].items():
            NaiveReportField.objects.update_or_create(
                agent_id=agent_id, name=f"{report['type']}.{name}", defaults={"value": value}
            )
        accepted.append(report["id"])
    return 202, {"accepted": accepted, "duplicates": []}


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    status, answer = await sync_to_async(_handle)(scope["method"], scope["path"], headers, body)
    payload = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
