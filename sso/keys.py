"""Key pairs: each connection's own SP signing key and self-signed certificate (also used by the tests'
IdP). RSA 2048 with SHA-256 (NIST SP 800-131A: RSA >= 2048 bits; SHA-1 signatures disallowed)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def key_pair_make(*, common_name: str, days: int = 3650) -> tuple[str, str]:
    """A new RSA-2048 private key and a self-signed X.509 certificate for it, both PEM text:
    ``(private_key_pem, certificate_pem)``. Valid from one hour ago (clock skew) for ``days`` days.
    SAML metadata carries the certificate; its validity dates are not checked by SAML peers."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def certificate_body(pem_or_base64: str) -> str:
    """A certificate as bare base64 DER (what SAML metadata and python3-saml's ``x509cert`` hold), from
    PEM text or bare base64. Raises ValueError when it does not parse as an X.509 certificate."""
    body = "".join(
        line.strip() for line in pem_or_base64.strip().splitlines() if line.strip() and "-----" not in line
    )
    pem = "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
    x509.load_pem_x509_certificate(pem.encode())
    return body
