"""What the agent reports: heartbeat, metrics and inventory data, shaped and bounded to the published JSON
Schemas (agent_gateway/schemas/{heartbeat,metrics,inventory}.json, summarised in 0018).

Everything here reads the local machine only (psutil, /proc, /sys, os-release, the package manager) and
never raises for a missing source: a field it cannot read is empty or zero, with a debug log line.
Strings are cut to the schemas' lengths and lists to their item limits, so a strange machine never makes
a report the gateway refuses.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from itsm_agent import __version__
from itsm_agent.state import SERVICE_NAME

SUBPROCESS_TIMEOUT = 60  # seconds, for the package manager and systemctl
SOFTWARE_LIMIT = 5000
_USB_ID = re.compile(r"^[0-9a-f]{4}$")
_SUBPROCESS_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

log = logging.getLogger(__name__)


def rfc3339(timestamp: float) -> str:
    """Unix seconds → RFC 3339 UTC with a "Z", whole seconds: ``2026-12-02T09:30:00Z``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_report(kind: str, data: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """A report envelope (0018): a fresh uuid4 id, the type, ``collected_at`` (RFC 3339 UTC) and the data."""
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "collected_at": rfc3339(time.time() if now is None else now),
        "data": data,
    }


def _cut(value: object, limit: int) -> str:
    return str(value)[:limit]


def _uptime_seconds() -> int:
    return max(0, int(time.time() - psutil.boot_time()))


def heartbeat() -> dict[str, Any]:
    """heartbeat.json: ``{"uptime_seconds": int, "agent_version": str}``."""
    return {"uptime_seconds": min(_uptime_seconds(), 3153600000), "agent_version": __version__}


