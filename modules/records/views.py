"""Console and portal pages for the shared tenant parts: search, attachment download and upload, links.

Entry points: parse, call one service or selector. Downloads go through ``attachment_get``, which checks
access to the record with the owning module's own selector; files are never reachable by URL alone.
"""

from __future__ import annotations

import uuid

from django import forms
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, request_actor
from controlplane.problems import DomainError, NotFound

from . import selectors, services
from .api import attachment_response
from .forms import AssignForm
from .models import RecordLink
from .registry import kind_get


def _back(request: TenantRequest, fallback: str) -> HttpResponse:
    """Redirect to the ``next`` field when it is a path on this host (never an open redirect)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback)


class SearchForm(forms.Form):
    q = forms.CharField(max_length=200, label="Search")


def search_page(request: TenantRequest, tenant: str) -> HttpResponse:
    """Search the tenant's records and articles; each hit links to its console page."""
    actor = request_actor(request)
    form = SearchForm(request.GET or None)
    hits = []
    if form.is_valid():
        for hit in selectors.search(actor=actor, q=form.cleaned_data["q"], limit=50):
            kind = kind_get(hit.record_type)
            path = kind.console_path.format(number=hit.number, id=hit.record_id)
            hits.append({"hit": hit, "label": kind.label, "url": f"/t/{tenant}/{path}"})
    return render(request, "records/search.html", {"form": form, "hits": hits})


def attachment_download(
    request: TenantRequest, attachment_id: uuid.UUID, tenant: str | None = None
) -> FileResponse:
    """Console (/t/<tenant>/attachments/<id>/) and portal (/attachments/<id>/) download."""
    actor = request_actor(request)
    try:
        attachment = selectors.attachment_get(actor=actor, attachment_id=attachment_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    return attachment_response(attachment)


class AttachmentForm(forms.Form):
    record_type = forms.CharField(max_length=40)
    record_id = forms.UUIDField()
    file = forms.FileField()
    internal = forms.BooleanField(required=False)


@require_POST
def attachment_upload(request: TenantRequest, tenant: str | None = None) -> HttpResponse:
    """Upload from a record's page; back to that page, with the refusal shown as a message."""
    actor = request_actor(request)
    form = AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "records/refused.html", {"errors": form.errors}, status=422)
    data = form.cleaned_data
    try:
        services.attachment_add(
            actor=actor,
            record_type=data["record_type"],
            record_id=data["record_id"],
            upload=data["file"],
            internal=data["internal"],
        )
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        return render(request, "records/refused.html", {"error": exc}, status=exc.status)
    return _back(request, f"/t/{tenant}/" if tenant else "/")


class LinkForm(forms.Form):
    source_type = forms.CharField(max_length=40)
    source_id = forms.UUIDField()
    target_number = forms.CharField(max_length=40, label="Record number")
    kind = forms.ChoiceField(choices=RecordLink.Kind.choices)


@require_POST
def link_add(request: TenantRequest, tenant: str) -> HttpResponse:
    """Link the record whose page this is to another record given by its number (INC..., PRB..., KB...)."""
    actor = request_actor(request)
    form = LinkForm(request.POST)
    if not form.is_valid():
        return render(request, "records/refused.html", {"errors": form.errors}, status=422)
    data = form.cleaned_data
    try:
        target = selectors.record_ref_by_number(actor=actor, number=data["target_number"])
        services.link_create(
            actor=actor,
            source_type=data["source_type"],
            source_id=data["source_id"],
            target_type=target.record_type,
            target_id=target.record_id,
            kind=data["kind"],
        )
    except DomainError as exc:
        return render(request, "records/refused.html", {"error": exc}, status=exc.status)
    return _back(request, f"/t/{tenant}/")


@require_POST
def link_remove(request: TenantRequest, tenant: str, link_id: uuid.UUID) -> HttpResponse:
    actor = request_actor(request)
    try:
        services.link_delete(actor=actor, link=selectors.link_get(actor=actor, link_id=link_id))
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        return render(request, "records/refused.html", {"error": exc}, status=exc.status)
    return _back(request, f"/t/{tenant}/")


# Assignment on record pages: the form every practice's detail page shows, and its options endpoint.


def assignee_options(request: TenantRequest, tenant: str) -> HttpResponse:
    """GET /t/<tenant>/assignees/?q=...&assignment_group=<id>&assigned_to=<id>: the two assignment
    <select>s narrowed to names containing ``q`` (the current choices kept), for the search-as-you-type
    picker of a record page (htmx swaps them in; the page works without it)."""
    actor = request_actor(request)
    form = AssignForm(
        initial={k: request.GET.get(k) for k in ("assignment_group", "assigned_to")},
        actor=actor,
        q=request.GET.get("q", ""),
    )
    return render(request, "records/_assignee_options.html", {"form": form})


# Saved list views (modules/records/listing.py): save the list's current query string, delete one's own.


class SavedViewForm(forms.Form):
    list_name = forms.CharField(max_length=20)
    name = forms.CharField(max_length=80, label="View name")
    query = forms.CharField(max_length=4000, required=False)
    shared = forms.BooleanField(required=False)


@require_POST
def saved_view_create(request: TenantRequest, tenant: str) -> HttpResponse:
    """Save the list's current filters and sort as a named view, then show the list with it applied."""
    actor = request_actor(request)
    form = SavedViewForm(request.POST)
    if not form.is_valid():
        return render(request, "records/refused.html", {"errors": form.errors}, status=422)
    try:
        view = services.saved_view_create(actor=actor, **form.cleaned_data)
    except DomainError as exc:
        return render(request, "records/refused.html", {"error": exc}, status=exc.status)
    response = _back(request, f"/t/{tenant}/")
    if view.query and response["Location"].startswith("/") and "?" not in response["Location"]:
        response["Location"] = f"{response['Location']}?{view.query}"
    return response


@require_POST
def saved_view_delete(request: TenantRequest, tenant: str, view_id: uuid.UUID) -> HttpResponse:
    """Delete a saved view: its owner only (403 for another technician's shared view, 404 for a view the
    actor cannot see at all, including another tenant's)."""
    actor = request_actor(request)
    try:
        view = selectors.saved_view_get(actor=actor, view_id=view_id)
        services.saved_view_delete(actor=actor, view=view)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        return render(request, "records/refused.html", {"error": exc}, status=exc.status)
    return _back(request, f"/t/{tenant}/")
