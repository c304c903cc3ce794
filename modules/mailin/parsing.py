"""Reading a received email: sender, subject, thread ids, text body, attachments, and whether it is
an automatic message. Pure functions over the raw bytes (the stdlib ``email`` package, policy=default);
no database.

Rules and their sources:
- automatic replies: ``Auto-Submitted`` other than ``no`` (RFC 3834 section 5), ``X-Autoreply`` /
  ``X-Autorespond`` (vacation programs), ``Precedence: bulk|junk|list|auto_reply`` (de-facto, RFC 3834
  section 3.1.8), ``X-Auto-Response-Suppress: All|OOF|AutoReply`` set by Exchange on its own replies;
- bounces: an empty Return-Path / null envelope sender (RFC 5321 section 4.5.5), ``multipart/report``
  with ``report-type=delivery-status`` (RFC 3464) or ``disposition-notification`` (read receipts, RFC
  8098), ``X-Failed-Recipients``, a ``MAILER-DAEMON`` or ``postmaster`` sender, and the usual subjects of
  out-of-office and non-delivery messages;
- threading: our own Message-IDs are ``<{hex}.{record_id}@{EMAIL_MESSAGE_DOMAIN}>`` and
  ``<record.{record_id}@{EMAIL_MESSAGE_DOMAIN}>`` (the helpers' shared contract), found in
  ``In-Reply-To`` and ``References`` (RFC 5322 section 3.6.4).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr

import html2text

MAX_TEXT_CHARS = 200_000  # a description longer than this is cut (the rest is in the stored raw message)


class MessageUnreadable(ValueError):
    """The bytes are not an email we can act on (no sender address, say). ``str()`` says why."""


@dataclass(frozen=True)
class InboundAttachment:
    file_name: str
    content_type: str  # as the sender declared it; the type is sniffed again when it is stored
    data: bytes


@dataclass(frozen=True)
class ParsedEmail:
    """What processing needs from a message. Addresses are lower-case; ids are without angle brackets.
    ``thread_ids``: In-Reply-To first, then References newest first. ``text``: the plain-text body (an
    HTML-only body reduced to text), at most MAX_TEXT_CHARS characters."""

    from_address: str
    from_name: str
    subject: str
    message_id: str
    thread_ids: tuple[str, ...]
    text: str
    attachments: tuple[InboundAttachment, ...]
    message: EmailMessage


def parse(raw: bytes) -> ParsedEmail:
    """Parse ``raw`` (the message as received, bytes) with policy=default.

    Raises MessageUnreadable when there is no usable sender address in From. Undecodable text is
    replaced rather than refused (an unknown charset is read as UTF-8 with replacement characters).
    """
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    from_name, from_address = _sender(message)
    if not from_address:
        raise MessageUnreadable("no sender address could be read from the From header")
    body = _body_part(message)
    text = ""
    if body is not None:
        text = _part_text(body)
        if body.get_content_subtype() == "html":
            text = html_to_text(text)
    return ParsedEmail(
        from_address=from_address,
        from_name=from_name,
        subject=_header(message, "Subject").strip(),
        message_id=next(iter(_ids(_header(message, "Message-ID"))), ""),
        thread_ids=(
            *_ids(_header(message, "In-Reply-To")),
            *reversed(_ids(_header(message, "References"))),
        ),
        text=text.strip()[:MAX_TEXT_CHARS],
        attachments=tuple(_attachments(message, body)),
        message=message,
    )


def _header(message: Message, name: str) -> str:
    """A header's text ('' when absent or unreadable); folded lines unfolded."""
    try:
        value = message.get(name)
    except Exception:  # a malformed header must not make the whole message unreadable: take it raw
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
    return " ".join(str(value or "").split())


def _sender(message: Message) -> tuple[str, str]:
    raw_from = _header(message, "From")
    name, address = parseaddr(raw_from)
    address = address.strip().lower()
    if "@" not in address or " " in address:
        return "", ""
    return name.strip(), address


ID = re.compile(r"<([^<>\s]+)>")


def _ids(value: str) -> list[str]:
    """Message ids in a header (``<a@b> <c@d>``), without brackets, in order."""
    return ID.findall(value)


def _body_part(message: EmailMessage) -> EmailMessage | None:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:  # a broken structure: treat as no body
        return None
    return part if isinstance(part, EmailMessage) else None


def _part_text(part: Message) -> str:
    """The decoded text of a text part; unknown or wrong charsets decode as UTF-8 with replacements."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    """Safe plain text from an HTML body: the ``html2text`` package drops scripts, styles and images and
    keeps paragraphs, lists and link targets (``[text](url)``). The result holds no markup to render."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = False
    return converter.handle(html).strip()


