"""The offline spool: every report is written to disk before it is sent, and deleted once the gateway has
acknowledged it (0018: 202 ``accepted`` or ``duplicates``), so a network outage or a restart loses nothing
until the spool's byte bound forces the oldest reports out.

One JSON file per report, named ``<nanoseconds since epoch, 20 digits>-<type>-<report id>.json`` so that
name order is age order; each is fsynced before it counts as spooled. Reports the gateway refused as
invalid (422: a bug in the agent or the server) go to ``rejected/`` for a person to read, bounded too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsm_agent.state import atomic_write, ensure_private_dir

# Cheapest to lose first: a sample, then a ping, the inventory last.
DROP_ORDER = ("metrics", "heartbeat", "inventory")
REPORT_TYPES = frozenset(DROP_ORDER)
MAX_REPORT_BYTES = 900 * 1024  # one report must fit a batch under the gateway's 1 MiB body limit
REJECTED_MAX_FILES = 100
REJECTED_MAX_BYTES = 10 * 1024 * 1024
_NAME = re.compile(r"^(\d{20})-(heartbeat|metrics|inventory)-([0-9a-f-]{36})\.json$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One spooled report file: its report id and type, file name and size in bytes."""

    id: str
    type: str
    name: str
    size: int


class Spool:
    """A bounded on-disk queue of reports (thread-safe; one process per state directory, see state.exclusive_lock).

    ``max_bytes`` bounds the sum of the report files' sizes; beyond it the oldest reports are dropped,
    metrics first, then heartbeats, inventory last, each drop logged.
    """

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.dir = directory
        self.rejected_dir = directory / "rejected"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}  # report id → entry, oldest first
        self._bytes = 0
        self._last_ns = 0
        ensure_private_dir(self.dir)
        self._load()

    def _load(self) -> None:
        names = sorted(p.name for p in self.dir.iterdir() if p.is_file())
        for name in names:
            path = self.dir / name
            if name.startswith(".tmp-"):  # a write interrupted by a crash: never acknowledged, never sent
                path.unlink()
                continue
            match = _NAME.fullmatch(name)
            if not match:
                log.warning("spool: moving the unknown file %s to rejected/", name)
                self._move_to_rejected(path)
                continue
            entry = Entry(id=match.group(3), type=match.group(2), name=name, size=path.stat().st_size)
            self._entries[entry.id] = entry
            self._bytes += entry.size
            self._last_ns = max(self._last_ns, int(match.group(1)))
        self._enforce_bound()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def add(self, report: dict[str, Any]) -> bool:
        """Spool one report ``{"id", "type", "collected_at", "data"}``; returns False if it was refused.

        A report over 900 KiB can never be sent (the gateway's limit is 1 MiB per request): it goes to
        rejected/ with a log line. May drop older reports to stay under the bound.
        """
        if report.get("type") not in REPORT_TYPES:
            raise ValueError(f"unknown report type {report.get('type')!r}")
        body = json.dumps(report, separators=(",", ":")).encode("utf-8")
        with self._lock:
            ns = max(time.time_ns(), self._last_ns + 1)  # strictly increasing, even if the clock steps back
            self._last_ns = ns
            name = f"{ns:020d}-{report['type']}-{report['id']}.json"
            if len(body) > MAX_REPORT_BYTES:
                log.error(
                    "spool: a %s report of %d bytes is too large to send; kept in rejected/",
                    report["type"],
                    len(body),
                )
                ensure_private_dir(self.rejected_dir)
                atomic_write(self.rejected_dir / name, body)
                self._bound_rejected()
                return False
            atomic_write(self.dir / name, body)
            entry = Entry(id=report["id"], type=report["type"], name=name, size=len(body))
            self._entries[entry.id] = entry
            self._bytes += entry.size
            self._enforce_bound()
            return True

    def batch(self, *, limit: int = 50, max_bytes: int = MAX_REPORT_BYTES) -> list[dict[str, Any]]:
        """The oldest reports, at most ``limit`` and together at most ``max_bytes`` (at least one report).

        An unreadable file (a disk error) is moved to rejected/ and skipped.
        """
        reports: list[dict[str, Any]] = []
        size = 0
        with self._lock:
            for entry in list(self._entries.values()):
                if len(reports) >= limit or (reports and size + entry.size > max_bytes):
                    break
                try:
                    reports.append(json.loads((self.dir / entry.name).read_bytes()))
                except (OSError, ValueError):
                    log.error("spool: %s is unreadable; moved to rejected/", entry.name)
                    self._forget(entry)
                    self._move_to_rejected(self.dir / entry.name)
                    continue
                size += entry.size
        return reports

    def remove(self, ids: list[str]) -> int:
        """Delete the reports with these ids (acknowledged by the gateway); returns how many were spooled."""
        removed = 0
        with self._lock:
            for report_id in ids:
                entry = self._entries.get(report_id) if isinstance(report_id, str) else None
                if entry is None:
                    continue
                self._forget(entry)
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / entry.name).unlink()
                removed += 1
        return removed

    def reject(self, ids: list[str]) -> None:
        """Move these reports to rejected/ (the gateway refused them as invalid); rejected/ stays bounded."""
        with self._lock:
            for report_id in ids:
                entry = self._entries.get(report_id)
                if entry is not None:
                    self._forget(entry)
                    self._move_to_rejected(self.dir / entry.name)

    def counts(self) -> dict[str, int]:
        """How many reports of each type are spooled."""
        out = dict.fromkeys(DROP_ORDER, 0)
        for entry in self._entries.values():
            out[entry.type] += 1
        return out

    def _forget(self, entry: Entry) -> None:
        del self._entries[entry.id]
        self._bytes -= entry.size

    def _enforce_bound(self) -> None:
        if self._bytes <= self.max_bytes:
            return
        dropped = dict.fromkeys(DROP_ORDER, 0)
        for kind in DROP_ORDER:
            for entry in [e for e in self._entries.values() if e.type == kind]:
                if self._bytes <= self.max_bytes:
                    break
                self._forget(entry)
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / entry.name).unlink()
                dropped[kind] += 1
        log.warning(
            "spool: over its bound of %d bytes; dropped the oldest %d metrics, %d heartbeat and %d inventory reports",
            self.max_bytes,
            dropped["metrics"],
            dropped["heartbeat"],
            dropped["inventory"],
        )

    def _move_to_rejected(self, path: Path) -> None:
        ensure_private_dir(self.rejected_dir)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, self.rejected_dir / path.name)
        self._bound_rejected()

    def _bound_rejected(self) -> None:
        files = sorted(p for p in self.rejected_dir.iterdir() if p.is_file())
        sizes = [p.stat().st_size for p in files]
        while files and (len(files) > REJECTED_MAX_FILES or sum(sizes) > REJECTED_MAX_BYTES):
            files.pop(0).unlink()
            sizes.pop(0)


def spool_usage(directory: Path) -> tuple[int, int]:
    """(reports, bytes) in a spool directory, without opening it as a Spool (for ``itsm-agent status``)."""
    count = size = 0
    if directory.is_dir():
        for path in directory.iterdir():
            if path.is_file() and _NAME.fullmatch(path.name):
                count += 1
                size += path.stat().st_size
    return count, size
