"""`daam-store db check`: is the schema current, is the file sound, is every generation complete, does every
blob decode?

The engine's own check comes first, because damage to an index or a free page never shows in the rows:
SQLite runs `PRAGMA integrity_check` (every page, index and constraint); PostgreSQL reads every row of every
table (a damaged heap page fails the read) and, where the `amcheck` extension is installed and this user may run
it, checks each B-tree index of the store. When it cannot, the report says so in one line: a check skipped is no
problem in the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import JSON, Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from daam_store.errors import first_line
from daam_store.store.errors import StoreError
from daam_store.store.migrate import require_current, schema_state
from daam_store.store.reader import decode_heat_map, decode_stack, image_from_png
from daam_store.store.schema import STATUS_OVERLAYS_ONLY, Base, Generation, Word
from daam_store.store.session import database_errors, display_url
from daam_store.wording import plural

BATCH = 200


@dataclass(frozen=True)
class CheckReport:
    schema_problem: str | None
    generations: int
    heat_maps: int
    problems: list[str]
    integrity: str = ""  # what the engine's own check covered
    skipped: str = ""  # what the engine's check left out, and why (one line)

    @property
    def ok(self) -> bool:
        return self.schema_problem is None and not self.problems


def check_database(engine: Engine) -> CheckReport:
    with database_errors(engine.url):
        with engine.connect() as connection:
            state = schema_state(connection)
        try:
            require_current(state, display_url(engine.url))
        except StoreError as error:
            return CheckReport(str(error), 0, 0, [])
        with engine.connect() as connection:
            integrity, problems, skipped = engine_integrity(connection)
        generations = heat_maps = 0
        try:
            with Session(engine) as session:
                for generation in _all_generations(session):
                    generations += 1
                    if isinstance(generation, str):  # its rows did not read: the reason
                        problems.append(generation)
                        continue
                    checked, found = check_generation(generation)
                    heat_maps += checked
                    problems.extend(found)
                    session.expunge(generation)
        except DBAPIError as error:  # a damaged table page: keep what the engine's check already found
            if not problems:
                raise
            problems.append(
                f"reading the rows stopped after {generations} generations: {first_line(error.orig or error)}"
            )
        return CheckReport(None, generations, heat_maps, problems, integrity, skipped)


def engine_integrity(connection: Connection) -> tuple[str, list[str], str]:
    """(what was checked, problems found, what was skipped and why) by the database engine itself."""
    try:
        if connection.dialect.name == "sqlite":
            return _sqlite_integrity(connection)
        return _postgresql_integrity(connection)
    except DBAPIError as error:  # damage bad enough that the check itself cannot finish
        return "the engine's integrity check", [f"integrity check failed: {first_line(error.orig or error)}"], ""


def _sqlite_integrity(connection: Connection) -> tuple[str, list[str], str]:
    found = [row for (row,) in connection.exec_driver_sql("PRAGMA integrity_check")]
    problems = [] if found == ["ok"] else [f"integrity_check: {row}" for row in found]
    try:
        problems += _invalid_json(connection)
    except DBAPIError as error:  # a damaged table page, which integrity_check has named
        problems.append(f"the JSON check stopped: {first_line(error.orig or error)}")
    return "SQLite integrity_check, every JSON value parsed", problems, ""


def _invalid_json(connection: Connection) -> list[str]:
    """SQLite keeps JSON columns as text it never validates (PostgreSQL does): name each value that does not
    parse, which would otherwise stop every read of its row."""
    problems = []
    for table in Base.metadata.sorted_tables:
        key = list(table.primary_key.columns)
        for column in (c for c in table.columns if isinstance(c.type, JSON)):
            damaged = connection.execute(select(*key).where(column.is_not(None), func.json_valid(column) == 0))
            for row in damaged:
                where = ", ".join(f"{k.name} {value}" for k, value in zip(key, row, strict=True))
                problems.append(f"{table.name} ({where}): {column.name} is not valid JSON")
    return problems


INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE


def _postgresql_integrity(connection: Connection) -> tuple[str, list[str], str]:
    for table in Base.metadata.sorted_tables:
        connection.execute(select(func.count()).select_from(table))
    read = "every table read in full"
    # amcheck's functions are revoked from PUBLIC when it is created: an ordinary owner of the store may not run them.
    check_index = connection.scalar(
        text(
            "SELECT format('%I.bt_index_check', n.nspname) FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'"
        )
    )
    if check_index is None:
        return read, [], "index check skipped: the amcheck extension is not installed (CREATE EXTENSION amcheck)"
    user = connection.scalar(text("SELECT current_user"))
    refused = f"index check skipped: user {user} may not run amcheck's {check_index}"
    function = f"{check_index}(regclass)"
    if not connection.scalar(text("SELECT has_function_privilege(:function, 'EXECUTE')"), {"function": function}):
        return read, [], f"{refused} (GRANT EXECUTE ON FUNCTION {function} TO {user})"
    indexes = connection.scalars(
        text(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_am am ON am.oid = (SELECT relam FROM pg_class WHERE oid = i.indexrelid) "
            "WHERE c.relname = ANY(:tables) AND am.amname = 'btree'"
        ),
        {"tables": list(Base.metadata.tables)},
    ).all()
    for index in indexes:
        try:
            connection.execute(text(f"SELECT {check_index}(CAST(:index AS regclass))"), {"index": index})
        except DBAPIError as error:  # a privilege the function itself requires (it may differ by version)
            if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            return read, [], f"{refused} on {index} ({first_line(error.orig)})"
    return f"{read}, {plural(len(indexes), 'index', 'indexes')} checked by amcheck", [], ""


def _all_generations(session: Session) -> Iterator[Generation | str]:
    """Every generation with its rows, a batch at a time, so memory stays flat on a big store; for one whose
    rows do not read (a JSON value SQLite kept invalid), the one-line reason instead, and the rest go on."""
    last_id = 0
    while True:
        ids = session.scalars(
            select(Generation.id).where(Generation.id > last_id).order_by(Generation.id).limit(BATCH)
        ).all()
        if not ids:
            return
        try:
            yield from _with_rows(session, ids)
        except StoreError:  # somewhere in this batch: read it one generation at a time to name which
            session.expunge_all()
            for generation_id in ids:
                try:
                    yield from _with_rows(session, [generation_id])
                except StoreError as error:
                    session.expunge_all()
                    yield f"generation {generation_id}: {error}"
        last_id = ids[-1]


def _with_rows(session: Session, ids: list[int]) -> list[Generation]:
    return session.scalars(
        select(Generation)
        .where(Generation.id.in_(ids))
        .order_by(Generation.id)
        .options(
            selectinload(Generation.words).selectinload(Word.heat_map),
            selectinload(Generation.map_stacks),
            selectinload(Generation.image),
            selectinload(Generation.attachments),
        )
    ).all()


def check_generation(generation: Generation) -> tuple[int, list[str]]:
    """(number of heat maps decoded, problems found) for one generation."""
    name = f"generation {generation.id}"
    problems = []
    if generation.image is None:
        problems.append(f"{name}: no image")
    else:
        problems.extend(_try(lambda: image_from_png(generation.image.png), name))
    if not generation.words:
        problems.append(f"{name}: no words")
    if generation.status == STATUS_OVERLAYS_ONLY:
        if not generation.attachments:
            problems.append(f"{name}: imported overlays are missing")
        return 0, problems
    decoded = 0
    for word in generation.words:
        if word.is_punctuation:
            continue
        if word.heat_map is None:
            problems.append(f"{name}: word {word.position} ({word.text!r}) has no heat map")
            continue
        decoded += 1
        problems.extend(_try(lambda w=word: decode_heat_map(w.heat_map), name))
    stacks = {stack.kind: stack for stack in generation.map_stacks}
    if "tokens" not in stacks:
        problems.append(f"{name}: no token maps")
    for stack in stacks.values():
        problems.extend(_try(lambda s=stack: decode_stack(s), name))
    return decoded, problems


def _try(action, name: str) -> list[str]:
    try:
        action()
    except StoreError as error:
        return [f"{name}: {error}"]
    return []


def describe(report: CheckReport, engine: Engine) -> str:
    if report.schema_problem:
        return report.schema_problem
    where = display_url(engine.url)
    summary = f"{where}: {plural(report.generations, 'generation')}, {plural(report.heat_maps, 'heat map')} checked"
    checked = f" (checked by the engine: {report.integrity})" if report.integrity else ""
    skipped = [report.skipped] if report.skipped else []
    if report.ok:
        return "\n".join([f"{summary}: all complete and decodable{checked}", *skipped])
    return "\n".join([f"{summary}: {plural(len(report.problems), 'problem')}{checked}", *skipped, *report.problems])
