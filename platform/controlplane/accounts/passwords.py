"""Password rules beyond Django's validators (NIST SP 800-63B §5.1.1.2)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class MaximumLengthValidator:
    """Refuse passwords longer than ``max_length`` characters (default 128).

    NIST SP 800-63B §5.1.1.2: verifiers SHOULD permit at least 64 characters; the upper bound only keeps a
    megabyte "password" from tying up the hasher (OWASP Password Storage cheat sheet)."""

    def __init__(self, max_length: int = 128) -> None:
        if max_length < 64:
            raise ValueError("NIST SP 800-63B: allow at least 64 characters")
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                f"This password is too long. It must contain at most {self.max_length} characters.",
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return f"Your password can be up to {self.max_length} characters long; spaces are allowed."
