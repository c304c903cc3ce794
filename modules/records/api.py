"""REST API for the shared tenant parts: /api/v1/t/{tenant}/search, /links and /attachments.

Every operation checks access to the records involved through the owning module's own selector (the
record kinds registry), so a shared endpoint never shows more than the module's own API would.
"""

import datetime as dt
import uuid
from typing import Any, Literal

from django.core.files.storage import default_storage
from django.http import FileResponse
from ninja import Field, File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest

from . import selectors, services
from .registry import record_get

router = Router(tags=["search, links and attachments"])

LinkKind = Literal["relates_to", "duplicates", "caused_by", "blocks", "parent_of", "documents"]


class SearchHitOut(Schema):
    record_type: str
    record_id: uuid.UUID
    number: str
    title: str
    state: str
    rank: float


class SearchFilters(Schema):
    q: str = Field(..., min_length=1, max_length=200, description="words; the last one also as a prefix")
    type: list[str] | None = Field(None, description="record types to search (incident, problem, ...)")
    limit: int = Field(20, ge=1, le=100)


class RecordRef(Schema):
    record_type: str = Field(..., max_length=40)
    record_id: uuid.UUID


class LinkIn(Schema):
    source_type: str = Field(..., max_length=40)
    source_id: uuid.UUID
    target_type: str = Field(..., max_length=40)
    target_id: uuid.UUID
    kind: LinkKind


class LinkOut(Schema):
    id: uuid.UUID
    source_type: str
    source_id: uuid.UUID
    target_type: str
    target_id: uuid.UUID
    kind: LinkKind
    created_at: dt.datetime


class AttachmentOut(Schema):
    id: uuid.UUID
    record_type: str
    record_id: uuid.UUID
    file_name: str
    content_type: str
    size: int = Field(..., description="bytes")
    sha256: str
    internal: bool
    created_at: dt.datetime


class AttachmentForm(Schema):
    record_type: str = Field(..., max_length=40)
    record_id: uuid.UUID
    internal: bool = False


@router.get("/search", response=list[SearchHitOut], summary="Full-text search over records and articles")
def search(request: TenantRequest, tenant: TenantSlug, filters: Query[SearchFilters]) -> Any:
    return selectors.search(actor=request.actor, q=filters.q, record_types=filters.type, limit=filters.limit)


@router.get("/links", response=list[LinkOut], summary="Links from and to a record")
def list_links(request: TenantRequest, tenant: TenantSlug, ref: Query[RecordRef]) -> Any:
    actor = request.actor
    record_get(actor=actor, record_type=ref.record_type, record_id=ref.record_id)
    return selectors.link_list(actor=actor, record_id=ref.record_id)


@router.post("/links", response={201: LinkOut}, summary="Link two records (technicians)")
def create_link(request: TenantRequest, tenant: TenantSlug, payload: LinkIn) -> Any:
    return Status(201, services.link_create(actor=request.actor, **payload.dict()))


@router.delete("/links/{link_id}", response={204: None}, summary="Remove a link (technicians)")
def delete_link(request: TenantRequest, tenant: TenantSlug, link_id: uuid.UUID) -> Any:
    actor = request.actor
    services.link_delete(actor=actor, link=selectors.link_get(actor=actor, link_id=link_id))
    return Status(204, None)


@router.get("/attachments", response=list[AttachmentOut], summary="Attachments of a record")
def list_attachments(request: TenantRequest, tenant: TenantSlug, ref: Query[RecordRef]) -> Any:
    actor = request.actor
    record_get(actor=actor, record_type=ref.record_type, record_id=ref.record_id)
    return selectors.attachment_list(actor=actor, record_id=ref.record_id)


@router.post(
    "/attachments",
    response={201: AttachmentOut},
    summary="Attach a file to a record (multipart; the type is sniffed from the bytes)",
)
def add_attachment(
    request: TenantRequest, tenant: TenantSlug, form: Form[AttachmentForm], file: File[UploadedFile]
) -> Any:
    attachment = services.attachment_add(
        actor=request.actor,
        record_type=form.record_type,
        record_id=form.record_id,
        upload=file,
        internal=form.internal,
    )
    return Status(201, attachment)


@router.get("/attachments/{attachment_id}", response=AttachmentOut, summary="An attachment's details")
def get_attachment(request: TenantRequest, tenant: TenantSlug, attachment_id: uuid.UUID) -> Any:
    return selectors.attachment_get(actor=request.actor, attachment_id=attachment_id)


@router.get(
    "/attachments/{attachment_id}/content",
    response={200: None},
    summary="Download an attachment (after the same permission check as the record)",
)
def download_attachment(request: TenantRequest, tenant: TenantSlug, attachment_id: uuid.UUID) -> FileResponse:
    return attachment_response(selectors.attachment_get(actor=request.actor, attachment_id=attachment_id))


@router.delete("/attachments/{attachment_id}", response={204: None}, summary="Remove an attachment")
def delete_attachment(request: TenantRequest, tenant: TenantSlug, attachment_id: uuid.UUID) -> Any:
    actor = request.actor
    services.attachment_delete(
        actor=actor, attachment=selectors.attachment_get(actor=actor, attachment_id=attachment_id)
    )
    return Status(204, None)


def attachment_response(attachment: Any) -> FileResponse:
    """The file as a download: the sniffed type, ``nosniff``, never rendered inline, never cached by
    shared caches (the permission check must run on every request)."""
    response = FileResponse(
        default_storage.open(attachment.storage_name, "rb"),
        as_attachment=True,
        filename=attachment.file_name,
        content_type=attachment.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
