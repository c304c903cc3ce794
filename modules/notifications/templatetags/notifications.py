"""``{% notification_bell %}``: the bell in the console and portal headers: the unread count and the
five newest unread notifications in a dropdown (a ``<details>`` element: works without JavaScript)."""

from __future__ import annotations

from typing import Any

from django import template

from modules.notifications import selectors
from modules.notifications.views import items_for, notifications_base

register = template.Library()
DROPDOWN_SIZE = 5


@register.inclusion_tag("notifications/_bell.html", takes_context=True)
def notification_bell(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    actor = getattr(request, "actor", None)
    if request is None or actor is None or actor.person_id is None:
        return {"show": False}
    unread = selectors.notification_list(actor=actor, unread_only=True)[:DROPDOWN_SIZE]
    return {
        "show": True,
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "unread_count": selectors.notification_unread_count(actor=actor),
        "items": items_for(request, unread),
        "base": notifications_base(request),
    }
