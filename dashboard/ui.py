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

from daam_store.errors import first_line, unexpected_cause
from daam_store.views.common import escape_markdown
from daam_store.views.models import require_allowed_model

log = logging.getLogger("daam_store.dashboard")


def setup_page(title: str) -> None:
    st.set_page_config(page_title=f"{title} · daam-store", page_icon="🔥", layout="wide")


def show_sidebar(store) -> None:
    """What every page shows beside its navigation: which database this is."""
    with st.sidebar:
        st.caption("Database")
        st.text(store.url)  # passwords masked by the store; shown as text, never Markdown


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


@st.cache_resource(show_spinner=False, max_entries=2)
def _load_pipeline(name: str):
    from daam_store.models import load_pipeline

    return load_pipeline(name)


def get_pipeline(name: str):
    """The pipeline for a built-in name, local folder or hub id; loaded once per process and model.

    Two models stay in memory, enough to alternate between an SD1-like and an SD2-like one.
    """
    require_allowed_model(name)  # $DAAM_STORE_MODEL_ROOTS holds for every page that loads a model
    with st.spinner(f"Loading model {name}…"):
        return _load_pipeline(name)


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


class TrackedProgress:
    """A progress bar whose last state outlives the script run. Stop (or a click that reruns the page) ends the
    run between two updates; the state left in the session lets the next run say where it stopped."""

    def __init__(self, key: str, text: str):
        self.key = key
        self.bar = st.progress(0.0, text=text)

    def update(self, fraction: float, text: str) -> None:
        st.session_state[self.key] = (fraction, text)
        self.bar.progress(fraction, text=text)

    def finish(self, text: str) -> None:
        st.session_state.pop(self.key, None)
        self.bar.progress(1.0, text=text)


def show_if_stopped(key: str, what_next: str) -> None:
    """The bar of a run that did not finish, once, marked as stopped."""
    state = st.session_state.pop(key, None)
    if state is not None:
        fraction, text = state
        st.progress(fraction, text=f"Stopped: {text}. {what_next}")
