"""Run one claimed job: the same traced generation as `daam` and sweeps, stored with the job's "done".

A loaded pipeline is kept per model (`Pipelines`), so a worker loads each model once, not once per job.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from daam_store.errors import first_line, unexpected_cause
from daam_store.jobs import claims
from daam_store.jobs.claims import ClaimedJob
from daam_store.jobs.queue import find_stored, generation_authors, tags_allowed_on
from daam_store.store import DatabaseUnavailableError

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.2  # progress writes at most this often (a cancel is noticed within it plus a step)

StepCallback = Callable[[ClaimedJob, int, int], None]


_PIPELINE_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PIPELINE_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe) -> threading.Lock:
    """One generation at a time per pipeline object: `trace` hooks the pipeline and its scheduler keeps state,
    so workers of one process that were handed the same pipeline (`Pipelines(preloaded=...)`) take turns."""
    with _PIPELINE_LOCKS_GUARD:
        return _PIPELINE_LOCKS.setdefault(pipe, threading.Lock())


class JobStopped(Exception):
    """The job stopped being this worker's during its run (cancelled, or requeued): nothing is stored."""


@dataclass
class Outcome:
    job: ClaimedJob
    status: str  # "generated" | "found" | "failed" | "stopped"
    generation_id: int | None = None
    error: str | None = None


class Pipelines:
    """Loaded pipelines by model name, the least recently used dropped beyond `capacity` (GPU memory)."""

    def __init__(self, device: str | None = None, capacity: int = 2, preloaded: dict | None = None):
        self.device, self.capacity = device, capacity
        self._loaded: OrderedDict[str, tuple] = OrderedDict()
        for name, pipe in (preloaded or {}).items():
            self._add(name, pipe)

    @property
    def names(self) -> list[str]:
        return list(self._loaded)

    def get(self, model: str) -> tuple:
        """(pipeline, ModelInfo) of `model`, loading it on first use."""
        if model not in self._loaded:
            import torch

            from daam_store.models import load_pipeline
            from daam_store.models.roots import require_allowed_model

            require_allowed_model(model)  # $DAAM_STORE_MODEL_ROOTS on the worker's machine too
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")  # a GPU worker uses its GPU
            self._add(model, load_pipeline(model, device=device))
        self._loaded.move_to_end(model)
        return self._loaded[model]

    def _add(self, model: str, pipe) -> None:
        from daam_store.models import describe_pipeline

        while len(self._loaded) >= self.capacity:
            self._loaded.popitem(last=False)
        self._loaded[model] = (pipe, describe_pipeline(pipe))  # hashes the weights once per load


def run_job(
    store,
    job: ClaimedJob,
    worker_id: str,
    pipelines: Pipelines,
    on_step: StepCallback | None = None,
    generate_fn=None,
) -> Outcome:
    """Generate and store the job's generation (or find it stored); failures become the job's one-line error.

    `generate_fn`: daam_store.generate.generate unless a caller (a test) hands another."""
    try:
        pipe, info = pipelines.get(job.request.model)
        generation_id = _stored(store, info, job)
        if generation_id is not None:
            return _finish(store, job, worker_id, generation_id=generation_id)
        experiment = _generate(store, job, worker_id, pipe, on_step, generate_fn)
        return _finish(store, job, worker_id, experiment=experiment, info=info)
    except JobStopped:
        return Outcome(job, "stopped")
    except DatabaseUnavailableError:
        raise  # the worker waits for the database and keeps the job (its lease decides who runs it)
    except Exception as error:  # any cause: the job's one line; the worker goes on with the next job
        message = first_line(error)
        if unexpected_cause(error) is not None:  # a bug or a fault of the machine: its traceback goes to the log
            log.error("job %s failed: %s", job.id, message, exc_info=error)
        _retrying(lambda: claims.mark_failed(store, job.id, worker_id, message))
        return Outcome(job, "failed", error=message)


def _stored(store, info, job: ClaimedJob) -> int | None:
    from sqlalchemy import select

    from daam_store.store.schema import Model

    with store.session() as session:
        model_id = session.scalar(select(Model.id).where(Model.name == info.name, Model.revision == info.revision))
        return None if model_id is None else find_stored(session, model_id, job.request)


def _generate(store, job: ClaimedJob, worker_id: str, pipe, on_step, generate_fn):
    if generate_fn is None:
        from daam_store.generate import generate as generate_fn
    last_write = 0.0

    def step_done(step: int, steps: int) -> None:
        nonlocal last_write
        now = time.monotonic()
        if now - last_write >= PROGRESS_INTERVAL_S or step == steps:
            last_write = now
            try:
                mine = claims.report_step(store, job.id, worker_id, step)
            except DatabaseUnavailableError:
                mine = True  # the database is away: keep generating, the finish waits for it
            if not mine:
                raise JobStopped
        if on_step is not None:
            on_step(job, step, steps)

    with pipeline_lock(pipe):  # a pipeline preloaded into several workers is traced by one call at a time
        return generate_fn(pipe, job.request.generation_request(), on_step=step_done)


def _finish(store, job: ClaimedJob, worker_id: str, experiment=None, info=None, generation_id=None) -> Outcome:
    """The generation (when made here) and the job's "done" in one transaction: both or neither."""
    from daam_store.store.queries import add_tag
    from daam_store.store.writer import insert_generation, prepare_experiment

    prepared = None
    if experiment is not None:  # encoding and statistics before the write lock is taken
        prepared = prepare_experiment(experiment, info, author=job.author, tags=job.request.tags)

    def write() -> int:
        with store.write_session() as session:
            if prepared is not None:
                found = insert_generation(session, prepared)
            else:
                found = generation_id
                author = generation_authors(session, [found]).get(found)
                for tag in tags_allowed_on(author, job.author, job.request.tags):
                    add_tag(session, [found], tag)
            if not claims.mark_done(session, job.id, worker_id, found):
                raise JobStopped  # rolls the generation back: a cancelled job stores nothing
            return found

    stored = _retrying(write)
    return Outcome(job, "generated" if prepared is not None else "found", stored)


def _retrying(action, first_wait_s: float = 0.5, max_wait_s: float = 30.0):
    """`action()`, waiting while the database is unavailable (doubling waits): a job is never dropped."""
    wait = first_wait_s
    while True:
        try:
            return action()
        except DatabaseUnavailableError:
            time.sleep(wait)
            wait = min(max_wait_s, wait * 2)
