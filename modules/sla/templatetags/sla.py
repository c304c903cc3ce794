"""``{% sla_panel "incident" incident %}``: the SLA timers of a record on its console detail page.

Each timer (response, resolution) with its policy, stage, due time in the viewer's active time zone
(``controlplane.console.middleware.ViewerTimeZoneMiddleware``: the user's own zone, else the browser's,
else the tenant's ``Tenant.time_zone``, else UTC; named on the panel) and relative to now ("in 2 h 10 min", "overdue by 35 min"),
elapsed and remaining business time, and the escalation levels already run. Built from
``selectors.sla_panel_get`` (two queries whatever the number of timers); shown to technicians and admins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import template
from django.utils import timezone

from controlplane.permissions import P
from controlplane.zones import local_text
from modules.sla import selectors

register = template.Library()


def duration_text(seconds: int) -> str:
    """Whole minutes of ``abs(seconds)`` as "2 h 10 min", "35 min", "3 h" or "0 min" (minutes rounded
    down, so the text never promises more time than is left)."""
    minutes = abs(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def relative_text(seconds: int) -> str:
    """A due time relative to now: "in 2 h 10 min" (``seconds`` > 0 left) or "overdue by 35 min"."""
    return f"in {duration_text(seconds)}" if seconds > 0 else f"overdue by {duration_text(seconds)}"


def active_zone() -> tuple[str, dt.tzinfo]:
    """The active time zone's name and tzinfo (the viewer's, activated per request)."""
    return timezone.get_current_timezone_name(), timezone.get_current_timezone()


@register.inclusion_tag("sla/_panel.html", takes_context=True)
def sla_panel(
    context: dict[str, Any], record_type: str, record: Any, timers: list[Any] | None = None
) -> dict[str, Any]:
    """The panel's context for ``record`` (an Incident or ServiceRequest the page has read for its actor);
    ``record_type`` is "incident" or "service_request". ``timers``: the record's ``sla_panel_get`` list
    when the page already read it (the timeline does), else None and the tag reads it."""
    request = context["request"]
    tenant = getattr(request, "tenant", None)
    zone_name, zone = active_zone()
    now = timezone.now()
    if not isinstance(timers, list):  # not read by the page (None, or a missing variable's "")
        timers = selectors.sla_panel_get(
            actor=request.actor, record_type=record_type, record_id=record.pk, now=now
        )
    rows = []
    for view in timers:
        timer = view.timer
        rows.append(
            {
                "kind": timer.get_kind_display(),
                "stage": timer.stage,
                "stage_label": timer.get_stage_display(),
                "policy": view.policy_name,
                "due": local_text(timer.due_at, zone),
                "relative": relative_text(view.due_in_seconds)
                if timer.stage == "running" and view.due_in_seconds is not None
                else "",
                "paused_since": local_text(timer.paused_since, zone),
                "stopped": local_text(timer.stopped_at, zone),
                "breached": local_text(timer.breached_at, zone),
                "target": duration_text(timer.target_seconds),
                "elapsed": duration_text(view.elapsed_seconds),
                "remaining": duration_text(view.remaining_seconds),
                "over": view.remaining_seconds < 0,
                "runs": [
                    {"at": local_text(run.ran_at, zone), "percent": run.percent, "did": run.did}
                    for run in view.runs
                ],
            }
        )
    return {
        "shown": request.actor.may(P.CONFIG_READ),
        "timers": rows,
        "zone": zone_name,
        "tenant": tenant,
    }
