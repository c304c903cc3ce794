"""Encryption at rest of TOTP secrets (allauth.mfa's ``Authenticator.data["secret"]``). Control plane.

A TOTP secret must be read back to check codes, so it is encrypted, not hashed: Fernet (``cryptography``:
AES-128-CBC with HMAC-SHA256 and a random IV per token) under a key derived with HKDF-SHA256 (RFC 5869)
from ``SECRET_KEY`` with an ``info`` label of its own, so the same secret never serves two purposes (the
IMAP passwords of controlplane.mailin use another label). Tokens made under any of Django's
``SECRET_KEY_FALLBACKS`` still decrypt, so ``SECRET_KEY`` can be rotated the way Django documents it.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

HKDF_INFO = b"msp-itsm controlplane.accounts totp secret v1"


class TotpSecretUnreadable(Exception):
    """A stored TOTP secret that no configured key decrypts (SECRET_KEY rotated without fallback)."""


def _keys() -> MultiFernet:
    """The current ``SECRET_KEY`` first, then ``SECRET_KEY_FALLBACKS``; read on every call."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not secrets[0]:
        raise ImproperlyConfigured("SECRET_KEY must be set to store TOTP secrets")
    fernets = []
    for secret in secrets:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
            secret.encode()
        )
        fernets.append(Fernet(base64.urlsafe_b64encode(derived)))
    return MultiFernet(fernets)


def totp_secret_encrypt(plaintext: str) -> str:
    """A Fernet token (URL-safe base64 text) of ``plaintext`` under the current key."""
    return _keys().encrypt(plaintext.encode()).decode("ascii")


def totp_secret_decrypt(token: str) -> str:
    """The plaintext of ``token`` under the current key or a fallback. Raises TotpSecretUnreadable."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise TotpSecretUnreadable("the stored TOTP secret cannot be decrypted with SECRET_KEY") from exc
