"""Every query the dashboard, the analysis and the CLI run: no SQL anywhere else.

Each function takes a session (`with store.session() as session:`) and returns plain dataclasses or
numpy arrays. Chart queries read only the statistics stored beside each map (never a blob), and
aggregate in SQL so that a chart over 10,000 generations returns one row per bar.

Words are matched on their lower-case text (`Word.key`); a word that occurs twice in a prompt
contributes the sum of its occurrences' shares to that generation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from daam_store import rules
from daam_store.models.info import ModelInfo
from daam_store.store.reader import decode_heat_map, decode_stack
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
from daam_store.store.writer import insert_if_absent


# -- filters ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationFilter:
    """Conditions on generations; None (or empty) means no condition."""

    prompt_contains: str | None = None
    prompt_ids: Sequence[int] | None = None
    word: str | None = None
    model_ids: Sequence[int] | None = None
    seeds: Sequence[int] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    author: str | None = None
    tag: str | None = None
    status: str | None = None
    heat_map_rule: str | None = None  # rules.py: charts compare maps made by one rule


def _apply(statement: Select, filters: GenerationFilter | None) -> Select:
    """Add the filter's conditions to a statement that selects from `generation`."""
    if filters is None:
        return statement
    if filters.prompt_contains:
        pattern = f"%{_escape_like(filters.prompt_contains.lower())}%"
        matching = select(Prompt.id).where(func.lower(Prompt.text).like(pattern, escape="\\"))
        statement = statement.where(Generation.prompt_id.in_(matching))
    if filters.prompt_ids:
        statement = statement.where(Generation.prompt_id.in_(list(filters.prompt_ids)))
    # Word and tag conditions are correlated EXISTS, not `id IN (subquery)`: SQLite (3.40) may probe the
    # whole id list once per row, which took seconds per chart at 10,000 generations (compare_scale.py).
    if filters.word:
        having_word = select(Word.id).where(
            Word.generation_id == Generation.id, Word.key == filters.word.strip().lower()
        )
        statement = statement.where(having_word.exists())
    if filters.model_ids:
        statement = statement.where(Generation.model_id.in_(list(filters.model_ids)))
    if filters.seeds:
        statement = statement.where(Generation.seed.in_(list(filters.seeds)))
    if filters.created_after:
        statement = statement.where(Generation.created_at >= filters.created_after)
    if filters.created_before:
        statement = statement.where(Generation.created_at <= filters.created_before)
    if filters.author:
        statement = statement.where(Generation.author == filters.author)
    if filters.tag:
        tagged = select(Tag.generation_id).where(Tag.generation_id == Generation.id, Tag.name == filters.tag)
        statement = statement.where(tagged.exists())
    if filters.status:
        statement = statement.where(Generation.status == filters.status)
    if filters.heat_map_rule:
        statement = statement.where(Generation.heat_map_rule == filters.heat_map_rule)
    return statement


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- overview ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreSummary:
    generations: int
    prompts: int
    models: int
    words: int  # distinct words (lower case) over all prompts
    heat_maps: int


def store_summary(session: Session) -> StoreSummary:
    return StoreSummary(
        generations=session.scalar(select(func.count(Generation.id))) or 0,
        prompts=session.scalar(select(func.count(Prompt.id))) or 0,
        models=session.scalar(select(func.count(Model.id))) or 0,
        words=session.scalar(select(func.count(distinct(Word.key))).where(Word.is_punctuation.is_(False))) or 0,
        heat_maps=session.scalar(select(func.count(HeatMap.id))) or 0,
    )


@dataclass(frozen=True)
class GenerationSummary:
    id: int
    prompt: str
    prompt_id: int
    model: str
    model_id: int
    family: str
    seed: int | None
    steps: int | None
    guidance_scale: float | None
    width: int
    height: int
    created_at: datetime
    author: str | None
    status: str
    tags: tuple[str, ...] = ()


def _summary_statement() -> Select:
    return (
        select(
            Generation.id,
            Prompt.text,
            Generation.prompt_id,
            Model.name,
            Generation.model_id,
            Model.family,
            Generation.seed,
            Generation.steps,
            Generation.guidance_scale,
            Generation.width,
            Generation.height,
            Generation.created_at,
            Generation.author,
            Generation.status,
        )
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .join(Model, Model.id == Generation.model_id)
    )


