"""Real collection on this machine, validated against the published schemas (agent_gateway/schemas)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

from itsm_agent import __version__, collect

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def validator(name: str) -> Any:
    return fastjsonschema.compile(json.loads((SCHEMAS / f"{name}.json").read_text()))


def test_heartbeat_validates() -> None:
    data = collect.heartbeat()
    validator("heartbeat")(data)
    assert data["agent_version"] == __version__ and data["uptime_seconds"] > 0


def test_metrics_with_watched_services_validate() -> None:
    data = collect.MetricsSampler().sample(("ssh", "no-such-unit.service"))
    validator("metrics")(data)
    assert 0 <= data["cpu_percent"] <= 100 and len(data["load"]) == 3
    assert any(d["mount"] == "/" for d in data["disks"])
    assert data["services"][1] == {"name": "no-such-unit.service", "status": "stopped"}
    assert "services" not in collect.MetricsSampler().sample(())


def test_service_names_outside_the_pattern_never_reach_systemctl() -> None:
    for bad in ["nginx; touch /tmp/x", "--help", "a b", "", "nginx\n"]:
        with pytest.raises(ValueError):
            collect.service_status(bad)


def test_inventory_validates_and_describes_this_machine() -> None:
    data = collect.inventory()
    validator("inventory")(data)
    assert data["hostname"]
    assert data["os"]["name"] == "Linux" and data["os"]["kernel"]
    assert data["cpu"]["threads"] >= 1 and data["memory_bytes"] > 0
    assert any(d["mount"] == "/" for d in data["disks"])
    assert any(n["name"] == "lo" and "127.0.0.1" in n["addresses"] for n in data["network"])
    if Path("/usr/bin/dpkg-query").exists():  # Debian: the packages are listed, with versions
        names = {s["name"] for s in data["software"]}
        assert "dpkg" in names and len(data["software"]) <= 5000
        assert all("<" not in s.get("vendor", "") for s in data["software"])  # no maintainers' addresses
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["boot_time"])


def test_usb_devices_are_read_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "1-1").mkdir()
    (tmp_path / "1-1" / "idVendor").write_text("046D\n")
    (tmp_path / "1-1" / "idProduct").write_text("c52b\n")
    (tmp_path / "1-1" / "product").write_text("USB Receiver\n")
    (tmp_path / "1-1:1.0").mkdir()  # an interface: no ids
    (tmp_path / "2-1").mkdir()
    (tmp_path / "2-1" / "idVendor").write_text("zzzz\n")
    (tmp_path / "2-1" / "idProduct").write_text("0001\n")
    assert collect._usb(tmp_path) == [{"vendor_id": "046d", "product_id": "c52b", "name": "USB Receiver"}]


def test_reports_get_a_uuid4_and_an_rfc3339_utc_time() -> None:
    report = collect.make_report("heartbeat", collect.heartbeat(), now=1796203800.7)
    assert uuid.UUID(report["id"]).version == 4
    assert report["collected_at"] == "2026-12-02T09:30:00Z"
    assert report["type"] == "heartbeat"
