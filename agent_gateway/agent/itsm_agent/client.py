"""The gateway's HTTP API (0018, "Endpoints"), every request signed (signing.sign_request).

Errors are classified for the caller: ``TransientError`` (the network, 5xx, 429, 403 agent-pending: try
again later, honouring ``retry_after``) and ``RefusedError`` (any other 4xx: retrying the same request will
not help). Both carry the problem+json ``type`` (its last path segment, e.g. ``clock-skew``) and ``title``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from itsm_agent import __version__
from itsm_agent.signing import sign_request

API = "/agent/v1"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_RETRY_AFTER = 3600.0  # seconds: a larger Retry-After is a misconfiguration, not a plan

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """A request that did not succeed. ``status`` is the HTTP status (None for a network error), ``kind``
    the problem type's last segment, ``retry_after`` seconds (None when not given)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str = "",
        title: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.title = title
        self.retry_after = retry_after
        self.body: dict[str, Any] = {}


class TransientError(GatewayError):
    """Worth retrying later: unreachable, timed out, 5xx, 429, or waiting for approval (403 agent-pending)."""


class RefusedError(GatewayError):
    """A 4xx answer that the same request would get again (bad signature, revoked, invalid report...)."""


def check_server_url(url: str) -> str:
    """The server URL (scheme, host, port) without a trailing slash; raises ValueError unless it is https,
    or http to this machine.

    Plain http elsewhere would let anyone on the path read the enrolment token and pin their own key as
    the server's, and so sign commands: refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"the server URL must be https://host[:port]: {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password or parts.path not in ("", "/"):
        # A path prefix would be signed as part of the path and break behind a proxy that strips it;
        # the gateway is always at /agent/v1/ of its host (0018).
        raise ValueError("the server URL is https://host[:port] only (no path, query or credentials)")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("plain http is only allowed to this machine (localhost); use https")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _problem(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(kind, title, body) of a problem+json answer; kind is the type's last segment ("" if none)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.reason_phrase, {}
    if not isinstance(body, dict):
        return "", response.reason_phrase, {}
    problem_type = str(body.get("type") or "")
    kind = (
        ""
        if problem_type == "about:blank"
        else problem_type.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    )
    title = str(body.get("title") or response.reason_phrase)[:200]
    return kind, title, body


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass
class Signer:
    """Who signs: the agent id (or "enrol"), the key id and the private key."""

    agent_id: str
    key_id: str
    private_key: Ed25519PrivateKey


class GatewayClient:
    """Signed requests to one gateway.

    ``clock_offset`` (seconds, server minus local) corrects the signed timestamp; a 401 ``clock-skew``
    answer resets it from the answer's ``Date`` header and the request is retried once, with a new nonce.
    ``on_offset`` is called with a new offset so the caller can keep it.
    """

    def __init__(
        self,
        server_url: str,
        signer: Signer,
        *,
        clock_offset: float = 0.0,
        on_offset: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server_url = check_server_url(server_url)
        self.signer = signer
        self.clock_offset = clock_offset
        self.on_offset = on_offset
        self._http = httpx.Client(
            timeout=TIMEOUT,
            headers={"User-Agent": f"itsm-agent/{__version__}"},
            follow_redirects=False,  # a redirect would change the signed path; the gateway never sends one
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        """Send one signed request to ``API + path``; returns the 2xx response or raises a GatewayError."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode("utf-8")
        url = httpx.URL(self.server_url + API + path)
        for attempt in (1, 2):
            response = self._send(method, url, body)
            if response.is_success:
                return response
            kind, title, problem = _problem(response)
            if (
                response.status_code == 401
                and kind == "clock-skew"
                and attempt == 1
                and self._learn_offset(response)
            ):
                continue
            raise self._error(method, path, response, kind, title, problem)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: httpx.URL, body: bytes) -> httpx.Response:
        signed_path = url.raw_path.decode("ascii")  # path and query exactly as they go on the wire
        headers = sign_request(
            private_key=self.signer.private_key,
            agent_id=self.signer.agent_id,
            key_id=self.signer.key_id,
            method=method,
            path=signed_path,
            body=body,
            timestamp=int(time.time() + self.clock_offset),
        )
        if body:
            headers["Content-Type"] = "application/json"
        try:
            return self._http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connect, TLS, timeouts, protocol errors
            raise TransientError(f"cannot reach {self.server_url}: {_network_reason(exc)}") from exc

    def _learn_offset(self, response: httpx.Response) -> bool:
        date = response.headers.get("Date")
        if not date:
            return False
        try:
            server_now = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return False
        self.clock_offset = server_now - time.time()
        log.warning(
            "the local clock is %.0f s off the server's; signing with corrected timestamps",
            -self.clock_offset,
        )
        if self.on_offset:
            self.on_offset(self.clock_offset)
        return True

    def _error(
        self, method: str, path: str, response: httpx.Response, kind: str, title: str, problem: dict[str, Any]
    ) -> GatewayError:
        status = response.status_code
        message = f"{method} {API}{path}: {status} {title}" + (f" ({kind})" if kind else "")
        transient = status >= 500 or status == 429 or (status == 403 and kind == "agent-pending")
        cls = TransientError if transient else RefusedError
        error = cls(message, status=status, kind=kind, title=title, retry_after=_retry_after(response))
        error.body = problem
        return error

    # The endpoints (0018). Each returns the parsed answer or raises a GatewayError.

    def enrol(self, *, token: str, public_key: str, hostname: str, os_name: str) -> dict[str, Any]:
        """POST /enrol (signed with the new key, agent id "enrol") → the 201 answer's JSON object."""
        answer = self.request(
            "POST",
            "/enrol",
            {
                "token": token,
                "public_key": public_key,
                "hostname": hostname,
                "os": os_name,
                "agent_version": __version__,
            },
        )
        return _object(answer)

    def send_reports(self, reports: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """POST /reports with 1 to 50 reports → (accepted ids, duplicate ids)."""
        answer = _object(self.request("POST", "/reports", {"reports": reports}))
        accepted, duplicates = answer.get("accepted", []), answer.get("duplicates", [])
        if not isinstance(accepted, list) or not isinstance(duplicates, list):
            raise TransientError("POST /agent/v1/reports: the answer has no accepted/duplicates lists")
        return [str(i) for i in accepted], [str(i) for i in duplicates]

    def poll_commands(self) -> tuple[list[Any], int | None]:
        """GET /commands → (envelopes, poll_after seconds or None)."""
        answer = _object(self.request("GET", "/commands"))
        commands = answer.get("commands", [])
        poll_after = answer.get("poll_after")
        return (commands if isinstance(commands, list) else []), (
            poll_after if isinstance(poll_after, int) else None
        )

    def post_result(self, command_id: str, result: dict[str, Any]) -> None:
        """POST /commands/<id>/result (a RefusedError with status 404 means: not this agent's command)."""
        self.request("POST", f"/commands/{command_id}/result", result)

    def rotate(self, *, public_key: str) -> str:
        """POST /credentials (signed with the current key) → the new key id."""
        answer = _object(self.request("POST", "/credentials", {"public_key": public_key}))
        return str(answer.get("key_id", ""))


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(f"{response.request.url.path}: the answer is not JSON") from exc
    if not isinstance(body, dict):
        raise TransientError(f"{response.request.url.path}: the answer is not a JSON object")
    return body


def _network_reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