def list_generations(
    session: Session, filters: GenerationFilter | None = None, limit: int = 24, offset: int = 0
) -> list[GenerationSummary]:
    """Newest first, one page of `limit` rows."""
    statement = _apply(_summary_statement(), filters).order_by(Generation.id.desc()).limit(limit).offset(offset)
    rows = session.execute(statement).all()
    tags = _tags_of(session, [row[0] for row in rows])
    return [GenerationSummary(*row, tags=tags.get(row[0], ())) for row in rows]


def count_generations(session: Session, filters: GenerationFilter | None = None) -> int:
    return session.scalar(_apply(select(func.count(Generation.id)), filters)) or 0


def get_generation(session: Session, generation_id: int) -> GenerationSummary | None:
    row = session.execute(_summary_statement().where(Generation.id == generation_id)).first()
    if row is None:
        return None
    return GenerationSummary(*row, tags=_tags_of(session, [generation_id]).get(generation_id, ()))


def _tags_of(session: Session, generation_ids: list[int]) -> dict[int, tuple[str, ...]]:
    if not generation_ids:
        return {}
    found: dict[int, list[str]] = {}
    statement = select(Tag.generation_id, Tag.name).where(Tag.generation_id.in_(generation_ids)).order_by(Tag.name)
    for generation_id, name in session.execute(statement):
        found.setdefault(generation_id, []).append(name)
    return {k: tuple(v) for k, v in found.items()}


# -- one generation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WordStatisticsRow:
    generation_id: int
    word_idx: int  # position among the prompt's words
    word: str
    token_indices: tuple[int, ...]
    is_punctuation: bool
    has_map: bool
    total: float | None = None
    share: float | None = None
    peak: float | None = None
    entropy: float | None = None
    centroid_x: float | None = None
    centroid_y: float | None = None
    area_above_tau: float | None = None


def word_statistics(session: Session, generation_id: int) -> list[WordStatisticsRow]:
    """All words of a generation in prompt order, with their maps' statistics (None for punctuation)."""
    statement = (
        select(Word, HeatMap)
        .outerjoin(HeatMap, HeatMap.word_id == Word.id)
        .where(Word.generation_id == generation_id)
        .order_by(Word.position)
    )
    rows = []
    for word, heat_map in session.execute(statement):
        stats = {}
        if heat_map is not None:
            stats = {
                name: getattr(heat_map, name)
                for name in ("total", "share", "peak", "entropy", "centroid_x", "centroid_y", "area_above_tau")
            }
        rows.append(
            WordStatisticsRow(
                generation_id=generation_id,
                word_idx=word.position,
                word=word.text,
                token_indices=tuple(word.token_indices),
                is_punctuation=word.is_punctuation,
                has_map=heat_map is not None,
                **stats,
            )
        )
    return rows


def word_heat_map(session: Session, generation_id: int, word_idx: int) -> np.ndarray | None:
    """The (h, w) map of the word at `word_idx`; None if that word has no map (punctuation)."""
    heat_map = session.scalar(
        select(HeatMap).join(Word).where(Word.generation_id == generation_id, Word.position == word_idx)
    )
    return None if heat_map is None else decode_heat_map(heat_map)


def word_heat_maps(session: Session, generation_ids: Sequence[int], word: str) -> dict[int, list[np.ndarray]]:
    """Maps of `word` in each of the generations (a list per generation: the word may occur twice)."""
    statement = (
        select(Word.generation_id, HeatMap)
        .join(HeatMap, HeatMap.word_id == Word.id)
        .where(Word.generation_id.in_(list(generation_ids)), Word.key == word.strip().lower())
        .order_by(Word.generation_id, Word.position)
    )
    found: dict[int, list[np.ndarray]] = {}
    for generation_id, heat_map in session.execute(statement):
        found.setdefault(generation_id, []).append(decode_heat_map(heat_map))
    return found


def image_png(session: Session, generation_id: int) -> bytes | None:
    return session.scalar(select(Image.png).where(Image.generation_id == generation_id))


