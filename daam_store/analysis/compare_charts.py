"""Plotly figures of the Compare page, drawn from the tables in `compare` (no store access here).

Every point that stands for one generation carries its id as the first `customdata` value, so a click
on it can open that generation in Explore (`clicked_generation`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SHARE_AXIS = "attribution share"
HEAT_SCALE = "Jet"  # DAAM's overlays use the jet colour map
LABEL_CHARACTERS = 40  # long prompts are cut on axes; hover and CSV keep the whole text
# Above this many points a chart draws them with WebGL (SVG slows the browser down), and distributions
# show only their outliers as points.
MANY_POINTS = 2000


def short(text: str, limit: int = LABEL_CHARACTERS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str) -> str:
    """User text made literal for Plotly, which renders a subset of HTML (<b>, <br>, <a>) in labels."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose user text (prompts, words, models) shows literally, plus short prompt labels for axes."""
    labelled = frame.copy()
    for column in ("prompt", "word", "model", "model_a", "model_b"):
        if column in labelled:
            labelled[column] = labelled[column].map(plain)
    if "prompt" in labelled:
        labelled["prompt_label"] = labelled["prompt"].map(short)
    return labelled


def share_by_prompt_figure(per_generation: pd.DataFrame, summary: pd.DataFrame, word: str) -> go.Figure:
    """Mean share per prompt (bars, +- one standard deviation) and every generation as a point."""
    points = _with_labels(per_generation)
    bars = _with_labels(summary)
    figure = go.Figure(
        go.Bar(
            x=bars["prompt_label"],
            y=bars["mean_share"],
            error_y={"type": "data", "array": bars["std_share"]},
            name="mean over generations",
            hovertext=bars["prompt"],
            opacity=0.5,
        )
    )
    scatter = go.Scattergl if len(points) > MANY_POINTS else go.Scatter
    figure.add_trace(
        scatter(
            x=points["prompt_label"],
            y=points["share"],
            mode="markers",
            marker={"color": "#262730", "size": 8, "opacity": 0.7},
            name="one generation (click to open)",
            customdata=points[["generation_id", "model", "seed"]].to_numpy(),
            hovertemplate="generation %{customdata[0]}<br>%{customdata[1]}, seed %{customdata[2]}"
            "<br>share %{y:.3f}<extra></extra>",
        )
    )
    figure.update_layout(title=f"Share of “{plain(word)}” across prompts", yaxis_title=SHARE_AXIS, xaxis_title="prompt")
    return figure


def all_words_figure(table: pd.DataFrame) -> go.Figure:
    """Every word's mean share, prompt by prompt (one panel per model when there are several)."""
    frame = _with_labels(table)
    several_models = frame["model"].nunique() > 1
    figure = px.bar(
        frame,
        x="prompt_label",
        y="mean_share",
        color="word",
        error_y="std_share",
        barmode="group",
        facet_row="model" if several_models else None,
        hover_data={"prompt": True, "generations": True, "prompt_label": False},
        labels={"prompt_label": "prompt", "mean_share": SHARE_AXIS},
        title="Share of every word across prompts",
    )
    return figure


def prompt_edit_figure(table: pd.DataFrame, prompt_a: str, prompt_b: str) -> go.Figure:
    """Each word's share before and after a prompt edit, side by side (0 where the word is absent)."""
    frame = _with_labels(table)
    frame["word_label"] = frame["word"] + " (" + frame["status"] + ")"
    melted = frame.melt(id_vars=["word_label", "pairs", "iou"], value_vars=["share_a", "share_b"], var_name="prompt")
    melted["prompt"] = melted["prompt"].map(
        {"share_a": f"A: {short(plain(prompt_a))}", "share_b": f"B: {short(plain(prompt_b))}"}
    )
    return px.bar(
        melted,
        x="word_label",
        y="value",
        color="prompt",
        barmode="group",
        hover_data=["pairs", "iou"],
        labels={"word_label": "word", "value": SHARE_AXIS},
        title="How attribution moves between the two prompts (mean over the seeds both have)",
    )


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
        points="all" if len(frame) <= MANY_POINTS else "outliers",
        custom_data=["generation_id", "seed", "prompt"],
        labels={"prompt_label": "prompt", "share": SHARE_AXIS},
        title=f"Share of “{plain(word)}” across seeds",
        **options,
    )
    figure.update_traces(hovertemplate="generation %{customdata[0]}, seed %{customdata[1]}<br>share %{y:.3f}")
    return figure


def stability_figure(table: pd.DataFrame, word: str) -> go.Figure:
    """Mean pairwise correlation and IoU of the word's maps across seeds, per prompt and model."""
    frame = _with_labels(table).melt(
        id_vars=["prompt_label", "model", "seeds"],
        value_vars=["mean_correlation", "mean_iou"],
        var_name="metric",
        value_name="value",
    )
    return px.bar(
        frame,
        x="prompt_label",
        y="value",
        color="model",
        barmode="group",
        facet_col="metric",
        hover_data=["seeds"],
        labels={"prompt_label": "prompt"},
        title=f"Stability of “{plain(word)}” across seeds (1 = the same map for every seed)",
    )


