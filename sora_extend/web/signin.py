"""HTTP basic sign-in for `sora-extend serve --users FILE`, with failed attempts rate-limited per client
address and per name. Passwords are checked with bcrypt once; a browser sends them with every request,
so a correct pair is then remembered (as an HMAC under a key that lives only in this process)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections import defaultdict, deque

from pydantic import BaseModel

from sora_extend.web.users import User, hash_password, password_matches

REALM = 'Basic realm="Sora Extend library", charset="UTF-8"'
MAX_FAILURES = 5  # per client address and per name, within WINDOW_S
WINDOW_S = 60.0


class Viewer(BaseModel):
    """Who is looking: a signed-in user, or everyone (sign-in off), who sees every job."""

    name: str | None
    admin: bool

    def sees(self, owners: list[str]) -> bool:
        return self.admin or (self.name is not None and self.name in owners)


class Refused(BaseModel):
    status: int
    message: str
    retry_after_s: int | None = None


class SignIn:
    def __init__(self, users: dict[str, User], max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.users = users
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._known: set[bytes] = set()
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        # Checked when the name is unknown, so an unknown name takes as long to refuse as a wrong password.
        self._decoy = User(name="decoy", password_hash=hash_password(base64.b64encode(os.urandom(12)).decode()))

    def check(self, authorization: str | None, client: str) -> Viewer | Refused:
        if not authorization:
            return Refused(status=401, message="sign in to see your videos")
        name, password = _credentials(authorization)
        keys = [f"address {client}", f"name {name}"]
        wait = self._blocked(keys)
        if wait:
            return Refused(status=429, message="too many failed sign-ins; try again later", retry_after_s=wait)
        user = self.users.get(name or "")
        if user is not None and password is not None and self._valid(user, password):
            return Viewer(name=user.name, admin=user.admin)
        if user is None:
            password_matches(self._decoy, password or "")
        self._fail(keys)
        return Refused(status=401, message="wrong name or password")

    def _valid(self, user: User, password: str) -> bool:
        token = hmac.new(self._key, f"{user.name}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            if token in self._known:
                return True
        if not password_matches(user, password):
            return False
        with self._lock:
            self._known.add(token)
        return True

    def _blocked(self, keys: list[str]) -> int:
        """Seconds until these keys may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = []
            for key in keys:
                recent = self._failures[key]
                while recent and recent[0] <= now - self.window_s:
                    recent.popleft()
                if len(recent) >= self.max_failures:
                    waits.append(recent[0] + self.window_s - now)
            return max(1, round(max(waits))) if waits else 0

    def _fail(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._failures[key].append(now)


def _credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    name, colon, password = decoded.partition(":")
    return (name, password) if colon else (None, None)
