"""Errors of the store: each is a `UserError`, so the CLI and dashboard print one line saying what to do."""

from daam_store.errors import UserError


class StoreError(UserError):
    """Base class of everything the store reports to a user."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached or opened."""


class ReadOnlyDatabaseError(StoreError):
    """The database (or its folder) cannot be written."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this version of daam-store."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer daam-store than this one."""


class GenerationNotFoundError(StoreError):
    """No generation with the requested id."""


class CorruptBlobError(StoreError):
    """A stored heat map does not decode (damaged bytes, failed checksum)."""


class UnknownCodecError(StoreError):
    """A stored heat map uses a codec (or codec version) this daam-store does not know."""
