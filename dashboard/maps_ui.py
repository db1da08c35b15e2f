"""The controls and key every heat-map view shares: opacity, colour map, and the colour scale.

The choices are kept in Session State under names no widget owns, so they follow the user from page to
page (a widget's own state is dropped when its page is left).
"""

from __future__ import annotations

import streamlit as st

from daam_store.heatmap import COLORMAPS, DEFAULT_COLORMAP
from daam_store.views.common import SCALE_CAPTION, colour_scale_image

OPACITY, COLORMAP = "map_opacity", "map_colormap"


def _keep(name: str) -> None:
    st.session_state[name] = st.session_state[f"_{name}"]


def map_controls() -> tuple[float, str]:
    """The opacity slider and the colour-map picker side by side; (opacity, colour map name)."""
    st.session_state[f"_{OPACITY}"] = st.session_state.get(OPACITY, 0.5)
    st.session_state[f"_{COLORMAP}"] = st.session_state.get(COLORMAP, DEFAULT_COLORMAP)
    opacity_column, colormap_column = st.columns([3, 1])
    alpha = opacity_column.slider(
        "Heat-map opacity", 0.0, 1.0, step=0.05, key=f"_{OPACITY}", on_change=_keep, args=(OPACITY,)
    )
    cmap = colormap_column.selectbox(
        "Colour map",
        COLORMAPS,
        key=f"_{COLORMAP}",
        on_change=_keep,
        args=(COLORMAP,),
        help="Perceptual maps: brightness rises evenly with the value, so heat reads on any image.",
    )
    return alpha, cmap


def colour_scale(cmap: str) -> None:
    """The key to a page's maps: what the colours mean, drawn beside them."""
    st.image(colour_scale_image(cmap), caption=SCALE_CAPTION, width=256)
