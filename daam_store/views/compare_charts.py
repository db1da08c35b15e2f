"""Plotly figures of the Compare page, drawn from the tables in `compare` (no store access here).

Every point that stands for one generation carries its id as the first `customdata` value, so a click
on it can open that generation in Explore (`clicked_generation`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from PIL import Image

from daam_store.heatmap import DEFAULT_COLORMAP

SHARE_AXIS = "share of the prompt's attention"
SPREAD = "error bars: ±1 standard deviation over seeds"
LABEL_CHARACTERS = 40  # long prompts are cut on axes; hover and CSV keep the whole text
TITLE_CHARACTERS = 12  # a grid tile's title: longer ones would run into the next tile's
# Images under a grid's maps are drawn at their resolution up to this side: sharper than the 16x16 latent,
# yet 64 tiles of it stay a small figure to send.
MAX_TILE_SIDE = 64
TRANSPARENT = "rgba(0,0,0,0)"  # backgrounds that let Streamlit's light or dark theme show through
# One colour per model (colour-blind safe); the same model keeps its colour in every chart of a view.
MODEL_PALETTE = px.colors.qualitative.Safe
# A word that names a colour is drawn in that colour ("red" must not be drawn light blue); other words get
# a muted tone, so that no bright hue reads as a colour word it is not.
COLOUR_WORDS = {
    "red": "#d62728", "orange": "#ff7f0e", "yellow": "#e6c619", "green": "#2ca02c", "blue": "#1f5fd6",
    "purple": "#7b3fb5", "violet": "#8f5fd6", "pink": "#e377c2", "brown": "#8c564b", "black": "#111111",
    "white": "#f4f4f4", "gray": "#8a8a8a", "grey": "#8a8a8a", "cyan": "#17becf", "magenta": "#c2189b",
    "gold": "#d4a017", "silver": "#b8b8b8",
}  # fmt: skip
NEUTRAL_PALETTE = ["#5b5b5b", "#9e9e9e", "#7d6e5d", "#4f6461", "#b3a58f", "#6e6478", "#3a3a3a", "#c4c4c4"]
OUTLINE = {"color": "#777777", "width": 1}  # keeps "white" visible on a light page and "black" on a dark one
# Above this many points a chart draws them with WebGL (SVG slows the browser down), and distributions
# show only their outliers as points.
MANY_POINTS = 2000


def short(text: str, limit: int = LABEL_CHARACTERS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str) -> str:
    """User text made literal for Plotly, which renders a subset of HTML (<b>, <br>, <a>) in labels."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """Model label -> colour, by sorted label, so every chart of a selection agrees."""
    names = sorted({plain(model) for model in models})
    return {name: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, name in enumerate(names)}


def word_colours(words: Iterable[str]) -> dict[str, str]:
    """Word -> colour: colour words in their own colour, the others in turn from the neutral palette."""
    colours: dict[str, str] = {}
    others = 0
    for word in dict.fromkeys(words):
        if word.lower() in COLOUR_WORDS:
            colours[word] = COLOUR_WORDS[word.lower()]
        else:
            colours[word] = NEUTRAL_PALETTE[others % len(NEUTRAL_PALETTE)]
            others += 1
    return colours


def _plain_facets(figure: go.Figure) -> go.Figure:
    """Facet titles show the value only ("sd1-tiny", not "model=sd1-tiny")."""
    return figure.for_each_annotation(lambda note: note.update(text=note.text.split("=", 1)[-1]))


def _themed(figure: go.Figure) -> go.Figure:
    figure.update_layout(paper_bgcolor=TRANSPARENT, plot_bgcolor=TRANSPARENT)
    return figure


def _with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose user text (prompts, words, models) shows literally, plus short prompt labels for axes."""
    labelled = frame.copy()
    for column in ("prompt", "word", "model", "model_a", "model_b"):
        if column in labelled:
            labelled[column] = labelled[column].map(plain)
    if "prompt" in labelled:
        labelled["prompt_label"] = labelled["prompt"].map(short)
    return labelled


