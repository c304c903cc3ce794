"""Pure checks for what a tenant's branding and domains may be: WCAG contrast of colours, logo bytes,
hostnames. No database access."""

from __future__ import annotations

import ipaddress
import re

import filetype
import idna

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# WCAG 2.x success criterion 1.4.3 (Contrast, Minimum), level AA: 4.5:1 for normal text.
AA_CONTRAST = 4.5
WHITE = "#ffffff"

# Logo types a browser shows as an <img> and that cannot carry scripts (no SVG, no HTML).
LOGO_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
LOGO_MAX_BYTES = 512 * 1024

LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def colour_normalise(value: str) -> str:
    """``#RRGGBB`` in lower case. Raises ValueError for anything else (``#fff`` and names included)."""
    value = value.strip()
    if not HEX_COLOUR.match(value):
        raise ValueError("enter a colour as #rrggbb, for example #1f3a5f")
    return value.lower()


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance (0 black .. 1 white) of ``#rrggbb``, with the sRGB transfer function."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio of two ``#rrggbb`` colours: (L1 + 0.05) / (L2 + 0.05), from 1 to 21."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def logo_type(data: bytes) -> str:
    """The MIME type of a logo, read from its bytes (``filetype``'s magic numbers, never the uploader's
    name or content type). Raises ValueError when it is not PNG, JPEG, GIF or WebP, or is over
    LOGO_MAX_BYTES (512 KiB)."""
    if len(data) > LOGO_MAX_BYTES:
        raise ValueError(f"the logo is {len(data) // 1024} KiB; at most {LOGO_MAX_BYTES // 1024} KiB")
    kind = filetype.guess(data[:8192])
    if kind is None or kind.mime not in LOGO_TYPES:
        raise ValueError("the logo must be a PNG, JPEG, GIF or WebP image")
    return str(kind.mime)


def hostname_normalise(value: str) -> str:
    """A hostname as the routing middleware compares it: lower case, IDNA (``bücher.example`` becomes
    ``xn--bcher-kva.example``, UTS #46 mapping), no trailing dot. Raises ValueError for a port, a
    scheme or path, an IP address, a single label, or a label that is not 1-63 letters, digits or '-'
    (RFC 1123), or a name over 253 characters."""
    host = value.strip().rstrip(".")
    if not host:
        raise ValueError("enter a hostname such as help.example.com")
    if any(ch in host for ch in ":/@?# "):
        raise ValueError("enter the hostname only: no scheme, port or path")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise ValueError("an IP address is not a hostname")
    try:
        host = idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"not a valid hostname: {exc}") from exc
    host = host.lower()
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253 or not all(LABEL.match(label) for label in labels):
        raise ValueError("not a valid hostname")
    return host
