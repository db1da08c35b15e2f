"""The queue as workers see it: claim a job, report its steps, finish or fail it, and say they are alive.

Every change of a claimed job is conditional on `status = running AND worker = me`: a job cancelled, or given
to another worker after this one's lease ran out, is never overwritten by a worker that lost it.

Claiming is safe with many workers: on PostgreSQL the candidate row is taken with `FOR UPDATE SKIP LOCKED`
(two workers never wait on, or take, the same row); on SQLite every write transaction holds the database's
write lock (`BEGIN IMMEDIATE`), so claims are serialized anyway.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from daam_store.jobs.queue import ERROR_CHARS, JobRequest, aware
from daam_store.store.schema import JOB_DONE, JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job, JobWorker, utc_now

DEFAULT_LEASE_S = 60.0  # a running job whose heartbeat is older than this lost its worker
DEFAULT_MAX_ATTEMPTS = 3  # starts of one job before it fails for good (a job that kills its workers)
CONNECTED_S = 30.0  # a worker whose heartbeat is younger than this counts as connected
AFFINITY_WAIT_S = 30.0  # a job of another model waits at most this long for workers that prefer theirs


@dataclass(frozen=True)
class ClaimedJob:
    """A snapshot of the claimed row: what the worker needs, detached from any session."""

    id: int
    request: JobRequest
    author: str | None
    attempts: int


def _one_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "failed"
    return line[:ERROR_CHARS]


def requeue_stale(session, lease_s: float, max_attempts: int, now: datetime | None = None) -> None:
    """Running jobs whose worker stopped beating (killed, node lost): back to the queue, or failed after
    `max_attempts` starts. Run by every worker before it claims, so the next one that looks cleans up."""
    now = now or utc_now()
    stale = (Job.status == JOB_RUNNING, Job.heartbeat_at < now - timedelta(seconds=lease_s))
    session.execute(
        update(Job)
        .where(*stale, Job.attempts >= max_attempts)
        .values(status=JOB_FAILED, finished_at=now, error=f"its worker stopped answering {max_attempts} times")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job)
        .where(*stale)
        .values(status=JOB_QUEUED, worker=None, step=0, error="its worker stopped answering; queued again")
        .execution_options(synchronize_session=False)
    )


def claim(
    store,
    worker_id: str,
    held: Sequence[str] = (),
    only_models: Sequence[str] | None = None,
    only_ids: Sequence[int] | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ClaimedJob | None:
    """The oldest queued job, preferably of a model in `held` (already loaded), now running on `worker_id`.

    `only_models`: this worker runs no other models (`daam-store worker --models`); `only_ids`: only these
    jobs (an in-process sweep running its own grid)."""
    base = select(Job).where(Job.status == JOB_QUEUED).order_by(Job.id).limit(1)
    if only_models is not None:
        base = base.where(Job.model.in_(list(only_models)))
    if only_ids is not None:
        base = base.where(Job.id.in_(list(only_ids)))
    stale = select(Job.id).where(Job.status == JOB_RUNNING, Job.heartbeat_at < utc_now() - timedelta(seconds=lease_s))
    # A read first: idle workers polling an empty queue never take SQLite's write lock (nor row locks).
    with store.session() as session:
        if session.scalar(base.with_only_columns(Job.id)) is None and session.scalar(stale.limit(1)) is None:
            return None
    with store.write_session() as session:
        requeue_stale(session, lease_s, max_attempts)
        job = None
        if held and not _oldest_waited_too_long(session, base, held):
            job = session.scalar(base.where(Job.model.in_(list(held))).with_for_update(skip_locked=True))
        if job is None:
            job = session.scalar(base.with_for_update(skip_locked=True))
        if job is None:
            return None
        now = utc_now()
        job.status, job.worker, job.step, job.error = JOB_RUNNING, worker_id, 0, None
        job.attempts += 1
        job.started_at = job.heartbeat_at = now
        return ClaimedJob(job.id, JobRequest.from_job(job), job.author, job.attempts)


def _oldest_waited_too_long(session, base, held: Sequence[str]) -> bool:
    """Whether the oldest queued job is of a model no longer worth the detour: a worker prefers the models it
    holds, but not for ever, or a steady stream of one model's jobs would starve another's."""
    oldest = session.execute(base.with_only_columns(Job.model, Job.submitted_at)).first()
    if oldest is None or oldest.model in held:
        return False
    return aware(oldest.submitted_at) < utc_now() - timedelta(seconds=AFFINITY_WAIT_S)


def _mine(job_id: int, worker_id: str):
    return (Job.id == job_id, Job.status == JOB_RUNNING, Job.worker == worker_id)


def report_step(store, job_id: int, worker_id: str, step: int) -> bool:
    """Record progress (and a heartbeat); False when the job is no longer this worker's to run (cancelled,
    or requeued after a lost lease): the worker stops there."""
    with store.write_session() as session:
        result = session.execute(update(Job).where(*_mine(job_id, worker_id)).values(step=step, heartbeat_at=utc_now()))
        return bool(result.rowcount)


def still_mine(store, job_id: int, worker_id: str) -> bool:
    with store.session() as session:
        return session.scalar(select(Job.id).where(*_mine(job_id, worker_id))) is not None


def mark_done(session, job_id: int, worker_id: str, generation_id: int) -> bool:
    """In the caller's transaction (the one writing the generation): done with it, if still this worker's."""
    values = {"status": JOB_DONE, "generation_id": generation_id, "finished_at": utc_now(), "error": None}
    result = session.execute(update(Job).where(*_mine(job_id, worker_id)).values(**values))
    if result.rowcount:
        session.execute(update(Job).where(Job.id == job_id).values(step=Job.steps))
    return bool(result.rowcount)


def mark_failed(store, job_id: int, worker_id: str, message: str) -> None:
    with store.write_session() as session:
        values = {"status": JOB_FAILED, "finished_at": utc_now(), "error": _one_line(message)}
        session.execute(update(Job).where(*_mine(job_id, worker_id)).values(**values))


def release(store, job_id: int, worker_id: str) -> None:
    """A worker stopping on purpose mid-job: the job goes back to the queue, the start not counted."""
    with store.write_session() as session:
        values = {"status": JOB_QUEUED, "worker": None, "step": 0, "attempts": Job.attempts - 1}
        session.execute(update(Job).where(*_mine(job_id, worker_id)).values(**values))


# -- workers -----------------------------------------------------------------------------------------


def new_worker_id(kind: str) -> str:
    import os
    import uuid

    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def beat(store, worker_id: str, kind: str, models: Sequence[str], job_id: int | None) -> None:
    """The worker's heartbeat (its row, created on the first beat) and its running job's."""
    from daam_store.store.writer import insert_if_absent

    now = utc_now()
    with store.write_session() as session:
        row = {"id": worker_id, "kind": kind, "host": socket.gethostname(), "models": list(models)}
        insert_if_absent(session, JobWorker, {**row, "started_at": now, "heartbeat_at": now}, unique=["id"])
        values = {"models": list(models), "job_id": job_id, "heartbeat_at": now}
        session.execute(update(JobWorker).where(JobWorker.id == worker_id).values(**values))
        # Rows of workers killed long ago (no goodbye): the table stays the size of the live fleet.
        session.execute(delete(JobWorker).where(JobWorker.heartbeat_at < now - timedelta(days=1)))
        if job_id is not None:
            session.execute(update(Job).where(*_mine(job_id, worker_id)).values(heartbeat_at=now))


def forget_worker(store, worker_id: str) -> None:
    with store.write_session() as session:
        session.execute(delete(JobWorker).where(JobWorker.id == worker_id))


@dataclass(frozen=True)
class WorkerView:
    id: str
    kind: str
    host: str
    models: list[str]
    job_id: int | None
    heartbeat_at: datetime


def connected_workers(store, within_s: float = CONNECTED_S) -> list[WorkerView]:
    """Workers that beat within the last `within_s` seconds (older rows: stopped or killed workers)."""
    cutoff = utc_now() - timedelta(seconds=within_s)
    with store.session() as session:
        rows = session.scalars(select(JobWorker).where(JobWorker.heartbeat_at >= cutoff).order_by(JobWorker.id))
        return [WorkerView(w.id, w.kind, w.host, list(w.models), w.job_id, aware(w.heartbeat_at)) for w in rows]
