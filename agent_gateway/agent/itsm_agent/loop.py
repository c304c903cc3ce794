"""The agent's work: collect reports on their intervals, spool them, send them in batches, poll and run
commands, post their results, and rotate its key (0018).

Timing: each report kind and the command poll run on their own interval (seconds, from the enrolment
answer, overridable in config.json) with ±10 % jitter so that a fleet does not report in lockstep. Any
failure to reach the gateway (network, 5xx, 429, an authentication refusal) pauses all traffic with
exponential backoff and full jitter, 1 s doubling up to 5 min, never shorter than the answer's Retry-After;
collection goes on meanwhile into the spool.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from itsm_agent import collect
from itsm_agent.client import GatewayClient, GatewayError, RefusedError, Signer
from itsm_agent.commands import (
    Command,
    CommandRejected,
    Outcome,
    ResultOutbox,
    rejected_body,
    restart_service,
    result_body,
    run_script,
    unverified_id,
    verify,
)
from itsm_agent.signing import b64url_encode, key_id, public_key_from_b64, public_raw
from itsm_agent.spool import Spool
from itsm_agent.state import DEFAULT_INTERVALS, Config, State, StateStore

BATCH_LIMIT = 50  # reports per POST /reports (0018)
POLL_AFTER_BOUNDS = (5, 3600)  # seconds: the server's poll_after is honoured within these
ROTATION_RETRY = 3600.0  # seconds between attempts after a failed scheduled rotation
CONTACT_SAVE_EVERY = 60.0  # seconds: how stale "last contact" in state.json may be
_REPORT_INDEX = re.compile(r"^reports\[(\d+)\]")
T = TypeVar("T")

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with full jitter: after the n-th consecutive failure (n from 0) wait a uniform
    random time in [0, min(cap, base·2ⁿ)] seconds, but at least ``retry_after`` when the server gave one
    (capped at one hour). ``rng`` is injectable so tests can seed it."""

    def __init__(self, rng: random.Random | None = None, *, base: float = 1.0, cap: float = 300.0) -> None:
        self.rng = rng or random.Random()
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait after one more failure."""
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 3600.0))
        return delay

    def reset(self) -> None:
        self.failures = 0


class Agent:
    """One enrolled agent: its state directory, config, spool and gateway client.

    ``transport`` is httpx's (tests may pass one; production uses the default); ``rng`` drives jitter
    and backoff.
    """

    def __init__(
        self,
        store: StateStore,
        config: Config,
        *,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.state: State = store.load()
        store.remove_stray_keys(self.state)
        self.rng = rng or random.Random()
        self.backoff = Backoff(self.rng)
        self.server_key = public_key_from_b64(self.state.server_key)
        self.spool = Spool(store.dir / "spool", max_bytes=config.spool_max_bytes)
        self.outbox = ResultOutbox(store.dir / "results")
        self.client = GatewayClient(
            self.state.server_url,
            Signer(self.state.agent_id, self.state.key_id, store.load_key(self.state.key_id)),
            clock_offset=self.state.clock_offset,
            on_offset=self._set_offset,
            transport=transport,
        )
        self.sampler = collect.MetricsSampler()
        self.intervals = {**DEFAULT_INTERVALS, **self.state.intervals, **config.intervals}
        self.blocked_until = 0.0  # time.monotonic() before which no request is sent (backoff)
        self.round_errors: list[str] = []
        self._last_saved = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._work: queue.Queue[Command | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._running: set[str] = set()  # ids of commands running now (their results are not final)

    def close(self) -> None:
        if self._worker is not None:
            self._work.put(None)
            self._worker.join(timeout=5)
        self.client.close()

    # -- talking to the gateway ------------------------------------------------------------------------

    def _set_offset(self, offset: float) -> None:
        self.state.clock_offset = offset
        self._save()

    def _save(self) -> None:
        self.store.save(self.state)
        self._last_saved = time.monotonic()

    def blocked(self) -> bool:
        return time.monotonic() < self.blocked_until

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one request; on success note the contact (and finish a rotation), on failure note the error
        and, unless the caller handles it (a RefusedError other than an authentication refusal), back off."""
        try:
            result = fn()
        except GatewayError as exc:
            self._failed(exc)
            raise
        self.backoff.reset()
        self.state.last_contact = time.time()
        if self.state.status != "active":  # approved in the console since
            log.info("the gateway accepts this agent now (approved)")
            self.state.status = "active"
            self._last_saved = 0.0
        if self.state.previous_key_id is not None:  # the new key worked: the server made it active
            log.info("key rotation complete: now signing with key %s", self.state.key_id)
            old, self.state.previous_key_id = self.state.previous_key_id, None
            self._save()
            self.store.delete_key(old)
        elif time.monotonic() - self._last_saved > CONTACT_SAVE_EVERY:
            self._save()
        return result

    def _failed(self, exc: GatewayError) -> None:
        self.round_errors.append(str(exc))
        self.state.last_error = str(exc)[:500]
        self.state.last_error_at = time.time()
        if exc.kind == "agent-pending":
            self.state.status = "pending"
        if (
            isinstance(exc, RefusedError)
            and exc.status == 401
            and exc.kind == "agent-unknown"
            and self.state.previous_key_id
        ):
            # The server never took the new key (its 201 was not what it seemed): go back to the old one.
            log.error(
                "the gateway does not know the new key %s; signing with the previous key again",
                self.state.key_id,
            )
            self.state.key_id, self.state.previous_key_id = self.state.previous_key_id, None
            self.client.signer = Signer(
                self.state.agent_id, self.state.key_id, self.store.load_key(self.state.key_id)
            )
        if isinstance(exc, RefusedError) and exc.status not in (401, 403):
            self._save()
            return  # a refusal of this request (invalid report, unknown command): the caller decides
        delay = self.backoff.next_delay(exc.retry_after)
        self.blocked_until = time.monotonic() + delay
        log.warning("%s; next attempt in %.1f s", exc, delay)
        self._save()

    # -- reports ---------------------------------------------------------------------------------------

    def collect(self, kind: str) -> None:
        """Collect one report of ``kind`` (heartbeat | metrics | inventory) into the spool."""
        if kind == "heartbeat":
            data = collect.heartbeat()
        elif kind == "metrics":
            data = self.sampler.sample(self.config.services)
        else:
            data = collect.inventory()
        self.spool.add(collect.make_report(kind, data))

    def flush(self) -> None:
        """Send the spool in batches of up to 50 until it is empty, the gateway fails, or it stops taking
        reports. 202: the ``accepted`` and ``duplicates`` ids leave the spool. 422: the reports it names
        go to rejected/ (a bug, logged); the others stay for the next batch."""
        limit = BATCH_LIMIT
        while len(self.spool) and not self.blocked():
            batch = self.spool.batch(limit=limit)
            if not batch:
                return
            try:
                accepted, duplicates = self._call(partial(self.client.send_reports, batch))
            except RefusedError as exc:
                if exc.status == 422:
                    self._reject_invalid(batch, exc)
                    continue
                if exc.status == 413 and len(batch) > 1:
                    limit = max(1, len(batch) // 2)
                    continue
                if exc.status == 413:
                    self._reject_invalid(batch, exc)
                    continue
                return
            except GatewayError:
                return
            if self.spool.remove(accepted + duplicates) == 0:
                log.error(
                    "the gateway acknowledged none of the %d reports sent; trying again later", len(batch)
                )
                return

    def _reject_invalid(self, batch: list[dict[str, Any]], exc: GatewayError) -> None:
        errors = exc.body.get("errors") if isinstance(exc.body.get("errors"), list) else []
        named: set[int] = set()
        for error in errors or []:
            match = _REPORT_INDEX.match(str(error.get("field", ""))) if isinstance(error, dict) else None
            if match and int(match.group(1)) < len(batch):
                named.add(int(match.group(1)))
        bad = [batch[i] for i in sorted(named)] or batch  # nothing named: the whole batch, or we loop forever
        for report in bad:
            fields = [str(e.get("field", ""))[:100] for e in errors or [] if isinstance(e, dict)][:5]
            log.error(
                "the gateway refused a %s report as invalid (%s %s; fields %s); kept in spool/rejected/ (a bug: please report it)",
                report.get("type"),
                exc.status,
                exc.title,
                fields,
            )
        self.spool.reject([str(r.get("id")) for r in bad])

    # -- commands --------------------------------------------------------------------------------------

    def poll(self, *, inline: bool) -> int | None:
        """Poll for commands, verify each and run the good ones (inline, or long ones on the worker
        thread); returns the server's poll_after (seconds) or None. Nothing is sent while backing off."""
        if self.blocked():
            return None
        try:
            envelopes, poll_after = self._call(self.client.poll_commands)
        except GatewayError:
            return None
        for envelope in envelopes[:100]:
            self.handle(envelope, inline=inline)
        return poll_after

    def handle(self, envelope: Any, *, inline: bool = True) -> None:
        """Verify one envelope and run it, or queue a ``rejected`` result with the reason."""
        try:
            command = verify(
                envelope,
                server_key=self.server_key,
                server_key_id=self.state.server_key_id,
                agent_id=self.state.agent_id,
                allowed=self.config.allowed_commands,
                executed=self.state.executed_commands,
                now=datetime.fromtimestamp(time.time() + self.client.clock_offset, UTC),  # the server's clock
            )
        except CommandRejected as exc:
            command_id = exc.command_id or unverified_id(envelope)
            log.warning("command %s rejected: %s", command_id or "(no id)", exc.reason)
            if command_id and not self.outbox.has(command_id):  # a pending real result is never overwritten
                self.outbox.put(command_id, rejected_body(exc.reason))
            return
        log.info(
            "running command %s: %s (requested by %s, approved by %s)",
            command.id,
            command.kind,
            command.requested_by,
            command.approved_by,
        )
        self.state.remember_executed(command.id)  # before it runs: a crash never runs it twice
        self._save()
        # Until the real result replaces it, the result says the run was cut short: if the agent dies
        # now, the restarted agent reports that instead of leaving the command without an answer.
        self._running.add(command.id)
        self.outbox.put(
            command.id, rejected_body("interrupted: the agent stopped while it ran", status="failed")
        )
        if inline or command.kind in ("collect_inventory", "rotate_credential"):
            self._execute(command)
        else:
            self._start_worker()
            self._work.put(command)

    def _execute(self, command: Command) -> None:
        started = time.time()
        try:
            outcome = self._outcome(command)
        except Exception as exc:  # a bug must become a failed result, not a dead agent
            log.exception("command %s crashed", command.id)
            outcome = Outcome(status="failed", reason=f"agent error: {type(exc).__name__}")
        log.info(
            "command %s %s%s", command.id, outcome.status, f": {outcome.reason}" if outcome.reason else ""
        )
        self.outbox.put(command.id, result_body(outcome, started_at=started, finished_at=time.time()))
        self._running.discard(command.id)
        self._wake.set()

    def _outcome(self, command: Command) -> Outcome:
        if command.kind == "collect_inventory":
            self.collect("inventory")
            return Outcome(status="succeeded", output="inventory report queued")
        if command.kind == "rotate_credential":
            try:
                self.rotate()
            except (GatewayError, ValueError) as exc:
                return Outcome(status="failed", reason=f"rotation failed: {exc}")
            return Outcome(status="succeeded", output=f"now signing with key {self.state.key_id}")
        if command.kind == "restart_service":
            return restart_service(command)
        return run_script(
            command, work_dir=self.store.dir / "scripts", timeout=self.config.script_timeout_seconds
        )

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work_loop, name="itsm-agent-commands", daemon=True)
            self._worker.start()

    def _work_loop(self) -> None:
        while (command := self._work.get()) is not None:
            self._execute(command)

    def post_results(self) -> None:
        """Post waiting command results; 200 and 404 (not this agent's command) both end a result."""
        for command_id, body in self.outbox.items():
            if self.blocked():
                return
            if command_id in self._running:
                continue
            try:
                self._call(partial(self.client.post_result, command_id, body))
            except RefusedError as exc:
                if exc.status in (401, 403):
                    return
                log.error("the gateway refused the result of command %s: %s", command_id, exc)
            except GatewayError:
                return
            self.outbox.done(command_id)

    # -- key rotation ----------------------------------------------------------------------------------

    def rotation_due(self) -> bool:
        days = self.state.rotate_after_days
        return days > 0 and time.time() - self.state.key_created_at >= days * 86400

    def rotate(self) -> None:
        """Make a new key pair, register it (POST /credentials signed with the current key), then sign with
        it. The old key file stays until a request signed with the new key succeeds (then the server has
        made the new key active and the old one superseded). Raises GatewayError or ValueError (an answer
        naming another key id)."""
        new_key = Ed25519PrivateKey.generate()
        raw = public_raw(new_key)
        new_id = key_id(raw)
        answered = self._call(lambda: self.client.rotate(public_key=b64url_encode(raw)))
        if answered != new_id:
            raise ValueError(f"the gateway answered key id {answered[:16]!r} for key {new_id}")
        self.store.save_key(new_id, new_key)  # first the key, then the state that names it (crash-safe)
        if self.state.previous_key_id is not None:  # an unfinished earlier rotation: that key is gone now
            self.store.delete_key(self.state.previous_key_id)
        self.state.previous_key_id = self.state.key_id
        self.state.key_id = new_id
        self.state.key_created_at = time.time()
        self._save()
        self.client.signer = Signer(self.state.agent_id, new_id, new_key)
        log.info(
            "registered the new key %s; the previous key %s is kept until the new one is used",
            new_id,
            self.state.previous_key_id,
        )

    # -- the loops -------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """One round: collect all three reports, send the spool, poll and run commands (inline), post their
        results, send again. Returns 0 if every request succeeded, else 1."""
        self.round_errors = []
        for kind in ("heartbeat", "metrics", "inventory"):
            try:
                self.collect(kind)
            except Exception as exc:  # a full disk or a broken collector: send what there is anyway
                log.exception("collecting the %s report failed", kind)
                self.round_errors.append(f"collecting the {kind} report failed: {exc}")
        if self.rotation_due():
            try:
                self.rotate()
            except (GatewayError, ValueError) as exc:
                log.error("scheduled key rotation failed: %s", exc)
        self.flush()
        self.poll(inline=True)
        self.post_results()
        self.flush()
        return 1 if self.round_errors else 0

    def _jittered(self, seconds: float) -> float:
        return seconds * self.rng.uniform(0.9, 1.1)

    def request_stop(self) -> None:
        """Make run_forever return after the step it is in (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def run_forever(self) -> None:
        """Run until request_stop() (SIGTERM/SIGINT in the CLI)."""
        stop = self._stop
        now = time.monotonic()
        # The first metrics sample waits a little: its CPU percent is measured over the time since start.
        due = {
            "heartbeat": now,
            "metrics": now + min(5.0, self.intervals["metrics"]),
            "inventory": now,
            "poll": now,
            "rotate": now,
        }
        while not stop.is_set():
            now = time.monotonic()
            for kind in ("heartbeat", "metrics", "inventory"):
                if now >= due[kind]:
                    try:
                        self.collect(kind)
                    except Exception:  # one bad collector must not stop the others or the commands
                        log.exception("collecting the %s report failed", kind)
                    due[kind] = time.monotonic() + self._jittered(self.intervals[kind])
            if now >= due["rotate"] and not self.blocked():
                due["rotate"] = now + ROTATION_RETRY
                if self.rotation_due():
                    try:
                        self.rotate()
                    except (GatewayError, ValueError) as exc:
                        log.error("scheduled key rotation failed: %s", exc)
            if not self.blocked():
                self.flush()
            if not self.blocked() and time.monotonic() >= due["poll"]:
                poll_after = self.poll(inline=False)
                interval = (
                    self.intervals["poll"]
                    if poll_after is None
                    else min(max(poll_after, POLL_AFTER_BOUNDS[0]), POLL_AFTER_BOUNDS[1])
                )
                due["poll"] = time.monotonic() + self._jittered(interval)
            if not self.blocked():
                self.post_results()
            wake_at = min(due.values())
            if self.blocked():
                wake_at = min(wake_at, max(self.blocked_until, time.monotonic() + 0.1))
            self._wake.wait(timeout=max(0.1, wake_at - time.monotonic()))
            self._wake.clear()
        self._save()
