"""How the timeline puts history values into words (the merge itself is tested on each practice's page:
modules/*/tests/test_detail_page.py)."""

from __future__ import annotations

import zoneinfo
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.services import incident_comment, incident_create
from modules.records.selectors import _changes, _text, timeline_get
from modules.records.services import attachment_add, link_create
from tenants.models import Tenant


@pytest.fixture
def media(tmp_path: Any) -> Any:
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


def test_history_values_read_as_text() -> None:
    assert _text(None) == _text("") == _text({}) == "—"
    assert _text({"id": "1", "name": "Network team"}) == "Network team"
    assert _text([{"item": "RITM0000001", "task": "SCTASK0000001", "assignment_group": {"id": "x"}}]) == (
        "SCTASK0000001"
    )
    assert _text("awaiting_user_info") == "awaiting user info"
    assert _text("Reset the tunnel_config file") == "Reset the tunnel_config file"
    assert _text(True) == "yes" and _text(3) == "3"
    with timezone.override(zoneinfo.ZoneInfo("Europe/London")):
        assert _text("2025-06-02T08:30:00+00:00") == "2025-06-02 09:30"


def test_bookkeeping_ids_are_left_out_and_pairs_read_old_to_new() -> None:
    shown = _changes({"comment_id": "x", "state": ["new", "in_progress"], "task": "SCTASK0000001"})
    assert [(c.field, c.old, c.new, c.pair) for c in shown] == [
        ("state", "new", "in progress", True),
        ("task", "", "SCTASK0000001", False),
    ]


def test_attachments_and_links_appear_with_their_urls_internal_files_for_technicians_only(
    media: Any, tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        caller = actor_in(tenant_a, end_user_a, role="end_user")
        incident = incident_create(actor=caller, short_description="Mail down")
        other = incident_create(actor=tech, short_description="Mail down too")
        shown = attachment_add(
            actor=tech,
            record_type="incident",
            record_id=incident.pk,
            upload=ContentFile(b"log\n", name="a.log"),
        )
        attachment_add(
            actor=tech,
            record_type="incident",
            record_id=incident.pk,
            upload=ContentFile(b"secret\n", name="vendor.log"),
            internal=True,
        )
        link_create(
            actor=tech,
            source_type="incident",
            source_id=incident.pk,
            target_type="incident",
            target_id=other.pk,
            kind="duplicates",
        )
        incident_comment(actor=tech, incident=incident, body="vendor case 42", work_note=True)
        incident_comment(actor=tech, incident=incident, body="we are on it")
        for_tech = timeline_get(
            actor=tech, record_type="incident", record=incident, order="asc", base="/t/acme/"
        )
        for_caller = timeline_get(actor=caller, record_type="incident", record=incident, order="asc")
    titles = [
        (e.kind, e.title, e.url, e.internal)
        for e in for_tech.entries
        if e.kind not in ("comment", "work_note")
    ]
    assert [(e.title, e.body, e.internal) for e in for_tech.entries[-2:]] == [
        ("Work note", "vendor case 42", True),
        ("Comment", "we are on it", False),
    ]
    assert titles[1:] == [
        ("attachment", "File added: a.log", f"/t/acme/attachments/{shown.pk}/", False),
        ("attachment", "File added: vendor.log", titles[2][2], True),
        (
            "link",
            f"Link added: duplicates {other.number} Mail down too",
            f"/t/acme/incidents/{other.number}/",
            False,
        ),
    ]
    # The caller's timeline: no work note, no internal file, no link.
    assert [(e.title, e.body) for e in for_caller.entries] == [
        ("Created", ""),
        ("File added: a.log", ""),
        ("Comment", "we are on it"),
    ]
