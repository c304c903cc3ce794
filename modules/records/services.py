"""Writes shared by every tenant module: numbers, activity entries, comments, links, search documents."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.utils import timezone

from controlplane.problems import Conflict, DomainError, InvalidInput, PermissionDenied

from .actor import Actor
from .attachments import SNIFF_BYTES, RefusedFile, safe_file_name, sniff
from .models import ActivityEntry, Attachment, Comment, RecordLink, SavedView, SearchDocument
from .registry import kind_get, record_get


def number_next(*, prefix: str, width: int = 7) -> str:
    """Issue the next human number for ``prefix`` in the current tenant, e.g. ``INC0000042``.

    One upsert; the row lock serialises concurrent issuers until their transaction ends, so numbers are
    unique and, within committed transactions, without gaps. Numbers are per tenant (ServiceNow style).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_numbersequence (prefix, last_value) VALUES (%s, 1) ON CONFLICT (prefix)"
            " DO UPDATE SET last_value = records_numbersequence.last_value + 1 RETURNING last_value",
            [prefix],
        )
        value = cursor.fetchone()[0]
    return f"{prefix}{value:0{width}d}"


def number_block(*, prefix: str, count: int, width: int = 7) -> list[str]:
    """Issue the next ``count`` human numbers for ``prefix`` at once (bulk creation, e.g. discovery's new
    CIs): one upsert, same guarantees as ``number_next``. Returns them in order; ``[]`` for ``count`` 0."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_numbersequence (prefix, last_value) VALUES (%s, %s) ON CONFLICT (prefix)"
            " DO UPDATE SET last_value = records_numbersequence.last_value + EXCLUDED.last_value"
            " RETURNING last_value",
            [prefix, count],
        )
        last = cursor.fetchone()[0]
    return [f"{prefix}{value:0{width}d}" for value in range(last - count + 1, last + 1)]


def number_advance_past(*, prefix: str, value: int) -> None:
    """Make sure the next number for ``prefix`` is greater than ``value`` (after importing numbers)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_numbersequence (prefix, last_value) VALUES (%s, %s) ON CONFLICT (prefix)"
            " DO UPDATE SET last_value = GREATEST(records_numbersequence.last_value, EXCLUDED.last_value)",
            [prefix, value],
        )