# -- catalogues -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSummary:
    id: int
    name: str
    source: str
    location: str
    family: str
    revision: str
    resolution: int | None
    prediction_type: str | None
    generations: int


def list_models(session: Session) -> list[ModelSummary]:
    counts = select(Generation.model_id, func.count(Generation.id).label("n")).group_by(Generation.model_id)
    counts = counts.subquery()
    statement = (
        select(Model, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.model_id == Model.id)
        .order_by(Model.name, Model.id)
    )
    return [
        ModelSummary(m.id, m.name, m.source, m.location, m.family, m.revision, m.resolution, m.prediction_type, int(n))
        for m, n in session.execute(statement)
    ]


def register_model(session: Session, info: ModelInfo) -> int:
    """Add a model (e.g. a hub id or folder the user named) if absent; its id. Commit the session after."""
    values = {
        "name": info.name,
        "source": info.source,
        "location": info.location or "",
        "family": info.family,
        "revision": info.revision,
        "resolution": info.resolution,
        "prediction_type": info.prediction_type,
        "created_at": utc_now(),
    }
    insert_if_absent(session, Model, values, ["name", "revision"])
    return session.scalar(select(Model.id).where(Model.name == info.name, Model.revision == info.revision))


@dataclass(frozen=True)
class PromptSummary:
    id: int
    text: str
    generations: int


