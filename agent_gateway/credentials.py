"""The gateway's in-process cache of agent credentials (decision 0018, "Writing reports").

Agent id -> tenant, status and public keys, loaded from the database on a miss (one query) and dropped
when a ``NOTIFY agent_gateway, 'cred:<agent id>'`` arrives (``services`` sends one with every change), or
after ``TTL`` seconds whatever happens, so a missed notification cannot keep a revoked key alive for long.
Unknown agent ids are remembered as unknown for the same time (a flood of made-up ids costs one query
each once). Bounded: beyond ``MAX_ENTRIES`` the oldest entries go.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .signing import BadEncoding, public_key_load

TTL = 300.0  # seconds
MAX_ENTRIES = 200_000


@dataclass(slots=True)
class Key:
    state: str  # pending | active | superseded | revoked
    public: Ed25519PublicKey


@dataclass(slots=True)
class AgentAuth:
    """What a request needs to know about its agent. ``agent_id`` None: no such agent."""

    agent_id: uuid.UUID | None
    tenant_id: int = 0
    tenant_active: bool = False
    status: str = ""
    keys: dict[str, Key] = field(default_factory=dict)
    loaded_at: float = 0.0


LOAD_SQL = """
SELECT a.tenant_id, a.status, t.status, c.key_id, c.public_key, c.state
FROM agent_gateway_agent a
JOIN tenants_tenant t ON t.id = a.tenant_id
LEFT JOIN agent_gateway_agentcredential c ON c.agent_id = a.id
WHERE a.id = %s
"""


class CredentialCache:
    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.entries: OrderedDict[uuid.UUID, AgentAuth] = OrderedDict()
        # Bumped by every drop: a load that a drop overtook is not kept (it may hold a revoked key).
        self.generation = 0

    async def get(self, agent_id: uuid.UUID) -> AgentAuth:
        """The agent's credentials, from the cache or the database."""
        entry = self.entries.get(agent_id)
        now = time.monotonic()
        if entry is not None and now - entry.loaded_at < TTL:
            self.entries.move_to_end(agent_id)  # least recently used goes first
            return entry
        generation = self.generation
        entry = await self._load(agent_id)
        entry.loaded_at = now
        if generation != self.generation:
            return entry  # a change arrived while loading: answer this request, cache nothing
        self.entries[agent_id] = entry
        self.entries.move_to_end(agent_id)
        while len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)
        return entry

    async def _load(self, agent_id: uuid.UUID) -> AgentAuth:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(LOAD_SQL, (agent_id,))).fetchall()
        if not rows:
            return AgentAuth(agent_id=None)
        tenant_id, status, tenant_status = rows[0][0], rows[0][1], rows[0][2]
        keys: dict[str, Key] = {}
        for _, _, _, key_id, public_key, state in rows:
            if key_id is None:
                continue
            try:
                keys[key_id] = Key(state=state, public=public_key_load(bytes(public_key)))
            except BadEncoding:
                continue
        return AgentAuth(
            agent_id=agent_id,
            tenant_id=tenant_id,
            tenant_active=tenant_status == "active",
            status=status,
            keys=keys,
        )

    def drop(self, agent_id: uuid.UUID) -> None:
        self.generation += 1
        self.entries.pop(agent_id, None)

    def clear(self) -> None:
        self.generation += 1
        self.entries.clear()
