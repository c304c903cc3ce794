"""Class-specific CI attributes: one table, validated per class by the services.

The attribute names and the split per class follow ServiceNow's CMDB classes (``cmdb_ci_server``:
serial_number, manufacturer, model_id, os, os_version, cpu_count, ram, ip_address, fqdn;
``cmdb_ci_netgear``: firmware_version, ports; ``cmdb_ci_database``: type, version, tcp_port;
``cmdb_ci_service``: busines_criticality "1 - most critical" .. "4 - not critical"). Values are stored
in ``ConfigurationItem.attributes`` in their JSON form: int, float, bool, or a normalised string (IP and
MAC addresses, ISO dates, e-mail addresses, URLs, choice values).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from controlplane.problems import InvalidInput

from .models import CIClass


class AttrType:
    STR = "str"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    IP_ADDRESS = "ip_address"
    MAC_ADDRESS = "mac_address"
    DATE = "date"
    EMAIL = "email"
    URL = "url"
    CHOICE = "choice"
    LIST = "list"  # a JSON array (discovered disks, interfaces, ...); ``maximum`` bounds its length


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute of a class. ``choices`` is (value, label) pairs for CHOICE; ``minimum`` and
    ``maximum`` bound INT and NUMBER values (inclusive); ``max_length`` bounds STR values."""

    name: str
    label: str
    type: str = AttrType.STR
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 255

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "required": self.required,
            "choices": [{"value": v, "label": label} for v, label in self.choices],
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


A = AttributeSpec
T = AttrType

_COMPUTER = (
    A("serial_number", "Serial number", max_length=100),
    A("manufacturer", "Manufacturer", max_length=100),
    A("model", "Model", max_length=100),
    A("os", "Operating system", max_length=100),
    A("os_version", "OS version", max_length=100),
    A("cpu_count", "CPU count", T.INT, minimum=1, maximum=4096),
    A("memory_mb", "Memory (MB)", T.INT, minimum=1, maximum=1 << 31),
    A("ip_address", "IP address", T.IP_ADDRESS),
    A("fqdn", "Fully qualified domain name", max_length=253),
    # Written by discovery from an agent's inventory (modules/cmdb/discovery.py); editable like the rest.
    A("kernel", "Kernel", max_length=255),
    A("architecture", "Architecture", max_length=100),
    A("cpu_model", "CPU model", max_length=255),
    A("cpu_cores", "CPU cores", T.INT, minimum=0, maximum=65536),
    A("boot_time", "Boot time (UTC)", max_length=40),
    A("disks", "Disks", T.LIST, maximum=64),
    A("network", "Network interfaces", T.LIST, maximum=64),
    A("usb", "USB devices", T.LIST, maximum=128),
    A("users", "Logged-in users", T.LIST, maximum=256),
)
_HARDWARE = (
    A("serial_number", "Serial number", max_length=100),
    A("manufacturer", "Manufacturer", max_length=100),
    A("model", "Model", max_length=100),
    A("asset_tag", "Asset tag", max_length=100),
    A("purchase_date", "Purchase date", T.DATE),
    A("warranty_expires", "Warranty expires", T.DATE),
)
_SOFTWARE = (
    A("version", "Version", max_length=100),
    A("vendor", "Vendor", max_length=100),
    A("url", "URL", T.URL, max_length=500),
)
DATABASE_ENGINES = (
    ("postgresql", "PostgreSQL"),
    ("mysql", "MySQL"),
    ("mariadb", "MariaDB"),
    ("mssql", "Microsoft SQL Server"),
    ("oracle", "Oracle"),
    ("mongodb", "MongoDB"),
    ("redis", "Redis"),
    ("other", "Other"),
)
CRITICALITY = (
    ("1", "1 - most critical"),
    ("2", "2 - somewhat critical"),
    ("3", "3 - less critical"),
    ("4", "4 - not critical"),
)

CLASS_ATTRIBUTES: dict[str, tuple[AttributeSpec, ...]] = {
    CIClass.HARDWARE: _HARDWARE,
    CIClass.COMPUTER: _COMPUTER,
    CIClass.SERVER: _COMPUTER,
    CIClass.VIRTUAL_MACHINE: _COMPUTER,
    CIClass.NETWORK_DEVICE: (
        A("serial_number", "Serial number", max_length=100),
        A("manufacturer", "Manufacturer", max_length=100),
        A("model", "Model", max_length=100),
        A("ip_address", "IP address", T.IP_ADDRESS),
        A("mac_address", "MAC address", T.MAC_ADDRESS),
        A("firmware_version", "Firmware version", max_length=100),
        A("ports", "Ports", T.INT, minimum=1, maximum=100000),
    ),
    CIClass.SOFTWARE: _SOFTWARE,
    CIClass.APPLICATION: _SOFTWARE,
    CIClass.DATABASE: (
        A("engine", "Engine", T.CHOICE, required=True, choices=DATABASE_ENGINES),
        A("version", "Version", max_length=100),
        A("port", "TCP port", T.INT, minimum=1, maximum=65535),
    ),
    CIClass.BUSINESS_SERVICE: (
        A("criticality", "Business criticality", T.CHOICE, choices=CRITICALITY),
        A("service_owner_email", "Service owner e-mail", T.EMAIL),
    ),
    CIClass.SITE: (
        A("address", "Street address", max_length=300),
        A("city", "City", max_length=100),
        A("country", "Country", max_length=100),
    ),
    CIClass.GENERIC: (),
}

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def class_attributes(ci_class: str) -> tuple[AttributeSpec, ...]:
    """The attribute specs of a class (empty for an unknown class)."""
    return CLASS_ATTRIBUTES.get(ci_class, ())