def list_prompts(
    session: Session, filters: GenerationFilter | None = None, limit: int | None = None
) -> list[PromptSummary]:
    """Prompts with the number of (filtered) generations of each, most used first."""
    statement = (
        _apply(select(Prompt.id, Prompt.text, func.count(Generation.id).label("n")), filters)
        .join(Generation, Generation.prompt_id == Prompt.id)
        .group_by(Prompt.id, Prompt.text)
        .order_by(func.count(Generation.id).desc(), Prompt.id)
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [PromptSummary(*row) for row in session.execute(statement)]


def list_words(
    session: Session, filters: GenerationFilter | None = None, limit: int | None = None
) -> list[tuple[str, int]]:
    """(word, number of generations containing it), most frequent first; punctuation left out."""
    statement = (
        select(Word.key, func.count(distinct(Word.generation_id)).label("n"))
        .join(Generation, Generation.id == Word.generation_id)
        .where(Word.is_punctuation.is_(False))
        .group_by(Word.key)
        .order_by(func.count(distinct(Word.generation_id)).desc(), Word.key)
    )
    statement = _apply(statement, filters)
    if limit is not None:
        statement = statement.limit(limit)
    return [(key, int(n)) for key, n in session.execute(statement)]


def list_seeds(session: Session, filters: GenerationFilter | None = None) -> list[int]:
    statement = _apply(select(Generation.seed).distinct().where(Generation.seed.is_not(None)), filters)
    return sorted(session.scalars(statement))


def list_heat_map_rules(session: Session, filters: GenerationFilter | None = None) -> list[str]:
    """The aggregation rules (rules.py) of the filtered generations' maps, the most used first."""
    count = func.count(Generation.id)
    statement = _apply(select(Generation.heat_map_rule, count).where(Generation.heat_map_rule.is_not(None)), filters)
    statement = statement.group_by(Generation.heat_map_rule).order_by(count.desc(), Generation.heat_map_rule)
    return [rule for rule, _count in session.execute(statement)]


def list_tags(session: Session) -> list[tuple[str, int]]:
    statement = select(Tag.name, func.count(Tag.generation_id)).group_by(Tag.name).order_by(Tag.name)
    return [(name, int(n)) for name, n in session.execute(statement)]


def list_authors(session: Session) -> list[str]:
    return sorted(session.scalars(select(Generation.author).distinct().where(Generation.author.is_not(None))))


# -- comparison charts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShareSummary:
    """A word's attribution share aggregated over the generations of one group (a prompt or a model)."""

    group_id: int
    label: str
    generations: int
    mean: float
    std: float  # population standard deviation over the generations
    min: float
    max: float
    family: str | None = None


@dataclass(frozen=True)
class GenerationShare:
    generation_id: int
    prompt_id: int
    prompt: str
    model_id: int
    model: str
    family: str
    seed: int | None
    share: float


def _per_generation_share(word: str, filters: GenerationFilter | None):
    """(generation, prompt, model, seed, share) of one word: shares of repeated occurrences summed."""
    statement = (
        select(
            Generation.id.label("generation_id"),
            Generation.prompt_id.label("prompt_id"),
            Generation.model_id.label("model_id"),
            Generation.seed.label("seed"),
            func.sum(HeatMap.share).label("share"),
        )
        .select_from(Word)
        .join(HeatMap, HeatMap.word_id == Word.id)
        .join(Generation, Generation.id == Word.generation_id)
        .where(Word.key == word.strip().lower(), HeatMap.share.is_not(None))
        .group_by(Generation.id, Generation.prompt_id, Generation.model_id, Generation.seed)
    )
    return _apply(statement, filters)


def word_shares(session: Session, word: str, filters: GenerationFilter | None = None) -> list[GenerationShare]:
    """The word's share in every matching generation (one row per generation): the CSV behind a chart."""
    per = _per_generation_share(word, filters).subquery()
    statement = (
        select(per.c.generation_id, per.c.prompt_id, Prompt.text, per.c.model_id, Model.name, Model.family)
        .add_columns(per.c.seed, per.c.share)
        .join(Prompt, Prompt.id == per.c.prompt_id)
        .join(Model, Model.id == per.c.model_id)
        .order_by(per.c.prompt_id, per.c.model_id, per.c.seed, per.c.generation_id)
    )
    return [GenerationShare(*row) for row in session.execute(statement)]


def share_by_seed(
    session: Session, word: str, prompt_id: int, model_id: int | None = None, filters: GenerationFilter | None = None
) -> list[GenerationShare]:
    """Across seeds: the word's share for each seed of one prompt (and model, when given)."""
    base = filters or GenerationFilter()
    narrowed = GenerationFilter(
        **{**base.__dict__, "prompt_ids": [prompt_id], "model_ids": [model_id] if model_id else base.model_ids}
    )
    return word_shares(session, word, narrowed)


def share_by_prompt(session: Session, word: str, filters: GenerationFilter | None = None) -> list[ShareSummary]:
    """Across prompts: the word's share averaged over each prompt's generations (seeds, models)."""
    per = _per_generation_share(word, filters).subquery()
    statement = (
        _aggregate(per, per.c.prompt_id)
        .add_columns(Prompt.text)
        .join(Prompt, Prompt.id == per.c.prompt_id)
        .group_by(per.c.prompt_id, Prompt.text)
        .order_by(func.avg(per.c.share).desc(), per.c.prompt_id)
    )
    return [_share_summary(row, label=row.text) for row in session.execute(statement)]


def share_by_model(session: Session, word: str, filters: GenerationFilter | None = None) -> list[ShareSummary]:
    """Across models: the word's share averaged over each model's generations (of the filtered prompts and seeds)."""
    per = _per_generation_share(word, filters).subquery()
    statement = (
        _aggregate(per, per.c.model_id)
        .add_columns(Model.name, Model.family)
        .join(Model, Model.id == per.c.model_id)
        .group_by(per.c.model_id, Model.name, Model.family)
        .order_by(Model.name, per.c.model_id)
    )
    return [_share_summary(row, label=row.name, family=row.family) for row in session.execute(statement)]


def _aggregate(per, group_column) -> Select:
    return select(
        group_column.label("group_id"),
        func.count().label("n"),
        func.avg(per.c.share).label("mean"),
        func.avg(per.c.share * per.c.share).label("mean_square"),
        func.min(per.c.share).label("low"),
        func.max(per.c.share).label("high"),
    )


def _share_summary(row, label: str, family: str | None = None) -> ShareSummary:
    mean = float(row.mean)
    variance = max(float(row.mean_square) - mean * mean, 0.0)
    return ShareSummary(
        group_id=row.group_id,
        label=label,
        generations=int(row.n),
        mean=mean,
        std=math.sqrt(variance),
        min=float(row.low),
        max=float(row.high),
        family=family,
    )


def statistics_of(session: Session, generation_ids: Sequence[int]) -> dict[int, list[WordStatisticsRow]]:
    """Word statistics of many generations at once (no blob decoded), keyed by generation id."""
    statement = (
        select(Word, HeatMap)
        .join(HeatMap, HeatMap.word_id == Word.id)
        .where(Word.generation_id.in_(list(generation_ids)))
        .order_by(Word.generation_id, Word.position)
    )
    found: dict[int, list[WordStatisticsRow]] = {}
    for word, heat_map in session.execute(statement):
        found.setdefault(word.generation_id, []).append(
            WordStatisticsRow(
                generation_id=word.generation_id,
                word_idx=word.position,
                word=word.text,
                token_indices=tuple(word.token_indices),
                is_punctuation=word.is_punctuation,
                has_map=True,
                total=heat_map.total,
                share=heat_map.share,
                peak=heat_map.peak,
                entropy=heat_map.entropy,
                centroid_x=heat_map.centroid_x,
                centroid_y=heat_map.centroid_y,
                area_above_tau=heat_map.area_above_tau,
            )
        )
    return found


def all_generation_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Generation.id).order_by(Generation.id)))


