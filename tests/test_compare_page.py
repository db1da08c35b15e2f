"""The Compare page under Streamlit's AppTest, on a store filled by a small sweep (see `swept_store_url`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from daam_store.store import open_store
from daam_store.views import compare
from daam_store.views.compare_charts import clicked_generation

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
TIMEOUT = 120
VIEWS = ["Across prompts", "Across seeds", "Across models", "Word overlap", "Per step"]


@pytest.fixture
def swept_page(swept_store_url, monkeypatch):
    # `streamlit run dashboard/Home.py` puts dashboard/ on sys.path (pages import `ui`); AppTest does not.
    monkeypatch.syspath_prepend(str(DASHBOARD))
    monkeypatch.setenv("DAAM_STORE_URL", swept_store_url)


def open_compare() -> AppTest:
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=TIMEOUT).run()
    app.switch_page("app_pages/4_Compare.py")
    return app.run()


def widget(app: AppTest, kind: str, label: str):
    matches = [w for w in app.get(kind) if getattr(w, "label", None) == label]
    assert len(matches) == 1, f"{len(matches)} {kind} labelled {label!r}"
    return matches[0]


def charts(app: AppTest) -> list[dict]:
    """The Plotly figures on the page, as the JSON the browser receives."""
    return [json.loads(element.proto.spec) for element in app.get("plotly_chart")]


def values(data) -> list:
    """A trace's array: Plotly sends numeric arrays as {"dtype", "bdata" (base64)[, "shape"]}."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        return array.reshape([int(n) for n in str(data.get("shape", len(array))).split(",")]).tolist()
    return list(data)


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def choose(app: AppTest, tag: str = "sweep:small", word: str | None = None, view: str | None = None) -> AppTest:
    widget(app, "selectbox", "Sweep or tag").set_value(tag)
    app.run()
    if word is not None:
        widget(app, "selectbox", "Word").set_value(word)
    if view is not None:
        widget(app, "button_group", "View").set_value(view)
    return app.run()


def test_every_view_draws_its_chart_on_a_swept_store(swept_page):
    app = choose(open_compare())
    assert_clean(app)
    for view in VIEWS:
        widget(app, "button_group", "View").set_value(view)
        app.run()
        assert_clean(app)
        assert widget(app, "button_group", "View").value == view
        drawn = charts(app)
        assert drawn, f"no chart in view {view}"
        assert all(figure["data"] for figure in drawn), f"an empty chart in view {view}"
        assert app.get("download_button"), f"no CSV download in view {view}"


def test_across_prompts_follows_the_chosen_word(swept_page):
    app = choose(open_compare(), word="cat", view="Across prompts")
    assert_clean(app)
    per_model = [trace for trace in charts(app)[0]["data"] if trace["type"] == "scatter"]
    assert len(per_model) == 2  # each model apart, in its own colour
    assert len({trace["marker"]["color"] for trace in per_model}) == 2
    points = {key: [v for trace in per_model for v in values(trace[key])] for key in ("x", "y", "customdata")}
    assert set(points["x"]) == {"a dog and a cat"}  # the only prompt with "cat"
    assert len(points["y"]) == 4  # 2 seeds x 2 models
    assert all(0 < share < 1 for share in points["y"])
    assert len({row[0] for row in points["customdata"]}) == 4  # each point is one generation

    edit = charts(app)[1]  # "a red dog" (prompt A) -> "a dog and a cat" (prompt B) on the first model
    assert "How attribution moves" in edit["layout"]["title"]["text"]
    labels = {label for trace in edit["data"] for label in values(trace["x"])}
    assert {"red (removed)", "cat (added)", "dog (kept)"} <= labels

    widget(app, "radio", "Words").set_value("Every word")
    app.run()
    assert_clean(app)
    words = {trace["name"] for trace in charts(app)[0]["data"]}
    assert words == {"a", "red", "dog", "and", "cat"}


def test_across_models_pairs_the_two_tiny_models(swept_page):
    app = choose(open_compare(), view="Across models")
    assert_clean(app)
    means, agreement, *side_by_side = charts(app)
    points = sum(len(values(trace["x"])) for trace in means["data"] if trace.get("mode") == "markers")
    assert points == 3 + 4  # distinct words of "a red dog" and "a dog and a cat" ("a" twice)
    assert {trace["name"] for trace in agreement["data"]} == {"correlation of the maps", "IoU of the tau-masks"}
    assert len(side_by_side) == 2 and len(app.get("image")) == 2  # each model's image and word maps

    widget(app, "radio", "Points").set_value("One per seed")
    app.run()
    assert_clean(app)
    per_seed = charts(app)[0]
    points = sum(len(values(trace["x"])) for trace in per_seed["data"] if trace.get("mode") == "markers")
    assert points == 2 * (3 + 4)  # and each of the 2 seeds


def test_filters_narrow_the_selection(swept_page):
    app = choose(open_compare(), word="dog", view="Across seeds")
    widget(app, "text_input", "Seeds").set_value("1")
    app.run()
    assert_clean(app)
    distribution = charts(app)[0]
    assert sum(len(values(trace["y"])) for trace in distribution["data"]) == 4  # 2 prompts x 2 models, seed 1 only

    widget(app, "text_input", "Seeds").set_value("3-1")
    app.run()
    assert not app.exception
    assert len(app.error) == 1 and "goes backwards" in app.error[0].value


