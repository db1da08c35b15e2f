"""The worker loop, shared by the local executor, `daam-store worker`, in-process sweeps and Ray actors.

    claim a job -> load its model once (kept) -> generate, reporting each step -> store it with "done"

A heartbeat thread keeps the worker's row and its running job's lease fresh while a model loads or a step
runs. While the database is unavailable the worker waits (doubling up to 30 s) and keeps its job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from daam_store.jobs import claims
from daam_store.jobs.runner import Outcome, Pipelines, StepCallback, run_job
from daam_store.store import DatabaseUnavailableError

log = logging.getLogger(__name__)


@dataclass
class WorkerReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


class Worker:
    """Drains the queue of the store (a Store, or a URL the worker opens itself).

    `models`: run only these models' jobs; `only_ids`: only these jobs (an in-process sweep);
    `lease_s`: how long a running job may go without a heartbeat before another worker takes it back;
    `on_step(job, step, steps)` and `on_outcome(outcome)`: progress for a caller in the same process."""

    def __init__(
        self,
        store,
        kind: str = "local",
        models: Sequence[str] | None = None,
        device: str | None = None,
        lease_s: float = claims.DEFAULT_LEASE_S,
        max_attempts: int = claims.DEFAULT_MAX_ATTEMPTS,
        poll_s: float = 0.25,  # an idle worker's look at the queue is one cheap read
        only_ids: Sequence[int] | None = None,
        pipelines: Pipelines | None = None,
        on_step: StepCallback | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        generate_fn=None,
        worker_id: str | None = None,
    ):
        if isinstance(store, str):
            from daam_store.store import open_store

            store = open_store(store)
        self.store, self.kind = store, kind
        self.models = list(models) if models else None
        self.lease_s, self.max_attempts, self.poll_s = lease_s, max_attempts, poll_s
        self.only_ids = list(only_ids) if only_ids is not None else None
        self.pipelines = pipelines or Pipelines(device=device)
        self.on_step, self.on_outcome, self.generate_fn = on_step, on_outcome, generate_fn
        self.id = worker_id or claims.new_worker_id(kind)
        self.current_job: int | None = None
        self.stop_event = threading.Event()

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, until_idle: bool = False, stop_when: Callable[[Outcome], bool] | None = None) -> WorkerReport:
        """Run jobs until `stop()` (or, with `until_idle`, until no job is left to claim); `stop_when(outcome)`
        ends the run after an outcome (an in-process sweep stops at its first failure)."""
        report = WorkerReport()
        beating = threading.Thread(target=self._beat_forever, name=f"heartbeat {self.id}", daemon=True)
        beating.start()
        try:
            while not self.stop_event.is_set():
                outcome = self.run_one()
                if outcome is None:
                    if until_idle:
                        break
                    self.stop_event.wait(self.poll_s)
                    continue
                report.outcomes.append(outcome)
                if stop_when is not None and stop_when(outcome):
                    break
        finally:
            self.stop_event.set()
            beating.join(timeout=5)
            self._quietly(lambda: claims.forget_worker(self.store, self.id))
        return report

    def run_one(self) -> Outcome | None:
        """Claim and run one job; None when there is none to claim."""
        job = self._waiting(
            lambda: claims.claim(
                self.store, self.id, self.pipelines.names, self.models, self.only_ids, self.lease_s, self.max_attempts
            )
        )
        if job is None:
            return None
        self.current_job = job.id
        try:
            outcome = self._waiting(
                lambda: run_job(self.store, job, self.id, self.pipelines, self.on_step, self.generate_fn)
            )
        except BaseException:  # interrupted (Ctrl-C, stop): the job goes back to the queue for another worker
            self._quietly(lambda: claims.release(self.store, job.id, self.id))
            raise
        finally:
            self.current_job = None
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def stop(self) -> None:
        """Stop after the running job (it finishes and is stored)."""
        self.stop_event.set()

    # -- heartbeats and a database that went away -------------------------------------------------------
    def beat(self) -> None:
        claims.beat(self.store, self.id, self.kind, self.pipelines.names, self.current_job)

    def _beat_forever(self) -> None:
        interval = max(0.2, min(5.0, self.lease_s / 4))
        while True:
            self._quietly(self.beat)
            if self.stop_event.wait(interval):
                return

    def _waiting(self, action):
        wait = 0.5
        while True:
            try:
                return action()
            except DatabaseUnavailableError as error:
                log.warning("worker %s: %s; retrying in %.1f s", self.id, error, wait)
                if self.stop_event.wait(wait):
                    raise
                wait = min(30.0, wait * 2)

    def _quietly(self, action) -> None:
        try:
            action()
        except Exception as error:  # a heartbeat lost to a database hiccup is retried at the next one
            log.warning("worker %s: %s", self.id, error)


def wait_for(store, ids: Sequence[int], on_progress=None, poll_s: float = 0.5, timeout_s: float | None = None):
    """Wait until every job of `ids` is finished (done, failed or cancelled), calling `on_progress(JobsProgress)`
    at each look; the last JobsProgress."""
    from daam_store.jobs.queue import jobs_progress

    started = time.monotonic()
    while True:
        try:
            progress = jobs_progress(store, ids)
        except DatabaseUnavailableError:
            progress = None
        if progress is not None:
            if on_progress is not None:
                on_progress(progress)
            if progress.all_finished:
                return progress
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TimeoutError(f"jobs not finished after {timeout_s} s")
        time.sleep(poll_s)