# -- added for the dashboard's Explore page (issue 6) -------------------------------------------------
def attachments(session: Session, generation_id: int) -> list[tuple[str, str, bytes]]:
    """Files kept verbatim with a generation (e.g. the overlays of an imported daam directory):
    (name, media type, bytes), by name."""
    statement = (
        select(Attachment.name, Attachment.media_type, Attachment.data)
        .where(Attachment.generation_id == generation_id)
        .order_by(Attachment.name)
    )
    return [(name, media_type, bytes(data)) for name, media_type, data in session.execute(statement)]


# -- sweeps and comparison analytics (issue 7) -----------------------------------------------------
def find_generations(
    session: Session,
    model: ModelInfo,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance_scale: float,
    negative_prompt: str = "",
    heat_map_rule: str = rules.DAAM,
) -> dict[tuple[str, int], int]:
    """{(prompt, seed): generation id} of the finished generations a sweep would make on `model` with
    these settings: what it skips. The same model means the same name and weights revision."""
    if not prompts or not seeds:
        return {}
    statement = (
        select(Prompt.text, Generation.seed, func.min(Generation.id))
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .join(Model, Model.id == Generation.model_id)
        .where(
            Model.name == model.name,
            Model.revision == model.revision,
            Prompt.text.in_(list(prompts)),
            Generation.seed.in_(list(seeds)),
            Generation.steps == steps,
            Generation.guidance_scale == guidance_scale,
            Generation.negative_prompt == negative_prompt,
            Generation.heat_map_rule == heat_map_rule,
            Generation.status == STATUS_DONE,
        )
        .group_by(Prompt.text, Generation.seed)
    )
    return {(text, seed): generation_id for text, seed, generation_id in session.execute(statement)}


def add_tag(session: Session, generation_ids: Sequence[int], name: str) -> None:
    """Tag the generations (those already tagged keep one tag). Run in `store.write_session()`."""
    for generation_id in generation_ids:
        insert_if_absent(session, Tag, {"generation_id": generation_id, "name": name}, ["generation_id", "name"])


@dataclass(frozen=True)
class WordShareRow:
    """One word's attribution share in one generation (repeated occurrences summed)."""

    generation_id: int
    word: str  # lower-case key
    share: float


def all_word_shares(session: Session, filters: GenerationFilter | None = None) -> list[WordShareRow]:
    """Every word's share in every matching generation, from the stored statistics (no blob decoded)."""
    statement = (
        select(Generation.id, Word.key, func.sum(HeatMap.share))
        .select_from(Word)
        .join(HeatMap, HeatMap.word_id == Word.id)
        .join(Generation, Generation.id == Word.generation_id)
        .where(HeatMap.share.is_not(None))
        .group_by(Generation.id, Word.key)
        .order_by(Generation.id, func.min(Word.position))
    )
    return [WordShareRow(*row) for row in session.execute(_apply(statement, filters))]


def generations_with_maps(
    session: Session, kind: str, filters: GenerationFilter | None = None, limit: int = 200
) -> list[int]:
    """Ids of matching generations that have a `kind` map stack ("steps", "layers"), newest first."""
    statement = select(Generation.id).join(MapStack, MapStack.generation_id == Generation.id)
    statement = _apply(statement.where(MapStack.kind == kind), filters)
    return list(session.scalars(statement.order_by(Generation.id.desc()).limit(limit)))


