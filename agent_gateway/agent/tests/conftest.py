"""Fixtures for the agent's tests: a real tiny gateway (agent_fake_gateway) and enrolled agents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from itsm_agent.cli import main
from itsm_agent.state import StateStore

from .agent_fake_gateway import TOKEN, FakeGateway, start


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway()
    server = start(gw)
    yield gw
    server.shutdown()
    server.server_close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def enrolled(gateway: FakeGateway, state_dir: Path) -> StateStore:
    """An agent enrolled through the CLI against the fake gateway (state in ``state_dir``)."""
    assert main(["enroll", "--server", gateway.url, "--token", TOKEN, "--state-dir", str(state_dir)]) == 0
    (state_dir / "config.json").write_text(json.dumps({"services": ["ssh"]}))
    return StateStore(state_dir)
