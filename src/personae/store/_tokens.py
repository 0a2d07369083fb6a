"""Bearer tokens that bind an HTTP client to one tenant of the store.

A token is ``pst_`` and 43 URL-safe characters (256 random bits). Only its SHA-256 is stored,
so a copy of the database does not hand out access; the token itself is shown once, when it
is created. Lookups are cached for ``cache_s`` seconds, so a revoked token stops working
within that time in every process that serves the store.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from personae.errors import ConfigError
from personae.store._db import Database
from personae.store._schema import api_tokens, check_id

__all__ = ["AccessToken", "AccessTokens"]

PREFIX = "pst_"
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True)
class AccessToken:
    """A stored token, without the secret: its id (safe to log), tenant, name and times."""

    id: str
    tenant: str
    name: str
    created_at: float
    revoked_at: float | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccessTokens:
    """The store's ``api_tokens`` table: create, list, revoke, and resolve a token to its tenant."""

    def __init__(self, db: Database, *, cache_s: float = 5.0) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str, name: str = "") -> tuple[AccessToken, str]:
        """A new token for ``tenant``: the stored record and the secret (shown only now)."""
        check_id("tenant", tenant)
        if len(name) > 128:
            raise ConfigError("a token name is at most 128 characters")
        secret = PREFIX + secrets.token_urlsafe(32)
        record = AccessToken(secrets.token_hex(6), tenant, name, time.time(), None)
        with self.db.write() as conn:
            conn.execute(api_tokens.insert().values(id=record.id, tenant=tenant, name=name,
                                                    token_hash=_digest(secret), created_at=record.created_at))
        return record, secret

    def list(self, tenant: str | None = None) -> list[AccessToken]:
        """The stored tokens (revoked ones too), oldest first: every tenant's, or only
        ``tenant``'s."""
        query = sa.select(api_tokens.c.id, api_tokens.c.tenant, api_tokens.c.name, api_tokens.c.created_at,
                          api_tokens.c.revoked_at).order_by(api_tokens.c.created_at)
        if tenant is not None:
            query = query.where(api_tokens.c.tenant == tenant)
        with self.db.read() as conn:
            return [AccessToken(r.id, r.tenant, r.name, r.created_at, r.revoked_at) for r in conn.execute(query)]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its id; False when no live token has it."""
        with self.db.write() as conn:
            done = conn.execute(api_tokens.update().where(api_tokens.c.id == token_id,
                                                          api_tokens.c.revoked_at.is_(None))
                                .values(revoked_at=time.time())).rowcount
        with self._lock:
            self._cache.clear()
        return bool(done)

    def cached(self, token: str) -> tuple[bool, str | None]:
        """``(True, tenant)`` when the answer is known without the database (a malformed token,
        or one looked up less than ``cache_s`` ago), else ``(False, None)``."""
        if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return True, None
        with self._lock:
            hit = self._cache.get(_digest(token))
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def tenant_of(self, token: str) -> str | None:
        """The tenant a live token is bound to, None for anything else (never raises on the input)."""
        known, tenant = self.cached(token)
        if known:
            return tenant
        digest = _digest(token)
        now = time.monotonic()
        with self.db.read() as conn:
            tenant = conn.execute(sa.select(api_tokens.c.tenant).where(
                api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None))).scalar()
        if tenant is not None:   # only live tokens are cached: guessed ones cannot crowd them out
            with self._lock:
                if len(self._cache) > 10000:
                    self._cache.clear()
                self._cache[digest] = (now + self.cache_s, tenant)
        return tenant
