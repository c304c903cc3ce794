"""How the timeline puts history values into words (the merge itself is tested on each practice's page:
modules/*/tests/test_detail_page.py)."""

from __future__ import annotations

import zoneinfo

from django.utils import timezone

from modules.records.selectors import _changes, _text


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
