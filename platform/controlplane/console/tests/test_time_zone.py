"""The viewer's time zone (user, then browser cookie, then tenant, then UTC) and the ``ui`` tags."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.utils import timezone
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from controlplane.console.middleware import viewer_zone_name
from controlplane.console.templatetags.ui import client_colour, relative
from tenants.models import Tenant

NOW = dt.datetime(2025, 6, 2, 8, 30, tzinfo=dt.UTC)


def request_with(*, user: object = None, cookie: str | None = None, tenant: object = None) -> HttpRequest:
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()  # type: ignore[assignment]
    if cookie is not None:
        request.COOKIES["tz"] = cookie
    request.tenant = tenant  # type: ignore[attr-defined]
    return request


class Named:
    def __init__(self, time_zone: str) -> None:
        self.time_zone = time_zone
        self.is_authenticated = True


def test_zone_order_user_then_cookie_then_tenant_then_utc() -> None:
    tenant = Named("Europe/London")
    assert viewer_zone_name(request_with(user=Named("Asia/Tokyo"), cookie="Europe/Paris", tenant=tenant)) == (
        "Asia/Tokyo"
    )
    assert (
        viewer_zone_name(request_with(user=Named(""), cookie="Europe/Paris", tenant=tenant)) == "Europe/Paris"
    )
    assert viewer_zone_name(request_with(cookie="America%2FNew_York", tenant=tenant)) == "America/New_York"
    assert viewer_zone_name(request_with(user=Named(""), tenant=tenant)) == "Europe/London"
    assert viewer_zone_name(request_with()) == "UTC"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "+02:00", "x" * 300])
def test_invalid_cookie_and_user_zones_are_skipped(bad: str) -> None:
    tenant = Named("Europe/London")
    assert viewer_zone_name(request_with(user=Named(bad), cookie=bad, tenant=tenant)) == "Europe/London"
    assert viewer_zone_name(request_with(cookie=bad)) == "UTC"


def test_console_page_runs_in_the_users_zone_over_the_cookie(
    client_for: Callable[..., Client], tech_a: User
) -> None:
    client = client_for(tech_a)
    client.cookies["tz"] = "Europe/Paris"
    assert "<strong>Europe/Paris</strong>" in client.get("/me/profile/").content.decode()
    tech_a.time_zone = "Asia/Tokyo"
    tech_a.save(update_fields=["time_zone"])
    assert "<strong>Asia/Tokyo</strong>" in client.get("/me/profile/").content.decode()


def test_sla_panel_names_the_viewers_zone(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    from modules.sla.tests.test_panel import known_incident

    with tenant_context(tenant_a):
        incident = known_incident(tenant_a, tech_a)
    client = client_for(tech_a)
    in_tenant_zone = client.get(f"/t/acme/incidents/{incident.number}/").content.decode()
    assert "Times in Europe/London." in in_tenant_zone and "2025-06-02 10:30 BST" in in_tenant_zone
    client.cookies["tz"] = "Asia/Tokyo"
    in_browser_zone = client.get(f"/t/acme/incidents/{incident.number}/").content.decode()
    # Response due 09:30 UTC = 18:30 JST.
    assert "Times in Asia/Tokyo." in in_browser_zone and "2025-06-02 18:30 JST" in in_browser_zone


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (NOW, "now"),
        (NOW + dt.timedelta(seconds=59), "now"),
        (NOW + dt.timedelta(minutes=12, seconds=40), "in 12 min"),
        (NOW - dt.timedelta(minutes=3), "3 min ago"),
        (NOW + dt.timedelta(hours=2, minutes=59), "in 2 h"),
        (NOW - dt.timedelta(hours=47), "47 h ago"),
        (NOW + dt.timedelta(days=2, hours=5), "in 2 d"),
        (NOW - dt.timedelta(days=9), "9 d ago"),
        (None, ""),
        ("2025-06-02", ""),
    ],
)
def test_relative_filter(value: object, text: str) -> None:
    assert relative(value, NOW) == text


def test_when_tag_renders_local_time_in_the_active_zone_and_relative() -> None:
    template = Template("{% load ui %}{% when due now=now %}|{{ due|relative:now }}")
    due = NOW + dt.timedelta(hours=2)
    with timezone.override(zoneinfo.ZoneInfo("Europe/London")):
        london = template.render(Context({"due": due, "now": NOW}))
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        new_york = template.render(Context({"due": due, "now": NOW}))
    assert london == (
        '<time datetime="2025-06-02T10:30:00+00:00" title="Europe/London">2025-06-02 11:30 BST · in 2 h</time>'
        "|in 2 h"
    )
    assert new_york.startswith(
        '<time datetime="2025-06-02T10:30:00+00:00" title="America/New_York">2025-06-02 06:30 EDT'
    )
    assert Template("{% load ui %}{% when missing %}").render(Context({})) == ""


def test_client_colour_is_stable_per_slug() -> None:
    class T:
        slug = "acme"

    assert client_colour(T()) == client_colour(T())
    assert client_colour(T()).startswith("chip-") and 0 <= int(client_colour(T())[5:]) < 8
