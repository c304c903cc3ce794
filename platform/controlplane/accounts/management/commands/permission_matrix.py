"""Print the permission matrix as Markdown, or rewrite its part of docs/permissions.md (``--write``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from controlplane.permissions import matrix_markdown

DOC = Path(settings.ROOT_DIR) / "docs" / "permissions.md"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def documented_matrix() -> str:
    """The generated part of docs/permissions.md, between its two markers."""
    text = DOC.read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


class Command(BaseCommand):
    help = "Print the permission matrix (controlplane.permissions) as Markdown; --write updates docs/permissions.md."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write", action="store_true", help="rewrite the table in docs/permissions.md")

    def handle(self, *args: Any, **options: Any) -> None:
        table = matrix_markdown()
        if not options["write"]:
            self.stdout.write(table)
            return
        text = DOC.read_text()
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        DOC.write_text(f"{before}{BEGIN}\n{table}{END}{after}")
        self.stdout.write(f"wrote {DOC}")
