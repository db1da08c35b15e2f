"""Generation jobs in the store: submit, dedupe, claim, lease, cancel, retry, local worker, CLI (no Ray here)."""

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from daam_store.access import LOCAL_ACTOR, Actor, PermissionDeniedError, Role
from daam_store.cli import store_main
from daam_store.jobs import claims
from daam_store.jobs.grid import submit_grid
from daam_store.jobs.queue import JobRequest, cancel, jobs_progress, list_jobs, retry, submit, sweep_progress
from daam_store.jobs.worker import Worker, wait_for
from daam_store.store import DatabaseUnavailableError, open_store
from daam_store.store.schema import Generation, Job
from daam_store.sweep import SweepSettings

ANN = Actor("ann@example.com", Role.MEMBER)
BOB = Actor("bob@example.com", Role.MEMBER)
VIEWER = Actor("vic@example.com", Role.VIEWER)
ADMIN = Actor("ada@example.com", Role.ADMIN)


def request(prompt="a red dog", seed=0, steps=2, model="sd1-tiny", **kwargs) -> JobRequest:
    return JobRequest(model=model, prompt=prompt, seed=seed, steps=steps, **kwargs)


def count(store, table=Generation) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(table))


def job_row(store, job_id):
    with store.session() as session:
        return session.get(Job, job_id)


@pytest.fixture
def store(store_url):
    with open_store(store_url) as opened:
        yield opened


def test_a_sweep_submitted_twice_at_once_has_each_job_once_and_each_persons_sweep_is_their_own(store, store_url):
    grid = (["a red dog", "a cat"], [0, 1, 2], ["sd1-tiny", "sd2-tiny"])
    results: dict[str, list[int]] = {}

    def submitter(name: str, actor: Actor) -> None:
        with open_store(store_url) as own:  # two processes' stores: their own engines and connections
            results[name] = submit_grid(own, actor, *grid, SweepSettings(steps=2), sweep="grid")

    threads = [threading.Thread(target=submitter, args=(tab, ANN)) for tab in ("tab 1", "tab 2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["tab 1"] == results["tab 2"] and len(set(results["tab 1"])) == 12
    assert submit_grid(store, ANN, *grid, SweepSettings(steps=2), sweep="grid") == results["tab 1"]
    assert count(store, Job) == 12
    # Another person's sweep of the same name is theirs: nobody resumes or waits on someone else's jobs.
    bobs = submit_grid(store, BOB, *grid, SweepSettings(steps=2), sweep="grid")
    assert not set(bobs) & set(results["tab 1"]) and count(store, Job) == 24
    assert {job.author for job in sweep_progress(store, "grid", BOB.identity).jobs} == {BOB.identity}
    # Other settings are other jobs; jobs without a sweep are never merged.
    assert len(set(submit_grid(store, ANN, *grid, SweepSettings(steps=3), sweep="grid"))) == 12
    assert count(store, Job) == 36
    submit(store, ANN, [request()])
    submit(store, ANN, [request()])
    assert count(store, Job) == 38
    jobs = list_jobs(store, sweep="grid", limit=100)
    assert {job.author for job in jobs} == {ANN.identity, BOB.identity} and {job.status for job in jobs} == {"queued"}


def test_a_tag_or_author_the_store_cannot_keep_is_refused_on_submit_not_after_generating(store):
    from daam_store.errors import UserError

    with pytest.raises(UserError, match="a tag has at most 100"):
        submit(store, LOCAL_ACTOR, [request(tags=("t" * 101,))])
    with pytest.raises(UserError, match="at most 200"):
        submit(store, LOCAL_ACTOR, [request()], author="a" * 201)
    assert count(store, Job) == 0


def test_roles_decide_who_submits_cancels_and_retries(store):
    with pytest.raises(PermissionDeniedError, match="may not generate"):
        submit(store, VIEWER, [request()])
    ann_ids = submit(store, ANN, [request(seed=1), request(seed=2)], author="typed name is ignored in team mode")
    assert {job.author for job in jobs_progress(store, ann_ids).jobs} == {ANN.identity}
    with pytest.raises(PermissionDeniedError, match="only their own"):
        cancel(store, BOB, ann_ids[:1])
    assert cancel(store, ANN, ann_ids[:1]) == ann_ids[:1]
    assert cancel(store, ADMIN, ann_ids) == ann_ids[1:]  # the first is cancelled already
    with pytest.raises(PermissionDeniedError):
        retry(store, BOB, ann_ids)
    assert retry(store, ANN, ann_ids) == ann_ids
    assert [job.status for job in jobs_progress(store, ann_ids).jobs] == ["queued", "queued"]
    assert [job.author for job in list_jobs(store, author=ANN.identity)] == [ANN.identity] * 2
    assert list_jobs(store, author=BOB.identity) == []


def test_claims_prefer_a_loaded_model_and_take_back_jobs_of_lost_workers(store):
    ids = submit(store, LOCAL_ACTOR, [request(model="sd1-tiny"), request(model="sd2-tiny"), request(seed=5)])
    first = claims.claim(store, "w1", held=["sd2-tiny"], lease_s=1, max_attempts=2)
    assert first.id == ids[1] and first.attempts == 1
    assert claims.claim(store, "w2", only_models=["sd2-tiny"], lease_s=1, max_attempts=2) is None
    second = claims.claim(store, "w2", only_ids=[ids[2]], lease_s=1, max_attempts=2)
    assert second.id == ids[2]
    assert claims.report_step(store, first.id, "w1", 1) and not claims.report_step(store, first.id, "w2", 1)

    def age(job_id: int) -> None:  # its worker stopped beating long ago
        with store.write_session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=datetime(2020, 1, 1, tzinfo=UTC)))

    age(first.id)
    again = claims.claim(store, "w3", held=["sd2-tiny"], lease_s=1, max_attempts=2)
    assert again.id == first.id and again.attempts == 2
    assert not claims.report_step(store, first.id, "w1", 2)  # the lost worker must stop: it is not its job
    age(first.id)
    claims.claim(store, "w4", only_ids=[], lease_s=1, max_attempts=2)  # looks, takes nothing, cleans up
    lost = job_row(store, first.id)
    assert lost.status == "failed" and lost.error == "its worker stopped answering 2 times"


