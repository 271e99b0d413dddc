"""Adaptive concurrency for bulk calls: `AdaptiveLimiter` caps the attempts in flight, halves the cap on a
throttle (429/529) and pauses new starts for `retry-after` or while the rate-limit headers say the request
allowance is spent (`_headers_wait`)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class AdaptiveLimiter:
    """Caps attempts in flight. Halves the cap on a throttle (429/529) and pauses new starts for `retry-after`;
    grows it back by one per cap-many successes; pauses until the reset time when rate-limit headers say the
    remaining request allowance is 0."""

    def __init__(self, limit: int, max_limit: int | None = None):
        self.max_limit = max(1, int(max_limit or limit))
        self.limit = float(max(1, min(limit, self.max_limit)))
        self.inflight = 0
        self.paused_until = 0.0
        self._last_cut = 0.0
        self._cond = threading.Condition()

    def set_max(self, max_limit: int) -> None:
        with self._cond:
            self.max_limit = max(1, int(max_limit))
            self.limit = float(self.max_limit)
            self._cond.notify_all()

    def acquire(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                if now < self.paused_until:
                    self._cond.wait(self.paused_until - now)
                elif self.inflight >= int(self.limit):
                    self._cond.wait(0.5)
                else:
                    self.inflight += 1
                    return

    def release(self, *, throttled: bool = False, retry_after: float | None = None,
                headers: dict | None = None) -> None:
        with self._cond:
            self.inflight -= 1
            now = time.monotonic()
            if throttled:
                # With a retry-after the pause below does the pacing, so shrink gently; without one, halve.
                if now - self._last_cut > max(0.2, retry_after or 0):
                    self.limit = max(1.0, self.limit * (0.8 if retry_after else 0.5))
                    self._last_cut = now
                if retry_after:
                    self.paused_until = max(self.paused_until, now + retry_after)
            else:
                self.limit = min(float(self.max_limit), self.limit + 1.0 / max(self.limit, 1.0))
            wait_s = _headers_wait(headers or {})
            if wait_s:
                self.paused_until = max(self.paused_until, now + wait_s)
            self._cond.notify_all()


def _headers_wait(h: dict) -> float | None:
    """Seconds to hold new requests when `*-ratelimit-requests-remaining` is 0: until one request's worth of
    allowance is back (60 s / the per-minute limit), at most until the reset time."""
    h = {k.lower(): v for k, v in h.items()}
    for prefix in ("anthropic-ratelimit-requests", "x-ratelimit-requests"):
        rem = h.get(f"{prefix}-remaining")
        if rem is None:
            continue
        try:
            if int(float(rem)) > 0:
                return None
        except ValueError:
            return None
        wait = 60.0
        try:
            wait = 60.0 / max(1.0, float(h.get(f"{prefix}-limit") or 1.0))
        except ValueError:
            pass
        reset = h.get(f"{prefix}-reset")
        if reset:
            try:
                until = float(reset)  # seconds form
            except ValueError:
                try:
                    at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
                    until = (at - datetime.now(timezone.utc)).total_seconds()
                except ValueError:
                    until = wait
            wait = min(wait, max(0.0, until))
        return min(wait, 60.0)
    return None
