"""The local executor: one worker thread in this process (the dashboard's), started once, draining the queue.

It runs outside any page's script run, so closing a browser tab stops nothing, and two people's sweeps
queue behind each other instead of waiting on one lock in their pages. Jobs a previous process left behind
(queued, or running when it died) are picked up by the next worker that looks.
"""

from __future__ import annotations

import logging
import threading

from daam_store.jobs import claims
from daam_store.jobs.worker import Worker

log = logging.getLogger(__name__)
_STARTED: dict[str, LocalWorker] = {}
_GUARD = threading.Lock()


class LocalWorker:
    kind = "local"

    def __init__(self, store_url: str, lease_s: float = claims.DEFAULT_LEASE_S, **options):
        self.store_url = store_url
        self.worker = Worker(store_url, kind="local", lease_s=lease_s, **options)
        self.thread = threading.Thread(target=self._run, name="daam-store local worker", daemon=True)
        self.error: str | None = None  # why the thread ended, when it ended on its own

    def start(self) -> LocalWorker:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.worker.run()
        except Exception as error:  # the next ensure_local_worker starts a new one; the cause goes to the log
            self.error = f"{type(error).__name__}: {error}"
            log.error("the local job worker stopped", exc_info=error)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop after the running job; wait up to `timeout_s` for it."""
        self.worker.stop()
        self.thread.join(timeout_s)


def ensure_local_worker(store_url: str, **options) -> LocalWorker:
    """The local worker of this process for `store_url`, started on the first call (idempotent, thread-safe;
    a worker whose thread died is replaced). The dashboard's frame calls it on every run, so a dead worker is
    replaced at the next click."""
    with _GUARD:
        worker = _STARTED.get(store_url)
        if worker is None or not worker.alive:
            worker = _STARTED[store_url] = LocalWorker(store_url, **options).start()
        return worker


def stop_local_workers(timeout_s: float | None = None) -> None:
    with _GUARD:
        workers = list(_STARTED.values())
        _STARTED.clear()
    for worker in workers:
        worker.stop(timeout_s)
