"""What the benchmarks share: timing, percentiles, and writing a result under .data/bench/."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(action: Callable[[], object]) -> float:
    """Milliseconds one call of ``action`` took (wall clock, perf_counter)."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000.0


def summary(values: list[float]) -> dict[str, float]:
    """n, p50, p95 and mean of a list of milliseconds, rounded to 0.1 ms."""
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "mean_ms": round(statistics.fmean(values), 1),
    }


def cpu_calibration_ms() -> float:
    """The best of three runs of a fixed pure-Python workload (adding 0..9,999,999), in ms: how fast this
    machine runs Python, so page times from two machines can be compared (ratios of ms to this figure)."""

    def work() -> None:
        total = 0
        for i in range(10_000_000):
            total += i

    return round(min(timed(work) for _ in range(3)), 1)


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Add the server version and the CPU calibration (``cpu_calibration_ms``) and write ``result`` to
    .data/bench/<name>.json; returns the path."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        result["postgresql"] = cursor.fetchone()[0]
    result.setdefault("cpu_calibration_ms", cpu_calibration_ms())
    out = Path(settings.ROOT_DIR) / ".data" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
