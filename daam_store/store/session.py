"""Engines and sessions: which database, and how to talk to it safely from several processes.

The default database is a SQLite file at `$XDG_DATA_HOME/daam-store/daam-store.db` (that is
`~/.local/share/daam-store/daam-store.db` on most systems); `DAAM_STORE_URL` names any other, e.g.
`postgresql://user@host/dbname` (driven by psycopg 3).

SQLite runs in WAL mode (readers never block the writer) with a 30 s busy timeout, and every write
transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up front and waits for it, instead
of failing with "database is locked" when two processes upgrade a read lock at the same moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from daam_store.errors import first_line
from daam_store.store.errors import CorruptBlobError, DatabaseUnavailableError, ReadOnlyDatabaseError, StoreError

URL_VARIABLE = "DAAM_STORE_URL"
SQLITE_BUSY_TIMEOUT_S = 30
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_STATEMENT_TIMEOUT_S = 300
CONNECT_TIMEOUT_VARIABLE = "DAAM_STORE_CONNECT_TIMEOUT_S"
STATEMENT_TIMEOUT_VARIABLE = "DAAM_STORE_STATEMENT_TIMEOUT_S"  # 0: no limit; maintenance engines have none
WRITE_OPTION = "daam_write"


def default_database_path() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "daam-store" / "daam-store.db"


def default_database_url() -> str:
    """`$DAAM_STORE_URL` if set, else the local SQLite file."""
    return os.environ.get(URL_VARIABLE) or f"sqlite:///{default_database_path()}"


def portable_database_url(url: str | None = None) -> str:
    """The URL (default: `default_database_url()`) that other processes (workers, Ray actors, started elsewhere
    or in another folder) open as the same database: a relative SQLite path made absolute."""
    url = url or default_database_url()
    path = sqlite_file(parse_database_url(url))
    return f"sqlite:///{Path(path).resolve()}" if path is not None else url


def parse_database_url(url: str | None = None) -> URL:
    """The URL as SQLAlchemy wants it: plain `postgresql://` (or `postgres://`) means psycopg 3."""
    try:
        parsed = make_url(url or default_database_url())
        if "@" in (parsed.host or ""):  # a password with an unescaped "@": its tail would read as the host
            raise ValueError("host holds an @")
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # The text is never echoed: a mistyped URL such as postgresql:/alice:pw@host still holds the password.
        raise DatabaseUnavailableError(
            "bad database URL, malformed (not shown, as it may hold a password; write an @ in it as %40): "
            "use sqlite:///path/to/file.db or postgresql://user[:password]@host[:port]/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: URL) -> str:
    if url.get_backend_name() == "sqlite" and (url.database or "").startswith("file:"):
        return f"sqlite:///{unquote(url.database.removeprefix('file:'))}"  # read-only (see _read_only_if_unwritable)
    return _without_secret_query(url).render_as_string(hide_password=True)


def _without_secret_query(url: URL) -> URL:
    """libpq also takes the password (and sslpassword) as query parameters, which hide_password leaves shown."""
    secrets = [key for key in url.query if "password" in key.lower()]
    return url.difference_update_query(secrets)


def make_engine(url: str | URL | None = None, maintenance: bool = False) -> Engine:
    """maintenance=True for `db upgrade` and `db check`: on PostgreSQL their statements may run as long as they
    need (a migration or a full read of a big store outlasts any bound fit for a page), while connecting stays
    bounded and keepalives still notice a vanished host. Ctrl-C stops them."""
    parsed = url if isinstance(url, URL) else parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed, maintenance)
    raise DatabaseUnavailableError(
        f"unsupported database {display_url(parsed)}: daam-store works with SQLite and PostgreSQL"
    )


def _postgres_engine(url: URL, maintenance: bool = False) -> Engine:
    """Bounded waits: connecting, each statement (on the server), and each answer (on the client, for a
    frozen server); keepalives notice a server host that vanished while a pooled connection sat idle.
    A maintenance engine bounds connecting only (see `make_engine`)."""
    connect_s = _seconds(CONNECT_TIMEOUT_VARIABLE, POSTGRES_CONNECT_TIMEOUT_S)
    statement_s = 0 if maintenance else _seconds(STATEMENT_TIMEOUT_VARIABLE, POSTGRES_STATEMENT_TIMEOUT_S)
    connect_args = {
        "connect_timeout": max(1, round(connect_s)),  # libpq takes whole seconds, and 0 would mean forever
        "options": f"-c statement_timeout={round(statement_s * 1000)}",
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    _keep_the_urls_own(connect_args, url.query)
    if maintenance and connect_args["options"] != "-c statement_timeout=0":
        connect_args["options"] += " -c statement_timeout=0"  # the last -c wins: over a URL's own statement_timeout
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if statement_s:

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect, _record, cargs, cparams):
            from daam_store.store import postgres

            # The server's own statement timeout fires first; this one only when the server is not answering.
            return postgres.connect(cargs, cparams, answer_timeout_s=statement_s + connect_s)

    return engine


def _keep_the_urls_own(connect_args: dict, query) -> None:
    """What the URL itself sets wins (SQLAlchemy lets connect_args override it): its own timeouts and keepalives,
    and its `options` (a team's search_path) keep ours beside them, unless they set the statement timeout."""
    for key in [key for key in connect_args if key != "options" and key in query]:
        del connect_args[key]
    own = query.get("options")
    if isinstance(own, str) and own.strip():
        connect_args["options"] = own if "statement_timeout" in own else f"{own} {connect_args['options']}"


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    try:
        value = float(text) if text else default
    except ValueError:
        raise DatabaseUnavailableError(f"{variable}={text!r} is not a number of seconds") from None
    if value < 0:
        raise DatabaseUnavailableError(f"{variable}={text!r} is negative; give a number of seconds (0: no limit)")
    return value


def _sqlite_engine(url: URL) -> Engine:
    url = _read_only_if_unwritable(url)
    if url.database and url.database != ":memory:" and not url.query.get("mode"):
        folder = Path(url.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUnavailableError(
                f"cannot create the folder {folder} for the database: {error.strerror}; "
                f"set {URL_VARIABLE} to a writable place"
            ) from None
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, json_deserializer=_load_stored_json)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see `_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        with _schema_bytes_as_database_error():
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            with contextlib.suppress(Exception):  # a read-only file keeps its journal mode, stays readable
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _load_stored_json(text: str):
    """A JSON column as SQLite keeps it: text it never validates. Text edited into invalid JSON is a damaged
    record, said in one line (PostgreSQL refuses invalid JSON when it is written)."""
    try:
        return json.loads(text)
    except ValueError as error:
        raise CorruptBlobError(
            f"a stored JSON value does not parse ({error}); `daam-store db check` lists the damaged rows"
        ) from None


@contextlib.contextmanager
def _schema_bytes_as_database_error() -> Iterator[None]:
    """SQLite reads the schema on a connection's first statement. When the schema holds bytes that are not
    UTF-8, its "malformed database schema" message quotes them and the sqlite3 module fails to decode that
    message: a UnicodeDecodeError no caller expects. Raised as the DatabaseError it is, it gets one line."""
    try:
        yield
    except UnicodeDecodeError:
        raise sqlite3.DatabaseError("malformed database schema (it holds bytes that are not UTF-8)") from None


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory or URI-style ones."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database).expanduser()


def _read_only_if_unwritable(url: URL) -> URL:
    """A SQLite file this user cannot write is opened read-only, so it can still be browsed.

    Opened normally, SQLite fails on the first read ("unable to open database file", "attempt to write a
    readonly database") when WAL mode needs its -shm file in a folder this user cannot write. Without a
    writable folder the file is opened `immutable`: SQLite then takes no locks and ignores a -wal file, so
    this reader sees the data as of the owner's last checkpoint.
    """
    path = sqlite_file(url)
    if path is None or not path.is_file() or os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return url
    query = {**url.query, "mode": "ro", "uri": "true"}
    if not os.access(path.parent, os.W_OK):
        query["immutable"] = "1"
    return url.set(database=f"file:{quote(str(path))}", query=query)  # a "#" or "?" in the path is not the URI's


def is_read_only(engine: Engine) -> bool:
    return engine.url.query.get("mode") == "ro"


def writing(engine: Engine) -> Engine:
    """The same engine, marked so that its transactions take SQLite's write lock when they begin."""
    return engine.execution_options(**{WRITE_OPTION: True})


def session_factory(engine: Engine, write: bool = False) -> sessionmaker[Session]:
    return sessionmaker(writing(engine) if write else engine, expire_on_commit=False)


@contextlib.contextmanager
def database_errors(url: URL) -> Iterator[None]:
    """Turn driver errors into one-line messages that say what to do."""
    try:
        yield
    except DBAPIError as error:
        raise translate_error(error, url) from error


def translate_error(error: DBAPIError, url: URL) -> StoreError:
    where = display_url(url)
    detail = first_line(error.orig) if error.orig is not None else str(error)
    lowered = detail.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return ReadOnlyDatabaseError(
            f"database {where} is read-only ({detail}); make the file and its folder writable "
            f"or set {URL_VARIABLE} to another database"
        )
    unreachable = ("unable to open", "connect", "resolve host", "timeout expired", "no such host")
    if error.connection_invalidated or any(sign in lowered for sign in unreachable):
        return DatabaseUnavailableError(
            f"cannot open database {where}: {detail}; check that it is reachable or set {URL_VARIABLE}"
        )
    if "locked" in lowered or "busy" in lowered:
        return DatabaseUnavailableError(
            f"database {where} stayed locked for {SQLITE_BUSY_TIMEOUT_S} s by another process ({detail}); retry"
        )
    return StoreError(f"database {where} failed: {detail}")
