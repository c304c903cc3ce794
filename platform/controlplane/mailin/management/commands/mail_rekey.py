"""``manage.py mail_rekey``: re-encrypt every stored IMAP mailbox password under the current
MAILIN_SECRET_KEY, the last step of a key rotation (docs/decisions/0009-email-in.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.mailin.services import inbound_mailbox_rekey


class Command(BaseCommand):
    help = "Re-encrypt the IMAP mailbox passwords with the current MAILIN_SECRET_KEY (after a rotation)."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated, unreadable = inbound_mailbox_rekey()
        self.stdout.write(f"re-encrypted {rotated} mailbox password(s)")
        if unreadable:
            ids = ", ".join(str(pk) for pk in unreadable)
            raise CommandError(
                f"no configured key decrypts the password of mailbox(es) {ids}: keep the old secret in "
                "MAILIN_SECRET_KEY_FALLBACKS, or set those passwords again"
            )
