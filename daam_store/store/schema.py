"""The database schema, as SQLAlchemy 2 typed ORM classes. Alembic migrations in migrations/ build it.

    model ─┐
    prompt ┴─ generation ─┬─ word ── heat_map      one map + statistics per non-punctuation word
                          ├─ image                 the generated image, PNG
                          ├─ map_stack             token maps (the GlobalHeatMap), per-layer, per-step
                          ├─ tag
                          └─ attachment            files kept verbatim (overlays of imported directories)
    user_account                                   who may do what in team mode (daam_store/access.py)
    job ── generation?, job_worker                 requested generations and the workers that run them (jobs/)

A generation and everything below it is written in one transaction (see `writer.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from daam_store.tags import MAX_AUTHOR_CHARS, MAX_TAG_CHARS

# Stable constraint names, so migrations can refer to (and drop) them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUS_DONE = "done"
STATUS_OVERLAYS_ONLY = "overlays-only"  # imported from the original daam layout: no numeric maps exist


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[int]: JSON, list[str]: JSON, bytes: LargeBinary}


class Model(Base):
    __tablename__ = "model"
    __table_args__ = (UniqueConstraint("name", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))  # builtin | local | hub | memory | imported
    location: Mapped[str] = mapped_column(String(1000), default="")
    family: Mapped[str] = mapped_column(String(8))  # SD1 | SD2 | unknown
    revision: Mapped[str] = mapped_column(String(64))  # content hash of the weights
    resolution: Mapped[int | None]
    prediction_type: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    generations: Mapped[list[Generation]] = relationship(back_populates="model")


class Prompt(Base):
    __tablename__ = "prompt"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    # Unique on a hash, not the text: long prompts exceed PostgreSQL's btree entry limit.
    text_hash: Mapped[str] = mapped_column(String(64), unique=True)

    generations: Mapped[list[Generation]] = relationship(back_populates="prompt")


class Generation(Base):
    __tablename__ = "generation"
    __table_args__ = (
        Index("ix_generation_prompt_id_model_id_seed", "prompt_id", "model_id", "seed"),
        Index("ix_generation_model_id_seed", "model_id", "seed"),
        Index("ix_generation_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompt.id"))
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int | None] = mapped_column(BigInteger)
    steps: Mapped[int | None]
    guidance_scale: Mapped[float | None]
    scheduler: Mapped[str | None] = mapped_column(String(100))
    height: Mapped[int]
    width: Mapped[int]
    dtype: Mapped[str | None] = mapped_column(String(32))
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # seconds by phase
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the rest of the experiment's metadata
    author: Mapped[str | None] = mapped_column(String(MAX_AUTHOR_CHARS))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_DONE)
    heat_map_rule: Mapped[str | None] = mapped_column(String(16))  # daam_store/rules.py; None: no numeric maps
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # Hash of model, prompt, seed, settings, image and maps: saving the same generation twice finds it.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)

    model: Mapped[Model] = relationship(back_populates="generations")
    prompt: Mapped[Prompt] = relationship(back_populates="generations")
    words: Mapped[list[Word]] = relationship(
        back_populates="generation", order_by="Word.position", cascade="all, delete-orphan"
    )
    image: Mapped[Image | None] = relationship(cascade="all, delete-orphan")
    map_stacks: Mapped[list[MapStack]] = relationship(cascade="all, delete-orphan")
    tags: Mapped[list[Tag]] = relationship(cascade="all, delete-orphan")
    attachments: Mapped[list[Attachment]] = relationship(cascade="all, delete-orphan")


class Word(Base):
    __tablename__ = "word"
    __table_args__ = (
        UniqueConstraint("generation_id", "position"),
        # The comparison charts look words up by their lower-case key and join to the generation.
        Index("ix_word_key_generation_id", "key", "generation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"))
    position: Mapped[int]  # index among the prompt's words: what `word_idx` means
    text: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))  # lower-case text, what queries match on
    token_indices: Mapped[list[int]]  # rows of the token map stack (row 0 = <|startoftext|>)
    token_ids: Mapped[list[int]]
    is_punctuation: Mapped[bool] = mapped_column(default=False)

    generation: Mapped[Generation] = relationship(back_populates="words")
    heat_map: Mapped[HeatMap | None] = relationship(back_populates="word", cascade="all, delete-orphan")


class HeatMap(Base):
    """One word's map (h x w, encoded by `codec`) and its statistics (analysis/statistics.py)."""

    __tablename__ = "heat_map"
    # Covers the chart queries: they read `share` without touching the rows' blobs (3x faster at 10,000).
    __table_args__ = (Index("ix_heat_map_word_id_share", "word_id", "share"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    word_id: Mapped[int] = mapped_column(ForeignKey("word.id", ondelete="CASCADE"), unique=True)
    codec: Mapped[str] = mapped_column(String(16))
    codec_version: Mapped[int]
    height: Mapped[int]
    width: Mapped[int]
    blob: Mapped[bytes]
    total: Mapped[float]
    share: Mapped[float | None]
    peak: Mapped[float]
    entropy: Mapped[float | None]
    centroid_x: Mapped[float | None]
    centroid_y: Mapped[float | None]
    area_above_tau: Mapped[float]

    word: Mapped[Word] = relationship(back_populates="heat_map")


class Image(Base):
    __tablename__ = "image"

    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"), primary_key=True)
    width: Mapped[int]
    height: Mapped[int]
    png: Mapped[bytes]


class MapStack(Base):
    """A stack of maps of one generation: kind "tokens" (tokens, h, w) is the GlobalHeatMap;
    "layers" (layers, tokens, h, w) and "steps" (steps, tokens, h, w) are the finer records."""

    __tablename__ = "map_stack"
    __table_args__ = (UniqueConstraint("generation_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[str]]  # BPE tokens, layer names or step numbers along the first axis
    shape: Mapped[list[int]]
    codec: Mapped[str] = mapped_column(String(16))
    codec_version: Mapped[int]
    blob: Mapped[bytes]


class Tag(Base):
    __tablename__ = "tag"
    __table_args__ = (Index("ix_tag_name", "name"),)

    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_TAG_CHARS), primary_key=True)


class Attachment(Base):
    __tablename__ = "attachment"
    __table_args__ = (UniqueConstraint("generation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))  # file name, e.g. "dog.heat_map.png"
    media_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes]


class UserAccount(Base):
    """A person known to the dashboard's team mode and their role (daam_store/access.py). The identity is the
    e-mail address the OpenID Connect provider vouches for (its subject id where it gives none)."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # none | viewer | member | admin
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, onupdate=utc_now)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED = "queued", "running", "done", "failed", "cancelled"
JOB_STATUSES = (JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED)


class Job(Base):
    """A requested generation (daam_store/jobs): queued -> running -> done | failed | cancelled.

    What it asks for is copied in full, so a worker on another machine needs nothing but this row. The
    generation it produced (or found stored) is `generation_id`; a sweep is the set of jobs with one `sweep`.
    """

    __tablename__ = "job"
    __table_args__ = (
        # The job list: everyone's (newest first), one status, one author's, one sweep's.
        Index("ix_job_status_id", "status", "id"),
        Index("ix_job_author_id", "author", "id"),
        Index("ix_job_sweep_id", "sweep", "id"),
        # Claiming: the oldest queued job, preferably of a model the worker holds.
        Index("ix_job_status_model_id", "status", "model", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Hash of the sweep's name and the request: the same sweep submitted twice finds its jobs (None: no sweep).
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    sweep: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(1000))  # what load_pipeline takes: built-in name, folder, hub id
    prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[int]
    guidance_scale: Mapped[float]
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    height: Mapped[int | None]  # None: the model's own size
    width: Mapped[int | None]
    dtype: Mapped[str] = mapped_column(String(16), default="float32")
    save_steps: Mapped[bool] = mapped_column(default=False)
    mid_block: Mapped[bool] = mapped_column(default=False)  # heat-map rule daam+mid instead of daam
    author: Mapped[str | None] = mapped_column(String(320))
    tags: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default=JOB_QUEUED)
    step: Mapped[int] = mapped_column(default=0)  # denoising steps done (of `steps`)
    worker: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)  # times a worker started it
    error: Mapped[str | None] = mapped_column(Text)  # one line
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id", ondelete="SET NULL"))


class JobWorker(Base):
    """A worker that drains the job queue; its heartbeat says it is alive (the dashboard counts those)."""

    __tablename__ = "job_worker"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:random
    kind: Mapped[str] = mapped_column(String(16))  # local | ray
    host: Mapped[str] = mapped_column(String(200))
    models: Mapped[list[str]] = mapped_column(default=list)  # pipelines it holds loaded
    job_id: Mapped[int | None]  # the job it runs now (no foreign key: a deleted job must not block a beat)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
