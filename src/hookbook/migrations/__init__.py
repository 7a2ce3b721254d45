"""Schema migrations (Alembic) and the start-up step that applies them.

A new database is created at the head revision directly (fast start-up); an
existing one is upgraded only when it is behind. On PostgreSQL an advisory
lock makes sure that processes starting together migrate once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..db import Database, metadata
from ..errors import ConfigurationError

if TYPE_CHECKING:  # Alembic is imported only when needed
    from alembic.config import Config

logger = logging.getLogger(__name__)

#: The newest revision in ``versions/``; a new database is stamped with it.
HEAD_REVISION = "0005"
_ADVISORY_LOCK_ID = 0x686F6F6B  # "hook"
_HERE = Path(__file__).parent


def alembic_config(connection: sa.Connection) -> Config:
    """An Alembic config bound to ``connection`` (Alembic is imported only when needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def _current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _prepare(connection: sa.Connection) -> str:
    revision = _current_revision(connection)
    if revision is None:
        if sa.inspect(connection).has_table("nodes"):
            raise ConfigurationError(
                "database: it has hookbook tables but no alembic_version table, so its "
                "schema revision is unknown; it was not made by hookbook's migrations"
            )
        metadata.create_all(connection)
        connection.execute(
            sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        )
        connection.execute(
            sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
        )
        return "created"
    if revision == HEAD_REVISION:
        return "current"
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(connection))
    if revision not in {rev.revision for rev in script.walk_revisions()}:
        raise ConfigurationError(
            f"database: it is at schema revision {revision!r}, which this hookbook "
            f"does not know (its newest is {HEAD_REVISION!r}); it was probably made by "
            "a newer hookbook: upgrade hookbook to open it"
        )
    logger.info("upgrading database from revision %s to %s", revision, HEAD_REVISION)
    command.upgrade(alembic_config(connection), "head")
    return f"upgraded from {revision}"


async def prepare_database(db: Database) -> str:
    """Create or upgrade the schema; returns what was done."""
    async with db.writer.connect() as conn:
        if not db.sqlite:
            # A session-level lock: it outlives the transaction that took it.
            await conn.execute(sa.text(f"SELECT pg_advisory_lock({_ADVISORY_LOCK_ID})"))
            await conn.commit()
        try:
            async with conn.begin():
                return await conn.run_sync(_prepare)
        finally:
            if not db.sqlite:
                await conn.execute(sa.text(f"SELECT pg_advisory_unlock({_ADVISORY_LOCK_ID})"))
                await conn.commit()
