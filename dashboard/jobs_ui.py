"""Following jobs on a page: the batch or sweep a page submitted, its progress read from the store.

What a page follows is in its URL (`?job=12&job=13`, `?sweep=name`), so a reload or a shared link shows the same
jobs; the store is the only source of their progress, so other people's tabs see it too. While jobs are
unfinished a fragment re-reads them every second; when one finishes the whole page runs again once, to show
its result.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
import ui

from daam_store.access import Permission
from daam_store.url_params import pick_ids
from daam_store.views.common import escape_markdown
from daam_store.views.generate import MAX_BATCH

POLL_S = 1.0
MAX_ERRORS_SHOWN = 3
JOB, SWEEP = "job", "sweep"


def remember_batch(ids: list[int]) -> None:
    st.query_params[JOB] = [str(job_id) for job_id in ids]
    st.session_state.pop("generate_landed", None)


def batch_ids() -> list[int]:
    return pick_ids(st.query_params.get_all(JOB), MAX_BATCH)


def remember_sweep(name: str) -> None:
    st.query_params[SWEEP] = name


def followed_sweep() -> str | None:
    return st.query_params.get(SWEEP) or None


def progress_of(store, ids: list[int]):
    from daam_store.jobs import jobs_progress

    return jobs_progress(store, ids)


def sweep_of(store, name: str):
    from daam_store.jobs import sweep_progress

    actor = ui.current_actor()
    return sweep_progress(store, name, actor.identity if actor.team_mode else None)


def follow(store, label: str, load: Callable[[], object]):
    """The progress bar and job table of the jobs `load()` returns; live until they are all finished. The
    progress as this run read it."""
    progress = ui.or_stop(load)
    if progress.all_finished:
        show_progress(label, progress)
        return progress
    finished_before = progress.finished

    @st.fragment(run_every=POLL_S)
    def live() -> None:
        ui.recheck(store, Permission.BROWSE)
        now = ui.or_stop(load)
        show_progress(label, now)
        if now.finished != finished_before:  # a result landed: the page shows it
            st.rerun()

    live()
    return progress


def show_progress(label: str, progress) -> None:
    if not progress.jobs:
        st.info(escape_markdown(f"{label}: no such jobs in the store (a link from another database?)"), icon="ℹ️")
        return
    st.progress(progress.fraction, text=escape_markdown(f"{label}: {progress.summary()}"))
    failed = [job for job in progress.jobs if job.status == "failed"]
    for job in failed[:MAX_ERRORS_SHOWN]:
        st.error(escape_markdown(f"Job {job.id} ({job.prompt!r}, seed {job.seed}) failed: {job.error}"), icon="⚠️")
    if len(failed) > MAX_ERRORS_SHOWN:
        st.error(f"… and {len(failed) - MAX_ERRORS_SHOWN} more failed jobs: see the table below.", icon="⚠️")
    with st.expander(
        escape_markdown(f"{label}: the jobs"), expanded=any(job.status == "failed" for job in progress.jobs)
    ):
        job_table(progress.jobs)


def job_table(jobs) -> None:
    from daam_store.views.jobs import job_rows

    st.dataframe(
        job_rows(jobs),
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )
