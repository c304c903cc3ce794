"""A per-address limit on starting single sign-on: each start writes a row (an issued AuthnRequest, an
OIDC state), so an unlimited loop of starts would fill tables. Django's cache (Redis, else the database
cache table; settings.CACHES) counts starts per client address in fixed windows."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from controlplane.accounts.services import client_ip

# Starts per client address and window (seconds), settings SSO_START_LIMIT and SSO_START_WINDOW_SECONDS.
# A person signing in starts one; a shared office NAT with many people signing in at 9:00 stays far
# below 60 a minute.
DEFAULT_LIMIT, DEFAULT_WINDOW_SECONDS = 60, 60


def sso_start_refusal(request: HttpRequest) -> HttpResponse | None:
    """None while this client address has started at most SSO_START_LIMIT sign-ins in the current
    window; else a 429 page with ``Retry-After`` (seconds to the window's end, RFC 9110 10.2.3). The key
    names the address only: a start precedes any tenant or user, and the limit guards shared tables."""
    limit = int(getattr(settings, "SSO_START_LIMIT", DEFAULT_LIMIT))
    seconds = int(getattr(settings, "SSO_START_WINDOW_SECONDS", DEFAULT_WINDOW_SECONDS))
    now = int(time.time())
    window = now - now % seconds
    key = f"sso-start:{client_ip(request) or 'unknown'}:{window}"
    cache.add(key, 0, timeout=seconds + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.set(key, 1, timeout=seconds + 5)
        count = 1
    if count <= limit:
        return None
    portal = getattr(request, "portal_tenant", None) is not None
    context = {"base_template": "portal_base.html" if portal else "base.html"}
    response = render(request, "sso/too_many.html", context, status=429)
    response["Retry-After"] = str(window + seconds - now)
    return response