def history_value(value: Any) -> Any:
    """A JSON-friendly form of a field value for the activity history: a row becomes ``{"id", "name"}``
    (the name led by the record's number when its text lacks it, e.g. ``CI0000001 mail01 (Server)``), a
    date or time its ISO 8601 text (times are UTC-aware), a UUID its text; other values stay as they are."""
    if isinstance(value, models.Model):
        text, number = str(value), getattr(value, "number", None)
        return {"id": str(value.pk), "name": f"{number} {text}" if number and number not in text else text}
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def activity_record(
    *,
    actor: Actor,
    verb: str,
    record_type: str,
    record_id: uuid.UUID,
    changes: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> ActivityEntry:
    """Append one entry to the activity history. ``at`` defaults to now (UTC-aware)."""
    return ActivityEntry.objects.create(
        record_type=record_type,
        record_id=record_id,
        verb=verb,
        at=at or timezone.now(),
        actor_user_id=actor.user_id,
        actor_person=actor.person,
        source=actor.source,
        changes=changes or {},
    )


@transaction.atomic
def comment_add(
    *, actor: Actor, record_type: str, record_id: uuid.UUID, body: str, is_work_note: bool
) -> Comment:
    """Add a public comment or a work note to a record and log ``comment.added`` / ``work_note.added``.

    Callers check who may comment; this only writes.
    """
    comment = Comment.objects.create(
        record_type=record_type,
        record_id=record_id,
        author=actor.person,
        body=body,
        is_work_note=is_work_note,
    )
    activity_record(
        actor=actor,
        verb="work_note.added" if is_work_note else "comment.added",
        record_type=record_type,
        record_id=record_id,
        changes={"comment_id": str(comment.pk)},
    )
    return comment


class LinkExists(Conflict):
    slug = "link-exists"
    title = "These records are already linked this way"


@transaction.atomic
def link_create(
    *,
    actor: Actor,
    source_type: str,
    source_id: uuid.UUID,
    target_type: str,
    target_id: uuid.UUID,
    kind: str,
) -> RecordLink:
    """Link two records of this tenant: ``source`` <kind> ``target`` (e.g. an incident ``caused_by`` a
    change). Technicians only. Both records must be visible to the actor (NotFound otherwise, as for a
    missing id). Raises InvalidInput for an unknown kind or a self-link, LinkExists (409) for a duplicate.
    Logs ``link.added`` on both records."""
    if not actor.is_technician:
        raise PermissionDenied("only technicians may link records")
    if kind not in RecordLink.Kind.values:
        raise InvalidInput(
            f"unknown link kind {kind!r}", errors=[{"field": "kind", "message": "unknown kind"}]
        )
    if source_id == target_id:
        raise InvalidInput(
            "a record cannot link to itself", errors=[{"field": "target_id", "message": "same record"}]
        )
    record_get(actor=actor, record_type=source_type, record_id=source_id, field="source_type")
    record_get(actor=actor, record_type=target_type, record_id=target_id, field="target_type")
    if RecordLink.objects.filter(source_id=source_id, target_id=target_id, kind=kind).exists():
        raise LinkExists(f"{source_type} {source_id} already {kind} {target_type} {target_id}")
    link = RecordLink.objects.create(
        source_type=source_type,
        source_id=source_id,
        target_type=target_type,
        target_id=target_id,
        kind=kind,
        created_by=actor.person,
    )
    for record_type, record_id in ((source_type, source_id), (target_type, target_id)):
        activity_record(
            actor=actor,
            verb="link.added",
            record_type=record_type,
            record_id=record_id,
            changes={
                "link_id": str(link.pk),
                "kind": kind,
                "source": str(source_id),
                "target": str(target_id),
            },
        )
    return link


@transaction.atomic
def link_delete(*, actor: Actor, link: RecordLink) -> None:
    """Remove a link (technicians only) and log ``link.removed`` on both records."""
    if not actor.is_technician:
        raise PermissionDenied("only technicians may unlink records")
    for record_type, record_id in ((link.source_type, link.source_id), (link.target_type, link.target_id)):
        activity_record(
            actor=actor,
            verb="link.removed",
            record_type=record_type,
            record_id=record_id,
            changes={"link_id": str(link.pk), "kind": link.kind},
        )
    link.delete()


def search_document_set(
    *,
    record_type: str,
    record_id: uuid.UUID,
    number: str,
    title: str,
    body: str = "",
    state: str = "",
    visibility: str = SearchDocument.Visibility.TECHNICIANS,
    owner_person_id: uuid.UUID | None = None,
) -> None:
    """Write (insert or replace) the search document of one record, in the caller's transaction.

    Called by every module's create and update services. ``title`` and ``number`` are weighted A, ``body``
    B, English stemming (PostgreSQL ``to_tsvector('english', ...)``). ``visibility`` is one of
    SearchDocument.Visibility; ``owner`` documents are found by technicians and by ``owner_person_id``.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_searchdocument"
            " (record_id, record_type, number, title, state, visibility, owner_person_id, updated_at, document)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp(),"
            " setweight(to_tsvector('english', %s || ' ' || %s), 'A') || setweight(to_tsvector('english', %s), 'B'))"
            " ON CONFLICT (record_id) DO UPDATE SET record_type = EXCLUDED.record_type,"
            " number = EXCLUDED.number, title = EXCLUDED.title, state = EXCLUDED.state,"
            " visibility = EXCLUDED.visibility, owner_person_id = EXCLUDED.owner_person_id,"
            " updated_at = EXCLUDED.updated_at, document = EXCLUDED.document",
            [
                record_id,
                record_type,
                number,
                title[:300],
                state,
                visibility,
                owner_person_id,
                number,
                title,
                body,
            ],
        )


def search_document_set_many(*, record_type: str, rows: list[tuple[uuid.UUID, str, str, str, str]]) -> None:
    """``search_document_set`` for many records of one type in one statement (technicians' visibility).
    ``rows`` are ``(record_id, number, title, body, state)``."""
    if not rows:
        return
    ids, numbers, titles, bodies, states = (list(column) for column in zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_searchdocument"
            " (record_id, record_type, number, title, state, visibility, owner_person_id, updated_at, document)"
            " SELECT r.id, %s, r.number, left(r.title, 300), r.state, 'technicians', NULL, clock_timestamp(),"
            " setweight(to_tsvector('english', r.number || ' ' || r.title), 'A')"
            " || setweight(to_tsvector('english', r.body), 'B')"
            " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[])"
            " AS r(id, number, title, body, state)"
            " ON CONFLICT (record_id) DO UPDATE SET record_type = EXCLUDED.record_type,"
            " number = EXCLUDED.number, title = EXCLUDED.title, state = EXCLUDED.state,"
            " visibility = EXCLUDED.visibility, owner_person_id = EXCLUDED.owner_person_id,"
            " updated_at = EXCLUDED.updated_at, document = EXCLUDED.document",
            [record_type, ids, numbers, titles, bodies, states],
        )


def search_document_delete(*, record_id: uuid.UUID) -> None:
    """Remove a record's search document (the record was deleted or must no longer be found)."""
    SearchDocument.objects.filter(record_id=record_id).delete()


class FileTooLarge(DomainError):
    status = 413
    slug = "file-too-large"
    title = "The file is larger than the limit"


@transaction.atomic
def attachment_add(
    *, actor: Actor, record_type: str, record_id: uuid.UUID, upload: File, internal: bool = False
) -> Attachment:
    """Attach a file to a record the actor may see, and log ``attachment.added`` on the record.

    ``upload``: a Django File (an UploadedFile from a request) with ``name`` and ``size`` in bytes. The
    type is sniffed from the bytes (modules/records/attachments.py); the file is stored under
    ``<tenant schema>/attachments/<id>`` in the default storage, never under a name the uploader chose.
    If writing the row fails the stored file is removed; inside ``attachment_files_atomic`` the file is
    also removed when that block (or a savepoint in it) rolls back later. ``internal`` (technicians only) hides it from end
    users like a work note. End users attach only to kinds that allow it (their incidents and requests;
    PermissionDenied otherwise). Raises NotFound (record not visible), FileTooLarge (413, more than
    settings.ATTACHMENT_MAX_BYTES), InvalidInput (refused type, empty file, too many files on the record).
    """
    record_get(actor=actor, record_type=record_type, record_id=record_id)
    if not actor.is_technician and not kind_get(record_type).end_user_attachments:
        raise PermissionDenied(f"only technicians may attach files to a {record_type}")
    size = upload.size or 0
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise FileTooLarge(
            f"{size} bytes; the limit is {settings.ATTACHMENT_MAX_BYTES} bytes",
            errors=[{"field": "file", "message": f"at most {settings.ATTACHMENT_MAX_BYTES} bytes"}],
        )
    if size == 0:
        raise InvalidInput("the file is empty", errors=[{"field": "file", "message": "empty file"}])
    if Attachment.objects.filter(record_id=record_id).count() >= settings.ATTACHMENTS_PER_RECORD:
        raise InvalidInput(
            "too many attachments on this record",
            errors=[{"field": "file", "message": f"at most {settings.ATTACHMENTS_PER_RECORD} per record"}],
        )
    file_name = safe_file_name(upload.name or "file")
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    try:
        content_type = sniff(head=head, file_name=file_name)
    except RefusedFile as exc:
        raise InvalidInput(str(exc), errors=[{"field": "file", "message": str(exc)}]) from exc
    digest = hashlib.sha256(head)
    for chunk in iter(lambda: upload.read(1024 * 1024), b""):
        digest.update(chunk)
    upload.seek(0)
    attachment = Attachment(
        record_type=record_type,
        record_id=record_id,
        file_name=file_name,
        content_type=content_type,
        size=size,
        sha256=digest.hexdigest(),
        internal=internal and actor.is_technician,
        uploaded_by=actor.person,
    )
    schema = getattr(connection, "schema_name", "public")
    if schema == "public":  # a tenant file must never land outside a tenant's folder
        raise RuntimeError("attachment_add needs an active tenant schema")
    attachment.storage_name = default_storage.save(f"{schema}/attachments/{attachment.pk}", upload)
    try:
        attachment.save()
        activity_record(
            actor=actor,
            verb="attachment.added",
            record_type=record_type,
            record_id=record_id,
            changes={
                "attachment_id": str(attachment.pk),
                "file_name": file_name,
                "size": size,
                "internal": attachment.internal,
            },
        )
    except Exception:
        default_storage.delete(attachment.storage_name)
        raise
    scopes = _file_scopes()
    if scopes:
        scopes[-1].append(attachment.storage_name)
    return attachment


_files = threading.local()


def _file_scopes() -> list[list[str]]:
    """The open ``attachment_files_atomic`` blocks of this thread (its database connection), innermost
    last, each with the storage names of the files stored inside it."""
    stack: list[list[str]] | None = getattr(_files, "scopes", None)
    if stack is None:
        stack = _files.scopes = []
    return stack


def _files_delete(storage_names: list[str]) -> None:
    for name in storage_names:
        default_storage.delete(name)


@contextlib.contextmanager
def attachment_files_atomic() -> Iterator[None]:
    """``transaction.atomic()`` for work that stores attachments (``attachment_add``) as part of a larger
    write, such as turning an email into a ticket: no file outlives the rows that name it.

    Django has no hook for a rollback (only ``on_commit``), and a file on disk is not rolled back with
    the database, so this block keeps the storage names of the files stored inside it and:
    - when the block raises (its transaction or savepoint rolled back), deletes them all, then re-raises;
    - when it ends normally, first asks the database (still inside the transaction) which of them have an
      Attachment row, and deletes the others: files of savepoints inside it that rolled back (a caller
      that caught an error from a nested ``atomic``);
    - nested in another such block, hands the kept files to it, which decides when it ends.
    Use it as the outermost transaction of the work: an enclosing plain ``atomic`` that rolls back after
    this block ended cannot be seen. Files are in Django's default storage (MEDIA_ROOT/<schema>/
    attachments/<id>); deleting a missing file is a no-op."""
    stored: list[str] = []
    scopes = _file_scopes()
    scopes.append(stored)
    try:
        with transaction.atomic():
            yield
            # Still inside the transaction: a stored file without its row was in a rolled-back savepoint.
            kept = (
                set(Attachment.objects.filter(storage_name__in=stored).values_list("storage_name", flat=True))
                if stored
                else set()
            )
    except BaseException:
        _files_delete(stored)
        raise
    finally:
        scopes.pop()
    _files_delete([name for name in stored if name not in kept])
    if scopes:
        scopes[-1].extend(name for name in stored if name in kept)


@transaction.atomic
def attachment_delete(*, actor: Actor, attachment: Attachment) -> None:
    """Remove an attachment (technicians, or the person who uploaded it) and log ``attachment.removed``.
    The stored file is deleted after commit, so a rollback keeps it."""
    if not (actor.is_technician or (actor.person_id and attachment.uploaded_by_id == actor.person_id)):
        raise PermissionDenied("only technicians or the uploader may remove an attachment")
    activity_record(
        actor=actor,
        verb="attachment.removed",
        record_type=attachment.record_type,
        record_id=attachment.record_id,
        changes={
            "attachment_id": str(attachment.pk),
            "file_name": attachment.file_name,
            "internal": attachment.internal,
        },
    )
    storage_name = attachment.storage_name
    attachment.delete()
    transaction.on_commit(lambda: default_storage.delete(storage_name))


# Saved list views of the console lists (modules/records/listing.py).

SAVED_VIEW_QUERY_MAX = 2000


@transaction.atomic
def saved_view_create(
    *, actor: Actor, list_name: str, name: str, query: str, shared: bool = False
) -> SavedView:
    """Save the query string ``query`` (filters, sort and page size of a console list, as the list's URL
    carries them; a ``page`` or ``view`` parameter is dropped) as the view ``name`` of ``list_name``,
    owned by the acting user. ``shared`` shows it to every technician of this tenant (Jira's shared
    filters, ServiceNow's list filters visible to a group).

    Technicians only: PermissionDenied for anyone else (end users have no console lists). InvalidInput
    (field ``name`` or ``list_name``) for an empty name, an unknown list or an over-long query; Conflict
    (field ``name``) when the owner already has a view of that name on that list. Logs
    ``saved_view.created`` on the view."""
    from urllib.parse import parse_qsl, urlencode

    if not actor.is_technician or actor.user_id is None:
        raise PermissionDenied("only technicians may save list views")
    name = name.strip()
    if not name or len(name) > 80:
        raise InvalidInput("a view needs a name", errors=[{"field": "name", "message": "1 to 80 characters"}])
    if list_name not in SavedView.ListName.values:
        raise InvalidInput(
            f"unknown list {list_name!r}", errors=[{"field": "list_name", "message": "unknown list"}]
        )
    pairs = [
        (k, v) for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=False) if k not in ("page", "view")
    ]
    clean = urlencode(pairs)
    if len(clean) > SAVED_VIEW_QUERY_MAX:
        raise InvalidInput(
            "the view's filters are too long", errors=[{"field": "name", "message": "too long"}]
        )
    if SavedView.objects.filter(owner_user_id=actor.user_id, list_name=list_name, name=name).exists():
        raise Conflict(
            f"you already have a view called {name!r}",
            errors=[{"field": "name", "message": "you already have a view with this name"}],
        )
    view = SavedView.objects.create(
        owner_user_id=actor.user_id, list_name=list_name, name=name, query=clean, shared=shared
    )
    activity_record(
        actor=actor,
        verb="saved_view.created",
        record_type="saved_view",
        record_id=view.pk,
        changes={"list_name": list_name, "name": name, "query": clean, "shared": shared},
    )
    return view


@transaction.atomic
def saved_view_delete(*, actor: Actor, view: SavedView) -> None:
    """Delete a saved view. Only its owner may (a shared view is applied by others, never deleted by
    them): PermissionDenied for anyone else, and nothing is deleted. Logs ``saved_view.deleted``."""
    if actor.user_id is None or view.owner_user_id != actor.user_id:
        raise PermissionDenied("only the owner of a saved view may delete it")
    activity_record(
        actor=actor,
        verb="saved_view.deleted",
        record_type="saved_view",
        record_id=view.pk,
        changes={"list_name": view.list_name, "name": view.name},
    )
    view.delete()
