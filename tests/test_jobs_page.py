"""The dashboard on jobs: the Jobs page (everyone's queue; cancel and retry what one may manage), Home's executor
line, and the Generate page following its batch from the store across a reload.

Pages run under AppTest over a temporary SQLite store; team mode is simulated by tests/team_support.py
(`[auth]` secrets and a seeded `st.user`). $DAAM_STORE_WORKERS=0 keeps the frame from starting a worker where
a test wants its jobs to stay where it put them.
"""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest
from team_support import DASHBOARD, dashboard_app, signed_in
from test_dashboard_app import bars, fill_generate_form, generation_titles, run_page, texts, until_finished

from daam_store.access import LOCAL_ACTOR, Actor, PermissionDeniedError, Role, set_role
from daam_store.jobs import JobRequest, cancel, claims, jobs_progress, retry, submit
from daam_store.jobs.worker import Worker
from daam_store.store import open_store

pytestmark = pytest.mark.usefixtures("no_leaked_workers")

JOBS_PAGE = "app_pages/5_Jobs.py"
MEMBER = Actor("member@example.com", Role.MEMBER)
OTHER = Actor("other@example.com", Role.MEMBER)
ADMIN = Actor("admin@example.com", Role.ADMIN)


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("DAAM_STORE_URL", url)
    monkeypatch.setenv("DAAM_STORE_WORKERS", "0")  # no worker unless a test starts one
    monkeypatch.syspath_prepend(str(DASHBOARD))  # pages import `ui`, as under `streamlit run`
    return url


@pytest.fixture
def store(store_url):
    with open_store(store_url) as opened:
        set_role(opened, MEMBER.identity, Role.MEMBER)
        set_role(opened, OTHER.identity, Role.MEMBER)
        set_role(opened, "viewer@example.com", Role.VIEWER)
        set_role(opened, ADMIN.identity, Role.ADMIN)
        yield opened


def jobs_page(email: str | None = None) -> AppTest:
    """The Jobs page as the local user (no sign-in configured) or as `email`, signed in."""
    app = dashboard_app(signed_in(email) if email is not None else None, JOBS_PAGE, timeout=120)
    assert not app.error, [e.value for e in app.error]
    return app


def request(prompt: str = "a red dog", seed: int = 0, model: str = "sd1-tiny", steps: int = 2) -> JobRequest:
    return JobRequest(model=model, prompt=prompt, seed=seed, steps=steps)


def failed_job(store, author: str | None = None) -> int:
    """A job a real worker failed on (a model that does not exist: nothing is loaded)."""
    (job_id,) = submit(store, LOCAL_ACTOR, [request("a cat", seed=2, model="no-such-model")], author=author)
    Worker(store, poll_s=0.1, only_ids=[job_id]).run(until_idle=True)
    assert jobs_progress(store, [job_id]).jobs[0].status == "failed"
    return job_id


def table(app: AppTest) -> list[dict]:
    frame = app.dataframe[0].value
    return frame.to_dict("records")


def manage_form(app: AppTest):
    """The multiselect of the jobs this person may cancel or retry; None when the page offers no form."""
    chosen = [widget for widget in app.multiselect if widget.label == "Jobs to cancel or retry"]
    return chosen[0] if chosen else None


def press(app: AppTest, label: str, jobs: list[int]) -> AppTest:
    manage_form(app).set_value(jobs)
    next(button for button in app.button if button.label == label).click()
    return app.run()


def status_of(store, job_id: int):
    return jobs_progress(store, [job_id]).jobs[0]


def test_the_jobs_page_lists_who_asked_what_status_progress_and_error(store):
    (queued,) = submit(store, LOCAL_ACTOR, [request("a red dog", seed=1, steps=4)], author="ann")
    failed = failed_job(store, author="bob")
    (running,) = submit(store, LOCAL_ACTOR, [request("a **bold** cat", seed=3, steps=4)], sweep="cats")
    assert claims.claim(store, "gpu-worker-1", only_ids=[running]).id == running
    assert claims.report_step(store, running, "gpu-worker-1", 1)

    app = jobs_page()
    assert "Executor: local, 0 workers connected; jobs: 1 queued, 1 running" in texts(app)
    rows = table(app)
    assert [row["job"] for row in rows] == [running, failed, queued]  # newest first
    by_id = {row["job"]: row for row in rows}
    assert {k: by_id[queued][k] for k in ("who", "model", "prompt", "seed", "status", "step", "progress")} == {
        "who": "ann", "model": "sd1-tiny", "prompt": "a red dog", "seed": 1, "status": "queued", "step": "0 of 4",
        "progress": 0.0,
    }  # fmt: skip
    assert by_id[running]["prompt"] == "a **bold** cat"  # user text stays text in the table
    assert (by_id[running]["status"], by_id[running]["step"], by_id[running]["progress"]) == ("running", "1 of 4", 0.25)
    assert (by_id[running]["worker"], by_id[running]["sweep"], by_id[running]["who"]) == ("gpu-worker-1", "cats", "")
    assert (by_id[failed]["status"], by_id[failed]["who"], by_id[failed]["progress"]) == ("failed", "bob", 1.0)
    assert by_id[failed]["error"].startswith("unknown model 'no-such-model'") and "\n" not in by_id[failed]["error"]
    assert by_id[queued]["error"] == "" and by_id[queued]["submitted"].startswith(str(time.gmtime().tm_year))

    next(widget for widget in app.multiselect if widget.label == "Status").set_value(["failed"])
    app.run()
    assert not app.exception and [row["job"] for row in table(app)] == [failed]
    next(widget for widget in app.multiselect if widget.label == "Status").set_value(["done"])
    app.run()
    assert not app.dataframe and "No jobs match." in [element.value for element in app.info]


