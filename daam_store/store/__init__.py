"""The persistent store: SQLite by default, PostgreSQL for a team (see session.py for the URL rules).

from daam_store.store import open_store
store = open_store()                                  # migrates an empty database
gen_id = store.save(exp, model=describe_pipeline(pipe), author=None, tags=(), status="done")
exp = store.load_experiment(gen_id)
with store.session() as session:                      # queries.py: what the charts and pages read
    rows = queries.share_by_seed(session, "cat", prompt_id=1)
"""

from daam_store.store.errors import (
    CorruptBlobError,
    DatabaseUnavailableError,
    GenerationNotFoundError,
    ReadOnlyDatabaseError,
    SchemaOutdatedError,
    SchemaTooNewError,
    StoreError,
    UnknownCodecError,
)
from daam_store.store.session import default_database_path, default_database_url
from daam_store.store.writer import Store, open_store

__all__ = [
    "CorruptBlobError",
    "DatabaseUnavailableError",
    "GenerationNotFoundError",
    "ReadOnlyDatabaseError",
    "SchemaOutdatedError",
    "SchemaTooNewError",
    "Store",
    "StoreError",
    "UnknownCodecError",
    "default_database_path",
    "default_database_url",
    "open_store",
]
