"""``{% record_panel "incident" incident %}``: the attachments and links of a record on its detail page.

A read for the page being rendered (same actor, same scoping as the selectors); on the portal host it
shows attachments only, since links are technicians' working data.
"""

from __future__ import annotations

from typing import Any

from django import template

from modules.records import selectors
from modules.records.models import RecordLink
from modules.records.registry import kind_get

register = template.Library()


@register.inclusion_tag("records/_panel.html", takes_context=True)
def record_panel(context: dict[str, Any], record_type: str, record: Any) -> dict[str, Any]:
    request = context["request"]
    actor = request.actor
    tenant = getattr(request, "tenant", None)
    on_portal = getattr(request, "portal_tenant", None) is not None
    base = "/" if on_portal or tenant is None else f"/t/{tenant.slug}/"
    links = list(selectors.link_list(actor=actor, record_id=record.pk))
    others = [link.target_id if link.source_id == record.pk else link.source_id for link in links]
    refs = selectors.record_refs(record_ids=others)
    shown = []
    for link, other in zip(links, others, strict=True):
        outgoing = link.source_id == record.pk
        reading = link.get_kind_display() if outgoing else RecordLink.INVERSE[link.kind]
        ref = refs.get(other)
        url = f"{base}{kind_get(ref.record_type).console_path.format(number=ref.number)}" if ref else ""
        shown.append({"link": link, "reading": reading, "other": ref, "url": url})
    return {
        "request": request,
        # Where the forms come back to: the record's page, also when this panel was rendered as the answer
        # to an inline action posted to another path (``record_path`` from the detail views).
        "back_to": context.get("record_path") or request.path,
        "csrf_token": context.get("csrf_token"),
        "record_type": record_type,
        "record": record,
        "base": base,
        "on_portal": on_portal,
        "is_technician": actor.is_technician,
        "attachments": selectors.attachment_list(actor=actor, record_id=record.pk),
        "links": shown,
        "link_kinds": RecordLink.Kind.choices,
    }


@register.filter
def action_label(action: str) -> str:
    """``start_analysis`` -> ``Start analysis``: a state action's name as a button label."""
    text = str(action).replace("_", " ")
    return text[:1].upper() + text[1:]
