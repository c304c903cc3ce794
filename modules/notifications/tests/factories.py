"""Arguments of notification_emit for tests."""

from __future__ import annotations

import uuid
from typing import Any

RECORD_ID = uuid.UUID("01900000-0000-7000-8000-000000000042")


def emit_args(*, key: str, event: str = "record.assigned", title: str = "Printer on fire") -> dict[str, Any]:
    """notification_emit's record arguments for a made-up incident INC0000042 (``RECORD_ID``)."""
    return {
        "event": event,
        "record_type": "incident",
        "record_id": RECORD_ID,
        "number": "INC0000042",
        "title": title,
        "key": key,
    }
