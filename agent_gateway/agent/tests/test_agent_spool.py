"""The offline spool: durable, bounded by bytes, dropping metrics first, then heartbeats, inventory last."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from itsm_agent.spool import Spool, spool_usage


def report(kind: str, size: int = 1000) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "collected_at": "2026-12-02T09:30:00Z",
        "data": {"pad": "x" * (size + 9 - len(kind))},
    }  # same size for every type


def test_reports_survive_a_restart_in_order_and_leave_when_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    reports = [report(k) for k in ("heartbeat", "metrics", "inventory")]
    for r in reports:
        assert spool.add(r)
    (tmp_path / "spool" / ".tmp-half-written").write_text("{")  # a crash in the middle of a write
    reopened = Spool(tmp_path / "spool", max_bytes=10**6)
    assert [r["id"] for r in reopened.batch()] == [r["id"] for r in reports]
    assert not (tmp_path / "spool" / ".tmp-half-written").exists()
    assert reopened.remove([reports[0]["id"], reports[2]["id"], "not-there"]) == 2
    assert [r["id"] for r in reopened.batch()] == [reports[1]["id"]]
    assert spool_usage(tmp_path / "spool") == (1, reopened.total_bytes)
    assert oct((tmp_path / "spool").stat().st_mode & 0o777) == "0o700"


def test_batches_hold_at_most_50_reports_and_a_byte_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10**7)
    for _ in range(60):
        spool.add(report("metrics", 100))
    assert len(spool.batch()) == 50
    one = spool.total_bytes // 60  # every file has the same size
    assert len(spool.batch(max_bytes=one * 7 + 1)) == 7
    assert len(spool.batch(max_bytes=1)) == 1  # always at least one


def test_over_the_bound_the_oldest_metrics_go_first_then_heartbeats_inventory_last(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    inventory = [report("inventory") for _ in range(2)]
    heartbeats = [report("heartbeat") for _ in range(3)]
    metrics = [report("metrics") for _ in range(3)]
    for r in [
        inventory[0],
        metrics[0],
        heartbeats[0],
        metrics[1],
        heartbeats[1],
        inventory[1],
        metrics[2],
        heartbeats[2],
    ]:
        spool.add(r)
    size = spool.total_bytes // 8  # every report file has the same size
    spool.max_bytes = size * 6
    caplog.set_level(logging.WARNING)
    newest = report("metrics")
    spool.add(newest)  # 9 reports over a bound of 6: the 3 oldest metrics go
    kept = [r["id"] for r in spool.batch()]
    assert kept == [
        r["id"] for r in [inventory[0], heartbeats[0], heartbeats[1], inventory[1], heartbeats[2], newest]
    ]
    assert spool.counts() == {"metrics": 1, "heartbeat": 3, "inventory": 2}
    assert "dropped the oldest 3 metrics, 0 heartbeat and 0 inventory" in caplog.text
    spool.max_bytes = size * 2  # the metrics sample goes, then every heartbeat; both inventories fit
    spool.add(report("heartbeat"))
    assert spool.counts() == {"metrics": 0, "heartbeat": 0, "inventory": 2}
    spool.max_bytes = size
    spool.add(report("metrics"))
    assert spool.counts() == {"metrics": 0, "heartbeat": 0, "inventory": 1}
    assert [r["id"] for r in spool.batch()] == [inventory[1]["id"]]
    assert spool.total_bytes <= spool.max_bytes
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1


def test_rejected_reports_move_aside_and_stay_bounded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10**7)
    reports = [report("metrics", 10) for _ in range(105)]
    for r in reports:
        spool.add(r)
    spool.reject([r["id"] for r in reports])
    rejected = sorted((tmp_path / "spool" / "rejected").iterdir())
    assert len(rejected) == 100 and len(spool) == 0
    assert json.loads(rejected[-1].read_text())["id"] == reports[-1]["id"]  # the newest are kept


def test_a_report_too_large_to_ever_send_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10**7)
    assert not spool.add(report("inventory", 1024 * 1024))
    assert len(spool) == 0 and len(list((tmp_path / "spool" / "rejected").iterdir())) == 1
