"""Schema versions: Alembic migrations in the repository's migrations/ folder, run from code.

`upgrade()` is what `daam-store db upgrade` runs, and what `open_store()` runs on an empty database.
It holds the database's write lock (SQLite) or an advisory lock (PostgreSQL) while it migrates, so
several processes opening a fresh database at once migrate it exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from daam_store.store.errors import SchemaOutdatedError, SchemaTooNewError, StoreError
from daam_store.store.session import writing

# the repository's migrations/ folder: a link to it in a source checkout, a copy in an installed wheel; the
# folder itself where a checkout made the link a plain file (git without symlinks)
_PACKAGED = Path(__file__).resolve().parents[1] / "_migrations"
MIGRATIONS_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "migrations"
POSTGRES_LOCK_KEY = 0x6461616D  # "daam": serialises concurrent migrations on one PostgreSQL database


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # revision recorded in the database; None when it has none
    head: str  # revision this daam-store expects
    has_tables: bool  # whether any daam-store table exists

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def alembic_config(connection: Connection | None = None) -> Config:
    if not (MIGRATIONS_DIR / "env.py").exists():
        raise StoreError(f"the migrations folder {MIGRATIONS_DIR} is missing; reinstall daam-store")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def schema_state(connection: Connection) -> SchemaState:
    from daam_store.store.schema import Base

    current = MigrationContext.configure(connection).get_current_revision()
    tables = set(inspect(connection).get_table_names())
    return SchemaState(current, head_revision(), bool(tables & set(Base.metadata.tables)))


def upgrade(engine: Engine, revision: str = "head") -> None:
    with writing(engine).connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY})
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with writing(engine).connect() as connection, connection.begin():
        command.downgrade(alembic_config(connection), revision)


def require_current(state: SchemaState, where: str) -> None:
    """Raise the error that tells the user what to do when the schema is not the one this code expects."""
    if state.is_current:
        return
    if state.current is not None and state.current not in known_revisions():
        raise SchemaTooNewError(
            f"database {where} has schema revision {state.current}, newer than this daam-store knows "
            f"(it expects {state.head}); upgrade daam-store"
        )
    found = state.current or ("none" if state.has_tables else "empty")
    raise SchemaOutdatedError(
        f"database {where} has schema revision {found} but this daam-store needs {state.head}; "
        "run `daam-store db upgrade`"
    )
