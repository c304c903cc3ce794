"""``{% load ui %}``: how the console and portal show times and clients.

- ``{{ value|relative }}`` / ``{{ value|relative:now }}``: a datetime relative to now, coarse and
  rounded towards zero: "now" (under a minute), "in 12 min", "3 min ago", "in 2 h" (under 48 h),
  "in 2 d", "5 d ago". ``now`` (an aware datetime) is for tests; default ``timezone.now()``.
- ``{% when value %}`` / ``{% when value now=now %}``: ``<time datetime="2025-06-02T08:30:00+00:00"
  title="Europe/London">2025-06-02 09:30 BST · in 2 h</time>``: the moment in ISO 8601 (UTC) for
  machines, and for people the local date and time in the active zone (the viewer's, activated by
  ``controlplane.console.middleware.ViewerTimeZoneMiddleware``) with its abbreviation, then ``relative``.
  Renders nothing for None.
- ``{{ value|stamp }}``: "2025-06-02 09:30" in the active zone (list cells; ``|date`` costs ten times more).
- ``{{ tenant|client_colour }}``: the CSS class (``chip-0`` .. ``chip-7``, defined in app.css) of a
  client's colour chip, stable per slug, so two tabs in two clients look different at a glance.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from controlplane.zones import local_text

register = template.Library()

CHIP_COLOURS = 8


def relative_text(value: dt.datetime, now: dt.datetime) -> str:
    """``value`` relative to ``now`` (both aware): see the module docstring for the wording."""
    seconds = int((value - now).total_seconds())
    span = abs(seconds)
    if span < 60:
        return "now"
    minutes = span // 60
    if minutes < 60:
        amount = f"{minutes} min"
    elif minutes < 48 * 60:
        amount = f"{minutes // 60} h"
    else:
        amount = f"{minutes // (24 * 60)} d"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


@register.filter
def relative(value: Any, now: dt.datetime | None = None) -> str:
    """``{{ due_at|relative }}``: "in 2 h", "3 min ago", "in 2 d"; "" for anything not a datetime.
    A naive datetime is taken as UTC (the database's zone)."""
    if not isinstance(value, dt.datetime):
        return ""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return relative_text(value, now or timezone.now())


@register.filter(is_safe=True)
def stamp(value: Any) -> str:
    """``{{ record.updated_at|stamp }}``: "2025-06-02 09:30", the moment in the active (viewer's) zone;
    "" for anything not a datetime (a naive one is taken as UTC). What ``|date:"Y-m-d H:i"`` shows, at
    about a tenth of its cost: list pages show two per row."""
    if not isinstance(value, dt.datetime):
        return ""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(timezone.get_current_timezone()).strftime("%Y-%m-%d %H:%M")


@register.simple_tag
def when(value: Any, now: dt.datetime | None = None) -> SafeString | str:
    """``{% when record.updated_at %}``: a ``<time>`` element, local time · relative (module docstring)."""
    if not isinstance(value, dt.datetime):
        return ""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return format_html(
        '<time datetime="{}" title="{}">{} · {}</time>',
        value.astimezone(dt.UTC).isoformat(),
        timezone.get_current_timezone_name(),
        local_text(value),
        relative_text(value, now or timezone.now()),
    )


@register.filter
def client_colour(tenant: Any) -> str:
    """The chip class of a client: ``chip-<crc32(slug) mod 8>``."""
    slug = str(getattr(tenant, "slug", "") or "")
    return f"chip-{zlib.crc32(slug.encode()) % CHIP_COLOURS}"
