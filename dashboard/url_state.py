"""Widgets whose value lives in the page's URL (`st.query_params`), so that the browser's Back returns to the
same view and a copied link shows a colleague the same chart.

Each widget is drawn with a key whose Session State is set from the URL before the widget exists, whenever
the URL holds something other than what the page last wrote there: a first visit, a shared link, or Back.
After the widget, its value is written back to the URL (Streamlit then adds a browser history entry).
Values the widget does not offer (an old or hand-edited link) are ignored: the widget keeps its default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import streamlit as st

from daam_store.url_params import pick_days, pick_int, pick_many, pick_one

_WRITTEN = "_url_written"  # widget key -> the query values the page last wrote for it


class UrlState:
    """The URL-bound widgets of one page; `scope` keeps two pages' widgets of the same name apart.

    The widgets' values reach the URL together, in `publish()` at the end of the page: each write to
    `st.query_params` is one browser history entry, and Back must undo one user action, not one widget.
    """

    def __init__(self, scope: str):
        self.scope = scope
        self._pending: dict[str, list[str]] = {}

    def _key(self, param: str) -> str:
        return f"{self.scope}:{param}"

    def _sync_in(self, param: str, read: Callable[[list[str]], Any], default: Any, valid: Callable[[Any], bool]):
        key = self._key(param)
        raw = st.query_params.get_all(param)
        written = st.session_state.setdefault(_WRITTEN, {})
        if raw != written.get(key) or key not in st.session_state or not valid(st.session_state[key]):
            value = read(raw)
            st.session_state[key] = default if value is None else value
        return key

    def _sync_out(self, param: str, values: list[str], default: list[str]) -> None:
        # A default stays out of the URL: a first visit then changes nothing, so it adds no history entry
        # that Back would have to step over.
        self._pending[param] = [] if values == default else values

    def publish(self) -> None:
        """Write this run's values to the URL in one change (other parameters, e.g. `generation`, stay)."""
        query = {param: st.query_params.get_all(param) for param in st.query_params}
        query.update(self._pending)
        query = {param: values for param, values in query.items() if values}
        if query != {param: st.query_params.get_all(param) for param in st.query_params}:
            st.query_params.from_dict(query)
        written = st.session_state.setdefault(_WRITTEN, {})
        written.update({self._key(param): values for param, values in self._pending.items()})
        self._pending.clear()

    def choice(
        self, widget, label: str, options: Sequence, param: str, encode: Callable = str, default_index=0, **kwargs
    ):
        """A one-of-options widget (st.selectbox, st.radio, st.segmented_control) bound to `param`."""
        options, encode = list(options), _as_text(encode)
        default = options[min(default_index, len(options) - 1)] if options else None
        key = self._sync_in(param, lambda raw: pick_one(raw, options, encode), default, lambda v: v in options)
        value = widget(label, options, key=key, **kwargs)
        self._sync_out(param, [] if value is None else [encode(value)], [] if default is None else [encode(default)])
        return value

    def multiselect(self, label: str, options: Sequence, param: str, encode: Callable = str, **kwargs) -> list:
        options, encode = list(options), _as_text(encode)
        key = self._sync_in(
            param, lambda raw: pick_many(raw, options, encode), [], lambda v: all(o in options for o in v)
        )
        value = st.multiselect(label, options, key=key, **kwargs)
        self._sync_out(param, [encode(option) for option in value], [])
        return value

    def text_input(self, label: str, param: str, **kwargs) -> str:
        key = self._sync_in(param, lambda raw: raw[0] if raw else None, "", lambda v: isinstance(v, str))
        value = st.text_input(label, key=key, **kwargs)
        self._sync_out(param, [value] if value else [], [])
        return value

    def page_number(self, label: str, param: str, pages: int) -> int:
        """A page of a listing, 1..pages (a link to a page that no longer exists opens the first)."""
        key = self._sync_in(param, lambda raw: pick_int(raw, 1, pages), 1, lambda v: 1 <= v <= pages)
        value = int(st.number_input(label, min_value=1, max_value=pages, key=key))
        self._sync_out(param, [str(value)], ["1"])
        return value

    def day_range(self, label: str, param: str) -> tuple[date, ...]:
        """A range of days; () until one is picked."""
        key = self._sync_in(param, pick_days, (), lambda v: isinstance(v, tuple | list))
        # `value=()` is what makes it a range picker (Streamlit logs once that the state also sets it).
        value = tuple(st.date_input(label, value=(), key=key))
        self._sync_out(param, [day.isoformat() for day in value], [])
        return value


def _as_text(encode: Callable) -> Callable[[Any], str]:
    """URL values come back as text: an option encoded as a number (a model id) must be compared as text too."""
    return lambda value: str(encode(value))
