"""The Ray executor: workers are Ray actors, each keeping its loaded, traced pipelines, draining one queue.

    DAAM_STORE_RAY_ADDRESS (or --ray) = local     start a Ray instance on this machine
                                      = auto      join the cluster running here (`ray start --head` / --address)
                                      = ray://... a remote cluster through Ray Client

Actors write into the shared store whose URL they are given (PostgreSQL for a cluster: a SQLite file is only
reachable from this machine). Each asks for one GPU when the cluster has GPUs, one CPU otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from daam_store.errors import UserError
from daam_store.jobs import claims

ADDRESS_VARIABLE = "DAAM_STORE_RAY_ADDRESS"
# Passed on to the actors' processes: where the store is and how to reach models without the network.
_FORWARDED = ("DAAM_STORE_URL", "DAAM_STORE_CONNECT_TIMEOUT_S", "DAAM_STORE_STATEMENT_TIMEOUT_S", "HF_HUB_OFFLINE",
              "HF_HOME", "TRANSFORMERS_VERBOSITY", "DAAM_STORE_MODEL_ROOTS")  # fmt: skip


def ray_address() -> str | None:
    return os.environ.get(ADDRESS_VARIABLE) or None


def connect(address: str, num_cpus: int | None = None) -> None:
    """ray.init for `address` (local | auto | ray://...), once per process."""
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs the ray package: pip install 'ray>=2.40'") from None
    if ray.is_initialized():
        return
    env = {name: os.environ[name] for name in _FORWARDED if name in os.environ}
    runtime_env = {"env_vars": env} if env else None
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=runtime_env)
        else:
            ray.init(address=address, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UserError(f"cannot reach the Ray cluster at {address!r}: {str(error).splitlines()[0]}") from None


def _actor_class():
    import ray

    @ray.remote(max_concurrency=2)  # run() holds one thread; stop() and pid() answer on the other
    class RayWorker:
        def __init__(self, store_url: str, models, lease_s: float, max_attempts: int):
            import threading

            from daam_store.jobs.claims import new_worker_id

            self.options = {"kind": "ray", "models": models, "lease_s": lease_s, "max_attempts": max_attempts}
            self.store_url, self.id = store_url, new_worker_id("ray")
            self.stopped, self.worker = threading.Event(), None

        def run(self) -> int:
            from daam_store.jobs.worker import Worker
            from daam_store.store import DatabaseUnavailableError

            wait = 0.5
            while self.worker is None:  # a database down when the actor starts: wait for it, as a worker does
                try:
                    self.worker = Worker(self.store_url, worker_id=self.id, **self.options)
                except DatabaseUnavailableError:
                    if self.stopped.wait(wait):
                        return 0
                    wait = min(30.0, wait * 2)
            if self.stopped.is_set():
                return 0
            return len(self.worker.run().outcomes)

        def stop(self) -> None:
            self.stopped.set()
            if self.worker is not None:
                self.worker.stop()

        def pid(self) -> int:
            return os.getpid()

        def worker_id(self) -> str:
            return self.id

    return RayWorker


class RayExecutor:
    kind = "ray"

    def __init__(
        self,
        store_url: str,
        address: str,
        workers: int = 1,
        models: Sequence[str] | None = None,
        lease_s: float = claims.DEFAULT_LEASE_S,
        max_attempts: int = claims.DEFAULT_MAX_ATTEMPTS,
    ):
        if store_url.startswith("sqlite") and address not in ("local", "auto"):
            raise UserError("a remote Ray cluster cannot reach a SQLite file: point DAAM_STORE_URL at PostgreSQL")
        self.store_url, self.address, self.models = store_url, address, list(models) if models else None
        self.lease_s, self.max_attempts = lease_s, max_attempts
        connect(address, num_cpus=max(2, workers) if address == "local" else None)
        self.actors: list = []
        self.runs: list = []
        for _ in range(workers):
            self.add_worker()

    def add_worker(self):
        """One more actor, running at once; a GPU each when the cluster has GPUs."""
        import ray

        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        options = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        actor = _actor_class().options(**options).remote(self.store_url, self.models, self.lease_s, self.max_attempts)
        self.actors.append(actor)
        self.runs.append(actor.run.remote())
        return actor

    def pids(self) -> list[int]:
        import ray

        return ray.get([actor.pid.remote() for actor in self.actors])

    def wait(self) -> None:
        """Until every actor's run ends (after stop(), or when an actor dies)."""
        import ray

        for run in self.runs:
            try:
                ray.get(run)
            except ray.exceptions.RayActorError:  # killed: its job is taken back after the lease
                pass

    def stop(self, timeout_s: float = 60) -> None:
        """Each actor stops after its running job; those that do not within `timeout_s` are killed."""
        import ray

        for actor in self.actors:
            try:
                actor.stop.remote()
            except ray.exceptions.RayActorError:
                pass
        ray.wait(self.runs, num_returns=len(self.runs), timeout=timeout_s)
        for actor in self.actors:
            ray.kill(actor)
        self.actors, self.runs = [], []
