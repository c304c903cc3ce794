"""The agent protocol's signatures, in one place (docs/decisions/0018-agent-gateway.md, "Signed requests").

Every request the agent sends is signed with its Ed25519 key (RFC 8032) over this UTF-8 string, lines joined
by ``\\n`` without a trailing newline::

    itsm-agent-v1
    <METHOD, upper case>
    <path with query string, exactly as sent>
    <X-Agent-Timestamp: Unix seconds, UTC>
    <X-Agent-Nonce: 16 random bytes, base64url without padding>
    <SHA-256 of the body bytes, lower-case hex>

Commands come the other way: the server signs the payload bytes of each envelope with its own Ed25519 key,
which the agent pinned at enrolment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PROTOCOL = "itsm-agent-v1"
NONCE_BYTES = 16
RAW_KEY_BYTES = 32


class EncodingError(ValueError):
    """A base64url value that is not canonical base64url, or a key of the wrong length."""


def b64url_encode(data: bytes) -> str:
    """base64url (RFC 4648 §5) without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises EncodingError on anything else (padding, other alphabets, junk).

    Strict on purpose: two spellings of one key or signature would make comparisons lie.
    """
    if not isinstance(text, str) or not text or "=" in text:
        raise EncodingError("not unpadded base64url")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncodingError("not unpadded base64url") from exc
    if b64url_encode(data) != text:
        raise EncodingError("not canonical base64url")
    return data


def key_id(public_raw: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key: the first 16 hex digits of its SHA-256 (0018)."""
    if len(public_raw) != RAW_KEY_BYTES:
        raise EncodingError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of a private key."""
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its unpadded base64url raw bytes; raises EncodingError."""
    raw = b64url_decode(text)
    if len(raw) != RAW_KEY_BYTES:
        raise EncodingError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def new_nonce() -> str:
    """16 random bytes (the OS's CSPRNG), base64url without padding: 22 characters."""
    return b64url_encode(secrets.token_bytes(NONCE_BYTES))


def signed_string(*, method: str, path: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """The bytes an agent signs for one request (0018). ``path`` includes the query string as sent."""
    lines = [PROTOCOL, method.upper(), path, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]
    return "\n".join(lines).encode("utf-8")


def sign_request(
    *,
    private_key: Ed25519PrivateKey,
    agent_id: str,
    key_id: str,
    method: str,
    path: str,
    body: bytes,
    timestamp: int,
) -> dict[str, str]:
    """The five X-Agent-* headers of one signed request (0018, "Signed requests").

    ``agent_id`` is the agent's UUID, or ``"enrol"`` for enrolment; ``timestamp`` is Unix seconds (UTC,
    already corrected for a known clock offset).
    """
    nonce = new_nonce()
    message = signed_string(method=method, path=path, timestamp=timestamp, nonce=nonce, body=body)
    return {
        "X-Agent-Id": agent_id,
        "X-Agent-Key-Id": key_id,
        "X-Agent-Timestamp": str(timestamp),
        "X-Agent-Nonce": nonce,
        "X-Agent-Signature": b64url_encode(private_key.sign(message)),
    }


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of a command payload (0018): sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
