"""Explore under AppTest: its filters and page in the URL, the colour scale beside its maps, the colour-map
picker kept across pages, and what of a prompt has no map said on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from daam_store.views.common import SCALE_CAPTION

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
TIMEOUT = 120


@pytest.fixture
def dashboard_on(monkeypatch):
    """Points the dashboard at a store; dashboard/ on sys.path as `streamlit run` puts it (pages import `ui`)."""
    monkeypatch.syspath_prepend(str(DASHBOARD))
    return lambda url: monkeypatch.setenv("DAAM_STORE_URL", url)


@pytest.fixture(scope="module")
def emoji_store_url(tmp_path_factory, sd1_pipe):
    """One generation of a prompt with an emoji, which gets no map."""
    from daam_store.generate import GenerationRequest, generate
    from daam_store.models import describe_pipeline
    from daam_store.store import open_store

    url = f"sqlite:///{tmp_path_factory.mktemp('emoji') / 'store.db'}"
    with open_store(url) as store:
        store.save(generate(sd1_pipe, GenerationRequest("a red dog 🔥", seed=0, steps=1)), describe_pipeline(sd1_pipe))
    return url


def open_explore(query: dict) -> AppTest:
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=TIMEOUT)
    app.query_params.update(query)
    app.run()
    app.switch_page("app_pages/2_Explore.py")
    return app.run()


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def widget(widgets, label_start: str):
    matches = [w for w in widgets if w.label.startswith(label_start)]
    assert len(matches) == 1, f"{len(matches)} widgets labelled {label_start!r}"
    return matches[0]


def shown_ids(app: AppTest) -> set[int]:
    return {int(t.value.split(" · ")[0][1:]) for t in app.text if t.value.startswith("#")}


def scales(app: AppTest) -> int:
    """Colour scales on the page: the key image each map view draws beside its maps."""
    return [img.caption for image in app.get("image") for img in image.proto.imgs].count(SCALE_CAPTION)


def test_explore_detail_draws_a_colour_scale_and_says_which_symbols_have_no_map(emoji_store_url, dashboard_on):
    dashboard_on(emoji_store_url)
    app = open_explore({"generation": "1"})
    assert_clean(app)
    assert scales(app) == 2  # beside the word maps and beside the per-layer maps
    assert any("🔥" in note.value and "no map" in note.value for note in app.info)
    widget(app.selectbox, "Colour map").set_value("cividis").run()
    assert_clean(app)
    assert app.session_state["map_colormap"] == "cividis"
    app.switch_page("app_pages/4_Compare.py").run()
    app.switch_page("app_pages/2_Explore.py").run()
    assert widget(app.selectbox, "Colour map").value == "cividis"  # kept from page to page


def test_explore_filters_and_page_come_from_the_url_and_go_back_to_it(swept_store_url, dashboard_on, monkeypatch):
    dashboard_on(swept_store_url)
    monkeypatch.setattr("daam_store.views.explore.GALLERY_PAGE_SIZE", 3)  # 4 matches: 2 pages
    app = open_explore({"word": "cat", "page": "2", "tag": "sweep:small"})
    assert_clean(app)
    assert widget(app.text_input, "Word in the prompt").value == "cat"
    assert widget(app.number_input, "Page").value == 2 and len(shown_ids(app)) == 1
    widget(app.number_input, "Page").set_value(1).run()
    assert "page" not in app.query_params and len(shown_ids(app)) == 3
    widget(app.text_input, "Prompt contains").input("dog").run()
    assert app.query_params["prompt"] == "dog" and app.query_params["word"] == "cat"


def test_explore_ignores_what_it_cannot_read_in_the_url(swept_store_url, dashboard_on):
    dashboard_on(swept_store_url)
    app = open_explore({"page": "99", "days": "2024-99-01", "models": "abc", "author": "nobody", "seeds": "0"})
    assert_clean(app)
    assert widget(app.number_input, "Page").value == 1
    assert widget(app.selectbox, "Author").value == "(any)" and widget(app.text_input, "Seeds").value == "0"
    assert len(shown_ids(app)) == 4  # seed 0 of 2 prompts x 2 models


def test_a_chosen_model_survives_the_next_change_of_another_filter(swept_store_url, dashboard_on):
    """Model filters are ids: written to the URL as text, read back as text (they were dropped before)."""
    dashboard_on(swept_store_url)
    app = open_explore({})
    models = widget(app.multiselect, "Models")
    chosen = models.options[0]
    models.set_value([chosen]).run()
    assert_clean(app)
    shown = len(shown_ids(app))
    widget(app.text_input, "Prompt contains").input("dog").run()
    assert widget(app.multiselect, "Models").value == [chosen] and len(shown_ids(app)) <= shown


def test_a_page_number_that_is_not_ascii_digits_is_ignored(swept_store_url, dashboard_on):
    dashboard_on(swept_store_url)
    app = open_explore({"page": "²"})
    assert_clean(app)
    assert widget(app.number_input, "Page").value == 1
