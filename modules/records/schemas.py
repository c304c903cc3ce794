"""API schemas of the shared tenant parts, used by every module's api.py: one definition each, so the
OpenAPI document has one component per name."""

import datetime as dt
import uuid
from typing import Any

from ninja import Field, Schema


class PersonRef(Schema):
    id: uuid.UUID
    display_name: str


class GroupRef(Schema):
    id: uuid.UUID
    name: str


class CommentIn(Schema):
    body: str = Field(..., min_length=1)
    work_note: bool = False


class CommentOut(Schema):
    id: uuid.UUID
    author: PersonRef | None
    body: str
    is_work_note: bool
    created_at: dt.datetime


class ActivityOut(Schema):
    id: uuid.UUID
    verb: str
    at: dt.datetime
    actor: PersonRef | None = Field(None, alias="actor_person")
    source: str
    changes: dict[str, Any]
