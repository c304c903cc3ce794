"""The kinds of tenant records, so shared parts (links, attachments, search) can reach any record.

Each tenant module registers its record kinds in its ``AppConfig.ready()``. A kind names the selector
that fetches one record for an actor (raising NotFound when the actor may not see it), so a shared part
checks access with the owning module's own rule instead of repeating it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from controlplane.problems import InvalidInput

from .actor import Actor


@dataclass(frozen=True)
class RecordKind:
    """``name`` is the record type stored on comments, links and activity entries (``incident``).
    ``selector`` is the dotted path of ``(*, actor, record_id) -> record`` raising NotFound for a record
    the actor may not see. ``console_path`` formats a console path below ``/t/<tenant>/`` from the
    record's attributes, e.g. ``incidents/{number}/``. ``end_user_attachments``: whether end users may
    attach files to the records of this kind they can see."""

    name: str
    label: str
    prefix: str
    selector: str
    console_path: str
    # End users may attach files to records of this kind that they can see (their own incidents and
    # requests); on other kinds (published articles, say) only technicians may.
    end_user_attachments: bool = False

    def get(self, *, actor: Actor, record_id: uuid.UUID | str) -> Any:
        fetch: Callable[..., Any] = import_string(self.selector)
        return fetch(actor=actor, **{f"{self.name}_id": record_id})


_KINDS: dict[str, RecordKind] = {}


def kind_register(kind: RecordKind) -> None:
    """Register a record kind (called from AppConfig.ready(); registering the same kind twice is a no-op)."""
    _KINDS[kind.name] = kind


def kind_get(name: str, *, field: str = "record_type") -> RecordKind:
    """The registered kind called ``name``. Raises InvalidInput naming ``field`` for an unknown kind."""
    try:
        return _KINDS[name]
    except KeyError as exc:
        raise InvalidInput(
            f"unknown record type {name!r}", errors=[{"field": field, "message": f"one of {kind_names()}"}]
        ) from exc


def kind_names() -> list[str]:
    return sorted(_KINDS)


def record_get(
    *, actor: Actor, record_type: str, record_id: uuid.UUID | str, field: str = "record_type"
) -> Any:
    """One record of any kind that the actor may see. Raises InvalidInput for an unknown kind and NotFound
    for a missing, invisible or malformed id (other tenants' ids answer as missing ones)."""
    return kind_get(record_type, field=field).get(actor=actor, record_id=record_id)
