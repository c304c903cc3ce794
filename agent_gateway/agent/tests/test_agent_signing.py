"""The signed string and the encodings of 0018, against values worked out by hand."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from itsm_agent.signing import (
    EncodingError,
    b64url_decode,
    b64url_encode,
    key_id,
    new_nonce,
    public_raw,
    sign_request,
    signed_string,
)


def test_signed_string_is_the_six_lines_of_0018_without_a_trailing_newline() -> None:
    body = b'{"reports":[]}'
    message = signed_string(
        method="post", path="/agent/v1/reports?x=1", timestamp=1796203800, nonce="A" * 22, body=body
    )
    expected = (
        "itsm-agent-v1\nPOST\n/agent/v1/reports?x=1\n1796203800\n"
        + "A" * 22
        + "\n"
        + hashlib.sha256(body).hexdigest()
    )
    assert message == expected.encode()
    empty = signed_string(method="GET", path="/agent/v1/commands", timestamp=1, nonce="n", body=b"")
    assert empty.endswith(b"\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_sign_request_headers_verify_with_the_public_key() -> None:
    key = Ed25519PrivateKey.generate()
    headers = sign_request(
        private_key=key,
        agent_id="enrol",
        key_id="0" * 16,
        method="GET",
        path="/agent/v1/commands",
        body=b"",
        timestamp=42,
    )
    assert set(headers) == {
        "X-Agent-Id",
        "X-Agent-Key-Id",
        "X-Agent-Timestamp",
        "X-Agent-Nonce",
        "X-Agent-Signature",
    }
    assert len(headers["X-Agent-Nonce"]) == 22 and "=" not in headers["X-Agent-Signature"]
    message = signed_string(
        method="GET", path="/agent/v1/commands", timestamp=42, nonce=headers["X-Agent-Nonce"], body=b""
    )
    key.public_key().verify(b64url_decode(headers["X-Agent-Signature"]), message)


def test_key_id_is_the_first_16_hex_digits_of_sha256_of_the_raw_key() -> None:
    key = Ed25519PrivateKey.generate()
    raw = public_raw(key)
    assert len(raw) == 32
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:16]
    with pytest.raises(EncodingError):
        key_id(raw[:31])


def test_b64url_is_strict_and_unpadded() -> None:
    assert b64url_encode(b"\xfb\xff") == "-_8"
    assert b64url_decode("-_8") == b"\xfb\xff"
    for bad in ["-_8=", "+/8", "a b", "", "-_9"]:  # padding, the other alphabet, junk, empty, non-canonical
        with pytest.raises(EncodingError):
            b64url_decode(bad)
    assert len({new_nonce() for _ in range(100)}) == 100
