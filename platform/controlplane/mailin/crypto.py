"""Encryption at rest of IMAP mailbox passwords. Control plane.

The poller has to send the password to the IMAP server, so it is encrypted (not hashed) with Fernet
(``cryptography``: AES-128-CBC with HMAC-SHA256, a timestamp and a random IV per token). The Fernet key is
derived with HKDF-SHA256 (RFC 5869) from ``settings.MAILIN_SECRET_KEY`` or, when that is empty, from
``SECRET_KEY``, under an ``info`` label of its own, so the same secret never serves two purposes.

Key rotation (docs/decisions/0009-email-in.md): put the new secret in MAILIN_SECRET_KEY and the old one
in MAILIN_SECRET_KEY_FALLBACKS (while MAILIN_SECRET_KEY is empty, Django's SECRET_KEY_FALLBACKS count as
fallbacks too), then run ``manage.py mail_rekey``, which re-encrypts every stored password with the new
key; then drop the fallback. Tokens made with any listed secret decrypt; new ones use the first.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

HKDF_INFO = b"msp-itsm controlplane.mailin imap password v1"


class SecretUnreadable(Exception):
    """A stored token that none of the configured keys decrypts (a key was rotated away, or the value
    was changed in the database)."""


def _fernet(secret: str) -> Fernet:
    """A Fernet of the 32-byte HKDF-SHA256 derivation of ``secret`` (no salt: the input is a secret key,
    not a password, and RFC 5869 allows an absent salt)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys() -> MultiFernet:
    """The current key first, then the fallbacks; read from settings on every call (no cache), so a
    changed setting applies at once."""
    own: str = settings.MAILIN_SECRET_KEY
    secrets = [own or settings.SECRET_KEY, *settings.MAILIN_SECRET_KEY_FALLBACKS]
    if not own:
        secrets += list(getattr(settings, "SECRET_KEY_FALLBACKS", []))
    if not secrets[0]:
        raise ImproperlyConfigured("MAILIN_SECRET_KEY or SECRET_KEY must be set to store mailbox passwords")
    return MultiFernet([_fernet(secret) for secret in secrets])


def secret_encrypt(plaintext: str) -> str:
    """A Fernet token (URL-safe base64 text, about 100 characters plus 4/3 of the UTF-8 length of
    ``plaintext``) under the current key."""
    return _keys().encrypt(plaintext.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    """The plaintext of ``token``, under the current key or any fallback. Raises SecretUnreadable."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with MAILIN_SECRET_KEY") from exc


def secret_rotate(token: str) -> str:
    """``token`` re-encrypted under the current key (its original timestamp kept). Raises
    SecretUnreadable when no configured key decrypts it."""
    try:
        return _keys().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with MAILIN_SECRET_KEY") from exc