def test_a_member_cancels_their_own_queued_job_and_is_not_offered_anyone_elses(store):
    (mine,) = submit(store, MEMBER, [request(seed=1)])
    (theirs,) = submit(store, OTHER, [request(seed=2)])
    app = jobs_page(MEMBER.identity)
    assert {row["job"]: row["who"] for row in table(app)} == {mine: MEMBER.identity, theirs: OTHER.identity}
    assert manage_form(app).options == [str(mine)]  # everyone's queue is listed; only one's own is offered

    app = press(app, "Cancel", [mine])
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert [element.value for element in app.success] == ["1 of 1 cancelled."]
    cancelled = status_of(store, mine)
    assert (cancelled.status, cancelled.error) == ("cancelled", f"cancelled by {MEMBER.identity}")
    assert status_of(store, theirs).status == "queued"
    # What the page does not offer, the library refuses too (the check that counts is on the server).
    with pytest.raises(PermissionDeniedError, match="only their own"):
        cancel(store, MEMBER, [theirs])
    with pytest.raises(PermissionDeniedError, match="only their own"):
        retry(store, MEMBER, [theirs, mine])
    assert status_of(store, theirs).status == "queued" and status_of(store, mine).status == "cancelled"

    viewer = jobs_page("viewer@example.com")  # browses the queue, manages nothing
    assert len(table(viewer)) == 2 and manage_form(viewer) is None


def test_an_admin_cancels_anyones_jobs(store):
    (members,) = submit(store, MEMBER, [request(seed=1)])
    (others,) = submit(store, OTHER, [request(seed=2)])
    app = jobs_page(ADMIN.identity)
    assert sorted(manage_form(app).options) == sorted([str(members), str(others)])
    app = press(app, "Cancel", [members, others])
    assert [element.value for element in app.success] == ["2 of 2 cancelled."]
    for job_id in (members, others):
        job = status_of(store, job_id)
        assert (job.status, job.error) == ("cancelled", f"cancelled by {ADMIN.identity}")


def test_retry_queues_a_failed_job_again_and_leaves_the_others(store):
    failed = failed_job(store)
    (queued,) = submit(store, LOCAL_ACTOR, [request(seed=5)])
    app = jobs_page()  # the local user is admin of their own dashboard
    assert sorted(manage_form(app).options) == sorted([str(failed), str(queued)])

    next(button for button in app.button if button.label == "Retry").click()
    app.run()
    assert [shown_error.value for shown_error in app.error] == ["choose the jobs first"]

    app = press(app, "Retry", [failed, queued])
    assert not app.error, [e.value for e in app.error]
    assert [element.value for element in app.success] == ["1 of 2 queued again."]  # a queued job is not retried
    job = status_of(store, failed)
    assert (job.status, job.error, job.attempts, job.worker) == ("queued", None, 0, None)
    app.run()  # the table of the run that retried was read before it (its fragment re-reads it every 2 s)
    assert {row["job"]: row["status"] for row in table(app)} == {failed: "queued", queued: "queued"}


def home_lines(app: AppTest) -> list[str]:
    return [line for line in texts(app) if line.startswith("Executor:")]


def test_home_says_the_executor_is_local_and_how_many_workers_are_connected(store, store_url, monkeypatch):
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=120).run()
    assert not app.exception
    assert home_lines(app) == ["Executor: local, 0 workers connected; jobs: 0 queued, 0 running"]  # WORKERS=0

    monkeypatch.setenv("DAAM_STORE_WORKERS", "1")  # the frame starts its worker thread, once per process
    elsewhere = Worker(store_url, kind="cli", poll_s=0.2)  # and a `daam-store worker` runs beside it
    thread = threading.Thread(target=elsewhere.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while home_lines(app) != ["Executor: local, 2 workers connected; jobs: 0 queued, 0 running"]:
            assert time.monotonic() < deadline, home_lines(app)
            time.sleep(0.3)
            app.run()
            assert not app.exception, [e.value for e in app.exception]
    finally:
        elsewhere.stop()
        thread.join(60)
    assert not thread.is_alive()
    app.run()
    assert home_lines(app) == ["Executor: local, 1 worker connected; jobs: 0 queued, 0 running"]  # it said goodbye


def test_the_generate_page_finds_its_batch_again_after_a_reload(store_url, monkeypatch, tiny_model_dir):
    """The batch's job ids are in the URL and its progress in the store: a fresh session with the same link
    (a reload, another tab) shows the same batch, queued, then running to the end, then with its results."""
    app = fill_generate_form(run_page("app_pages/1_Generate.py"), str(tiny_model_dir), "a dog", "0-1", steps=2)
    assert bars(app) == ["Batch: 0 of 2 finished (2 queued)"]
    link = {"job": app.query_params["job"]}
    assert len(link["job"]) == 2

    reloaded = run_page("app_pages/1_Generate.py", link)
    assert not reloaded.exception and not reloaded.error
    assert bars(reloaded) == ["Batch: 0 of 2 finished (2 queued)"] and generation_titles(reloaded) == []

    monkeypatch.setenv("DAAM_STORE_WORKERS", "1")  # a worker starts with the next run of the frame
    reloaded = until_finished(reloaded)
    assert bars(reloaded) == ["Batch: 2 of 2 finished (2 done)"]
    assert generation_titles(reloaded) == ["Generation #1 · seed 0", "Generation #2 · seed 1"]

    again = run_page("app_pages/1_Generate.py", link)  # and once more, finished: the results at once
    assert not again.exception and not again.error
    assert bars(again) == ["Batch: 2 of 2 finished (2 done)"]
    assert generation_titles(again) == generation_titles(reloaded)
    assert texts(again).count("dog") == 2 and len(again.get("image")) == 2 * (1 + 2) + 1
