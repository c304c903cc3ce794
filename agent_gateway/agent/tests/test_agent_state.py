"""The state directory: atomic files with private modes, the bounded list of run commands, config checks."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from itsm_agent.signing import key_id, public_raw
from itsm_agent.state import BUILTIN_COMMANDS, Config, State, StateError, StateStore, resolve_state_dir


def make_state(kid: str) -> State:
    return State(
        agent_id="5b0c9a9e-8a57-4b1e-9d1e-2f1b8f0c6a11",
        key_id=kid,
        server_url="https://itsm.example.com",
        server_key="A" * 43,
        server_key_id="0123456789abcdef",
        intervals={"heartbeat": 60, "metrics": 60, "inventory": 21600, "poll": 60},
        rotate_after_days=30,
        enrolled_at=1796203800.0,
    )


def test_state_and_keys_round_trip_with_private_modes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s")
    key = Ed25519PrivateKey.generate()
    kid = key_id(public_raw(key))
    store.save_key(kid, key)
    store.save(make_state(kid))
    assert store.load() == make_state(kid)
    assert public_raw(store.load_key(kid)) == public_raw(key)
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.state_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.key_path(kid).stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(".tmp-")] == []


def test_stray_keys_from_an_interrupted_rotation_are_removed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    ids = [key_id(public_raw(k)) for k in keys]
    for kid, key in zip(ids, keys, strict=True):
        store.save_key(kid, key)
    state = make_state(ids[0])
    state.previous_key_id = ids[1]
    store.remove_stray_keys(state)
    assert sorted(p.stem for p in store.keys_dir.iterdir()) == sorted(ids[:2])


def test_executed_command_ids_keep_the_last_thousand() -> None:
    state = make_state("0123456789abcdef")
    for n in range(1005):
        state.remember_executed(f"id-{n}")
    state.remember_executed("id-1004")
    assert len(state.executed_commands) == 1000
    assert state.executed_commands[0] == "id-5" and state.executed_commands[-1] == "id-1004"


def test_a_malformed_state_file_is_a_clear_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(StateError, match="not enrolled"):
        store.load()
    store.state_path.write_text("{}")
    with pytest.raises(StateError, match="malformed"):
        store.load()
    store.state_path.write_text(json.dumps(json.loads(make_state("x" * 16).to_json())))
    with pytest.raises(StateError, match="key id"):
        store.load()


def test_config_defaults_and_overrides(tmp_path: Path) -> None:
    assert Config.load(tmp_path) == Config()
    assert Config().allowed_commands == BUILTIN_COMMANDS and Config().spool_max_bytes == 50_000_000
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "intervals": {"metrics": 30},
                "services": ["nginx", "postgresql@15-main", "nginx"],
                "spool_max_bytes": 2_000_000,
                "allowed_commands": ["collect_inventory"],
                "script_timeout_seconds": 60,
            }
        )
    )
    config = Config.load(tmp_path)
    assert config.intervals == {"metrics": 30}
    assert config.services == ("nginx", "postgresql@15-main")
    assert config.allowed_commands == frozenset({"collect_inventory"})
    assert (config.spool_max_bytes, config.script_timeout_seconds) == (2_000_000, 60)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"intervals": {"metrics": 1}}, "intervals.metrics must be whole seconds"),
        ({"intervals": {"metric": 60}}, "intervals.metric is not one of"),
        ({"services": ["ok", "not ok"]}, "service names must match"),
        ({"services": ["nginx\n"]}, "service names must match"),
        ({"spool_max_bytes": 10}, "spool_max_bytes"),
        ({"allowed_commands": ["collect_inventory", "shell"]}, "may only name"),
        ({"script_timeout_seconds": True}, "script_timeout_seconds"),
        ({"servces": []}, "unknown keys ['servces']"),
        ([], "expected a JSON object"),
    ],
)
def test_config_mistakes_are_named(raw: object, message: str) -> None:
    with pytest.raises(StateError) as info:
        Config.from_dict(raw)
    assert message in str(info.value)


def test_state_dir_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITSM_AGENT_STATE_DIR", raising=False)
    assert resolve_state_dir(None) == Path("/var/lib/itsm-agent")
    monkeypatch.setenv("ITSM_AGENT_STATE_DIR", "/srv/agent")
    assert resolve_state_dir(None) == Path("/srv/agent")
    assert resolve_state_dir("/opt/x") == Path("/opt/x")
