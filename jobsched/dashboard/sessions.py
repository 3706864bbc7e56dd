"""Dashboard log-in: one-time login codes and cookie sessions, kept in the server's memory.

* A *login code* is minted by an API client that holds the bearer token (``POST /v1/dashboard/login``,
  what ``jobsched dashboard`` calls). It is short-lived (60 s) and single-use, so the URL that carries
  it is worth nothing once opened; the long-lived token never appears in a URL.
* Exchanging a code (or pasting the token into the log-in form) opens a *session*: a random id in an
  HttpOnly, SameSite=Strict cookie, and a per-session CSRF token that every form that changes
  something (cancel, log out) must carry back.

Sessions live in memory: a server restart logs everyone out (run ``jobsched dashboard`` again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CODE_TTL = 60.0  # seconds a login code stays valid
SESSION_TTL = 12 * 3600.0  # seconds a session lasts
MAX_PENDING_CODES = 256  # bound memory: the oldest codes are dropped first


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires_at: float


class Sessions:
    """Thread-safe store of login codes and sessions; ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 code_ttl: float = CODE_TTL, session_ttl: float = SESSION_TTL) -> None:
        self.clock, self.code_ttl, self.session_ttl = clock, code_ttl, session_ttl
        self._codes: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def mint_code(self) -> str:
        code = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            self._expire(now)
            while len(self._codes) >= MAX_PENDING_CODES:
                self._codes.pop(next(iter(self._codes)))
            self._codes[code] = now + self.code_ttl
        return code

    def redeem(self, code: str) -> Session | None:
        """A new session for a valid, unused code (which is spent either way), else None."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            match = next((c for c in self._codes if hmac.compare_digest(c, code)), None)
            if match is None:
                return None
            del self._codes[match]
        return self.open()

    def open(self) -> Session:
        s = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                    expires_at=self.clock() + self.session_ttl)
        with self._lock:
            self._sessions[s.id] = s
        return s

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            self._expire(now)
            return self._sessions.get(session_id)

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())

    def _expire(self, now: float) -> None:
        for c in [c for c, t in self._codes.items() if t <= now]:
            del self._codes[c]
        for s in [s for s, v in self._sessions.items() if v.expires_at <= now]:
            del self._sessions[s]
