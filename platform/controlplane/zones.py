"""IANA time zone names: the one list the console, the portal, the SLA calendars and tenant provisioning
check names against and offer in their forms."""

from __future__ import annotations

import functools
import zoneinfo


@functools.cache
def zone_names() -> frozenset[str]:
    """The IANA zone names this machine's zoneinfo knows ("Europe/London", "UTC"), read once per process
    (listing them scans the tz database, about 15 ms)."""
    return frozenset(zoneinfo.available_timezones())


def zone_valid(name: str | None) -> bool:
    """True if ``name`` is a known IANA zone name. Never a path, an offset or an abbreviation."""
    return bool(name) and name in zone_names()


@functools.cache
def zone_choices() -> list[tuple[str, str]]:
    """``(name, name)`` for every known zone, sorted: the choices of a form's time zone field."""
    return [(name, name) for name in sorted(zone_names())]