def _leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order; an attached message (message/rfc822) is one leaf, not opened."""
    if part.get_content_maintype() == "multipart":
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield part


def _attachments(message: EmailMessage, body: Message | None) -> Iterator[InboundAttachment]:
    number = 0
    for part in _leaves(message):
        if part is body or part is message:
            continue
        file_name = part.get_filename() or ""
        disposition = part.get_content_disposition()
        if not file_name and disposition != "attachment" and part.get_content_type() != "message/rfc822":
            continue  # an alternative body (the HTML twin of a plain-text body), not an attachment
        number += 1
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            attached = inner[0] if isinstance(inner, list) and inner else None
            data = attached.as_bytes() if isinstance(attached, Message) else b""
            file_name = file_name or f"message-{number}.eml"
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            file_name = file_name or f"attachment-{number}"
        yield InboundAttachment(file_name=file_name, content_type=part.get_content_type(), data=data)


PRECEDENCE_AUTOMATIC = frozenset({"bulk", "junk", "list", "auto_reply"})
SUPPRESS_AUTOMATIC = frozenset({"all", "oof", "autoreply"})
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|"
    r"undeliverable|undelivered mail|delivery status notification|delivery failure|"
    r"mail delivery failed|mail delivery subsystem|returned mail|failure notice|"
    r"delivery has failed|non[- ]?delivery)",
    re.IGNORECASE,
)


def automatic_reason(parsed: ParsedEmail, *, null_envelope_sender: bool) -> str:
    """Why ``parsed`` is an automatic message (an auto-reply, a bounce, a read receipt), or '' if it is
    not. ``null_envelope_sender``: SMTP's MAIL FROM was ``<>`` (RFC 5321 4.5.5: only for notifications).
    See the module docstring for the rules and their sources."""
    message = parsed.message
    auto_submitted = _header(message, "Auto-Submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"automatic message: Auto-Submitted: {auto_submitted} (RFC 3834)"
    for name in ("X-Autoreply", "X-Autorespond"):
        if message.get(name) is not None:
            return f"automatic reply: {name} header"
    precedence = _header(message, "Precedence").lower()
    if precedence in PRECEDENCE_AUTOMATIC:
        return f"automatic message: Precedence: {precedence}"
    suppress = {v.strip().lower() for v in _header(message, "X-Auto-Response-Suppress").split(",")}
    if suppress & SUPPRESS_AUTOMATIC:
        return "automatic reply: X-Auto-Response-Suppress header (Exchange)"
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type", "")).lower()
        return f"bounce or receipt: multipart/report; report-type={report_type} (RFC 3464)"
    if null_envelope_sender:
        return "bounce: null envelope sender <> (RFC 5321)"
    if message.get("Return-Path") is not None and _header(message, "Return-Path") in ("<>", ""):
        return "bounce: empty Return-Path (RFC 5321)"
    if message.get("X-Failed-Recipients") is not None:
        return "bounce: X-Failed-Recipients header"
    if parsed.from_address.split("@")[0] in BOUNCE_SENDERS:
        return f"bounce: sent by {parsed.from_address}"
    if AUTOMATIC_SUBJECT.match(parsed.subject):
        return f"automatic reply: subject {parsed.subject[:80]!r}"
    return ""


def record_ids_in(thread_ids: tuple[str, ...], *, domain: str) -> list[uuid.UUID]:
    """Record ids named by our own Message-IDs among ``thread_ids`` (``record.{id}@domain`` or
    ``{hex}.{id}@domain``, domain compared case-insensitively), in the given order, without repeats."""
    pattern = re.compile(
        r"^(?:record|[0-9a-f]+)\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@"
        + re.escape(domain.lower())
        + "$"
    )
    found: list[uuid.UUID] = []
    for value in thread_ids:
        match = pattern.match(value.lower())
        if match and uuid.UUID(match.group(1)) not in found:
            found.append(uuid.UUID(match.group(1)))
    return found


def our_message_id(message_id: str, *, domain: str) -> bool:
    """Whether ``message_id`` (without brackets) was made by this platform (its domain is ours)."""
    return message_id.lower().rpartition("@")[2] == domain.lower()


QUOTE_START = (
    re.compile(r"^\s*On\b.*\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.*\bschrieb\b.*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Le\b.*\ba écrit\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine)\s*-{2,}", re.I),
    re.compile(r"^\s*_{10,}\s*$"),
)
OUTLOOK_HEADER = re.compile(r"^\s*(From|Von|De):\s")
OUTLOOK_SENT = re.compile(r"^\s*(Sent|Gesendet|Envoyé|Date):\s")


def strip_quoted(text: str) -> str:
    """The new part of a reply: text above the quoted history ("On ... wrote:", an Outlook header block
    or separator, "-----Original Message-----") without trailing ``>`` lines. The whole text (stripped)
    when nothing new remains, so a reply is never emptied by a false match."""
    lines = text.splitlines()
    cut = len(lines)
    for index, line in enumerate(lines):
        wrapped = line + " " + lines[index + 1] if index + 1 < len(lines) else line
        if any(p.match(line) for p in QUOTE_START) or (
            line.strip().startswith("On ") and QUOTE_START[0].match(wrapped)
        ):
            cut = index
            break
        if OUTLOOK_HEADER.match(line) and any(OUTLOOK_SENT.match(x) for x in lines[index + 1 : index + 4]):
            cut = index
            break
    kept = lines[:cut]
    while kept and (not kept[-1].strip() or kept[-1].lstrip().startswith(">")):
        kept.pop()
    new = "\n".join(kept).strip()
    return new or text.strip()


def subject_numbers(subject: str, prefixes: tuple[str, ...]) -> list[str]:
    """Record numbers in a subject (``[INC0000042]`` or ``INC0000042``) with one of ``prefixes``."""
    pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in prefixes) + r")(\d{7,})\b", re.IGNORECASE)
    return [f"{m.group(1).upper()}{m.group(2)}" for m in pattern.finditer(subject)]
