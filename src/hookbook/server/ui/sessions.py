"""Dashboard sign-ins: sessions and one-time sign-in tokens, kept in the database.

In the database, so every process of ``hookbook serve --processes N`` knows
them. Only hashes are stored: of the session id (the cookie's value), of the
one-time token, and of the API key that signed in. A session ends at sign-out,
after :data:`SESSION_LIFETIME`, or as soon as its key is no longer configured
(its hash matches no configured key); its scopes are always the key's current
ones. A sign-in token works once, within :data:`SIGNIN_TOKEN_LIFETIME`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ...config import ApiKey
from ...db import Database, ui_sessions, ui_signin_tokens
from ...errors import PermissionDeniedError

SESSION_LIFETIME = timedelta(hours=12)
SIGNIN_TOKEN_LIFETIME = timedelta(minutes=1)


def digest(secret: str) -> str:
    """The SHA-256 of ``secret``, in hex: what the database keeps instead of it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the key it signed in with and its CSRF token."""

    id_hash: str
    key: ApiKey
    #: Derived from the session id, which only the HttpOnly cookie carries.
    csrf_token: str

    def can(self, scope: str) -> bool:
        return self.key.grants(scope)

    def require(self, scope: str, doing: str) -> None:
        """Raise ``PermissionDeniedError`` saying plainly which scope is missing."""
        if not self.can(scope):
            raise PermissionDeniedError(
                f"The API key you signed in with lacks the {scope!r} scope, which "
                f"{doing} needs. Sign out and sign in with a key that has it.",
                scope=scope,
            )


def csrf_token_for(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"hookbook-dashboard-csrf", hashlib.sha256).hexdigest()


class SessionStore:
    """Sessions and sign-in tokens of one server, checked against its configured keys."""

    def __init__(self, db: Database, api_keys: Sequence[ApiKey]) -> None:
        self.db = db
        self._keys = {digest(k.key): k for k in api_keys}

    def key_for(self, presented: str) -> ApiKey | None:
        """The configured key equal to ``presented`` (compared in constant time), or None."""
        wanted = digest(presented)
        found = None
        for key_hash, key in self._keys.items():
            if hmac.compare_digest(key_hash, wanted):
                found = key
        return found

    async def start(self, key: ApiKey) -> str:
        """A new session for ``key``; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        now = _now()
        async with self.db.write() as tx:
            await tx.execute(ui_sessions.delete().where(ui_sessions.c.expires_at <= now))
            await tx.execute(ui_signin_tokens.delete().where(ui_signin_tokens.c.expires_at <= now))
            await tx.execute(
                ui_sessions.insert().values(
                    id_hash=digest(session_id),
                    key_hash=digest(key.key),
                    time_created=now,
                    expires_at=now + SESSION_LIFETIME,
                )
            )
        return session_id

    async def find(self, session_id: str) -> Session | None:
        """The live session with this id, or None (unknown, expired, or its key is gone)."""
        id_hash = digest(session_id)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(ui_sessions.c.key_hash, ui_sessions.c.expires_at).where(
                        ui_sessions.c.id_hash == id_hash
                    )
                )
            ).first()
        if row is None:
            return None
        key = self._keys.get(row.key_hash)
        if key is None or row.expires_at <= _now():
            await self.end(id_hash)
            return None
        return Session(id_hash=id_hash, key=key, csrf_token=csrf_token_for(session_id))

    async def end(self, id_hash: str) -> None:
        """End the session whose id hashes to ``id_hash`` (``Session.id_hash``)."""
        async with self.db.write() as tx:
            await tx.execute(ui_sessions.delete().where(ui_sessions.c.id_hash == id_hash))

    async def issue_token(self, key: ApiKey) -> str:
        """A one-time sign-in token for ``key``: one use, within a minute."""
        token = secrets.token_urlsafe(32)
        async with self.db.write() as tx:
            await tx.execute(
                ui_signin_tokens.insert().values(
                    token_hash=digest(token),
                    key_hash=digest(key.key),
                    expires_at=_now() + SIGNIN_TOKEN_LIFETIME,
                )
            )
        return token

    async def redeem(self, token: str) -> ApiKey | None:
        """The key a token signs in as, using the token up; None if it is unknown,
        used, expired, or its key is no longer configured."""
        token_hash = digest(token)
        async with self.db.write() as tx:
            row = (
                await tx.execute(
                    sa.select(ui_signin_tokens.c.key_hash, ui_signin_tokens.c.expires_at).where(
                        ui_signin_tokens.c.token_hash == token_hash
                    )
                )
            ).first()
            if row is None:
                return None
            # Whoever deletes the row used the token: on PostgreSQL two processes may
            # both read it, but only one delete counts a row.
            deleted = await tx.execute(
                ui_signin_tokens.delete().where(ui_signin_tokens.c.token_hash == token_hash)
            )
        if deleted.rowcount != 1 or row.expires_at <= _now():
            return None
        return self._keys.get(row.key_hash)
