"""Generation jobs: a durable queue in the store, drained by workers (a local thread, or Ray actors).

For a page or a script (none of these import torch; every action checks the actor's role itself):

    ids = submit(store, actor, [JobRequest("sd1-tiny", "a red dog", seed=s, steps=20) for s in range(4)])
    ids = submit_grid(store, actor, prompts, seeds, models, settings, sweep="cats")   # a named sweep
    jobs_progress(store, ids)             # JobsProgress: per job (JobView) and overall (.fraction, .summary())
    list_jobs(store, status="queued", author=actor.identity, limit=100)               # the Jobs page
    cancel(store, actor, ids); retry(store, actor, ids)
    executor_status(store)                # ExecutorStatus: kind (local | ray) and the workers connected
    ensure_executor(store_url)            # the dashboard's: the local worker thread, or Ray actors when
                                          # $DAAM_STORE_RAY_ADDRESS is set (started once per process)

Workers: `Worker(store).run()` (daam-store worker), `RayExecutor(url, "auto", workers=4)` (Ray actors).
A job's life: queued -> running -> done | failed | cancelled; see claims.py for how it is claimed and leased.
"""

from __future__ import annotations

from daam_store._lazy import lazy_exports

_EXPORTS = {
    "JobRequest": "daam_store.jobs.queue",
    "JobView": "daam_store.jobs.queue",
    "JobsProgress": "daam_store.jobs.queue",
    "submit": "daam_store.jobs.queue",
    "list_jobs": "daam_store.jobs.queue",
    "count_jobs": "daam_store.jobs.queue",
    "jobs_progress": "daam_store.jobs.queue",
    "sweep_progress": "daam_store.jobs.queue",
    "cancel": "daam_store.jobs.queue",
    "retry": "daam_store.jobs.queue",
    "submit_grid": "daam_store.jobs.grid",
    "grid_requests": "daam_store.jobs.grid",
    "run_grid": "daam_store.jobs.grid",
    "ExecutorStatus": "daam_store.jobs.status",
    "executor_status": "daam_store.jobs.status",
    "ensure_executor": "daam_store.jobs.status",
    "connected_workers": "daam_store.jobs.claims",
    "Worker": "daam_store.jobs.worker",
    "wait_for": "daam_store.jobs.worker",
    "LocalWorker": "daam_store.jobs.local",
    "ensure_local_worker": "daam_store.jobs.local",
    "RayExecutor": "daam_store.jobs.ray_executor",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
