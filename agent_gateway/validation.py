"""Validation of what agents send, without the ORM (the gateway's hot path, decision 0018).

Report data is checked against the published JSON Schemas (``agent_gateway/schemas/*.json``, draft
2020-12) compiled once into Python functions by ``fastjsonschema``; the envelope around the reports is
checked by hand. Errors name the field as the agent sent it (``reports[2].data.cpu_percent``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
REPORT_TYPES = ("heartbeat", "metrics", "inventory")
MAX_REPORTS = 50
# A report may be collected while the agent was offline (its spool keeps up to days); not in the future.
MAX_REPORT_AGE = dt.timedelta(days=30)
MAX_CLOCK_AHEAD = dt.timedelta(minutes=10)


def _compile(name: str) -> Any:
    return fastjsonschema.compile(json.loads((SCHEMA_DIR / f"{name}.json").read_text()))


VALIDATORS: dict[str, Any] = {name: _compile(name) for name in REPORT_TYPES}


class Invalid(ValueError):
    """What is wrong, as ``[{"field": ..., "message": ...}]`` (problem+json ``errors``)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(errors[0]["message"] if errors else "invalid")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ReportIn:
    """One validated report: the agent's id for it, its type, when it was collected (UTC) and its data
    as JSON text (what the inbox stores)."""

    id: uuid.UUID
    type: str
    collected_at: dt.datetime
    data_json: str


def _no_constant(name: str) -> Any:
    """``json.loads`` accepts NaN and Infinity, which pass the schemas' bounds but are no JSON and no jsonb."""
    raise ValueError(f"{name} is not a JSON number")


def _field(index: int, name: str) -> str:
    return f"reports[{index}].{name}"


def _schema_field(index: int, exc: fastjsonschema.JsonSchemaValueException) -> str:
    # fastjsonschema names the failing value "data.cpu_percent", "data.disks[0].mount"...
    return _field(index, str(exc.name or "data"))


def reports_parse(body: bytes, *, now: dt.datetime) -> list[ReportIn]:
    """The reports of a ``POST /agent/v1/reports`` body (bytes of JSON), all valid or none: raises
    Invalid listing every bad field (at most one per report). ``now`` (aware UTC) bounds
    ``collected_at``: not more than 10 minutes ahead, not older than 30 days."""
    try:
        document = json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid([{"field": "body", "message": "not JSON (NaN and Infinity are not JSON)"}]) from exc
    reports = document.get("reports") if isinstance(document, dict) else None
    if not isinstance(reports, list) or not 1 <= len(reports) <= MAX_REPORTS:
        raise Invalid([{"field": "reports", "message": f"a list of 1 to {MAX_REPORTS} reports"}])
    if isinstance(document, dict) and set(document) != {"reports"}:
        raise Invalid([{"field": "body", "message": "only `reports` is allowed"}])
    parsed: list[ReportIn] = []
    errors: list[dict[str, str]] = []
    for index, report in enumerate(reports):
        try:
            parsed.append(_report(index, report, now))
        except Invalid as exc:
            errors.extend(exc.errors)
    if errors:
        raise Invalid(errors)
    return parsed


def _report(index: int, report: Any, now: dt.datetime) -> ReportIn:
    if not isinstance(report, dict):
        raise Invalid([{"field": f"reports[{index}]", "message": "an object"}])
    extra = set(report) - {"id", "type", "collected_at", "data"}
    if extra:
        raise Invalid([{"field": _field(index, sorted(extra)[0]), "message": "not allowed"}])
    try:
        report_id = uuid.UUID(str(report.get("id")))
    except ValueError as exc:
        raise Invalid([{"field": _field(index, "id"), "message": "a UUID"}]) from exc
    kind = report.get("type")
    if kind not in VALIDATORS:
        raise Invalid([{"field": _field(index, "type"), "message": "heartbeat, metrics or inventory"}])
    collected = report.get("collected_at")
    try:
        collected_at = dt.datetime.fromisoformat(str(collected))
    except ValueError as exc:
        raise Invalid([{"field": _field(index, "collected_at"), "message": "an RFC 3339 time"}]) from exc
    if collected_at.tzinfo is None:
        raise Invalid([{"field": _field(index, "collected_at"), "message": "a time with its offset (Z)"}])
    if not now - MAX_REPORT_AGE <= collected_at <= now + MAX_CLOCK_AHEAD:
        raise Invalid([{"field": _field(index, "collected_at"), "message": "not within the last 30 days"}])
    data = report.get("data")
    try:
        VALIDATORS[kind](data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise Invalid([{"field": _schema_field(index, exc), "message": exc.message}]) from exc
    data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Text PostgreSQL cannot store: NUL (jsonb refuses \u0000) and lone surrogates (not UTF-8).
    try:
        data_json.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Invalid([{"field": _field(index, "data"), "message": "text that is not Unicode"}]) from exc
    if "\\u0000" in data_json:
        raise Invalid([{"field": _field(index, "data"), "message": "text with a NUL character"}])
    return ReportIn(
        id=report_id, type=kind, collected_at=collected_at.astimezone(dt.UTC), data_json=data_json
    )
