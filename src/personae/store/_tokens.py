"""Bearer tokens that bind an HTTP client to one tenant of the store, with scopes and an expiry.

A token is ``pst_`` and 43 URL-safe characters (256 random bits). Only its SHA-256 is stored,
so a copy of the database does not hand out access; the token itself is shown once, when it
is created. Lookups are cached for ``cache_s`` seconds, so a revoked token stops working
within that time in every process that serves the store; an expiring token is never cached
past its expiry.

Scopes (:data:`SCOPES`): ``read`` (users, preferences, personas, judging, jobs), ``write``
(adding preferences), ``admin`` (export, forget, the console; it also does all that ``read``
and ``write`` do) and ``ops`` (``/metrics`` and ``/readyz`` behind ``--private-ops``). What
each store method needs is declared once, in :data:`personae.store.API_SCOPES`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from personae.errors import ConfigError
from personae.store._db import Database
from personae.store._schema import api_tokens, check_id

__all__ = ["DEFAULT_SCOPES", "SCOPES", "AccessToken", "AccessTokens", "TokenGrant", "grants", "scopes_of"]

PREFIX = "pst_"
MAX_LIFETIME_S = 100 * 365.25 * 86400   # further is no expiry at all, and past year 9999 dates break
MAX_TOKEN_CHARS = 128
SCOPES: tuple[str, ...] = ("read", "write", "admin", "ops")
"""Every scope a token may hold, in the order they are listed."""
DEFAULT_SCOPES: tuple[str, ...] = ("read", "write", "admin")
"""What a token holds unless told otherwise: all a tenant's token could do before scopes."""


def scopes_of(given: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from names or a comma list (``"read,write"``), in :data:`SCOPES` order, each once;
    :class:`ConfigError` for an unknown one or none at all."""
    names = given.split(",") if isinstance(given, str) else [n for part in given for n in str(part).split(",")]
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ConfigError(f"unknown token scope {unknown[0]!r}: the scopes are {', '.join(SCOPES)}")
    if not wanted:
        raise ConfigError(f"a token needs at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether a token holding ``held`` may do what needs ``needed``: ``admin`` also does what
    ``read`` and ``write`` do; ``write`` does not imply ``read``; ``ops`` only itself."""
    held = set(held)
    return needed in held or (needed in ("read", "write") and "admin" in held)


@dataclass(frozen=True)
class AccessToken:
    """A stored token, without the secret: its id (safe to log), tenant, name, times (seconds
    since the epoch), scopes, and when it expires (None: never)."""

    id: str
    tenant: str
    name: str
    created_at: float
    revoked_at: float | None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    expires_at: float | None = None


@dataclass(frozen=True)
class TokenGrant:
    """What a live token grants: its id (for logs and the audit log), tenant, scopes and expiry."""

    id: str
    tenant: str
    scopes: tuple[str, ...]
    expires_at: float | None = None

    def allows(self, needed: str) -> bool:
        """Whether this token may do what needs the scope ``needed`` (see :func:`grants`)."""
        return grants(self.scopes, needed)

    def live(self, now: float | None = None) -> bool:
        """Whether it has not expired (at ``now``, seconds since the epoch)."""
        return self.expires_at is None or self.expires_at > (time.time() if now is None else now)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccessTokens:
    """The store's ``api_tokens`` table: create, list, revoke, and resolve a token to its grant."""

    def __init__(self, db: Database, *, cache_s: float = 5.0) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, TokenGrant]] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str, name: str = "", *, scopes: str | Iterable[str] = DEFAULT_SCOPES,
               expires_at: float | None = None) -> tuple[AccessToken, str]:
        """A new token for ``tenant`` holding ``scopes`` (default read, write and admin), valid
        until ``expires_at`` (seconds since the epoch; None: until revoked): the stored record
        and the secret (shown only now)."""
        check_id("tenant", tenant)
        if len(name) > 128:
            raise ConfigError("a token name is at most 128 characters")
        held = scopes_of(scopes)
        now = time.time()
        if expires_at is not None and not expires_at > now:
            raise ConfigError("a token's expiry must be in the future")
        if expires_at is not None and expires_at > now + MAX_LIFETIME_S:
            raise ConfigError("a token's expiry is at most 100 years away (leave it out: the token lives until "
                              "revoked)")
        secret = PREFIX + secrets.token_urlsafe(32)
        record = AccessToken(secrets.token_hex(6), tenant, name, now, None, held, expires_at)
        with self.db.write() as conn:
            conn.execute(api_tokens.insert().values(id=record.id, tenant=tenant, name=name,
                                                    token_hash=_digest(secret), created_at=record.created_at,
                                                    scopes=",".join(held), expires_at=expires_at))
        return record, secret

    def list(self, tenant: str | None = None) -> list[AccessToken]:
        """The stored tokens (revoked and expired ones too), oldest first: every tenant's, or
        only ``tenant``'s."""
        c = api_tokens.c
        query = sa.select(c.id, c.tenant, c.name, c.created_at, c.revoked_at, c.scopes, c.expires_at) \
            .order_by(c.created_at)
        if tenant is not None:
            query = query.where(c.tenant == tenant)
        with self.db.read() as conn:
            return [AccessToken(r.id, r.tenant, r.name, r.created_at, r.revoked_at, scopes_of(r.scopes),
                                r.expires_at) for r in conn.execute(query)]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its id; False when no live token has it."""
        with self.db.write() as conn:
            done = conn.execute(api_tokens.update().where(api_tokens.c.id == token_id,
                                                          api_tokens.c.revoked_at.is_(None))
                                .values(revoked_at=time.time())).rowcount
        with self._lock:
            self._cache.clear()
        return bool(done)

    def cached_grant(self, token: str) -> tuple[bool, TokenGrant | None]:
        """``(True, grant)`` when the answer is known without the database (a malformed token:
        None; one looked up less than ``cache_s`` ago and not expired since), else ``(False, None)``."""
        if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return True, None
        with self._lock:
            hit = self._cache.get(_digest(token))
        if hit is not None and hit[0] > time.monotonic() and hit[1].live():
            return True, hit[1]
        return False, None

    def grant_of(self, token: str) -> TokenGrant | None:
        """What a live token grants (not revoked, not expired); None for anything else (never
        raises on the input)."""
        known, grant = self.cached_grant(token)
        if known:
            return grant
        digest = _digest(token)
        now = time.monotonic()
        with self.db.read() as conn:
            row = conn.execute(sa.select(api_tokens.c.id, api_tokens.c.tenant, api_tokens.c.scopes,
                                         api_tokens.c.expires_at).where(
                api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        grant = TokenGrant(row.id, row.tenant, scopes_of(row.scopes), row.expires_at)
        if not grant.live():
            return None
        # only live tokens are cached (guessed ones cannot crowd them out), never past their expiry
        until = now + self.cache_s
        if grant.expires_at is not None:
            until = min(until, now + grant.expires_at - time.time())
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[digest] = (until, grant)
        return grant

    def cached(self, token: str) -> tuple[bool, str | None]:
        """:meth:`cached_grant`, as the tenant only."""
        known, grant = self.cached_grant(token)
        return known, None if grant is None else grant.tenant

    def tenant_of(self, token: str) -> str | None:
        """The tenant a live token is bound to, None for anything else (never raises on the input)."""
        grant = self.grant_of(token)
        return None if grant is None else grant.tenant
