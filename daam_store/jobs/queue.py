"""The queue as people see it: submit generations, list jobs, follow their progress, cancel and retry.

Every function takes the `Actor` doing it (daam_store.access; `LOCAL_ACTOR` from a shell) and checks its role
itself. Nothing here imports torch: a page or `daam-store jobs` answers without loading a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from daam_store import rules
from daam_store.access import Actor, Permission, PermissionDeniedError
from daam_store.errors import UserError
from daam_store.store.schema import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_STATUSES,
    STATUS_DONE,
    Generation,
    Job,
    MapStack,
    Model,
    Prompt,
    utc_now,
)

FINAL = (JOB_DONE, JOB_FAILED, JOB_CANCELLED)
ERROR_CHARS = 500  # a job's error is one line on the Jobs page
MAX_LIST = 1000  # jobs one list query returns at most (page on with before_id)


@dataclass(frozen=True)
class JobRequest:
    """One generation to run: what `daam "prompt" --seed N ...` would be given, plus the tags to record."""

    model: str  # built-in name, local folder or hub id: what load_pipeline takes
    prompt: str
    seed: int = 0
    steps: int = 25
    guidance_scale: float = 7.5
    negative_prompt: str = ""
    height: int | None = None  # None: the model's own size
    width: int | None = None
    dtype: str = "float32"
    save_steps: bool = False
    mid_block: bool = False  # maps average the mid block too (rules.DAAM_WITH_MID_BLOCK)
    tags: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        return rules.DAAM_WITH_MID_BLOCK if self.mid_block else rules.DAAM

    def generation_request(self):
        from daam_store.generate import GenerationRequest

        return GenerationRequest(
            prompt=self.prompt,
            seed=self.seed,
            steps=self.steps,
            guidance_scale=self.guidance_scale,
            negative_prompt=self.negative_prompt or None,
            height=self.height,
            width=self.width,
            dtype=self.dtype,
            save_steps=self.save_steps,
            mid_block=self.mid_block,
        )

    def key(self, sweep: str, owner: str | None = None) -> str:
        """Identifies the request inside a sweep: the same sweep submitted twice finds its jobs by it. In team
        mode sweeps are each person's (`owner`): two people's sweeps of one name never share jobs, so nobody
        resumes, waits on or is cancelled through someone else's."""
        fields = {k: v for k, v in asdict(self).items() if k != "tags"}
        scope = [sweep] if owner is None else [sweep, owner]
        return hashlib.sha256(json.dumps([*scope, fields], sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_job(cls, job: Job) -> JobRequest:
        return cls(
            job.model, job.prompt, job.seed, job.steps, job.guidance_scale, job.negative_prompt or "",
            job.height, job.width, job.dtype, job.save_steps, job.mid_block, tuple(job.tags or ()),
        )  # fmt: skip


@dataclass(frozen=True)
class JobView:
    """A job as the Jobs page and `daam-store jobs` show it."""

    id: int
    sweep: str | None
    model: str
    prompt: str
    seed: int
    steps: int
    step: int
    status: str
    author: str | None
    worker: str | None
    attempts: int
    error: str | None
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    generation_id: int | None

    @property
    def fraction(self) -> float:
        if self.status in FINAL:
            return 1.0
        return min(1.0, self.step / self.steps) if self.status == JOB_RUNNING and self.steps else 0.0

    def as_dict(self) -> dict:
        row = asdict(self)
        for key in ("submitted_at", "started_at", "finished_at"):
            row[key] = row[key].isoformat() if row[key] else None
        return row


@dataclass
class JobsProgress:
    """Where a set of jobs (a batch, a sweep) stands: per job and overall."""

    jobs: list[JobView] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for job in self.jobs if job.status == status)

    @property
    def total(self) -> int:
        return len(self.jobs)

    @property
    def finished(self) -> int:
        return sum(1 for job in self.jobs if job.status in FINAL)

    @property
    def all_finished(self) -> bool:
        return self.finished == self.total

    @property
    def fraction(self) -> float:
        return sum(job.fraction for job in self.jobs) / self.total if self.jobs else 1.0

    @property
    def generation_ids(self) -> list[int]:
        return [job.generation_id for job in self.jobs if job.status == JOB_DONE and job.generation_id is not None]

    def summary(self) -> str:
        counts = [f"{self.count(status)} {status}" for status in JOB_STATUSES if self.count(status)]
        return f"{self.finished} of {self.total} finished" + (f" ({', '.join(counts)})" if counts else "")


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; every one the store writes is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _view(job: Job) -> JobView:
    return JobView(
        job.id, job.sweep, job.model, job.prompt, job.seed, job.steps, job.step, job.status, job.author, job.worker,
        job.attempts, job.error, aware(job.submitted_at), aware(job.started_at), aware(job.finished_at),
        job.generation_id,
    )  # fmt: skip


# -- submitting --------------------------------------------------------------------------------------


def submit(
    store, actor: Actor, requests: Sequence[JobRequest], sweep: str | None = None, author: str | None = None
) -> list[int]:
    """Queue the generations; their job ids, in the order given.

    `sweep`: a name; its rows are tagged `sweep:<name>` and submitting the same sweep again returns the same
    jobs (those that failed or were cancelled go back to the queue, where the actor may retry them). A
    request whose generation is stored already (same model, prompt, seed, settings and heat-map rule) is
    done at once with it. `author` is what the local user typed; in team mode the signed-in identity counts.
    """
    from daam_store.sweep import check_sweep_name, sweep_tag
    from daam_store.tags import check_author, check_tags
    from daam_store.utils import parse_seed

    actor.require(Permission.GENERATE)
    store.require_writable()
    check_models(store, actor, {request.model for request in requests})
    if sweep is not None:
        check_sweep_name(sweep)
    author = check_author(actor.author(author))  # what the store would refuse after generating, refused now
    for request in requests:  # plain values; the prompt's words are checked by the worker with its tokenizer
        request.generation_request().validate()
        parse_seed(request.seed)
        check_tags(request.tags)
    extra_tags = [sweep_tag(sweep)] if sweep else []
    now = utc_now()
    rows = [_row(request, sweep, author, extra_tags, now, actor.identity) for request in requests]
    with store.write_session() as session:
        ids = _insert_jobs(session, rows, keyed=sweep is not None)
        if sweep is not None:
            _requeue_resubmitted(session, actor, ids)
        _complete_stored(session, ids)
    return ids


def check_models(store, actor: Actor, models: Iterable[str]) -> None:
    """A job's folder lies under $DAAM_STORE_MODEL_ROOTS (in team mode: none when unset), and in team mode its
    model is a built-in or a registered one (anything else loads and records a new model: an admin's decision)."""
    from daam_store.models import BUILTIN_MODELS
    from daam_store.models.roots import require_allowed_model

    models = sorted(set(models))
    for model in models:
        require_allowed_model(model, team_mode=actor.team_mode)
    unlisted = set(models) - set(BUILTIN_MODELS)
    if not actor.team_mode or not unlisted or actor.may(Permission.REGISTER_MODELS):
        return
    with store.session() as session:
        registered = set(session.scalars(select(Model.location).where(Model.location.in_(sorted(unlisted)))))
    missing = sorted(unlisted - registered)
    if missing:
        raise PermissionDeniedError(
            f"{actor.identity} ({actor.role} role) may not use the unregistered model {missing[0]!r}: "
            "pick a registered one, or ask an admin to register it"
        )


def _row(
    request: JobRequest, sweep: str | None, author: str | None, extra_tags: list[str], now, owner: str | None
) -> dict:
    values = asdict(request)
    values["tags"] = sorted(set(request.tags) | set(extra_tags))
    values["negative_prompt"] = request.negative_prompt or ""
    values |= {"sweep": sweep, "author": author, "status": JOB_QUEUED, "step": 0, "attempts": 0}
    values |= {"submitted_at": now, "request_key": request.key(sweep, owner) if sweep is not None else None}
    return values


def _insert_jobs(session, rows: list[dict], keyed: bool) -> list[int]:
    from daam_store.store.writer import insert_if_absent

    if not keyed:
        return list(session.scalars(Job.__table__.insert().returning(Job.id, sort_by_parameter_order=True), rows))
    # Two people submitting the same sweep at once: the second insert finds the first one's rows.
    insert_if_absent(session, Job, rows, unique=["request_key"])
    keys = [row["request_key"] for row in rows]
    found: dict[str, int] = {}
    for chunk in _chunks(keys):
        found |= dict(session.execute(select(Job.request_key, Job.id).where(Job.request_key.in_(chunk))).all())
    return [found[key] for key in keys]


def _requeue_resubmitted(session, actor: Actor, ids: list[int]) -> None:
    """The same sweep again resumes it: its failed and cancelled jobs run again (those the actor may retry)."""
    for chunk in _chunks(ids):
        stopped = session.scalars(select(Job).where(Job.id.in_(chunk), Job.status.in_((JOB_FAILED, JOB_CANCELLED))))
        for job in stopped:
            if _may_manage(actor, job):
                _reset(job)


def _complete_stored(session, ids: list[int]) -> None:
    """Queued jobs whose generation is stored are done at once with it (and its rows get the job's tags).

    Only where the store knows one weights revision under the model's name: with several, which one a worker
    will load is unknown until it loads it, and the worker looks again then (with the exact revision).
    One look-up per model and settings (not per job): a 10,000-job sweep holds the write lock briefly."""
    from daam_store.store.schema import Tag
    from daam_store.store.writer import insert_if_absent

    queued: list[Job] = []
    for chunk in _chunks(ids):
        queued.extend(session.scalars(select(Job).where(Job.id.in_(chunk), Job.status == JOB_QUEUED)))
    groups: dict[JobRequest, list[Job]] = {}
    for job in queued:  # the same request but for prompt and seed: one query
        groups.setdefault(replace(JobRequest.from_job(job), prompt="", seed=0, tags=()), []).append(job)
    tags: list[dict] = []
    now = utc_now()
    found_jobs: list[Job] = []
    for settings, jobs in groups.items():
        model_ids = list(session.scalars(select(Model.id).where(Model.name == settings.model).limit(2)))
        if len(model_ids) != 1:
            continue
        found = find_stored_many(session, model_ids[0], settings, {j.prompt for j in jobs}, {j.seed for j in jobs})
        for job in jobs:
            generation_id = found.get((job.prompt, job.seed))
            if generation_id is not None:
                job.status, job.generation_id, job.started_at, job.finished_at = JOB_DONE, generation_id, now, now
                job.step = job.steps
                found_jobs.append(job)
    authors = generation_authors(session, [job.generation_id for job in found_jobs])
    for job in found_jobs:
        names = tags_allowed_on(authors.get(job.generation_id), job.author, job.tags or ())
        tags.extend({"generation_id": job.generation_id, "name": tag} for tag in names)
    insert_if_absent(session, Tag, tags, ["generation_id", "name"])


def generation_authors(session, generation_ids: Sequence[int]) -> dict[int, str | None]:
    authors: dict[int, str | None] = {}
    for chunk in _chunks(list(generation_ids)):
        authors |= dict(session.execute(select(Generation.id, Generation.author).where(Generation.id.in_(chunk))).all())
    return authors


def tags_allowed_on(generation_author: str | None, job_author: str | None, tags: Iterable[str]) -> list[str]:
    """The tags a job may add to a generation it found stored: all of them on its author's own (or when submitted
    without an identity: local use, the shell operator); on someone else's only the `sweep:` tag, which records
    that the generation is part of the sweep (Compare selects sweeps by it). Tagging someone else's generation
    freely is an admin's action (views/tagging.py), not something a job may do for a member."""
    from daam_store.sweep import TAG_PREFIX

    own = job_author is None or generation_author == job_author  # both identities as access.py writes them
    return [tag for tag in tags if own or tag.startswith(TAG_PREFIX)]


def find_stored(session, model_id: int, request: JobRequest) -> int | None:
    """The stored generation this request would make on that model row (see find_stored_many)."""
    return find_stored_many(session, model_id, request, [request.prompt], [request.seed]).get(
        (request.prompt, request.seed)
    )


def find_stored_many(
    session, model_id: int, settings: JobRequest, prompts: Iterable[str], seeds: Iterable[int]
) -> dict[tuple[str, int], int]:
    """{(prompt, seed): generation id} stored on that model row with the settings of `settings` (its prompt and
    seed ignored): every setting and the heat-map rule, as the sweep's look-up; per-step maps when asked for;
    the model's own size when no size is given."""
    statement = (
        select(Prompt.text, Generation.seed, func.min(Generation.id))
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .join(Model, Model.id == Generation.model_id)
        .where(
            Generation.model_id == model_id,
            Generation.steps == settings.steps,
            Generation.guidance_scale == settings.guidance_scale,
            Generation.negative_prompt == (settings.negative_prompt or ""),
            Generation.heat_map_rule == settings.rule,
            Generation.status == STATUS_DONE,
            func.coalesce(Generation.dtype, "float32") == settings.dtype,
            Generation.height == (settings.height if settings.height is not None else Model.resolution),
            Generation.width == (settings.width if settings.width is not None else Model.resolution),
        )
        .group_by(Prompt.text, Generation.seed)
    )
    if settings.save_steps:
        steps = select(MapStack.id).where(MapStack.generation_id == Generation.id, MapStack.kind == "steps")
        statement = statement.where(steps.exists())
    found: dict[tuple[str, int], int] = {}
    seeds = list(seeds)
    for prompt_chunk in _chunks(list(prompts)):
        for seed_chunk in _chunks(seeds):
            chunk = statement.where(Prompt.text.in_(prompt_chunk), Generation.seed.in_(seed_chunk))
            found |= {(text, seed): generation_id for text, seed, generation_id in session.execute(chunk)}
    return found


def _chunks(values: list, size: int = 500) -> Iterator[list]:
    """Bounded IN lists (drivers cap the parameters of one statement)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- reading -----------------------------------------------------------------------------------------


def list_jobs(
    store,
    status: str | Sequence[str] | None = None,
    author: str | None = None,
    sweep: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[JobView]:
    """Jobs newest first: everyone's queue (no filters) or "my jobs" (`author=actor.identity`); `before_id`
    pages on. Served by the job table's (status, id), (author, id) and (sweep, id) indexes."""
    statement = select(Job).order_by(Job.id.desc()).limit(max(1, min(int(limit), MAX_LIST)))
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        unknown = set(statuses) - set(JOB_STATUSES)
        if unknown:
            raise UserError(f"unknown job status {sorted(unknown)[0]!r}: use one of {', '.join(JOB_STATUSES)}")
        statement = statement.where(Job.status.in_(statuses))
    if author is not None:
        statement = statement.where(Job.author == author)
    if sweep is not None:
        statement = statement.where(Job.sweep == sweep)
    if before_id is not None:
        statement = statement.where(Job.id < before_id)
    with store.session() as session:
        return [_view(job) for job in session.scalars(statement)]


def count_jobs(store) -> dict[str, int]:
    """{status: number of jobs}, every status present (the queue's headline)."""
    with store.session() as session:
        counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status: counts.get(status, 0) for status in JOB_STATUSES}


