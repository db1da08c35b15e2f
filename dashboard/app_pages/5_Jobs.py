"""Jobs: everyone's queue (who asked, what, status, progress, worker, error); cancel or retry your own jobs."""

import jobs_ui
import streamlit as st
import ui

from daam_store.access import Permission
from daam_store.errors import UserError
from daam_store.jobs import cancel, executor_status, list_jobs, retry
from daam_store.store.schema import JOB_STATUSES
from daam_store.views.jobs import LIST_LIMIT, manageable

actor = ui.require(Permission.BROWSE)
store = ui.get_store()

st.title("Jobs")
st.write(
    "Every generation asked for on the Generate page, by `daam-store sweep` or by a script runs as a job: "
    "queued, then run by a worker, then done (with its generation), failed (with the reason) or cancelled."
)

status = ui.or_stop(executor_status, store)
st.text(status.line())

filter_column, mine_column = st.columns([3, 1])
statuses = filter_column.multiselect("Status", JOB_STATUSES, placeholder="any status")
only_mine = mine_column.checkbox("Only mine", disabled=not actor.team_mode, help="Jobs you submitted (team mode)")
author = actor.identity if only_mine and actor.team_mode else None


def manage_form(jobs) -> None:
    """Cancel or retry, offered for the listed jobs this person may manage (checked again by cancel/retry)."""
    ids = manageable(jobs, actor)
    if not ids:
        return
    with st.form("manage_jobs"):
        chosen = st.multiselect("Jobs to cancel or retry", ids, help="Only jobs you may manage are offered.")
        cancel_column, retry_column = st.columns(2)
        cancelled = cancel_column.form_submit_button("Cancel")
        retried = retry_column.form_submit_button("Retry")
    if cancelled or retried:
        with ui.errors_as_messages():
            if not chosen:
                raise UserError("choose the jobs first")
            done = (cancel if cancelled else retry)(store, actor, chosen)
            verb = "cancelled" if cancelled else "queued again"
            st.success(f"{len(done)} of {len(chosen)} {verb}.")
            st.caption("Finished jobs are not cancelled; only failed or cancelled ones are retried.")


@st.fragment(run_every=2.0)
def queue() -> None:
    ui.recheck(store, Permission.BROWSE)
    jobs = ui.or_stop(list_jobs, store, statuses or None, author, None, LIST_LIMIT)
    if not jobs:
        st.info("No jobs match.", icon="ℹ️")
        return
    st.caption(f"The newest {len(jobs)} (refreshed every 2 s; `daam-store jobs` lists them all).")
    jobs_ui.job_table(jobs)


# The form is handled before the table is read, so the table shows what a click just changed.
table = st.container()
manage_form(ui.or_stop(list_jobs, store, statuses or None, author, None, LIST_LIMIT))
with table:
    queue()
