"""The gateway's cryptography, in one place (docs/decisions/0018-agent-gateway.md, "Identity" and "Signed
requests"): Ed25519 (RFC 8032) through ``cryptography``, key ids, the signed string of a request, the
canonical JSON of a command, and the platform's command-signing key.

The agent program (``agent_gateway/agent``) builds the same strings independently; the end-to-end tests
hold both to this document.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from django.db import IntegrityError, transaction

from controlplane.accounts.crypto import secret_seal, secret_unseal

SIGNED_STRING_VERSION = "itsm-agent-v1"
SIGNING_KEY_PURPOSE = b"msp-itsm agent_gateway command signing key v1"  # HKDF label of the sealed key


class BadEncoding(ValueError):
    """A base64url value or key that does not decode to what it must be."""


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5), as every binary value travels in 0018."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of a base64url text with or without padding. Raises BadEncoding."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadEncoding("not base64url") from exc


def key_id_of(public_key: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def public_key_load(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key object from its 32 raw bytes. Raises BadEncoding."""
    if len(raw) != 32:
        raise BadEncoding("an Ed25519 public key is 32 bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise BadEncoding("not an Ed25519 public key") from exc


def signed_string(*, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a request's ``X-Agent-Signature`` signs: version, method, path with query, timestamp, nonce
    and the body's SHA-256 (hex), joined by newlines, UTF-8."""
    return "\n".join(
        (SIGNED_STRING_VERSION, method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest())
    ).encode("utf-8")


def signature_valid(key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    """Whether ``signature_b64`` (base64url) is ``key``'s Ed25519 signature of ``message``."""
    try:
        key.verify(b64url_decode(signature_b64), message)
    except (InvalidSignature, BadEncoding):
        return False
    return True


def canonical_json(value: Any) -> bytes:
    """The one byte form of a command payload: sorted keys, no spaces, UTF-8 (non-ASCII kept)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_key() -> tuple[Any, Ed25519PrivateKey]:
    """The platform's command-signing key: (its SigningKey row, the private key). Made on first use as
    the one row with primary key 1, so concurrent first uses agree on it (the loser's insert conflicts
    and it reads the winner's)."""
    from .models import SigningKey

    row = SigningKey.objects.filter(pk=1).first()
    if row is None:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        try:
            with transaction.atomic():
                SigningKey.objects.create(
                    pk=1,
                    key_id=key_id_of(public),
                    public_key=public,
                    private_key_sealed=secret_seal(b64url(raw), purpose=SIGNING_KEY_PURPOSE),
                )
        except IntegrityError:
            pass
        row = SigningKey.objects.get(pk=1)
    private_raw = b64url_decode(secret_unseal(row.private_key_sealed, purpose=SIGNING_KEY_PURPOSE))
    return row, Ed25519PrivateKey.from_private_bytes(private_raw)
