"""`daam-store db check`: is the schema current, is every generation complete, does every blob decode?"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from daam_store.store.errors import StoreError
from daam_store.store.migrate import require_current, schema_state
from daam_store.store.reader import decode_heat_map, decode_stack, image_from_png
from daam_store.store.schema import STATUS_OVERLAYS_ONLY, Generation, Word
from daam_store.store.session import database_errors, display_url
from daam_store.wording import plural

BATCH = 200


@dataclass(frozen=True)
class CheckReport:
    schema_problem: str | None
    generations: int
    heat_maps: int
    problems: list[str]

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
        generations = heat_maps = 0
        problems: list[str] = []
        with Session(engine) as session:
            for generation in _all_generations(session):
                generations += 1
                checked, found = check_generation(generation)
                heat_maps += checked
                problems.extend(found)
                session.expunge(generation)
        return CheckReport(None, generations, heat_maps, problems)


def _all_generations(session: Session) -> Iterator[Generation]:
    """Every generation with its rows, a batch at a time, so memory stays flat on a big store."""
    last_id = 0
    while True:
        batch = session.scalars(
            select(Generation)
            .where(Generation.id > last_id)
            .order_by(Generation.id)
            .limit(BATCH)
            .options(
                selectinload(Generation.words).selectinload(Word.heat_map),
                selectinload(Generation.map_stacks),
                selectinload(Generation.image),
                selectinload(Generation.attachments),
            )
        ).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id


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
    if report.ok:
        return f"{summary}: all complete and decodable"
    return "\n".join([f"{summary}: {plural(len(report.problems), 'problem')}", *report.problems])
