"""Encryption at rest of secrets the platform must read back: TOTP seeds (allauth.mfa's
``Authenticator.data["secret"]``) and OpenID Connect client secrets (``sso.OidcConnection``). Control plane.

Such a secret is used again (to check a code, to authenticate to an OP), so it is encrypted, not hashed:
Fernet (``cryptography``: AES-128-CBC with HMAC-SHA256 and a random IV per token) under a key derived with
HKDF-SHA256 (RFC 5869) from ``SECRET_KEY`` with an ``info`` label per purpose, so one key never serves two
purposes and a token of one purpose does not decrypt as another. Tokens made under any of Django's
``SECRET_KEY_FALLBACKS`` still decrypt, so ``SECRET_KEY`` can be rotated the way Django documents it.
(The IMAP passwords of controlplane.mailin have their own key setting and rekey command.)
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

TOTP_SECRET = b"msp-itsm controlplane.accounts totp secret v1"


class SecretUnreadable(Exception):
    """A stored token that no configured key decrypts for its purpose (SECRET_KEY rotated without a
    fallback, or the value was changed in the database)."""


def _keys(purpose: bytes) -> MultiFernet:
    """The current ``SECRET_KEY`` first, then ``SECRET_KEY_FALLBACKS``; read on every call."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not secrets[0]:
        raise ImproperlyConfigured("SECRET_KEY must be set to store secrets")
    fernets = []
    for secret in secrets:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret.encode())
        fernets.append(Fernet(base64.urlsafe_b64encode(derived)))
    return MultiFernet(fernets)


def secret_seal(plaintext: str, *, purpose: bytes) -> str:
    """A Fernet token (URL-safe base64 text, about 1.4 times the plaintext plus 100 characters) of
    ``plaintext`` under the current key for ``purpose`` (an HKDF info label such as ``TOTP_SECRET``)."""
    return _keys(purpose).encrypt(plaintext.encode()).decode("ascii")


def secret_unseal(token: str, *, purpose: bytes) -> str:
    """The plaintext of ``token`` sealed for ``purpose`` under the current key or a fallback. Raises
    SecretUnreadable."""
    try:
        return _keys(purpose).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with SECRET_KEY") from exc