class MetricsSampler:
    """metrics.json samples. CPU percent is measured since the previous sample (psutil's own window), so
    the sampler primes it at creation and a sample taken right after waits half a second instead."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)
        self._primed_at = time.monotonic()

    def sample(self, services: tuple[str, ...] = ()) -> dict[str, Any]:
        """``{"cpu_percent", "memory_percent": 0-100, "disks": [{"mount", "percent"}], "load": [1m, 5m, 15m],
        "services": [{"name", "status": "running"|"stopped"}]}`` (services only when some are watched)."""
        if time.monotonic() - self._primed_at < 0.5:
            cpu = psutil.cpu_percent(interval=0.5)
        else:
            cpu = psutil.cpu_percent(interval=None)
        self._primed_at = 0.0
        data: dict[str, Any] = {
            "cpu_percent": _percent(cpu),
            "memory_percent": _percent(psutil.virtual_memory().percent),
            "disks": [{"mount": mount, "percent": _percent(usage.percent)} for mount, _, usage in _disks()],
            "load": [round(min(max(v, 0.0), 100000.0), 2) for v in _load()],
        }
        if services:
            data["services"] = [{"name": name, "status": service_status(name)} for name in services[:256]]
        return data


def _percent(value: float) -> float:
    return round(min(max(float(value), 0.0), 100.0), 1)


def _load() -> tuple[float, float, float]:
    try:
        return psutil.getloadavg()
    except (OSError, AttributeError):
        return (0.0, 0.0, 0.0)


def _disks() -> list[tuple[str, Any, Any]]:
    """(mount, partition, usage) of the real file systems, one per mount point, at most 64."""
    out: list[tuple[str, Any, Any]] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        mount = part.mountpoint
        if not mount or len(mount) > 256 or mount in seen:
            continue  # a cut mount path would name another directory: leave it out
        try:
            usage = psutil.disk_usage(mount)
        except OSError:
            log.debug("collect: cannot read usage of %s", mount)
            continue
        seen.add(mount)
        out.append((mount, part, usage))
        if len(out) == 64:
            break
    return out


def service_status(name: str) -> str:
    """``running`` if ``systemctl is-active NAME`` says active (or reloading), else ``stopped``.

    Raises ValueError for a name outside ^[A-Za-z0-9@._-]{1,128}$ (never passed to a program).
    """
    if not SERVICE_NAME.fullmatch(name) or name.startswith("-"):
        raise ValueError(f"not a service name: {name!r}")
    systemctl = shutil.which("systemctl", path=_SUBPROCESS_ENV["PATH"])
    if systemctl is None:
        return "stopped"
    try:
        done = subprocess.run(  # noqa: S603 (argv list, a validated name, no shell)
            [systemctl, "is-active", "--", name],
            capture_output=True,
            timeout=SUBPROCESS_TIMEOUT,
            env=_SUBPROCESS_ENV,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "stopped"
    return "running" if done.stdout.strip() in (b"active", b"reloading") else "stopped"


def _os_release() -> dict[str, str]:
    try:
        return platform.freedesktop_os_release()
    except OSError:
        return {}


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor()


def _software() -> list[dict[str, str]]:
    """Installed packages from dpkg (installed ones only) or rpm, sorted by name, at most 5,000; else []."""
    path = _SUBPROCESS_ENV["PATH"]
    if dpkg := shutil.which("dpkg-query", path=path):
        argv = [dpkg, "-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\t${Maintainer}\n"]
    elif rpm := shutil.which("rpm", path=path):
        argv = [rpm, "-qa", "--queryformat", "ii \t%{NAME}\t%{VERSION}-%{RELEASE}\t%{VENDOR}\n"]
    else:
        return []
    try:
        done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            argv, capture_output=True, timeout=SUBPROCESS_TIMEOUT, env=_SUBPROCESS_ENV, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("collect: cannot list installed software: %s", exc)
        return []
    packages: dict[tuple[str, str], dict[str, str]] = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if len(fields) != 4 or not fields[0].startswith("ii") or not fields[1]:
            continue  # dpkg also lists removed packages whose configuration files remain ("rc")
        _, name, version, vendor = fields
        vendor = re.sub(r"\s*<[^>]*>", "", vendor).strip()  # the maintainer's name, not their address
        if vendor == "(none)":
            vendor = ""
        item = {"name": _cut(name, 256), "version": _cut(version, 128)}
        if vendor:
            item["vendor"] = _cut(vendor, 256)
        packages[(item["name"], item["version"])] = item
    return [packages[key] for key in sorted(packages)][:SOFTWARE_LIMIT]


def _usb(root: Path = Path("/sys/bus/usb/devices")) -> list[dict[str, str]]:
    """USB devices from sysfs: vendor and product ids (4 lower-case hex digits) and the product name."""
    out: list[dict[str, str]] = []
    try:
        devices = sorted(root.iterdir())
    except OSError:
        return out
    for device in devices:
        try:
            vendor = (device / "idVendor").read_text().strip().lower()
            product = (device / "idProduct").read_text().strip().lower()
        except OSError:
            continue  # interfaces and hubs' ports have no ids
        if not (_USB_ID.fullmatch(vendor) and _USB_ID.fullmatch(product)):
            continue
        try:
            name = (device / "product").read_text(errors="replace").strip()
        except OSError:
            name = ""
        out.append({"vendor_id": vendor, "product_id": product, "name": _cut(name, 256)})
        if len(out) == 128:
            break
    return out


def _network() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        if not name:
            continue
        mac = next((a.address for a in addrs if a.family == psutil.AF_LINK), "") or ""
        ips = [a.address for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6) and a.address]
        out.append(
            {"name": _cut(name, 256), "mac": _cut(mac, 64), "addresses": [_cut(ip, 64) for ip in ips[:64]]}
        )
        if len(out) == 64:
            break
    return out


def _users() -> list[dict[str, str]]:
    out = []
    for user in psutil.users():
        if user.name:
            out.append(
                {
                    "name": _cut(user.name, 256),
                    "terminal": _cut(user.terminal or "", 64),
                    "since": rfc3339(user.started),
                }
            )
        if len(out) == 256:
            break
    return out


def inventory() -> dict[str, Any]:
    """inventory.json: hostname, os, cpu, memory_bytes, disks, network, software (≤ 5,000), usb, users,
    uptime_seconds, boot_time (RFC 3339 UTC). Takes up to a minute on a slow package database."""
    release = _os_release()
    uname = platform.uname()
    return {
        "hostname": _cut(socket.gethostname() or "unknown", 253),
        "os": {
            "name": _cut(uname.system or os.name, 256) or "unknown",
            "version": _cut(release.get("VERSION_ID", uname.version), 256),
            "distribution": _cut(release.get("PRETTY_NAME", release.get("NAME", "")), 256),
            "kernel": _cut(uname.release, 256),
            "architecture": _cut(uname.machine, 256),
        },
        "cpu": {
            "model": _cut(_cpu_model(), 256),
            "cores": min(psutil.cpu_count(logical=False) or 0, 65536),
            "threads": min(psutil.cpu_count(logical=True) or 0, 65536),
        },
        "memory_bytes": int(psutil.virtual_memory().total),
        "disks": [
            {
                "device": _cut(part.device, 256),
                "mount": mount,
                "fstype": _cut(part.fstype, 256),
                "total_bytes": int(usage.total),
            }
            for mount, part, usage in _disks()
        ],
        "network": _network(),
        "software": _software(),
        "usb": _usb(),
        "users": _users(),
        "uptime_seconds": _uptime_seconds(),
        "boot_time": rfc3339(psutil.boot_time()),
    }
