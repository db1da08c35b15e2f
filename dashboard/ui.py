"""Streamlit glue shared by the pages: the frame (page config, sidebar), cached store and models, and errors
shown as one line.

Everything that holds logic lives in `daam_store.views`; this module only knows Streamlit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from daam_store.access import LOCAL_ACTOR, Actor, Permission, actor_for, record_visit
from daam_store.errors import UserError, first_line, unexpected_cause
from daam_store.views.common import escape_markdown

log = logging.getLogger("daam_store.dashboard")


def setup_page(title: str) -> None:
    st.set_page_config(page_title=f"{title} · daam-store", page_icon="🔥", layout="wide")


def show_sidebar(store, actor: Actor) -> None:
    """What every page shows beside its navigation: who is signed in, and which database this is."""
    with st.sidebar:
        if actor.team_mode:
            st.caption("Signed in as")
            st.text(f"{actor.identity} ({actor.role})")  # shown as text: a provider's claims are user text
            st.button("Sign out", on_click=st.logout)
        if actor.may(Permission.BROWSE):  # someone with no role learns nothing of the store
            st.caption("Database")
            st.text(store.url)  # passwords masked by the store; shown as text, never Markdown


# -- sign-in (team mode) ------------------------------------------------------------------------------------

_ACTOR_KEY = "_daam_store_actor"
IDENTITY_CLAIM_VARIABLE = "DAAM_STORE_IDENTITY_CLAIM"


def team_mode() -> bool:
    """Sign-in is configured: `.streamlit/secrets.toml` has an [auth] section (see the README's Team deployment)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False
    except OSError as error:  # fail closed: an unreadable file may hold a team's sign-in settings
        raise UserError(
            f"cannot read Streamlit's secrets file {error.filename} ({error.strerror}): team mode needs it; "
            "make it readable by the dashboard's user, or remove it for local use"
        ) from None


def signed_in_actor(store) -> Actor | None:
    """The person using this page: LOCAL_ACTOR with no sign-in configured; in team mode the signed-in identity
    with their role as the store has it now, or None when nobody is signed in. The frame calls it once a run."""
    if not or_stop(team_mode):
        actor = LOCAL_ACTOR
    elif not st.user.is_logged_in:
        actor = None
    else:
        actor = or_stop(actor_for, store, or_stop(_identity_claim), str(st.user.get("name") or ""))
        if not st.session_state.get(f"{_ACTOR_KEY}_visited"):
            st.session_state[f"{_ACTOR_KEY}_visited"] = True
            or_stop(record_visit, store, actor.identity)
    st.session_state[_ACTOR_KEY] = actor
    return actor


IDENTITY_CLAIMS = ("verified-email", "email", "sub")


def _identity_claim() -> str:
    """Who signed in, as $DAAM_STORE_IDENTITY_CLAIM says to read the provider's claims:

    - `verified-email` (default): the e-mail address when the provider says it is verified, else `sub:<id>`;
    - `email`: the address unless the provider says it is unverified, for providers that send no
      `email_verified` claim (Microsoft Entra) and whose users cannot edit their address (one tenant);
    - `sub`: always the subject id.
    An address a user may set themselves would let them sign in as someone else (an admin)."""
    mode = os.environ.get(IDENTITY_CLAIM_VARIABLE, "verified-email").strip().lower()
    if mode not in IDENTITY_CLAIMS:
        raise UserError(f"${IDENTITY_CLAIM_VARIABLE} is one of {', '.join(IDENTITY_CLAIMS)}, not {mode!r}")
    email, verified = st.user.get("email"), str(st.user.get("email_verified")).lower()
    trusted = verified == "true" if mode == "verified-email" else verified != "false"
    if email and mode != "sub" and trusted:
        return str(email)
    return f"sub:{st.user.get('sub')}"


def current_actor() -> Actor:
    """The actor the frame found for this run (pages call this, never st.user)."""
    actor = st.session_state.get(_ACTOR_KEY)
    if actor is None:  # a page run without the frame: nothing is allowed
        st.error("Sign in first.", icon="🔒")
        st.stop()
    return actor


def recheck(store, permission: Permission) -> None:
    """For a fragment's own reruns, which skip the frame: the role as the store has it now (an admin may have
    revoked it since the page was drawn); without `permission` the fragment stops showing anything."""
    actor = current_actor()
    if actor.team_mode:
        actor = or_stop(actor_for, store, actor.identity, actor.name)
        st.session_state[_ACTOR_KEY] = actor
    if not actor.may(permission):
        st.stop()


def require(permission: Permission) -> Actor:
    """The current actor, if their role allows `permission`; otherwise the page says why and stops. Pages call
    this first thing: the navigation hides what a role may not open, this is what enforces it."""
    actor = current_actor()
    or_stop(actor.require, permission)
    return actor


@st.cache_resource(show_spinner="Opening the store…")
def _open_store(url: str | None):
    from daam_store.store import open_store

    return open_store(url)


def get_store():
    """The store for $DAAM_STORE_URL (or the default SQLite file), opened once per process.

    On failure the page shows one line saying what is wrong and stops there.
    """
    # Keyed by the URL so that a different $DAAM_STORE_URL (tests, a second team db) gets its own.
    return or_stop(_open_store, os.environ.get("DAAM_STORE_URL") or None)


# -- jobs: who runs them ------------------------------------------------------------------------------------

WORKERS_VARIABLE = "DAAM_STORE_WORKERS"


def start_executor(store) -> None:
    """The workers that run this dashboard's jobs, started once per process and outside every page's run: the
    local worker thread, or with $DAAM_STORE_RAY_ADDRESS what `jobs.ensure_executor` starts for it (Ray actors
    for `local` or $DAAM_STORE_RAY_WORKERS; a cluster's own workers otherwise). $DAAM_STORE_WORKERS=0 starts
    none here (the jobs wait for `daam-store worker`s elsewhere). Started by the frame, so that jobs left queued by a
    previous dashboard run again as soon as anyone opens it."""
    workers = or_stop(_worker_count)
    if workers and not store.read_only:
        from daam_store.jobs import ensure_executor
        from daam_store.store.session import portable_database_url

        # Every run, not cached: ensure_executor is idempotent and replaces a worker whose thread has died.
        try:
            ensure_executor(portable_database_url())  # with its password, unlike store.url
        except Exception as error:  # browsing goes on without workers: the line says why jobs will wait
            log.error("no job executor", exc_info=error)
            st.warning(escape_markdown(f"Jobs will wait: no worker could start ({first_line(error)})"), icon="⚠️")


def _worker_count() -> int:
    text = os.environ.get(WORKERS_VARIABLE, "1").strip()
    if not text.isdigit():
        raise UserError(f"${WORKERS_VARIABLE} is a number of workers (0: none here), not {text!r}")
    return int(text)


def load_model(name: str):
    """Load a model to register it (the Models page: views.models.register_model checks the name first). Not
    kept: generations load their models in the job workers, so the page holds no pipeline of its own."""
    from daam_store.models import load_pipeline

    with st.spinner(escape_markdown(f"Loading model {name}…")):
        return load_pipeline(name)


def show_error(error: BaseException) -> None:
    """One line on the page. An unexpected error also goes, with its traceback, to the server's log: also when
    it reaches the page wrapped in a UserError (a failed generation of a sweep says which one, `from` the cause).
    """
    if unexpected_cause(error) is not None:
        log.error("dashboard error", exc_info=error)
    st.error(escape_markdown(first_line(error)), icon="⚠️")  # messages quote prompts and model names


def or_stop(function, *args):
    """`function(*args)`; on an error the page shows its one line and stops there."""
    try:
        return function(*args)
    except Exception as error:
        show_error(error)
        st.stop()


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """Wrap a page's body: any error ends the page with one clear line instead of a traceback."""
    try:
        yield
    except Exception as error:  # st.stop()/st.rerun() are BaseExceptions and pass through untouched
        show_error(error)


def show_overlays(overlays, per_row: int = 6, width: int = 160) -> None:
    """A grid of overlays, each labelled as plain text (words come from user prompts: never Markdown)."""
    for start in range(0, len(overlays), per_row):
        columns = st.columns(per_row)
        for column, overlay in zip(columns, overlays[start : start + per_row], strict=False):
            with column:
                st.image(overlay.image, width=width)
                st.text(overlay.label)