def map_grid_figure(maps: Sequence[np.ndarray], titles: Sequence[str], columns: int = 8) -> go.Figure:
    """Maps side by side (image orientation: row 0 at the top), each scaled to its own range as DAAM's
    overlays are. One heat map trace holds them all, with blank gaps between: 64 subplots would take
    Plotly seconds to build and the browser seconds to draw."""
    count = max(1, len(maps))
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    height = max((m.shape[0] for m in maps), default=1)
    width = max((m.shape[1] for m in maps), default=1)
    gap = max(1, height // 8)
    mosaic = np.full((rows * (height + gap), columns * (width + gap) - gap), np.nan)
    annotations = []  # collected and set once: add_annotation() copies the whole list every call
    for index, (heat_map, title) in enumerate(zip(maps, titles, strict=True)):
        top = (index // columns) * (height + gap) + gap
        left = (index % columns) * (width + gap)
        values = np.asarray(heat_map, dtype=np.float64)
        spread = values.max() - values.min()
        scaled = (values - values.min()) / spread if spread > 0 else np.zeros_like(values)
        mosaic[top : top + values.shape[0], left : left + values.shape[1]] = scaled
        annotations.append(
            {"x": left + (width - 1) / 2, "y": top - 0.5, "text": title, "showarrow": False, "yanchor": "bottom"}
        )
    figure = go.Figure(
        go.Heatmap(
            z=mosaic,
            colorscale=HEAT_SCALE,
            zmin=0,
            zmax=1,
            showscale=False,
            hoverongaps=False,
            hovertemplate="%{z:.2f} of the map's range<extra></extra>",
        )
    )
    figure.update_yaxes(autorange="reversed", showticklabels=False, showgrid=False, zeroline=False, scaleanchor="x")
    figure.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    figure.update_layout(
        height=max(200, 40 + rows * 600 // columns),
        margin={"t": 10, "b": 10, "l": 10, "r": 10},
        plot_bgcolor="white",
        annotations=annotations,
    )
    return figure


def model_scatter_figure(table: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Each word's share under model A against model B, one point per (prompt, seed, word)."""
    label_a, label_b = plain(label_a), plain(label_b)
    figure = px.scatter(
        _with_labels(table),
        x="share_a",
        y="share_b",
        color="word",
        custom_data=["generation_id_a", "generation_id_b", "seed"],
        labels={"share_a": f"share under {label_a}", "share_b": f"share under {label_b}"},
        title=f"Per-word shares, one point per seed: {label_a} vs {label_b} (click: open the {label_a} generation)",
        render_mode="webgl",
    )
    # No prompt text per point: with 10,000 generations that alone would be megabytes to send.
    figure.update_traces(
        hovertemplate="seed %{customdata[2]}<br>A %{x:.3f} (generation %{customdata[0]})"
        "<br>B %{y:.3f} (generation %{customdata[1]})<extra></extra>"
    )
    return _with_diagonal(figure, table)


def model_means_figure(table: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    """Each word's mean share under model A against model B, one point per (prompt, word)."""
    label_a, label_b = plain(label_a), plain(label_b)
    figure = px.scatter(
        _with_labels(table),
        x="share_a",
        y="share_b",
        error_x="std_a",
        error_y="std_b",
        color="word",
        custom_data=["generation_id_a", "prompt", "pairs"],
        labels={"share_a": f"mean share under {label_a}", "share_b": f"mean share under {label_b}"},
        title=f"Per-word shares, mean over seeds: {label_a} vs {label_b} (click: open a {label_a} generation)",
    )
    figure.update_traces(
        hovertemplate="%{customdata[1]}<br>A %{x:.3f}, B %{y:.3f} over %{customdata[2]} seeds<extra></extra>"
    )
    return _with_diagonal(figure, table)


def _with_diagonal(figure: go.Figure, table: pd.DataFrame) -> go.Figure:
    """The line of equal shares: points above it are words model B weighs more."""
    top = float(np.nanmax(table[["share_a", "share_b"]].to_numpy())) if len(table) else 1.0
    figure.add_shape(type="line", x0=0, y0=0, x1=top, y1=top, line={"dash": "dot", "color": "grey"})
    return figure


def agreement_figure(table: pd.DataFrame, label_a: str, label_b: str) -> go.Figure:
    label_a, label_b = plain(label_a), plain(label_b)
    frame = _with_labels(table)
    frame["word_label"] = frame["word"] + " · " + frame["prompt_label"]
    melted = frame.melt(id_vars=["word_label", "pairs"], value_vars=["correlation", "iou"], var_name="metric")
    return px.bar(
        melted,
        x="word_label",
        y="value",
        color="metric",
        barmode="group",
        hover_data=["pairs"],
        labels={"word_label": "word · prompt"},
        title=f"Agreement of the maps of {label_a} and {label_b} (mean over shared seeds)",
    )


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
    return figure


def step_figure(table: pd.DataFrame, generation_id: int) -> go.Figure:
    frame = _with_labels(table)
    frame["word_label"] = frame["word"] + " (" + frame["position"].astype(str) + ")"
    return px.line(
        frame,
        x="step",
        y="share",
        color="word_label",
        markers=True,
        labels={"share": SHARE_AXIS, "word_label": "word (position)"},
        title=f"Share of each word at every denoising step, generation {generation_id}",
    )


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
