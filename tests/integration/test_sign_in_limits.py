"""Failed sign-ins are limited per client address and per account (allauth's ``login_failed`` limit),
on the real cache: Redis when REDIS_URL is set, and the database cache table otherwise. Every attempt,
refusal and lockout is in the security audit with the client address."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from conftest import PASSWORD
from controlplane.accounts.models import SecurityEvent, User
from controlplane.settings.base import cache_config

LOCKED = "Too many failed sign-in attempts. Signing in is paused for up to 15 minutes"


def rate(action: str, per: str) -> int:
    """The amount of ``per`` ("ip" or "key") in ``ACCOUNT_RATE_LIMITS[action]`` ("30/15m/ip,...")."""
    for part in settings.ACCOUNT_RATE_LIMITS[action].split(","):
        amount, _, who = part.split("/")
        if who == per:
            return int(amount)
    raise AssertionError(f"no {per} rate for {action}")


def attempt(email: str, password: str, *, ip: str, host: str = "testserver") -> tuple[Client, str]:
    """One sign-in from ``ip`` on ``host`` in a fresh browser: the client and the page's text."""
    client = Client(HTTP_HOST=host, REMOTE_ADDR=ip)
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", {"login": email, "password": password}, REMOTE_ADDR=ip)
    return client, response.content.decode() if response.status_code == 200 else ""


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_figures_are_the_documented_ones() -> None:
    assert rate("login_failed", "ip") == 30
    assert rate("login_failed", "key") == 10


def test_failures_from_one_address_lock_that_address_and_say_so(tech_a: User) -> None:
    for n in range(rate("login_failed", "ip")):
        client, page = attempt(f"guess{n}@nowhere.example", "wrong-password-123", ip="198.51.100.7")
        assert not signed_in(client) and LOCKED not in page

    client, page = attempt(tech_a.email, PASSWORD, ip="198.51.100.7")  # the right password, locked address
    assert not signed_in(client)
    assert LOCKED in page
    other, _ = attempt(tech_a.email, PASSWORD, ip="198.51.100.8")  # the account itself is not locked
    assert signed_in(other)

    locked = SecurityEvent.objects.get(verb="login.locked")
    assert (locked.user_id, locked.ip, locked.details["login"]) == (tech_a.pk, "198.51.100.7", tech_a.email)
    failed = SecurityEvent.objects.filter(verb="login.failed", ip="198.51.100.7")
    assert failed.count() == rate("login_failed", "ip")
    assert failed.first().details == {  # type: ignore[union-attr]
        "login": "guess0@nowhere.example",
        "host": "testserver",
        "reason": "bad_credentials",
    }
    assert (
        SecurityEvent.objects.filter(verb="login.succeeded", user_id=tech_a.pk, ip="198.51.100.8").count()
        == 1
    )


def test_failures_on_one_account_from_many_addresses_and_hosts_lock_the_account(
    end_user_a: User, end_user_b: User
) -> None:
    """The account is global: failures on the console and on a portal count together."""
    for n in range(rate("login_failed", "key")):
        host = "testserver" if n % 2 else "acme.localhost"
        client, page = attempt(end_user_a.email, "wrong-password-123", ip=f"203.0.113.{n + 1}", host=host)
        assert not signed_in(client) and LOCKED not in page

    client, page = attempt(end_user_a.email, PASSWORD, ip="203.0.113.200", host="acme.localhost")
    assert not signed_in(client)  # the right password is refused while the account is locked
    assert LOCKED in page
    client, page = attempt(end_user_a.email.upper(), PASSWORD, ip="203.0.113.201")  # any case, any host
    assert not signed_in(client) and LOCKED in page
    other, _ = attempt(end_user_b.email, PASSWORD, ip="203.0.113.200", host="globex.localhost")
    assert signed_in(other)  # the address is not locked, only the account

    assert SecurityEvent.objects.filter(verb="login.failed", user_id=end_user_a.pk).count() == 10
    locks = SecurityEvent.objects.filter(verb="login.locked", user_id=end_user_a.pk).order_by("id")
    assert [(e.ip, e.tenant_id) for e in locks] == [
        ("203.0.113.200", end_user_a.tenant_memberships.get().tenant_id),
        ("203.0.113.201", None),
    ]
    assert not SecurityEvent.objects.filter(verb="login.succeeded", user_id=end_user_a.pk).exists()


def test_a_success_does_not_reset_the_count_of_failures(tech_a: User) -> None:
    """allauth rolls back only the successful attempt, so interleaved successes do not let a guesser
    go on (allauth.account.adapter.authenticate)."""
    limit = rate("login_failed", "key")
    for n in range(limit - 1):
        attempt(tech_a.email, "wrong-password-123", ip=f"192.0.2.{n + 1}")
    client, _ = attempt(tech_a.email, PASSWORD, ip="192.0.2.100")
    assert signed_in(client)
    attempt(tech_a.email, "wrong-password-123", ip="192.0.2.101")
    client, page = attempt(tech_a.email, PASSWORD, ip="192.0.2.102")
    assert not signed_in(client) and LOCKED in page


def test_a_portal_user_of_another_tenant_counts_as_a_failure(end_user_a: User, tenant_b: Any) -> None:
    client, _ = attempt(end_user_a.email, PASSWORD, ip="192.0.2.50", host="globex.localhost")
    assert not signed_in(client)
    event = SecurityEvent.objects.get(verb="login.failed", user_id=end_user_a.pk)
    assert (event.details["reason"], event.tenant_id, event.provider_id) == (
        "no_role_here",
        tenant_b.pk,
        tenant_b.provider_id,
    )


def test_the_cache_is_redis_with_a_redis_url_and_the_database_otherwise() -> None:
    assert (
        cache_config("redis://127.0.0.1:6379/3")["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    )
    assert cache_config("redis://127.0.0.1:6379/3")["LOCATION"] == "redis://127.0.0.1:6379/3"
    assert cache_config("")["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"


@pytest.mark.django_db
def test_without_redis_the_limit_holds_in_the_database_cache_table(settings: Any, tech_a: User) -> None:
    """`make run` without Redis: migrate_platform creates the table in public; the limit works on it."""
    settings.CACHES = {"default": cache_config("")}
    call_command("migrate_platform", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.django_cache')::text")
        assert cursor.fetchone() == ("django_cache",)
    for n in range(rate("login_failed", "key")):
        attempt(tech_a.email, "wrong-password-123", ip=f"192.0.2.{n + 1}")
    client, page = attempt(tech_a.email, PASSWORD, ip="192.0.2.99")
    assert not signed_in(client) and LOCKED in page
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM public.django_cache WHERE cache_key LIKE %s", ["%login_failed%"])
        row = cursor.fetchone()
    assert row is not None and row[0] >= 2  # the per-address and per-account counters