def jobs_progress(store, ids: Sequence[int]) -> JobsProgress:
    """Progress of these jobs (a batch the page submitted), read from the store: it survives reloads."""
    order = {job_id: n for n, job_id in enumerate(ids)}
    jobs: list[JobView] = []
    with store.session() as session:
        for chunk in _chunks(list(ids)):
            jobs.extend(_view(job) for job in session.scalars(select(Job).where(Job.id.in_(chunk))))
    return JobsProgress(sorted(jobs, key=lambda job: order[job.id]))


def sweep_progress(store, sweep: str, author: str | None = None) -> JobsProgress:
    """Progress of every job of a sweep (`author`: only that person's, as a page in team mode follows it)."""
    statement = select(Job).where(Job.sweep == sweep).order_by(Job.id)
    if author is not None:
        statement = statement.where(Job.author == author)
    with store.session() as session:
        return JobsProgress([_view(job) for job in session.scalars(statement)])


# -- cancelling and retrying -------------------------------------------------------------------------


def _may_manage(actor: Actor, job: Job) -> bool:
    return actor.may(Permission.CANCEL_ANY_JOB) or (actor.may(Permission.CANCEL_OWN_JOBS) and actor.owns(job.author))


def cancel(store, actor: Actor, ids: Sequence[int]) -> list[int]:
    """Cancel queued or running jobs (a running one stops at its next step and stores nothing); the ids
    cancelled. Jobs already finished are left as they are; an unknown id or someone else's job is refused."""
    cancelled: list[int] = []
    with store.write_session() as session:
        jobs = _jobs(session, ids)
        for job in jobs:
            actor.require_owner_or(job.author, Permission.CANCEL_OWN_JOBS, Permission.CANCEL_ANY_JOB)
        who = actor.identity or "the local user"
        for job in jobs:
            # A conditional update: a worker finishing the job at this moment wins or loses cleanly.
            result = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status.in_((JOB_QUEUED, JOB_RUNNING)))
                .values(status=JOB_CANCELLED, finished_at=utc_now(), error=f"cancelled by {who}")
            )
            if result.rowcount:
                cancelled.append(job.id)
    return cancelled


def retry(store, actor: Actor, ids: Sequence[int]) -> list[int]:
    """Queue failed or cancelled jobs again (attempts start over); the ids queued."""
    queued: list[int] = []
    with store.write_session() as session:
        jobs = _jobs(session, ids)
        for job in jobs:
            actor.require_owner_or(job.author, Permission.CANCEL_OWN_JOBS, Permission.CANCEL_ANY_JOB)
        for job in jobs:
            if job.status in (JOB_FAILED, JOB_CANCELLED):
                _reset(job)
                queued.append(job.id)
    return queued


def _reset(job: Job) -> None:
    job.status, job.step, job.attempts, job.worker, job.error = JOB_QUEUED, 0, 0, None, None
    job.started_at = job.finished_at = job.heartbeat_at = None
    job.generation_id = None


def _jobs(session, ids: Sequence[int]) -> list[Job]:
    jobs = list(session.scalars(select(Job).where(Job.id.in_(list(ids))).order_by(Job.id).with_for_update()))
    missing = sorted(set(ids) - {job.id for job in jobs})
    if missing:
        raise UserError(f"no job {missing[0]} in the store: see `daam-store jobs` for the ids")
    return jobs