def map_stack(session: Session, generation_id: int, kind: str) -> tuple[list[str], np.ndarray] | None:
    """(labels, maps) of one generation's `kind` stack, e.g. "steps": (steps, tokens, h, w); None if absent."""
    row = session.scalar(select(MapStack).where(MapStack.generation_id == generation_id, MapStack.kind == kind))
    return None if row is None else (list(row.labels), decode_stack(row))


@dataclass(frozen=True)
class GenerationKey:
    generation_id: int
    prompt_id: int
    prompt: str
    model_id: int
    seed: int | None


def generation_keys(
    session: Session, filters: GenerationFilter | None = None, limit: int | None = None
) -> list[GenerationKey]:
    """What identifies each matching generation for pairing (prompt, model, seed), newest first."""
    statement = (
        select(Generation.id, Generation.prompt_id, Prompt.text, Generation.model_id, Generation.seed)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .order_by(Generation.id.desc())
    )
    statement = _apply(statement, filters)
    if limit is not None:
        statement = statement.limit(limit)
    return [GenerationKey(*row) for row in session.execute(statement)]


@dataclass(frozen=True)
class WordShareMean:
    """A word's mean share over the generations of one (prompt, model)."""

    prompt_id: int
    prompt: str
    model_id: int
    model: str
    word: str  # lower-case key
    position: int  # first position of the word in the prompt: for ordering
    generations: int
    mean: float
    std: float  # population standard deviation


def word_share_means(session: Session, filters: GenerationFilter | None = None) -> list[WordShareMean]:
    """Every word's share averaged per (prompt, model), aggregated in SQL: one row per bar."""
    per = (
        select(
            Generation.prompt_id.label("prompt_id"),
            Generation.model_id.label("model_id"),
            Word.key.label("word"),
            func.min(Word.position).label("position"),
            func.sum(HeatMap.share).label("share"),
        )
        .select_from(Word)
        .join(HeatMap, HeatMap.word_id == Word.id)
        .join(Generation, Generation.id == Word.generation_id)
        .where(HeatMap.share.is_not(None))
        .group_by(Generation.id, Generation.prompt_id, Generation.model_id, Word.key)
    )
    per = _apply(per, filters).subquery()
    statement = (
        select(
            per.c.prompt_id,
            Prompt.text,
            per.c.model_id,
            Model.name,
            per.c.word,
            func.min(per.c.position),
            func.count(),
            func.avg(per.c.share),
            func.avg(per.c.share * per.c.share),
        )
        .join(Prompt, Prompt.id == per.c.prompt_id)
        .join(Model, Model.id == per.c.model_id)
        .group_by(per.c.prompt_id, Prompt.text, per.c.model_id, Model.name, per.c.word)
        .order_by(per.c.prompt_id, per.c.model_id, func.min(per.c.position))
    )
    return [
        WordShareMean(
            p, text, m, name, word, int(pos), int(n), float(mean), math.sqrt(max(float(sq) - mean * mean, 0.0))
        )
        for p, text, m, name, word, pos, n, mean, sq in session.execute(statement)
    ]


@dataclass(frozen=True)
class StoredWordMap:
    position: int
    word: str
    share: float | None
    heat_map: np.ndarray


def generation_heat_maps(session: Session, generation_ids: Sequence[int]) -> dict[int, list[StoredWordMap]]:
    """Every word map of each generation with its share, in prompt order, keyed by generation id."""
    statement = (
        select(Word.generation_id, Word.position, Word.text, HeatMap)
        .join(HeatMap, HeatMap.word_id == Word.id)
        .where(Word.generation_id.in_(list(generation_ids)))
        .order_by(Word.generation_id, Word.position)
    )
    found: dict[int, list[StoredWordMap]] = {}
    for generation_id, position, text, heat_map in session.execute(statement):
        found.setdefault(generation_id, []).append(
            StoredWordMap(position, text, heat_map.share, decode_heat_map(heat_map))
        )
    return found
