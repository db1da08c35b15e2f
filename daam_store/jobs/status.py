"""Which executor runs the jobs and how many workers are connected: the dashboard's Home line."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from daam_store.jobs.claims import CONNECTED_S, WorkerView, connected_workers
from daam_store.jobs.queue import count_jobs
from daam_store.jobs.ray_executor import ray_address


@dataclass(frozen=True)
class ExecutorStatus:
    kind: str  # "local" | "ray"
    address: str | None  # the Ray address, for "ray"
    workers: list[WorkerView] = field(default_factory=list)  # those that beat within CONNECTED_S
    counts: dict[str, int] = field(default_factory=dict)  # jobs by status

    def line(self) -> str:
        where = f"Ray ({self.address})" if self.kind == "ray" else "local"
        workers = len(self.workers)
        queue = f"{self.counts.get('queued', 0)} queued, {self.counts.get('running', 0)} running"
        return f"Executor: {where}, {workers} worker{'s' if workers != 1 else ''} connected; jobs: {queue}"


def executor_status(store, within_s: float = CONNECTED_S) -> ExecutorStatus:
    """The executor this process uses ($DAAM_STORE_RAY_ADDRESS set: ray) and the workers the store has heard
    from lately (local threads, `daam-store worker`s and Ray actors alike: they all beat in job_worker)."""
    address = ray_address()
    return ExecutorStatus("ray" if address else "local", address, connected_workers(store, within_s), count_jobs(store))


WORKERS_VARIABLE = "DAAM_STORE_RAY_WORKERS"
_EXECUTORS: dict[str, object] = {}
_GUARD = threading.Lock()


def ensure_executor(store_url: str, workers: int | None = None):
    """What drains the queue for the dashboard, started once per process (idempotent):

    - no $DAAM_STORE_RAY_ADDRESS: the local worker thread (a LocalWorker);
    - `local`: a Ray instance on this machine with `workers` actors (default $DAAM_STORE_RAY_WORKERS or 1);
    - `auto` or `ray://...`: `workers` actors only if asked (default $DAAM_STORE_RAY_WORKERS or 0), as the
      cluster's own `daam-store worker --ray auto` normally runs the jobs; None when none is started here.
    """
    from daam_store.jobs.local import ensure_local_worker

    address = ray_address()
    if not address:
        return ensure_local_worker(store_url)
    if workers is None:
        configured = os.environ.get(WORKERS_VARIABLE, "").strip()
        workers = int(configured) if configured.isdigit() else (1 if address == "local" else 0)
    if workers <= 0:
        return None
    with _GUARD:
        if store_url not in _EXECUTORS:
            from daam_store.jobs.ray_executor import RayExecutor

            _EXECUTORS[store_url] = RayExecutor(store_url, address, workers=workers)
        return _EXECUTORS[store_url]
