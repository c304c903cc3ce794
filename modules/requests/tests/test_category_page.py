"""The catalog category edit page: technicians and admins edit, others get 404; a bad or duplicate
name is shown by the field and writes nothing."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.records.models import ActivityEntry
from modules.requests.models import CatalogCategory
from tenants.models import Tenant

from .factories import category

ClientFor = Callable[..., Client]


def test_technician_edits_a_category_from_the_catalog(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        hardware = category(actor_in(tenant_a, tech_a))
    url = f"/t/acme/requests/catalog/categories/{hardware.pk}/edit/"
    console = client_for(tech_a)
    assert f'href="{url}"' in console.get("/t/acme/requests/catalog/").content.decode()
    page = console.get(url)
    assert page.status_code == 200 and 'value="Hardware"' in page.content.decode()
    saved = console.post(url, {"name": "Devices", "description": "laptops and phones", "order": "5"})
    assert saved.status_code == 302 and saved["Location"] == "/t/acme/requests/catalog/"
    with tenant_context(tenant_a):
        stored = CatalogCategory.objects.get(pk=hardware.pk)
        assert (stored.name, stored.description, stored.order) == ("Devices", "laptops and phones", 5)
        entry = ActivityEntry.objects.filter(record_id=hardware.pk).order_by("at").last()
        assert entry is not None and entry.changes["name"] == ["Hardware", "Devices"]


def test_duplicate_name_is_shown_by_the_field_and_writes_nothing(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        hardware = category(actor_in(tenant_a, tech_a))
        category(actor_in(tenant_a, tech_a), name="Software")
        before = ActivityEntry.objects.count()
    url = f"/t/acme/requests/catalog/categories/{hardware.pk}/edit/"
    refused = client_for(tech_a).post(url, {"name": "software", "order": "10"})
    assert refused.status_code == 422
    assert 'id="id_name_error"><li>already used</li>' in refused.content.decode()
    with tenant_context(tenant_a):
        assert CatalogCategory.objects.get(pk=hardware.pk).name == "Hardware"
        assert ActivityEntry.objects.count() == before


def test_end_user_gets_404_and_writes_nothing(
    client_for: ClientFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        hardware = category(actor_in(tenant_a, tech_a))
        before = ActivityEntry.objects.count()
    url = f"/t/acme/requests/catalog/categories/{hardware.pk}/edit/"
    user = client_for(end_user_a)
    assert user.get(url).status_code == 403
    assert user.post(url, {"name": "Mine", "order": "1"}).status_code == 403
    missing = client_for(tech_a).get(
        "/t/acme/requests/catalog/categories/0190c1d2-0000-7000-8000-000000000000/edit/"
    )
    assert missing.status_code == 404
    with tenant_context(tenant_a):
        assert CatalogCategory.objects.get(pk=hardware.pk).name == "Hardware"
        assert ActivityEntry.objects.count() == before
