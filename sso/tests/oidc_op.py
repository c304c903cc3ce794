"""A real OpenID Connect provider for the tests: panva's ``oidc-provider`` (npm, pinned in
``oidc_idp/package-lock.json``, installed by ``make test``) run by the machine's Node.js as a subprocess on
127.0.0.1 and a free port, and a browser that follows its redirects over real HTTP (requests).

Python cannot resolve ``*.localhost``: the provider listens on 127.0.0.1, and Django is reached through its
test client with the portal's Host header (the OP only redirects the browser back to it)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

HERE = Path(__file__).parent / "oidc_idp"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OidcClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)


@dataclass
class TestOp:
    __test__ = False  # not a test class (pytest collects Test*)

    """One oidc-provider process. ``start`` it with its clients and accounts (``{id: claims}``: the
    account id is the ``sub``); ``stop`` ends it."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, clients: list[OidcClient], accounts: dict[str, dict[str, Any]]) -> None:
        node = shutil.which("node")
        assert node, "the OIDC tests need Node.js (node) on PATH"
        assert (HERE / "node_modules" / "oidc-provider").is_dir(), (
            "run `make test` (or `npm ci` in sso/tests/oidc_idp) to install the test OpenID provider"
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "op.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "clients": [c.__dict__ for c in clients],
                    "accounts": accounts,
                }
            )
        )
        self.process = subprocess.Popen(  # noqa: S603 (our own script, fixed arguments)
            [node, str(HERE / "server.mjs"), str(config)],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 20
        assert self.process.stdout is not None
        lines = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("listening "):
                return
        self.stop()
        raise RuntimeError("the test OpenID provider did not start:\n" + "".join(lines))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


def authorize(auth_url: str, *, login: str, redirect_prefix: str) -> str:
    """Be the browser at the OP: open ``auth_url``, sign in as account ``login`` on the dev interaction's
    form, consent, and return the URL the OP finally redirects to (it starts with ``redirect_prefix``:
    our callback with ``code`` and ``state``). Every step is real HTTP to the OP."""
    browser = requests.Session()
    url = auth_url
    for _ in range(12):
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (302, 303):
            url = urljoin(url, response.headers["Location"])
            if url.startswith(redirect_prefix):
                return url
            continue
        assert response.status_code == 200, (response.status_code, response.text[:500])
        action = re.search(r'action="([^"]+)"', response.text)
        assert action, response.text[:500]
        target = urljoin(url, action.group(1))
        if 'name="login"' in response.text:
            data = {"prompt": "login", "login": login, "password": "any"}
        else:
            data = {"prompt": "consent"}
        posted = browser.post(target, data=data, allow_redirects=False, timeout=10)
        assert posted.status_code in (302, 303), (posted.status_code, posted.text[:500])
        url = urljoin(target, posted.headers["Location"])
        if url.startswith(redirect_prefix):
            return url
    raise AssertionError("the OP never redirected back")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