def test_per_step_curves_and_overlap_matrix(swept_page):
    app = choose(open_compare(), view="Per step")
    assert_clean(app)
    curves = charts(app)[0]["data"]
    assert all(values(trace["x"]) == [1, 2] for trace in curves)  # two denoising steps recorded
    widget(app, "button_group", "View").set_value("Word overlap")
    app.run()
    matrix = charts(app)[0]["data"][0]
    assert matrix["type"] == "heatmap" and values(matrix["x"]) == values(matrix["y"])
    assert set(values(matrix["x"])) == {"a", "red", "dog"} or "cat" in values(matrix["x"])


def test_an_empty_store_says_how_to_fill_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(DASHBOARD))
    monkeypatch.setenv("DAAM_STORE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    app = open_compare()
    assert_clean(app)
    assert "daam-store sweep" in " ".join(element.value for element in app.info)


def test_a_click_names_the_generation_of_the_point():
    event = {"selection": {"points": [{"x": 0.2, "y": 0.3, "customdata": [17, "sd1", 0]}]}}
    assert clicked_generation(event) == 17
    assert clicked_generation({"selection": {"points": []}}) is None
    assert clicked_generation({"selection": {"points": [{"x": 1}]}}) is None  # e.g. a bar: no generation


# -- the view in the URL: Back and a shared link open the same chart ------------------------------------------
def open_compare_at(query: dict) -> AppTest:
    """Compare opened from a link holding `query`."""
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=TIMEOUT)
    app.query_params.update(query)
    app.run()
    app.switch_page("app_pages/4_Compare.py")
    return app.run()


def test_a_link_opens_the_view_and_choices_it_names(swept_page):
    query = {"tag": "sweep:small", "view": "Across models", "points": "One per seed", "word": "dog"}
    app = open_compare_at(query)
    assert_clean(app)
    assert widget(app, "selectbox", "Sweep or tag").value == "sweep:small"
    assert widget(app, "button_group", "View").value == "Across models"
    assert widget(app, "radio", "Points").value == "One per seed"
    assert widget(app, "selectbox", "Word").value == "dog"
    assert "one point per seed" in charts(app)[0]["layout"]["title"]["text"]


def test_changing_a_choice_writes_it_to_the_url(swept_page, swept_store_url):
    app = choose(open_compare(), word="cat", view="Across seeds")
    assert_clean(app)
    assert app.query_params["tag"] == "sweep:small"
    assert app.query_params["view"] == "Across seeds" and app.query_params["word"] == "cat"
    with open_store(swept_store_url) as store:
        second_model = list(compare.compare_options(store, "sweep:small").models)[1]
    widget(app, "multiselect", "Models").set_value([second_model])
    app.run()
    assert_clean(app)
    assert app.query_params["models"] == str(second_model)


def test_the_url_wins_when_it_changes_under_the_page(swept_page):
    """The browser's Back reruns the page with the older query: the widgets follow the URL, not their state."""
    app = choose(open_compare(), view="Across models")
    app.query_params["view"] = "Word overlap"
    app.run()
    assert_clean(app)
    assert widget(app, "button_group", "View").value == "Word overlap"


def test_bad_values_in_the_url_are_ignored(swept_page):
    query = {"tag": "sweep:gone", "view": "Nope", "models": ["999", "x"], "prompts": "<b>", "word": "dog", "page": "-3"}
    app = open_compare_at(query)
    assert_clean(app)
    assert widget(app, "selectbox", "Word").value == "dog"  # the one good value is kept
    assert widget(app, "selectbox", "Sweep or tag").value == "(all generations)"
    assert widget(app, "button_group", "View").value == "Across prompts"
    assert widget(app, "multiselect", "Models").value == []


# -- map grids: over the generation's image, with the opacity and colour map of Explore, and a colour scale ---
def grids(app: AppTest) -> list[dict]:
    return [figure for figure in charts(app) if any(trace["type"] == "image" for trace in figure["data"])]


def test_map_grids_are_drawn_over_the_images_with_a_colour_scale(swept_page):
    app = choose(open_compare(), word="dog", view="Across seeds")
    assert_clean(app)
    (seed_grid,) = grids(app)
    picture, heat = seed_grid["data"]
    assert picture["source"].startswith("data:image/png;base64,")
    assert heat["opacity"] == 0.5 and heat["colorbar"]["ticktext"] == ["lowest", "peak"]
    widget(app, "slider", "Heat-map opacity").set_value(0.8)
    widget(app, "selectbox", "Colour map").set_value("viridis")
    app.run()
    assert_clean(app)
    heat = grids(app)[0]["data"][1]
    assert heat["opacity"] == 0.8 and heat["colorscale"][-1][1] == "#fde725"  # viridis's top

    widget(app, "button_group", "View").set_value("Across models")
    app.run()
    assert_clean(app)
    side_by_side = grids(app)
    assert len(side_by_side) == 2  # each model's word maps over its image, in the chosen colour map
    assert all(grid["data"][1]["opacity"] == 0.8 and "colorbar" in grid["data"][1] for grid in side_by_side)


def test_the_same_model_twice_is_a_note_not_an_error(swept_page):
    app = choose(open_compare(), view="Across models")
    model_a = widget(app, "selectbox", "Model A").value
    widget(app, "selectbox", "Model B").set_value(model_a)
    app.run()
    assert_clean(app)
    assert any("pick two different models" in note.value for note in app.info)
