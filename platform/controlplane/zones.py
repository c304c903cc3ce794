"""IANA time zone names: the one list the console, the portal, the SLA calendars and tenant provisioning
check names against and offer in their forms."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from django.utils import timezone


@functools.cache
def zone_names() -> frozenset[str]:
    """The IANA zone names this machine's zoneinfo knows ("Europe/London", "UTC"), read once per process
    (listing them scans the tz database, about 15 ms)."""
    return frozenset(zoneinfo.available_timezones())


def zone_valid(name: str | None) -> bool:
    """True if ``name`` is a known IANA zone name. Never a path, an offset or an abbreviation."""
    return bool(name) and name in zone_names()


def local_text(value: dt.datetime | None, zone: dt.tzinfo | None = None) -> str:
    """An aware datetime as wall time in ``zone`` (default: the active zone, the viewer's on a page) with
    the zone's abbreviation: "2025-06-02 10:30 BST"; "" for None."""
    if value is None:
        return ""
    return value.astimezone(zone or timezone.get_current_timezone()).strftime("%Y-%m-%d %H:%M %Z")


@functools.cache
def zone_choices() -> list[tuple[str, str]]:
    """``(name, name)`` for every known zone, sorted: the choices of a form's time zone field."""
    return [(name, name) for name in sorted(zone_names())]
