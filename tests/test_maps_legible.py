"""Maps a person can read: a perceptual colour map, a colour scale beside every map, plain chart labels, a
palette that does not clash with colour words, and URL values read back robustly."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
from matplotlib.figure import Figure

from daam_store.experiment import GenerationExperiment
from daam_store.heatmap import COLORMAPS, DEFAULT_COLORMAP, PromptTokens, WordHeatMap
from daam_store.url_params import pick_days, pick_int, pick_many, pick_one
from daam_store.views import compare_charts as charts
from daam_store.views.common import colour_scale_image, unmapped_words_note
from daam_store.views.explore import word_overlay_png

PROMPT = "a red dog 🔥"


@pytest.fixture
def experiment(clip_tokenizer) -> GenerationExperiment:
    """A stored-like generation without a pipeline: a 32 px image and random maps for each token."""
    tokens = PromptTokens.from_tokenizer(clip_tokenizer, PROMPT)
    maps = torch.rand(len(tokens.tokens), 8, 8, generator=torch.Generator().manual_seed(0))
    image = PIL.Image.new("RGB", (32, 32), (200, 30, 30))
    return GenerationExperiment(image, maps, PROMPT, seed=0, prompt_tokens=tokens)


def test_overlays_use_a_perceptual_colour_map_by_default():
    assert DEFAULT_COLORMAP in COLORMAPS and "jet" not in COLORMAPS
    word_map = WordHeatMap(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    image = PIL.Image.new("RGB", (2, 2), (0, 0, 0))
    hot = word_map.overlay_image(image, alpha=1.0).getpixel((1, 0))
    assert hot == (252, 255, 164)  # inferno's pale yellow peak, where jet would draw dark red
    assert word_map.overlay_image(image, alpha=1.0, cmap="viridis").getpixel((1, 0)) == (253, 231, 37)


def test_the_cli_heat_map_png_has_a_colour_scale_beside_the_image(experiment, tmp_path):
    paths = experiment.save_heat_maps(tmp_path)
    assert [path.name for path in paths] == ["a.heat_map.png", "red.heat_map.png", "dog.heat_map.png"]
    with PIL.Image.open(paths[1]) as saved:
        assert saved.format == "PNG"
        width, height = saved.size
    assert width > 1.3 * height  # the square overlay plus the colour bar beside it


def test_plot_overlay_keeps_working_and_draws_a_labelled_colorbar_on_request(experiment):
    word_map = experiment.heat_map().compute_word_heat_map("dog")
    plain = Figure()
    word_map.plot_overlay(experiment.image, ax=plain.gca())
    assert len(plain.axes) == 1 and plain.axes[0].images[0].get_cmap().name == DEFAULT_COLORMAP
    with_bar = Figure()
    word_map.plot_overlay(experiment.image, ax=with_bar.gca(), colorbar=True)
    assert len(with_bar.axes) == 2  # the map and its colour bar
    ticks = [label.get_text() for label in with_bar.axes[1].get_yticklabels()]
    assert ticks[0].endswith("(lowest)") and ticks[-1].endswith("(peak)")


def test_the_overlay_download_carries_its_colour_scale(experiment):
    with PIL.Image.open(io.BytesIO(word_overlay_png(experiment, word_idx=1, cmap="magma"))) as download:
        assert download.format == "PNG" and download.width > 1.3 * download.height


def test_the_colour_scale_strip_runs_from_the_maps_low_to_high_colour():
    strip = np.asarray(colour_scale_image("inferno", width=100))
    assert strip.shape == (12, 100, 3)
    assert strip[0, 0].sum() < 30 and strip[0, -1].sum() > 600  # black on the left, pale yellow on the right


def test_symbols_and_cut_words_are_said(experiment, clip_tokenizer):
    note = unmapped_words_note(experiment)
    assert note is not None and "🔥" in note and "no map" in note
    long_prompt = " ".join(f"word{i}" for i in range(40))  # 80 tokens: the last words are cut
    tokens = PromptTokens.from_tokenizer(clip_tokenizer, long_prompt)
    cut = GenerationExperiment(
        experiment.image, torch.rand(len(tokens.tokens), 4, 4), long_prompt, prompt_tokens=tokens
    )
    assert "77-token limit" in unmapped_words_note(cut) and tokens.cut_words[-1] in unmapped_words_note(cut)
    tokens = PromptTokens.from_tokenizer(clip_tokenizer, "a red dog")
    whole = GenerationExperiment(
        experiment.image, torch.rand(len(tokens.tokens), 4, 4), "a red dog", prompt_tokens=tokens
    )
    assert unmapped_words_note(whole) is None


# -- Compare's charts ---------------------------------------------------------------------------------------
def test_colour_words_are_drawn_in_their_colour_and_other_words_in_muted_tones():
    colours = charts.word_colours(["a", "red", "dog", "blue", "Green", "cat"])
    assert colours["red"] == charts.COLOUR_WORDS["red"] and colours["blue"] == charts.COLOUR_WORDS["blue"]
    assert colours["Green"] == charts.COLOUR_WORDS["green"]
    others = [colours[word] for word in ("a", "dog", "cat")]
    assert len(set(others)) == 3 and set(others) <= set(charts.NEUTRAL_PALETTE)


def test_every_model_has_its_own_colour_whatever_the_order():
    assert charts.model_colours(["sd2-tiny", "sd1-tiny"]) == charts.model_colours(["sd1-tiny", "sd2-tiny", "sd1-tiny"])
    assert len(set(charts.model_colours(["a", "b", "c"]).values())) == 3


def test_labels_are_plain_words_and_error_bars_say_what_they_are():
    table = pd.DataFrame(
        {"prompt_label": ["p", "p"], "prompt": ["p", "p"], "model": ["sd1-tiny", "sd2-tiny"], "seeds": [2, 2],
         "mean_correlation": [0.5, 0.6], "mean_iou": [0.4, 0.3]}
    )  # fmt: skip
    figure = charts.stability_figure(table, "dog")
    facets = {note.text for note in figure.layout.annotations}
    assert not any("=" in text for text in facets) and any("correlation" in text for text in facets)
    shares = pd.DataFrame(
        {"generation_id": [1, 2, 3, 4], "prompt_id": 1, "prompt": "a red dog", "model": ["m1", "m1", "m2", "m2"],
         "seed": [0, 1, 0, 1], "share": [0.1, 0.2, 0.3, 0.4]}
    )  # fmt: skip
    by_prompt = charts.share_by_prompt_figure(shares, "red")
    assert "standard deviation" in by_prompt.layout.title.text
    assert all("standard deviation" in bar.hovertemplate for bar in by_prompt.data if bar.type == "bar")
    assert by_prompt.layout.yaxis.title.text == "share of the prompt's attention"


def test_a_map_grid_is_drawn_over_the_images_with_a_colour_scale_and_no_axes():
    maps = [np.random.default_rng(i).random((16, 16)) for i in range(3)]
    images = [PIL.Image.new("RGB", (32, 32), colour) for colour in ((200, 0, 0), (0, 0, 200), (128, 128, 128))]
    figure = charts.map_grid_figure(maps, ["seed 0", "seed 1", "a very long title indeed"], images, 0.3, "magma")
    picture, heat = figure.data
    assert picture.type == "image" and picture.source.startswith("data:image/png;base64,")
    assert heat.type == "heatmap" and heat.opacity == 0.3 and heat.showscale is not False
    assert list(heat.colorbar.ticktext) == ["lowest", "peak"]
    assert heat.colorscale[-1][1] == "#fcfdbf"  # magma's peak
    assert figure.layout.xaxis.visible is False and figure.layout.yaxis.visible is False
    assert figure.layout.paper_bgcolor == charts.TRANSPARENT and figure.layout.plot_bgcolor == charts.TRANSPARENT
    titles = [note.text for note in figure.layout.annotations]
    assert max(len(title) for title in titles) <= charts.TITLE_CHARACTERS


# -- URL values ---------------------------------------------------------------------------------------------
def test_url_values_outside_the_options_are_ignored():
    assert pick_one(["3"], [1, 2, 3]) == 3 and pick_one(["9"], [1, 2, 3]) is None and pick_one([], [1]) is None
    assert pick_many(["3", "x", "1", "3"], [1, 2, 3]) == [3, 1]
    assert pick_int(["2"], 1, 5) == 2 and pick_int(["0"], 1, 5) is None and pick_int(["-1"], 1, 5) is None
    assert pick_int(["two"], 1, 5) is None
    assert pick_days(["2024-01-02", "2024-02-01"]) == (date(2024, 1, 2), date(2024, 2, 1))
    assert pick_days(["2024-13-01"]) is None and pick_days(["2024-02-01", "2024-01-01"]) is None


def test_the_colour_bar_of_an_absolute_map_names_the_limits_it_draws():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from daam_store.heatmap import WordHeatMap

    word = WordHeatMap(torch.linspace(0.03, 0.27, 16).reshape(4, 4), "dog")
    axes = word.plot_overlay(PIL.Image.new("RGB", (8, 8)), colorbar=True, absolute=True)
    bar_axes = [a for a in axes.figure.axes if a is not axes][0]
    labels = [t.get_text() for t in bar_axes.get_yticklabels()]
    low, high = axes.images[0].get_clim()
    assert labels == [f"{low:.3g}", f"{high:.3g}"] and labels != ["0", "1"]
    plt.close(axes.figure)
