"""Exponential backoff with full jitter, with a seeded random."""

from __future__ import annotations

import random

from itsm_agent.loop import Backoff


def test_full_jitter_doubles_from_one_second_up_to_five_minutes() -> None:
    backoff = Backoff(random.Random(7))
    expected = random.Random(7)
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert delays == [expected.uniform(0, c) for c in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[9:]) <= 300


def test_retry_after_is_a_floor_and_success_resets() -> None:
    backoff = Backoff(random.Random(1))
    assert backoff.next_delay(retry_after=30) >= 30
    assert backoff.next_delay(retry_after=10**6) == 3600  # an absurd Retry-After is capped at an hour
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= 1