def class_table() -> list[dict[str, Any]]:
    """Every class with its label and attributes, in CIClass order (what ``GET /classes`` returns)."""
    return [
        {
            "ci_class": value,
            "label": label,
            "attributes": [spec.as_dict() for spec in class_attributes(value)],
        }
        for value, label in CIClass.choices
    ]


@dataclass
class _Errors:
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.items.append({"field": f"attributes.{name}", "message": message})


def _clean_value(spec: AttributeSpec, value: Any) -> Any:
    """The normalised JSON value, or raise ValueError with a message for the user.

    Strings are accepted for INT, NUMBER and BOOL (form fields send text): ``"4"``, ``"2.5"``,
    ``"true"``/``"false"``. Booleans are never numbers.
    """
    kind = spec.type
    if kind == T.LIST:
        if not isinstance(value, list):
            raise ValueError("must be a list")
        if spec.maximum is not None and len(value) > spec.maximum:
            raise ValueError(f"at most {spec.maximum:g} items")
        return value
    if kind == T.INT:
        if isinstance(value, str) and _INT_TEXT.match(value.strip()):
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("must be a whole number")
        _check_range(spec, value)
        return value
    if kind == T.NUMBER:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise ValueError("must be a number")
        _check_range(spec, value)
        return value
    if kind == T.BOOL:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if not isinstance(value, str):
        raise ValueError("must be text")
    text = value.strip()
    if kind == T.STR:
        if len(text) > spec.max_length:
            raise ValueError(f"at most {spec.max_length} characters")
        return text
    if kind == T.IP_ADDRESS:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address") from None
    if kind == T.MAC_ADDRESS:
        lowered = text.lower()
        if not _MAC.match(lowered):
            raise ValueError("must be a MAC address such as 00:1a:2b:3c:4d:5e")
        digits = re.sub(r"[^0-9a-f]", "", lowered)
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    if kind == T.DATE:
        try:
            if not _DATE.match(text):
                raise ValueError(text)
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
    if kind == T.EMAIL:
        try:
            EmailValidator()(text)
        except ValidationError:
            raise ValueError("must be an e-mail address") from None
        return text
    if kind == T.URL:
        try:
            URLValidator(schemes=["http", "https"])(text)
        except ValidationError:
            raise ValueError("must be an http or https URL") from None
        return text
    if kind == T.CHOICE:
        allowed = [v for v, _ in spec.choices]
        if text not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return text
    raise ValueError(f"unsupported attribute type {kind}")  # pragma: no cover - table is fixed


def _check_range(spec: AttributeSpec, value: float) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise ValueError(f"at least {spec.minimum:g}")
    if spec.maximum is not None and value > spec.maximum:
        raise ValueError(f"at most {spec.maximum:g}")


def attributes_clean(*, ci_class: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """Validate a CI's complete attributes against its class and return them normalised.

    ``None`` and empty strings mean "not set" and are dropped. Raises InvalidInput listing every problem
    at once, each naming ``attributes.<name>``: an attribute the class does not have ("unknown attribute
    for class <class>"), a value of the wrong type or out of range, or a required attribute not set.
    """
    specs = {spec.name: spec for spec in class_attributes(ci_class)}
    errors = _Errors()
    cleaned: dict[str, Any] = {}
    for name, value in attributes.items():
        spec = specs.get(name)
        if spec is None:
            errors.add(name, f"unknown attribute for class {ci_class}")
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            cleaned[name] = _clean_value(spec, value)
        except ValueError as exc:
            errors.add(name, str(exc))
    for spec in specs.values():
        named = any(e["field"] == f"attributes.{spec.name}" for e in errors.items)
        if spec.required and spec.name not in cleaned and not named:
            errors.add(spec.name, "required")
    if errors.items:
        raise InvalidInput(
            "invalid attributes: " + ", ".join(e["field"] for e in errors.items), errors=errors.items
        )
    return {spec.name: cleaned[spec.name] for spec in specs.values() if spec.name in cleaned}
