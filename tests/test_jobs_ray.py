"""The Ray executor against a real local Ray instance (2 CPUs) and sd1-tiny, on SQLite and PostgreSQL:
a worker killed mid-job (kill -9) loses nothing and duplicates nothing; a running job is cancelled."""

import os
import signal
import time

import pytest
from sqlalchemy import func, select

from daam_store.access import LOCAL_ACTOR
from daam_store.jobs.grid import submit_grid
from daam_store.jobs.queue import JobRequest, cancel, jobs_progress, submit
from daam_store.jobs.worker import wait_for
from daam_store.store import open_store
from daam_store.store.schema import Generation, Job
from daam_store.sweep import SweepSettings

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    from daam_store.jobs.ray_executor import connect

    connect("local", num_cpus=2)  # passes HF_HUB_OFFLINE (set by conftest) on to the actors
    yield
    ray.shutdown()


def running_job(store, ids, timeout_s=120.0) -> Job:
    """The first of `ids` a worker has taken at least one step into."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with store.session() as session:
            job = session.scalar(select(Job).where(Job.id.in_(ids), Job.status == "running", Job.step >= 1))
        if job is not None:
            return job
        time.sleep(0.05)
    raise AssertionError("no job started")


def test_ray_workers_drain_a_sweep_when_one_is_killed_mid_job_and_cancel_stops_one(ray_instance, store_url):
    from daam_store.jobs.ray_executor import RayExecutor

    with open_store(store_url) as store:
        ids = submit_grid(store, LOCAL_ACTOR, ["a red dog", "a cat"], [0, 1], ["sd1-tiny"], SweepSettings(steps=12),
                          sweep="ray")  # fmt: skip
        executor = RayExecutor(store_url, "local", workers=2, lease_s=2)
        try:
            victim = running_job(store, ids)
            pid = int(victim.worker.split(":")[1])  # worker ids are kind@host:pid:random
            assert pid in executor.pids()
            os.kill(pid, signal.SIGKILL)
            progress = wait_for(store, ids, poll_s=0.2, timeout_s=180)

            (long_job,) = submit(store, LOCAL_ACTOR, [JobRequest("sd1-tiny", "a long one", steps=400)])
            running_job(store, [long_job])
            assert cancel(store, LOCAL_ACTOR, [long_job]) == [long_job]
            wait_for(store, [long_job], poll_s=0.2, timeout_s=60)
            time.sleep(1)  # the worker notices at its next step; nothing may land after the cancel either
        finally:
            executor.stop(timeout_s=30)
        assert [job.status for job in progress.jobs] == ["done"] * 4
        attempts = {job.id: job.attempts for job in progress.jobs}
        assert attempts.pop(victim.id) == 2 and set(attempts.values()) == {1}
        assert len(set(progress.generation_ids)) == 4
        cancelled = jobs_progress(store, [long_job]).jobs[0]
        assert cancelled.status == "cancelled" and cancelled.generation_id is None and cancelled.step < 400
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(Generation)) == 4


def test_sweep_command_with_ray_submits_waits_and_resubmitting_adds_nothing(ray_instance, tmp_path, capsys):
    from daam_store.cli import store_main

    prompts = tmp_path / "pets.txt"
    prompts.write_text("a red dog\na cat\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    argv = ["sweep", "--prompts", str(prompts), "--seeds", "0-1", "--steps", "2", "--db", url, "--ray", "local"]
    assert store_main([*argv, "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "sweep pets: 4 jobs submitted" in captured.err and "4 of 4 finished (4 done)" in captured.err
    assert captured.out.endswith("sweep pets: 4 generations done; tagged sweep:pets\n")
    assert store_main([*argv, "--workers", "0"]) == 0  # all done already: nothing to wait for, no worker needed
    with open_store(url) as store, store.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 4
        assert session.scalar(select(func.count()).select_from(Generation)) == 4
