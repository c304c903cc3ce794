"""Console page /t/<tenant>/mailin/: the tenant's inbound addresses (add, remove) and the messages that
were ignored or failed, with the reason. Provider staff only (the selectors refuse others)."""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.problems import DomainError, NotFound, PermissionDenied

from . import selectors, services
from .models import InboundAddress, InboundMessage


class AddressForm(forms.Form):
    address = forms.EmailField(max_length=254)
    creates = forms.ChoiceField(choices=InboundAddress.Creates.choices)
    catalog_item_id = forms.UUIDField(required=False, label="Catalog item id (service requests)")


def mailin_settings(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    assert request.tenant is not None
    form = AddressForm(request.POST or None)
    try:
        if request.method == "POST" and "delete" in request.POST:
            address = selectors.inbound_address_get(
                actor=actor, tenant=request.tenant, address_id=int(request.POST["delete"])
            )
            services.inbound_address_delete(actor=actor, address=address)
            return redirect("mailin_settings", tenant=tenant)
        if request.method == "POST" and form.is_valid():
            try:
                services.inbound_address_create(actor=actor, tenant=request.tenant, **form.cleaned_data)
                return redirect("mailin_settings", tenant=tenant)
            except DomainError as exc:
                if isinstance(exc, PermissionDenied):
                    raise
                form_errors_apply(form, exc)
        addresses = selectors.inbound_address_list(actor=actor, tenant=request.tenant)
        messages = selectors.inbound_message_list(
            actor=actor,
            tenant=request.tenant,
            statuses=[InboundMessage.Status.FAILED, InboundMessage.Status.IGNORED],
        )
    except (PermissionDenied, NotFound, ValueError) as exc:
        raise Http404("no such page") from exc
    return render(
        request, "mailin/settings.html", {"form": form, "addresses": addresses, "messages": messages}
    )
