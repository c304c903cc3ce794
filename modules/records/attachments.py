"""What an attachment may be: type sniffing from the bytes, and the allow-list of types.

The uploader's content type and file name are never trusted: the type is read from the file's leading
bytes (the ``filetype`` package's magic numbers) or, for text, from the bytes decoding as UTF-8 without
control characters. The name's extension must agree with what the bytes are, so ``invoice.pdf`` that is
really a Windows executable is refused. HTML, SVG and scripts are refused outright (they run in a
browser); everything is served as a download with ``nosniff`` anyway.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import filetype

# Sniffed MIME type -> extensions a file of that type may carry.
BINARY_TYPES: dict[str, frozenset[str]] = {
    "image/png": frozenset({"png"}),
    "image/jpeg": frozenset({"jpg", "jpeg"}),
    "image/gif": frozenset({"gif"}),
    "image/webp": frozenset({"webp"}),
    "image/bmp": frozenset({"bmp"}),
    "image/tiff": frozenset({"tif", "tiff"}),
    "application/pdf": frozenset({"pdf"}),
    "application/zip": frozenset({"zip"}),
    "application/gzip": frozenset({"gz", "tgz"}),
    "application/x-7z-compressed": frozenset({"7z"}),
    "application/msword": frozenset({"doc", "xls", "ppt", "msg"}),  # OLE2 compound files look alike
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": frozenset({"docx"}),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": frozenset({"xlsx"}),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": frozenset({"pptx"}),
    "application/vnd.oasis.opendocument.text": frozenset({"odt"}),
    "application/vnd.oasis.opendocument.spreadsheet": frozenset({"ods"}),
    "application/vnd.ms-excel": frozenset({"xls"}),
    "application/vnd.ms-powerpoint": frozenset({"ppt"}),
    "video/mp4": frozenset({"mp4"}),
    "audio/x-wav": frozenset({"wav"}),
    "audio/mpeg": frozenset({"mp3"}),
}
# Text files have no magic number: accepted when they decode as UTF-8 and carry one of these extensions.
TEXT_TYPES: dict[str, str] = {
    "txt": "text/plain",
    "log": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "xml": "application/xml",
    "eml": "message/rfc822",
    "yaml": "text/plain",
    "yml": "text/plain",
    "md": "text/markdown",
    "ini": "text/plain",
    "conf": "text/plain",
}
SNIFF_BYTES = 8192


class RefusedFile(ValueError):
    """The file's bytes are not an allowed type, or do not match its name. ``str()`` says why."""


def extension(file_name: str) -> str:
    return PurePosixPath(file_name).suffix.lower().lstrip(".")


def safe_file_name(file_name: str) -> str:
    """The name without any directory part or control characters, at most 200 characters."""
    name = PurePosixPath(file_name.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"/')
    return name[-200:] or "file"


def sniff(*, head: bytes, file_name: str) -> str:
    """The MIME type of a file from its first bytes (``head``, up to SNIFF_BYTES) and name.

    Raises RefusedFile when the bytes are a type outside the allow-list (executables, HTML, ...), or
    when the name's extension does not belong to the sniffed type.
    """
    ext = extension(file_name)
    kind = filetype.guess(head)
    if kind is not None:
        allowed = BINARY_TYPES.get(kind.mime)
        if allowed is None:
            raise RefusedFile(f"files of type {kind.mime} are not accepted")
        if ext not in allowed:
            raise RefusedFile(f"the content is {kind.mime} but the name ends in .{ext or '(nothing)'}")
        return kind.mime
    if ext not in TEXT_TYPES:
        raise RefusedFile(f"unrecognised content for a .{ext or '(no extension)'} file")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sniffed bytes
            raise RefusedFile("a text file must be UTF-8") from exc
        text = head[: exc.start].decode("utf-8")
    if any(ord(ch) < 32 and ch not in "\t\n\r\f" for ch in text):
        raise RefusedFile("a text file must not contain control characters")
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html", "<svg", "<script")):
        raise RefusedFile("HTML and SVG files are not accepted")
    return TEXT_TYPES[ext]
