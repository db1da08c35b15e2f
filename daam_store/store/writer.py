"""`open_store()` and `Store`: save a traced generation in one transaction, load it back.

    store = open_store()                      # $DAAM_STORE_URL or the local SQLite file
    gen_id = store.save(exp, model=describe_pipeline(pipe), author="ann", tags=("cats",))
    exp = store.load_experiment(gen_id)

Everything slow (statistics, encoding, the PNG) happens before the transaction opens, so the write
lock is held only for the inserts. Saving the same generation again returns the id it already has:
a generation is identified by a fingerprint of its model, prompt, seed, settings and image.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from daam_store import rules
from daam_store.analysis.statistics import MapStatistics, prompt_statistics
from daam_store.models.info import ModelInfo
from daam_store.store import codec
from daam_store.store.errors import GenerationNotFoundError, ReadOnlyDatabaseError, StoreError
from daam_store.store.migrate import require_current, schema_state, upgrade
from daam_store.store.schema import (
    STATUS_DONE,
    Attachment,
    Generation,
    HeatMap,
    Image,
    MapStack,
    Model,
    Prompt,
    Tag,
    Word,
    utc_now,
)
from daam_store.store.session import (
    URL_VARIABLE,
    database_errors,
    display_url,
    is_read_only,
    make_engine,
    parse_database_url,
    session_factory,
)
from daam_store.tags import check_author, check_tags

# Metadata keys that have their own column; everything else is kept in `generation.extra`.
COLUMN_KEYS = (
    "steps",
    "guidance_scale",
    "negative_prompt",
    "scheduler",
    "dtype",
    "height",
    "width",
    "timings",
    "heat_map_rule",
)
# Keys `load_experiment` adds from the model and generation rows; not kept twice when re-imported.
DERIVED_KEYS = ("model", "model_info", "store")
UNKNOWN_MODEL = ModelInfo("unknown", "imported", "", "unknown", "unknown", 0, "unknown")


@dataclass
class PreparedWord:
    position: int
    text: str
    token_indices: list[int]
    token_ids: list[int]
    is_punctuation: bool
    encoded: codec.EncodedMap | None = None
    statistics: MapStatistics | None = None


@dataclass
class PreparedStack:
    kind: str
    labels: list[str]
    encoded: codec.EncodedMap


@dataclass
class PreparedGeneration:
    """Rows of one generation, computed before any database work."""

    model: ModelInfo
    prompt: str
    seed: int | None
    metadata: dict
    image_png: bytes
    image_size: tuple[int, int]
    words: list[PreparedWord]
    stacks: list[PreparedStack]
    fingerprint: str
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    status: str = STATUS_DONE
    attachments: dict[str, bytes] = field(default_factory=dict)


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.url = display_url(engine.url)
        self._read = session_factory(engine)
        self._write = session_factory(engine, write=True)

    # -- sessions ------------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session for queries (daam_store.store.queries); errors come out as StoreError."""
        with database_errors(self.engine.url), self._read() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); commits on success, rolls back on error."""
        self.require_writable()
        with database_errors(self.engine.url), self._write() as session, session.begin():
            yield session

    @property
    def read_only(self) -> bool:
        """Opened read-only because this user cannot write the SQLite file (see session.py)."""
        return is_read_only(self.engine)

    def require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyDatabaseError(
                f"database {self.url} is read-only: this user cannot write the file or its folder, so it can be "
                f"browsed but not saved to; make both writable or set {URL_VARIABLE} to another database"
            )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------
    def save(
        self,
        exp,
        model: ModelInfo | None = None,
        author: str | None = None,
        tags: Iterable[str] = (),
        status: str = STATUS_DONE,
    ) -> int:
        """Store a GenerationExperiment (image, words, maps, statistics) in one transaction; its id."""
        prepared = prepare_experiment(exp, model, author=author, tags=tags, status=status)
        return self.save_prepared(prepared)

    def save_prepared(self, prepared: PreparedGeneration) -> int:
        existing = self._find(prepared.fingerprint)
        if existing is not None:
            self._complete(existing, prepared)
            return existing
        with self.write_session() as session:
            return insert_generation(session, prepared)

    def _complete(self, generation_id: int, prepared: PreparedGeneration) -> None:
        """The same generation saved again: keep the row, add the tags, finer records and author it lacks."""
        with self.session() as session:
            tags = set(session.scalars(select(Tag.name).where(Tag.generation_id == generation_id)))
            kinds = set(session.scalars(select(MapStack.kind).where(MapStack.generation_id == generation_id)))
            author = session.scalar(select(Generation.author).where(Generation.id == generation_id))
        lacks_author = author is None and prepared.author is not None
        if set(prepared.tags) - tags or {stack.kind for stack in prepared.stacks} - kinds or lacks_author:
            with self.write_session() as session:
                _insert_missing(session, generation_id, prepared, kinds)
                if lacks_author:  # not for a job (insert_generation): its author gets no rights on another's row
                    session.execute(
                        update(Generation)
                        .where(Generation.id == generation_id, Generation.author.is_(None))
                        .values(author=prepared.author)
                    )

    def _find(self, fingerprint: str) -> int | None:
        with self.session() as session:
            return session.scalar(select(Generation.id).where(Generation.fingerprint == fingerprint))

    # -- reading -------------------------------------------------------------------------------------
    def load_experiment(self, generation_id: int):
        """The stored generation as a GenerationExperiment (image, token maps, finer records, metadata)."""
        from daam_store.store.reader import experiment_from_row

        with self.session() as session:
            generation = load_generation(session, generation_id)
            return experiment_from_row(generation)


def open_store(url: str | None = None, upgrade_empty: bool = True) -> Store:
    """The store at `url` ($DAAM_STORE_URL or the local SQLite file when None).

    An empty database is migrated to the current schema; an older one raises SchemaOutdatedError
    (run `daam-store db upgrade`), so user data is never migrated behind the user's back.
    """
    parsed = parse_database_url(url)
    engine = make_engine(parsed)
    try:
        with database_errors(parsed):
            with engine.connect() as connection:
                state = schema_state(connection)
            if upgrade_empty and state.current is None and not state.has_tables:
                upgrade(engine)
                with engine.connect() as connection:
                    state = schema_state(connection)
            require_current(state, display_url(parsed))
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def load_generation(session: Session, generation_id: int) -> Generation:
    generation = session.scalar(
        select(Generation)
        .where(Generation.id == generation_id)
        .options(
            selectinload(Generation.words).selectinload(Word.heat_map),
            selectinload(Generation.map_stacks),
            selectinload(Generation.tags),
            selectinload(Generation.attachments),
        )
    )
    if generation is None:
        raise GenerationNotFoundError(f"no generation {generation_id} in the database; check the id")
    return generation


# -- preparing rows ---------------------------------------------------------------------------------
def prepare_experiment(
    exp,
    model: ModelInfo | None,
    author: str | None = None,
    tags: Iterable[str] = (),
    status: str = STATUS_DONE,
) -> PreparedGeneration:
    author, tags = check_author(author), check_tags(tags)
    global_map = exp.heat_map()
    token_maps = _numpy(exp.global_heat_map)
    if token_maps.ndim != 3 or token_maps.shape[0] != len(global_map.tokens):
        raise StoreError(
            f"the experiment's heat maps have shape {token_maps.shape} but its prompt has "
            f"{len(global_map.tokens)} tokens (start and end included); they do not belong together"
        )
    words = [
        PreparedWord(s.index, s.text, list(s.token_indices), list(s.token_ids), s.is_punctuation)
        for s in global_map.words(include_punctuation=True)
    ]
    mapped = [w for w in words if not w.is_punctuation]
    word_maps = [token_maps[w.token_indices].mean(axis=0) for w in mapped]
    for word, word_map, stats in zip(mapped, word_maps, prompt_statistics(word_maps), strict=True):
        word.encoded = codec.encode(word_map)
        word.statistics = stats
    stacks = [PreparedStack("tokens", list(global_map.tokens), codec.encode(token_maps))]
    if exp.layer_heat_maps is not None:
        stacks.append(PreparedStack("layers", list(exp.layer_names), codec.encode(_numpy(exp.layer_heat_maps))))
    if exp.step_heat_maps is not None:
        steps = _numpy(exp.step_heat_maps)
        stacks.append(PreparedStack("steps", [str(i) for i in range(steps.shape[0])], codec.encode(steps)))
    model = model or UNKNOWN_MODEL
    metadata = json_safe(dict(exp.metadata or {}))
    if global_map.cut_words:  # the words rows hold the kept words only; the reader rebuilds the tokens from both
        metadata["cut_words"] = list(global_map.cut_words)
    image = exp.image.convert("RGB")
    return PreparedGeneration(
        model=model,
        prompt=exp.prompt,
        seed=exp.seed,
        metadata=metadata,
        image_png=png_bytes(image),
        image_size=image.size,
        words=words,
        stacks=stacks,
        fingerprint=fingerprint(model, exp.prompt, exp.seed, metadata, image),
        author=author,
        tags=sorted(set(tags)),
        status=status,
    )


def fingerprint(model: ModelInfo, prompt: str, seed, metadata: dict, image: PIL.Image.Image) -> str:
    """What makes a generation the same one: model, prompt, seed, settings and the image's pixels.

    The maps are left out on purpose: they follow from the rest, and an exported generation (whose maps
    went through the lossy codec) imported again must be recognised as the one already stored.
    """
    digest = hashlib.sha256()
    settings = {k: metadata.get(k) for k in COLUMN_KEYS if k not in ("timings", "heat_map_rule")}
    rule = metadata.get("heat_map_rule")
    if rule not in (None, rules.DAAM_WITH_MID_BLOCK):  # the rule of every generation stored before rules were
        settings["heat_map_rule"] = rule  # recorded: leaving it out keeps their fingerprints (and re-imports) valid
    header = [model.name, model.revision, prompt, seed, settings, image.size, image.mode]
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def png_bytes(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def json_safe(value):
    """Plain JSON values only: NaN/inf become None (PostgreSQL's json refuses them), objects become text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return json_safe(value.item())
    return str(value)


def _numpy(tensor) -> np.ndarray:
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu().float().numpy()
    return np.asarray(tensor, dtype=np.float32)


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# -- inserting rows ---------------------------------------------------------------------------------
def _insert(session: Session, prepared: PreparedGeneration) -> int | None:
    """All rows of one generation, as a few multi-row INSERTs (the ORM's unit of work costs ~5x more).

    None when a generation with the same fingerprint is already there (a concurrent writer committed it).
    """
    metadata = prepared.metadata
    width, height = prepared.image_size
    generation_id = session.scalar(
        _dialect(session)
        .insert(Generation)
        .values(
            model_id=_model_id(session, prepared.model),
            prompt_id=_prompt_id(session, prepared.prompt),
            negative_prompt=metadata.get("negative_prompt") or "",
            seed=prepared.seed,
            steps=_int_or_none(metadata.get("steps")),
            guidance_scale=_float_or_none(metadata.get("guidance_scale")),
            scheduler=metadata.get("scheduler"),
            height=_int_or_none(metadata.get("height")) or height,
            width=_int_or_none(metadata.get("width")) or width,
            dtype=metadata.get("dtype"),
            timings=metadata.get("timings") or {},
            extra={k: v for k, v in metadata.items() if k not in COLUMN_KEYS + DERIVED_KEYS},
            author=prepared.author,
            status=prepared.status,
            heat_map_rule=metadata.get("heat_map_rule") if prepared.stacks else None,
            created_at=utc_now(),
            fingerprint=prepared.fingerprint,
        )
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(Generation.id)
    )
    if generation_id is None:
        return None
    session.execute(
        insert(Image), [{"generation_id": generation_id, "width": width, "height": height, "png": prepared.image_png}]
    )
    word_ids = session.scalars(
        insert(Word).returning(Word.id, sort_by_parameter_order=True),
        [_word_values(generation_id, word) for word in prepared.words],
    ).all()
    heat_maps = [
        _heat_map_values(word_id, word)
        for word_id, word in zip(word_ids, prepared.words, strict=True)
        if word.encoded is not None
    ]
    _insert_rows(session, HeatMap, heat_maps)
    _insert_rows(session, MapStack, [_stack_values(generation_id, stack) for stack in prepared.stacks])
    _insert_rows(session, Tag, [{"generation_id": generation_id, "name": name} for name in prepared.tags])
    attachments = [
        {"generation_id": generation_id, "name": name, "media_type": "image/png", "data": data}
        for name, data in prepared.attachments.items()
    ]
    _insert_rows(session, Attachment, attachments)
    return generation_id


def insert_generation(session: Session, prepared: PreparedGeneration) -> int:
    """The generation's rows in the caller's write transaction (a job commits its "done" with them); when
    another process stored the same generation since the caller's look-up, its id, with the tags and stacks
    it lacked added."""
    generation_id = _insert(session, prepared)
    if generation_id is None:
        generation_id = session.scalar(select(Generation.id).where(Generation.fingerprint == prepared.fingerprint))
        _insert_missing(session, generation_id, prepared)
    return generation_id


def _insert_rows(session: Session, table, rows: list[dict]) -> None:
    if rows:
        session.execute(insert(table), rows)


def _insert_missing(
    session: Session, generation_id: int, prepared: PreparedGeneration, kinds: frozenset[str] | set[str] = frozenset()
) -> None:
    """The tags and map stacks the stored generation lacks; rows another writer adds meanwhile are skipped.

    `kinds`: stacks known to be stored already, not sent again (they can be megabytes).
    """
    tags = [{"generation_id": generation_id, "name": name} for name in prepared.tags]
    insert_if_absent(session, Tag, tags, ["generation_id", "name"])
    stacks = [_stack_values(generation_id, stack) for stack in prepared.stacks if stack.kind not in kinds]
    insert_if_absent(session, MapStack, stacks, ["generation_id", "kind"])


def _word_values(generation_id: int, word: PreparedWord) -> dict:
    return {
        "generation_id": generation_id,
        "position": word.position,
        "text": word.text,
        "key": word.text.lower(),
        "token_indices": word.token_indices,
        "token_ids": word.token_ids,
        "is_punctuation": word.is_punctuation,
    }


def _heat_map_values(word_id: int, word: PreparedWord) -> dict:
    stats = word.statistics
    height, width = word.encoded.shape
    return {
        "word_id": word_id,
        "codec": word.encoded.codec,
        "codec_version": word.encoded.codec_version,
        "height": height,
        "width": width,
        "blob": word.encoded.blob,
        "total": stats.total,
        "share": _finite(stats.share),
        "peak": stats.peak,
        "entropy": _finite(stats.entropy),
        "centroid_x": _finite(stats.centroid_x),
        "centroid_y": _finite(stats.centroid_y),
        "area_above_tau": stats.area_above_tau,
    }


def _stack_values(generation_id: int, stack: PreparedStack) -> dict:
    return {
        "generation_id": generation_id,
        "kind": stack.kind,
        "labels": stack.labels,
        "shape": list(stack.encoded.shape),
        "codec": stack.encoded.codec,
        "codec_version": stack.encoded.codec_version,
        "blob": stack.encoded.blob,
    }


def _model_id(session: Session, model: ModelInfo) -> int:
    values = {
        "name": model.name,
        "source": model.source,
        "location": model.location or "",
        "family": model.family,
        "revision": model.revision,
        "resolution": model.resolution,
        "prediction_type": model.prediction_type,
    }
    insert_if_absent(session, Model, values, ["name", "revision"])
    return session.scalar(select(Model.id).where(Model.name == model.name, Model.revision == model.revision))


def _prompt_id(session: Session, text: str) -> int:
    text_hash = hashlib.sha256(text.encode()).hexdigest()
    insert_if_absent(session, Prompt, {"text": text, "text_hash": text_hash}, ["text_hash"])
    return session.scalar(select(Prompt.id).where(Prompt.text_hash == text_hash))


def insert_if_absent(session: Session, table, values: dict | list[dict], unique: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of one row or several: concurrent writers may insert the same ones."""
    rows = [values] if isinstance(values, dict) else values
    if "created_at" in table.__table__.c:
        rows = [{**row, "created_at": utc_now()} for row in rows]
    if rows:
        session.execute(_dialect(session).insert(table).on_conflict_do_nothing(index_elements=unique), rows)


def _dialect(session: Session):
    """The dialect module whose insert() has on_conflict_do_nothing (SQLite and PostgreSQL spell it alike)."""
    return sqlite if session.get_bind().dialect.name == "sqlite" else postgresql


def _int_or_none(value) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
