"""What several pages share: Markdown escaping, image enlargement, word overlays and colour scales, cards."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from daam_store.experiment import GenerationExperiment
# Built-in images are 32x32: shown this small, a heat map is unreadable, so pictures are enlarged first.
DISPLAY_SIDE = 256


# Every ASCII punctuation character but the colon: CommonMark lets each be escaped, and each can start some
# Markdown (emphasis, links, math, entities, headings, lists, tables, rules).
ESCAPABLE_PUNCTUATION = re.compile("([" + re.escape(string.punctuation.replace(":", "")) + "])")


def escape_markdown(text: str) -> str:
    """User text (prompts, words, model names) made literal for Streamlit elements that render Markdown.

    The colon becomes an entity rather than an escape: Streamlit turns `:smile:`, `:red[...]` and
    `:material/icon:` into emoji, colours and icons even when the colon is backslash-escaped, and a bare
    `http://...` into a link. Its emoji pass runs only when the raw string holds a `:name:` itself, so never put
    an unescaped one beside escaped text. Left as Streamlit draws them, since they act on the parsed text and no
    escape reaches them: its typographic replacements (`->` shows as →, ` -- ` as —, ` >= ` as ≥) and its
    `:streamlit:` logo."""
    return ESCAPABLE_PUNCTUATION.sub(r"\\\1", str(text)).replace(":", "&#58;")


# -- pictures and files of one experiment ------------------------------------------------------------


@dataclass(frozen=True)
class Overlay:
    label: str  # the word, or the layer / step it shows
    word_idx: int
    image: Image.Image


def enlarge(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """A small image scaled up by a whole factor with sharp pixels, so the map on top stays readable."""
    factor = side // max(image.size)
    if factor <= 1:
        return image.convert("RGB")
    size = (image.width * factor, image.height * factor)
    return image.convert("RGB").resize(size, Image.Resampling.NEAREST)


def word_overlays(experiment: GenerationExperiment, alpha: float = 0.5, cmap: str | None = None) -> list[Overlay]:
    """The image with each (non-punctuation) word's map on top, in prompt order."""
    from daam_store.heatmap import DEFAULT_COLORMAP, WordHeatMap

    base = enlarge(experiment.image)
    return [
        Overlay(
            span.text,
            span.index,
            WordHeatMap(value, span.text, span.index).overlay_image(base, alpha, cmap=cmap or DEFAULT_COLORMAP),
        )
        for span, value in experiment.heat_map().word_heat_maps()
    ]


def colour_scale_image(cmap: str, width: int = DISPLAY_SIDE, height: int = 12) -> Image.Image:
    """The colour map as a horizontal strip, left = 0, right = 1: the key drawn beside a page's maps."""
    import numpy as np
    from matplotlib import colormaps

    ramp = colormaps[cmap](np.linspace(0, 1, width))[:, :3]
    return Image.fromarray((np.tile(ramp, (height, 1, 1)) * 255).round().astype(np.uint8))


SCALE_CAPTION = "Colour scale: each map from its lowest value (left) to its peak (right)"


def unmapped_words_note(experiment: GenerationExperiment) -> str | None:
    """What of the prompt has no map, in one line (see `PromptTokens.unmapped_note`)."""
    return experiment.heat_map().prompt_tokens.unmapped_note()


def file_stem(text: str, limit: int = 80) -> str:
    """A download file name from user text: letters, digits, '-', '_' and '.' kept, runs of others -> '_'."""
    stem = re.sub(r"[^\w.-]+", "_", text, flags=re.ASCII).strip("._")[:limit]
    return stem or "download"


@dataclass(frozen=True)
class GenerationCard:
    """What a gallery tile shows."""

    generation_id: int
    prompt: str
    seed: int | None
    model: str
    created_at: datetime
    image: Image.Image
    problem: str | None = None  # why the tile shows a grey placeholder instead of the image


CARD_PIXELS = 320  # a tile is drawn 160 wide: twice that stays sharp on high-density screens


def generation_cards(session, summaries) -> list[GenerationCard]:
    """Tiles hold thumbnails made a band of rows at a time (`store.thumbnail`): a stored image is never held
    decoded whole, so a legal 9000 x 9000 one costs a few MB on each render instead of hundreds."""
    from daam_store.store import queries
    from daam_store.store.errors import CorruptBlobError
    from daam_store.store.thumbnail import png_thumbnail

    cards = []
    for row in summaries:
        png = queries.image_png(session, row.id)
        try:
            image, problem = png_thumbnail(png, CARD_PIXELS) if png else _placeholder(row.width, row.height), None
        except CorruptBlobError as error:  # one damaged image greys its own tile, not the whole page
            image, problem = _placeholder(row.width, row.height), str(error)
        cards.append(GenerationCard(row.id, row.prompt, row.seed, row.model, row.created_at, image, problem))
    return cards


def _placeholder(width: int, height: int) -> Image.Image:
    """A grey tile with the image's proportions, at thumbnail size."""
    scale = min(1.0, CARD_PIXELS / max(width, height, 1))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return Image.new("RGB", size, (128, 128, 128))
