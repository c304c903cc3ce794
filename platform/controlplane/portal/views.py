"""Portal home, help articles and the account page on a tenant's own host. Entry points: parse, call selectors, render.

The routing middleware resolved the tenant from the host and, for a signed-in user with a tenant role
there, set ``request.actor``. Visitors are sent to sign in; a signed-in user without a role gets 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.http import Http404, HttpResponse
from django.shortcuts import render

from controlplane.accounts.models import User
from controlplane.accounts.selectors import mfa_status_text, security_event_list
from controlplane.http import TenantRequest, portal_page, request_actor
from controlplane.problems import NotFound
from modules.incidents import selectors as incident_selectors
from modules.knowledge import selectors as knowledge_selectors
from modules.knowledge import services as knowledge_services
from modules.requests import selectors as request_selectors

SNIPPET_CHARS = 180
RESULTS = 20


@dataclass(frozen=True)
class Snippet:
    """A piece of an article's text around the first search word: ``before``, ``match``, ``after`` (the
    template marks ``match``; all three are escaped there). ``lead``/``tail``: text was cut there."""

    before: str
    match: str
    after: str
    lead: bool
    tail: bool


def snippet(text: str, q: str, width: int = SNIPPET_CHARS) -> Snippet:
    """About ``width`` characters of ``text`` (whitespace collapsed) around the first word of ``q`` found
    in it (case-insensitive); the start of the text when none is found."""
    flat = " ".join(text.split())
    words = [w for w in q.split() if w]
    found = None
    for word in words:
        found = re.search(re.escape(word), flat, flags=re.IGNORECASE)
        if found:
            break
    if found is None:
        cut = flat[:width]
        return Snippet(cut, "", "", False, len(flat) > width)
    start = max(0, found.start() - width // 3)
    end = min(len(flat), found.end() + width - width // 3)
    return Snippet(
        flat[start : found.start()], found.group(0), flat[found.end() : end], start > 0, end < len(flat)
    )


@portal_page
def home(request: TenantRequest) -> HttpResponse:
    """The portal home: welcome text, help-article search, popular and recent articles, links to report a
    problem, the catalog, my requests and approvals, and the person's open records count."""
    actor = request_actor(request)
    articles = knowledge_selectors.article_portal_list(actor=actor)
    popular = list(articles.order_by("-view_count", "-published_at", "-id")[:5])
    recent = list(articles.order_by("-published_at", "-id")[:5])
    my_incidents = incident_selectors.incident_list(actor=actor, open_only=True, caller=actor.person_id)
    if actor.person_id is None:  # no caller filter would mean every incident the actor may see
        my_incidents = my_incidents.none()
    my_requests = request_selectors.service_request_list(actor=actor, open_only=True, own_only=True)
    open_incidents = list(my_incidents.order_by("-opened_at", "-id")[:5])
    open_incident_count, open_request_count = my_incidents.count(), my_requests.count()
    context = {
        "popular": popular,
        "recent": recent,
        "open_incidents": open_incidents,
        "open_incident_count": open_incident_count,
        "open_request_count": open_request_count,
        "open_count": open_incident_count + open_request_count,
        "approval_count": request_selectors.approval_list_for(actor=actor).count(),
        "surveys": incident_selectors.incident_survey_pending_list(actor=actor)[:5],
    }
    return render(request, "portal/home.html", context)


@portal_page
def knowledge_search(request: TenantRequest) -> HttpResponse:
    """Search the tenant's published portal articles (``?q=``); results with a snippet around the first
    word found; most viewed first, then most recently published. At most 20 results."""
    actor = request_actor(request)
    q = request.GET.get("q", "").strip()[:200]
    qs = knowledge_selectors.article_portal_list(actor=actor, q=q)
    rows = list(qs.order_by("-view_count", "-published_at", "-id")[:RESULTS])
    results = [(a, snippet(a.published_version.body if a.published_version else "", q)) for a in rows]
    template = "portal/_results.html" if getattr(request, "htmx", False) else "portal/knowledge.html"
    return render(request, template, {"q": q, "results": results})


@portal_page
def knowledge_article(request: TenantRequest, number: str) -> HttpResponse:
    """One published portal article (its published text only); counts a view."""
    actor = request_actor(request)
    try:
        article = knowledge_selectors.article_portal_get(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    knowledge_services.article_viewed(actor=actor, article=article)
    return render(request, "portal/article.html", {"article": article, "version": article.published_version})


@portal_page
def account(request: TenantRequest) -> HttpResponse:
    """The signed-in user's account on this portal: change password, sign out everywhere, and the last
    sign-ins and security changes of their account (any host)."""
    user = request.user
    assert isinstance(user, User)
    context = {"events": security_event_list(user=user, limit=10), "mfa_status": mfa_status_text(user=user)}
    return render(request, "portal/account.html", context)