def test_a_job_whose_generation_is_stored_is_done_at_once(store):
    ids = submit(store, LOCAL_ACTOR, [request(seed=3)], sweep="first")
    Worker(store, poll_s=0.1).run(until_idle=True)
    done = jobs_progress(store, ids).jobs[0]
    assert done.status == "done" and done.generation_id is not None and done.step == 2
    again = submit(store, LOCAL_ACTOR, [request(seed=3), request(seed=3, mid_block=True)], sweep="second")
    found, other_rule = jobs_progress(store, again).jobs
    assert (found.status, found.generation_id, found.attempts) == ("done", done.generation_id, 0)
    assert other_rule.status == "queued"  # maps of one heat-map rule never stand in for the other's
    with store.session() as session:
        tags = set(session.scalars(select(Job.tags).where(Job.id == found.id)).one())
    assert tags == {"sweep:second"}
    assert count(store) == 1


def test_cancelling_a_running_job_stops_it_at_a_step_and_stores_nothing(store):
    job_id, next_id = submit(store, LOCAL_ACTOR, [request(steps=200), request(seed=7)])
    worker = Worker(store, poll_s=0.1)
    thread = threading.Thread(target=worker.run, kwargs={"until_idle": True})
    thread.start()
    deadline = time.monotonic() + 60
    while job_row(store, job_id).step < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancel(store, LOCAL_ACTOR, [job_id]) == [job_id]
    thread.join(60)
    job = job_row(store, job_id)
    assert not thread.is_alive() and job.status == "cancelled" and job.error == "cancelled by the local user"
    assert job.step < 200 and job.generation_id is None
    # The same worker went on with the next job on the same pipeline: a stopped generation does not break it.
    assert job_row(store, next_id).status == "done" and count(store) == 1
    assert retry(store, LOCAL_ACTOR, [job_id]) == [job_id] and job_row(store, job_id).status == "queued"


def test_a_new_worker_picks_up_what_a_dead_one_left(store_url):
    with open_store(store_url) as store:
        ids = submit(store, LOCAL_ACTOR, [request(seed=s) for s in range(3)], sweep="left")
        claims.claim(store, "dead-worker", lease_s=1)  # then the process died: no heartbeat, no finish
    time.sleep(1.2)
    with open_store(store_url) as restarted:
        report = Worker(restarted, lease_s=1, poll_s=0.1).run(until_idle=True)
        progress = jobs_progress(restarted, ids)
        assert [job.status for job in progress.jobs] == ["done"] * 3 and len(report.outcomes) == 3
        assert [job.attempts for job in progress.jobs] == [2, 1, 1]
        assert len(set(progress.generation_ids)) == 3 == count(restarted)