def share_by_prompt_figure(per_generation: pd.DataFrame, word: str) -> go.Figure:
    """Per prompt, each model apart: mean share over its seeds (bar, ±1 standard deviation) and every
    generation as a point on its model's bar."""
    points = _with_labels(per_generation)
    colours = model_colours(points["model"])
    figure = go.Figure()
    scatter = go.Scattergl if len(points) > MANY_POINTS else go.Scatter
    for model, group in points.groupby("model", sort=True):
        summary = group.groupby(["prompt_id", "prompt_label", "prompt"], sort=False)["share"]
        bars = summary.agg(mean="mean", std=lambda values: values.std(ddof=0), seeds="size").reset_index()
        figure.add_trace(
            go.Bar(
                x=bars["prompt_label"], y=bars["mean"], error_y={"type": "data", "array": bars["std"]},
                name=f"{model}: mean over seeds", offsetgroup=model, legendgroup=model, opacity=0.55,
                marker={"color": colours[model]}, customdata=bars[["prompt", "std", "seeds"]].to_numpy(),
                hovertemplate="%{customdata[0]}<br>mean share %{y:.3f} ± %{customdata[1]:.3f} "
                "(standard deviation over %{customdata[2]} seeds)<extra>" + model + "</extra>",
            )
        )  # fmt: skip
        figure.add_trace(
            scatter(
                x=group["prompt_label"], y=group["share"], mode="markers", offsetgroup=model, legendgroup=model,
                marker={"color": colours[model], "size": 8, "line": OUTLINE},
                name=f"{model}: one generation (click to open)",
                customdata=group[["generation_id", "model", "seed"]].to_numpy(),
                hovertemplate="generation %{customdata[0]}<br>%{customdata[1]}, seed %{customdata[2]}"
                "<br>share %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    figure.update_layout(
        title=f"Share of “{plain(word)}” across prompts ({SPREAD})",
        yaxis_title=SHARE_AXIS,
        xaxis_title="prompt",
        barmode="group",
        scattermode="group",
    )
    return _themed(figure)


def all_words_figure(table: pd.DataFrame) -> go.Figure:
    """Every word's mean share, prompt by prompt (one panel per model when there are several)."""
    frame = _with_labels(table)
    several_models = frame["model"].nunique() > 1
    figure = px.bar(
        frame,
        x="prompt_label",
        y="mean_share",
        color="word",
        color_discrete_map=word_colours(frame["word"]),
        error_y="std_share",
        barmode="group",
        facet_row="model" if several_models else None,
        hover_data={"prompt": True, "generations": True, "std_share": ":.3f", "prompt_label": False},
        labels={"prompt_label": "prompt", "mean_share": SHARE_AXIS, "std_share": "standard deviation over seeds"},
        title=f"Share of every word across prompts ({SPREAD})",
    )
    figure.update_traces(marker_line=OUTLINE)
    return _themed(_plain_facets(figure))


def prompt_edit_figure(table: pd.DataFrame, prompt_a: str, prompt_b: str) -> go.Figure:
    """Each word's share before and after a prompt edit, side by side (0 where the word is absent)."""
    frame = _with_labels(table)
    frame["word_label"] = frame["word"] + " (" + frame["status"] + ")"
    melted = frame.melt(id_vars=["word_label", "pairs", "iou"], value_vars=["share_a", "share_b"], var_name="prompt")
    melted["prompt"] = melted["prompt"].map(
        {"share_a": f"A: {short(plain(prompt_a))}", "share_b": f"B: {short(plain(prompt_b))}"}
    )
    figure = px.bar(
        melted,
        x="word_label",
        y="value",
        color="prompt",
        barmode="group",
        hover_data=["pairs", "iou"],
        labels={"word_label": "word", "value": SHARE_AXIS},
        title="How attribution moves between the two prompts (mean over the seeds both have)",
    )
    return _themed(figure)


def seed_distribution_figure(per_generation: pd.DataFrame, word: str, kind: str = "box") -> go.Figure:
    """Distribution over seeds of the word's share, per prompt and model; points open their generation."""
    frame = _with_labels(per_generation)
    draw = px.violin if kind == "violin" else px.box
    options = {"box": True} if kind == "violin" else {}
    figure = draw(
        frame,
        x="prompt_label",
        y="share",
        color="model",
        color_discrete_map=model_colours(frame["model"]),
        points="all" if len(frame) <= MANY_POINTS else "outliers",
        custom_data=["generation_id", "seed", "prompt"],
        labels={"prompt_label": "prompt", "share": SHARE_AXIS},
        title=f"Share of “{plain(word)}” across seeds",
        **options,
    )
    figure.update_traces(hovertemplate="generation %{customdata[0]}, seed %{customdata[1]}<br>share %{y:.3f}")
    return _themed(figure)


STABILITY_METRICS = {
    "mean_correlation": "correlation of the maps (mean over seed pairs)",
    "mean_iou": "IoU of the maps' tau-masks (mean over seed pairs)",
}


def stability_figure(table: pd.DataFrame, word: str) -> go.Figure:
    """Mean pairwise correlation and IoU of the word's maps across seeds, per prompt and model."""
    frame = _with_labels(table).melt(
        id_vars=["prompt_label", "model", "seeds"],
        value_vars=list(STABILITY_METRICS),
        var_name="metric",
        value_name="value",
    )
    frame["metric"] = frame["metric"].map(STABILITY_METRICS)
    figure = px.bar(
        frame,
        x="prompt_label",
        y="value",
        color="model",
        color_discrete_map=model_colours(frame["model"]),
        barmode="group",
        facet_col="metric",
        hover_data=["seeds"],
        labels={"prompt_label": "prompt", "value": "1 = the same map for every seed", "seeds": "seeds compared"},
        title=f"Stability of “{plain(word)}” across seeds",
    )
    return _themed(_plain_facets(figure))


def map_grid_figure(
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    images: Sequence[Image.Image | None] | None = None,
    alpha: float = 0.5,
    colormap: str = DEFAULT_COLORMAP,
    columns: int = 8,
) -> go.Figure:
    """Maps side by side, each over its generation's image at opacity `alpha` and scaled to its own range
    as DAAM's overlays are, with the colour scale beside them. One image trace and one heat map trace hold
    every tile, with transparent gaps between: 64 subplots would take Plotly seconds to build and the
    browser seconds to draw."""
    count = max(1, len(maps))
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    side = max((max(m.shape) for m in maps), default=1)  # a tile, in map cells
    gap = max(2, side // 4)  # room above each tile for its title
    heat = np.full((rows * (side + gap), columns * (side + gap) - gap), np.nan, dtype=np.float32)
    annotations = []  # collected and set once: add_annotation() copies the whole list every call
    for index, (heat_map, title) in enumerate(zip(maps, titles, strict=True)):
        top, left = _tile_corner(index, columns, side, gap)
        heat[top : top + side, left : left + side] = _scaled_tile(heat_map, side)
        annotations.append(
            {"x": left + (side - 1) / 2, "y": top - 0.5, "text": plain(short(title, TITLE_CHARACTERS)),
             "showarrow": False, "yanchor": "bottom", "font": {"size": 11}}
        )  # fmt: skip
    figure = go.Figure()
    if images is not None:
        figure.add_trace(_image_mosaic(images, heat.shape, columns, side, gap))
    figure.add_trace(
        go.Heatmap(
            z=heat,
            colorscale=colormap,
            zmin=0,
            zmax=1,
            opacity=alpha if images is not None else 1.0,
            hoverongaps=False,
            hovertemplate="%{z:.2f} of the map's range<extra></extra>",
            colorbar={
                "tickvals": [0, 1],
                "ticktext": ["lowest", "peak"],
                "title": {"text": "each map,<br>its own range", "side": "right"},
                "thickness": 12,
            },
        )
    )
    figure.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    figure.update_xaxes(visible=False)
    figure.update_layout(
        height=max(200, 40 + rows * 600 // columns),
        margin={"t": 10, "b": 10, "l": 10, "r": 10},
        annotations=annotations,
    )
    return _themed(figure)


def _tile_corner(index: int, columns: int, side: int, gap: int) -> tuple[int, int]:
    return (index // columns) * (side + gap) + gap, (index % columns) * (side + gap)


def _scaled_tile(heat_map: np.ndarray, side: int) -> np.ndarray:
    """The map resized (bicubic, as DAAM expands its maps) to the tile and scaled to 0..1 of its range."""
    values = np.asarray(heat_map, dtype=np.float32)
    if values.shape != (side, side):
        values = np.asarray(Image.fromarray(values, mode="F").resize((side, side), Image.Resampling.BICUBIC))
    spread = float(values.max() - values.min())
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)


def _image_mosaic(images: Sequence[Image.Image | None], shape: tuple[int, int], columns: int, side: int, gap: int):
    """The generations' images under the maps, `scale` pixels per map cell (the image's resolution up to
    MAX_TILE_SIDE), sent as one PNG: a fraction of the bytes of a pixel array."""
    largest = max((max(image.size) for image in images if image is not None), default=side)
    scale = max(1, min(MAX_TILE_SIDE, largest) // side)
    mosaic = Image.new("RGBA", (shape[1] * scale, shape[0] * scale), (0, 0, 0, 0))
    for index, image in enumerate(images):
        if image is not None:
            top, left = _tile_corner(index, columns, side, gap)
            tile = image.convert("RGBA").resize((side * scale, side * scale), Image.Resampling.BICUBIC)
            mosaic.paste(tile, (left * scale, top * scale))
    buffer = io.BytesIO()
    mosaic.save(buffer, format="PNG")
    # Pixel p of a tile covers map cell p // scale: map cell j is centred on x = j and spans j +- 0.5.
    offset = -0.5 + 0.5 / scale
    return go.Image(
        source="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
        x0=offset, y0=offset, dx=1 / scale, dy=1 / scale, hoverinfo="skip",
    )  # fmt: skip


def model_scatter_figure(table: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Each word's share under model A against model B, one point per (prompt, seed, word)."""
    label_a, label_b = plain(label_a), plain(label_b)
    frame = _with_labels(table)
    figure = px.scatter(
        frame,
        x="share_a",
        y="share_b",
        color="word",
        color_discrete_map=word_colours(frame["word"]),
        custom_data=["generation_id_a", "generation_id_b", "seed"],
        labels={"share_a": f"share under {label_a}", "share_b": f"share under {label_b}"},
        title=f"Per-word shares, one point per seed: {label_a} vs {label_b} (click: open the {label_a} generation)",
        render_mode="webgl",
    )
    # No prompt text per point: with 10,000 generations that alone would be megabytes to send.
    figure.update_traces(
        hovertemplate="seed %{customdata[2]}<br>A %{x:.3f} (generation %{customdata[0]})"
        "<br>B %{y:.3f} (generation %{customdata[1]})<extra></extra>",
        marker_line=OUTLINE,
    )
    return _with_diagonal(figure, table)


def model_means_figure(table: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Each word's mean share under model A against model B, one point per (prompt, word)."""
    label_a, label_b = plain(label_a), plain(label_b)
    frame = _with_labels(table)
    figure = px.scatter(
        frame,
        x="share_a",
        y="share_b",
        error_x="std_a",
        error_y="std_b",
        color="word",
        color_discrete_map=word_colours(frame["word"]),
        custom_data=["generation_id_a", "prompt", "pairs"],
        labels={"share_a": f"mean share under {label_a}", "share_b": f"mean share under {label_b}"},
        title=f"Per-word shares, mean over seeds: {label_a} vs {label_b} ({SPREAD}; click: open a {label_a} "
        "generation)",
    )
    figure.update_traces(
        hovertemplate="%{customdata[1]}<br>A %{x:.3f} ± %{error_x.array:.3f}, B %{y:.3f} ± %{error_y.array:.3f}"
        "<br>(standard deviation over %{customdata[2]} seeds)<extra></extra>",
        marker_line=OUTLINE,
    )
    return _with_diagonal(figure, table)


def _with_diagonal(figure: go.Figure, table: pd.DataFrame) -> go.Figure:
    """The line of equal shares: points above it are words model B weighs more."""
    top = float(np.nanmax(table[["share_a", "share_b"]].to_numpy())) if len(table) else 1.0
    figure.add_shape(type="line", x0=0, y0=0, x1=top, y1=top, line={"dash": "dot", "color": "grey"})
    return _themed(figure)


AGREEMENT_METRICS = {"correlation": "correlation of the maps", "iou": "IoU of the tau-masks"}


def agreement_figure(table: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    label_a, label_b = plain(label_a), plain(label_b)
    frame = _with_labels(table)
    frame["word_label"] = frame["word"] + " · " + frame["prompt_label"]
    melted = frame.melt(id_vars=["word_label", "pairs"], value_vars=["correlation", "iou"], var_name="metric")
    melted["metric"] = melted["metric"].map(AGREEMENT_METRICS)
    figure = px.bar(
        melted,
        x="word_label",
        y="value",
        color="metric",
        barmode="group",
        hover_data=["pairs"],
        labels={"word_label": "word · prompt", "value": "1 = the same map", "metric": "", "pairs": "seeds"},
        title=f"Agreement of the maps of {label_a} and {label_b} (mean over shared seeds)",
    )
    return _themed(figure)


def overlap_figure(matrix: pd.DataFrame, title: str) -> go.Figure:
    figure = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=[plain(word) for word in matrix.columns],
            y=[plain(word) for word in matrix.index],
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            text=np.round(matrix.to_numpy(), 2),
            texttemplate="%{text}",
            hovertemplate="%{y} / %{x}: IoU %{z:.3f}<extra></extra>",
            colorbar={"title": "IoU"},
        )
    )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(title=plain(title))
    return _themed(figure)


def step_figure(table: pd.DataFrame, generation_id: int) -> go.Figure:
    frame = _with_labels(table)
    frame["word_label"] = frame["word"] + " (" + frame["position"].astype(str) + ")"
    by_word = word_colours(frame["word"])
    figure = px.line(
        frame,
        x="step",
        y="share",
        color="word_label",
        color_discrete_map={
            label: by_word[word] for label, word in zip(frame["word_label"], frame["word"], strict=True)
        },
        markers=True,
        labels={"share": SHARE_AXIS, "word_label": "word (position)"},
        title=f"Share of each word at every denoising step, generation {generation_id}",
    )
    return _themed(figure)


def clicked_generation(event) -> int | None:
    """The generation id of the point a user clicked in an `st.plotly_chart(on_select="rerun")` chart."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points:
        custom = point.get("customdata")
        if custom is not None and len(custom) > 0:
            return int(custom[0])
    return None