def test_a_worker_waits_for_the_database_and_keeps_its_job(store, monkeypatch):
    ids = submit(store, LOCAL_ACTOR, [request(seed=9)])
    real_claim, failures = claims.claim, []

    def flaky_claim(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise DatabaseUnavailableError("cannot open database: connection refused")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(claims, "claim", flaky_claim)
    Worker(store, poll_s=0.1).run(until_idle=True)
    assert len(failures) == 2 and jobs_progress(store, ids).jobs[0].status == "done"


def test_a_failing_job_has_its_one_line_error_and_the_worker_goes_on(store):
    ids = submit(store, LOCAL_ACTOR, [request(model="no-such-model"), request(seed=4)])
    report = Worker(store, poll_s=0.1).run(until_idle=True)
    failed, done = jobs_progress(store, ids).jobs
    assert failed.status == "failed" and failed.error.startswith("unknown model 'no-such-model'")
    assert "\n" not in failed.error and done.status == "done" and report.count("failed") == 1


def test_the_local_worker_starts_once_drains_the_queue_and_is_counted(tmp_path):
    from daam_store.jobs import executor_status
    from daam_store.jobs.local import ensure_local_worker, stop_local_workers

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        ids = submit(store, LOCAL_ACTOR, [request(seed=s) for s in (1, 2)])
        worker = ensure_local_worker(url, poll_s=0.1)
        try:
            assert ensure_local_worker(url) is worker
            progress = wait_for(store, ids, poll_s=0.1, timeout_s=120)
            assert [job.status for job in progress.jobs] == ["done", "done"]
            status = executor_status(store)
            assert status.kind == "local" and [w.id for w in status.workers] == [worker.worker.id]
            assert "1 worker connected" in status.line()
        finally:
            stop_local_workers(timeout_s=30)
        assert not worker.alive and executor_status(store).workers == []


def test_jobs_command_lists_cancels_and_retries_in_one_line_each(tmp_path, capsys):
    import json

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        ids = submit(store, LOCAL_ACTOR, [request(seed=s) for s in (1, 2)], sweep="cli")
    assert store_main(["jobs", "--db", url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["id"] for row in rows] == ids[::-1] and {row["status"] for row in rows} == {"queued"}
    assert store_main(["jobs", "--db", url, "cancel", str(ids[0])]) == 0
    assert capsys.readouterr().out == "1 job cancelled\n"
    assert store_main(["jobs", "--db", url, "--status", "cancelled"]) == 0
    assert "cancelled by the local user" in capsys.readouterr().out
    assert store_main(["jobs", "retry", str(ids[0]), "--db", url]) == 0
    assert capsys.readouterr().out == "1 job queued again\n"
    assert store_main(["jobs", "--db", url, "cancel", "999"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no job 999") and error.count("\n") == 1
    assert store_main(["worker", "--db", url, "--until-idle"]) == 0
    with open_store(url) as store:
        assert [job.status for job in jobs_progress(store, ids).jobs] == ["done", "done"]


def test_the_generate_page_submits_a_batch_and_a_sweep_and_shows_results_as_they_land(tmp_path):
    from daam_store.store import queries
    from daam_store.views.generate import BatchRequest, SweepGrid, landed_results, submit_batch, submit_sweep

    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        batch = BatchRequest(prompts=("a red dog",), seeds=(1, 2), steps=2, author="ann", tags=("pets",))
        ids = submit_batch(store, LOCAL_ACTOR, batch, "sd1-tiny")
        grid = SweepGrid.parse("a red dog", "1-3", ["sd1-tiny"])
        sweep_ids = submit_sweep(store, LOCAL_ACTOR, grid, SweepSettings(steps=2), "page")
        assert landed_results(store, jobs_progress(store, ids), set()) == []
        Worker(store, poll_s=0.1).run(until_idle=True)
        progress = jobs_progress(store, ids)
        shown = landed_results(store, progress, set())
        assert [result.experiment.seed for result in shown] == [1, 2] and progress.fraction == 1.0
        assert shown[0].experiment.layer_heat_maps is None  # light, for display
        assert landed_results(store, progress, {r.generation_id for r in shown}) == []
        sweep = jobs_progress(store, sweep_ids)
        assert sweep.summary() == "3 of 3 finished (3 done)"
        # Seeds 1 and 2 were the batch's: the sweep generated seed 3 only and tagged all three.
        assert set(progress.generation_ids) < set(sweep.generation_ids) and count(store) == 3
        with store.session() as session:
            assert queries.count_generations(session, queries.GenerationFilter(tag="sweep:page")) == 3
            assert queries.count_generations(session, queries.GenerationFilter(tag="pets")) == 2


@pytest.mark.postgres
def test_a_worker_rides_out_a_postgresql_restart_mid_job_without_dropping_or_repeating_a_job():
    """The server stops (immediate shutdown, as a crash) while a job runs and comes back: the worker waits and
    retries, every job ends done once, on its first attempt, and no generation is stored twice."""
    from daam_store.store.testing import PostgresServer

    # Durable (fsync and synchronous commits on): an immediate stop is a crash, and what was committed must stay.
    server = PostgresServer.start(durable=True)
    data = str(server.root / "data")
    try:
        url = server.create_database("restart")
        with open_store(url) as store:
            ids = submit(store, LOCAL_ACTOR, [request(seed=s, steps=40) for s in range(3)])
            worker = Worker(url, poll_s=0.1)
            thread = threading.Thread(target=worker.run, kwargs={"until_idle": True})
            thread.start()
            deadline = time.monotonic() + 60
            while job_row(store, ids[0]).step < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            server._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
            stopped_at = datetime.now(UTC)
            time.sleep(2)  # steps go on meanwhile; their progress writes fail
            options = f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 -c max_connections=60"
            server._run("pg_ctl", "-D", data, "-o", options, "-l", str(server.root / "server.log"), "-w", "start")
            thread.join(120)
            assert not thread.is_alive()
            progress = jobs_progress(store, ids)
            assert [(job.status, job.attempts) for job in progress.jobs] == [("done", 1)] * 3
            assert progress.jobs[0].started_at < stopped_at < progress.jobs[0].finished_at  # it ran through it
            assert len(set(progress.generation_ids)) == 3 == count(store)
    finally:
        server.stop()
