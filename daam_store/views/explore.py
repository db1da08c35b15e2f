"""The Explore page: gallery filters and pages, a generation's details, overlays, downloads."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from daam_store import rules
from daam_store.errors import UserError
from daam_store.sweep import parse_seed_spec
from daam_store.views.common import DISPLAY_SIDE, GenerationCard, Overlay, enlarge, generation_cards

if TYPE_CHECKING:
    from daam_store.experiment import GenerationExperiment


def word_overlay_png(experiment: GenerationExperiment, word_idx: int, cmap: str) -> bytes:
    """The chosen word's overlay with its colour scale beside it, as a PNG file (the page's download)."""
    from daam_store.heatmap import WordHeatMap

    span = _word_span(experiment, word_idx)
    word_map = WordHeatMap(experiment.global_heat_map[list(span.token_indices)].mean(0), span.text, span.index)
    buffer = io.BytesIO()
    word_map.save_overlay(enlarge(experiment.image), buffer, cmap=cmap)
    return buffer.getvalue()


def token_rows(experiment: GenerationExperiment) -> list[dict[str, object]]:
    """One row per heat-map row: the BPE token and the word it belongs to (start/end tokens have none)."""
    heat_map = experiment.heat_map()
    word_of = {row: span for span in heat_map.words(include_punctuation=True) for row in span.token_indices}
    rows = []
    for row, token in enumerate(heat_map.tokens):
        span = word_of.get(row)
        rows.append(
            {
                "row": row,
                "token": token,
                "word": span.text if span else "",
                "word_idx": span.index if span else None,
                "punctuation": bool(span and span.is_punctuation),
            }
        )
    return rows


def layer_overlays(
    experiment: GenerationExperiment, word_idx: int, alpha: float = 0.5, cmap: str | None = None
) -> list[Overlay]:
    """The word's map in each hooked cross-attention layer (empty when the experiment has none)."""
    maps = getattr(experiment, "layer_heat_maps", None)
    if maps is None:
        return []
    names = list(getattr(experiment, "layer_names", None) or [f"layer {i}" for i in range(maps.shape[0])])
    labels = [readable_layer_name(name) for name in names]
    return _finer_overlays(experiment, maps, labels, word_idx, alpha, cmap)


def readable_layer_name(name: str) -> str:
    """Traces label their layers ('up 1, 16x16, attn 0.0'); generations stored before that kept module paths
    ('up_blocks.1.attentions.0.transformer_blocks.0.attn2' -> 'up 1, attn 0.0')."""
    from daam_store.families.unet import unet_layer_label

    return unet_layer_label(name) if name.endswith("attn2") else name


def step_overlays(
    experiment: GenerationExperiment, word_idx: int, alpha: float = 0.5, cmap: str | None = None
) -> list[Overlay]:
    """The word's map at each denoising step (empty unless traced with `save_steps=True`)."""
    maps = getattr(experiment, "step_heat_maps", None)
    if maps is None:
        return []
    labels = [f"step {i + 1}" for i in range(maps.shape[0])]
    return _finer_overlays(experiment, maps, labels, word_idx, alpha, cmap)


def _finer_overlays(
    experiment, maps, labels: Sequence[str], word_idx: int, alpha: float, cmap: str | None
) -> list[Overlay]:
    from daam_store.heatmap import DEFAULT_COLORMAP, WordHeatMap

    span = _word_span(experiment, word_idx)
    base = enlarge(experiment.image, DISPLAY_SIDE // 2)
    rows = list(span.token_indices)
    overlays = []
    for i, label in enumerate(labels):
        word_map = WordHeatMap(maps[i, rows].mean(0), span.text, span.index)
        overlays.append(Overlay(label, span.index, word_map.overlay_image(base, alpha, cmap=cmap or DEFAULT_COLORMAP)))
    return overlays


def _word_span(experiment: GenerationExperiment, word_idx: int):
    for span in experiment.heat_map().words():
        if span.index == word_idx:
            return span
    raise UserError(f"generation has no word at index {word_idx}")


def experiment_zip(experiment: GenerationExperiment, folder_name: str = "experiment") -> bytes:
    """The experiment directory (output.png, prompt.txt, seed.txt, maps, generation.pt) as a zip file."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / folder_name
        # Save a copy: saving re-points the experiment's `path`, here to a folder about to be deleted.
        replace(experiment).save(directory)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(directory.rglob("*")):
                if file.is_file():
                    archive.write(file, Path(folder_name) / file.relative_to(directory))
        return buffer.getvalue()


# -- reading the store for the pages --------------------------------------------------------------

GALLERY_PAGE_SIZE = 12


# -- the Explore gallery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterOptions:
    models: dict[str, int]  # label -> model id
    authors: list[str]
    tags: list[str]
    any_stored: bool


def filter_options(store) -> FilterOptions:
    from daam_store.store import queries

    with store.session() as session:
        models = queries.list_models(session)
        authors = queries.list_authors(session)
        tags = [name for name, _count in queries.list_tags(session)]
        stored = queries.count_generations(session) > 0
    names = [model.name for model in models]
    labels = {
        # The same name with other weights is another model: tell them apart by revision.
        (f"{m.name} ({m.revision[:8]})" if names.count(m.name) > 1 else m.name): m.id
        for m in models
    }
    return FilterOptions(models=labels, authors=authors, tags=tags, any_stored=stored)


def gallery_filter(
    prompt_contains: str = "",
    word: str = "",
    model_ids: Sequence[int] = (),
    seeds: str = "",
    days: Sequence[date] = (),
    author: str | None = None,
    tag: str | None = None,
):
    """The Explore sidebar's values as a `GenerationFilter`; blank fields set no condition.

    `days` is the date picker's value: () for any date, (first,) or (first, last), both days included,
    as calendar days in UTC (the store's clock).
    """
    from daam_store.store.queries import GenerationFilter

    first = datetime.combine(days[0], dt_time.min, UTC) if len(days) >= 1 else None
    last = datetime.combine(days[1], dt_time.max, UTC) if len(days) >= 2 else None
    return GenerationFilter(
        prompt_contains=prompt_contains.strip() or None,
        word=word.strip() or None,
        model_ids=list(model_ids) or None,
        seeds=parse_seed_spec(seeds) if seeds.strip() else None,
        created_after=first,
        created_before=last,
        author=author or None,
        tag=tag or None,
    )


def gallery_count(store, filters) -> int:
    from daam_store.store import queries

    with store.session() as session:
        return queries.count_generations(session, filters)


def gallery_page(store, filters, page: int, page_size: int = GALLERY_PAGE_SIZE) -> list[GenerationCard]:
    """Page `page` (from 1) of the matching generations, newest first."""
    from daam_store.store import queries

    with store.session() as session:
        rows = queries.list_generations(session, filters, limit=page_size, offset=(page - 1) * page_size)
        return generation_cards(session, rows)


# -- one generation in detail ------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationDetails:
    generation_id: int
    prompt: str
    image: Image.Image
    experiment: GenerationExperiment | None  # None when the token maps are not in the store (see maps_note)
    facts: list[dict[str, str]]  # what / value, as text
    word_statistics: list[dict[str, object]]
    stored_overlays: list[Overlay]  # without an experiment: the overlays imported, or the word maps on the image
    maps_note: str = ""  # without an experiment: what of the maps is in the store and what is not, in one line


def parse_generation_id(text: str) -> int:
    if not str(text).strip().isdigit():
        raise UserError(f"bad generation id {text!r}: it is a whole number, as in ?generation=12")
    return int(text)


OVERLAYS_ONLY_NOTE = "Imported from rendered overlays only: no numeric maps, so no statistics or views."
WORD_MAPS_ONLY_NOTE = (
    "Stored at schema 0001, before token maps were kept: the store has its image and one map per word (below), "
    "not the map of each token, so there are no token table, per-layer or per-step maps and no experiment "
    "download for it."
)


def generation_details(store, generation_id: int) -> GenerationDetails:
    from sqlalchemy import select

    from daam_store.store import GenerationNotFoundError, queries
    from daam_store.store.reader import image_from_png
    from daam_store.store.schema import STATUS_OVERLAYS_ONLY, MapStack

    with store.session() as session:
        summary = queries.get_generation(session, generation_id)
        if summary is None:
            raise GenerationNotFoundError(f"no generation {generation_id} in the store: pick one in the gallery")
        statistics = queries.word_statistics(session, generation_id)
        image = image_from_png(queries.image_png(session, generation_id))
        attachments = queries.attachments(session, generation_id)
        has_token_maps = session.scalar(
            select(MapStack.id).where(MapStack.generation_id == generation_id, MapStack.kind == "tokens").limit(1)
        )
        word_maps = {
            row.word_idx: (row.word, queries.word_heat_map(session, generation_id, row.word_idx))
            for row in statistics
            if row.has_map and not has_token_maps
        }
    experiment = store.load_experiment(generation_id) if has_token_maps else None
    overlays = [
        Overlay(name.removesuffix(".heat_map.png"), index, image_from_png(data))
        for index, (name, media_type, data) in enumerate(attachments)
        if media_type == "image/png"
    ]
    if experiment is not None:
        note = ""
    elif summary.status == STATUS_OVERLAYS_ONLY:
        note = OVERLAYS_ONLY_NOTE
    elif word_maps:
        note = WORD_MAPS_ONLY_NOTE
        overlays = _word_map_overlays(image, word_maps)
    else:
        note = f"No heat maps are stored for this generation (status {summary.status}): only its image and words."
    return GenerationDetails(
        generation_id=generation_id,
        prompt=summary.prompt,
        image=image,
        experiment=experiment,
        facts=_facts(summary, experiment, "word maps only (no token maps)" if note == WORD_MAPS_ONLY_NOTE else ""),
        word_statistics=[_statistics_row(row) for row in statistics if row.has_map],
        stored_overlays=overlays,
        maps_note=note,
    )


def _word_map_overlays(image: Image.Image, word_maps: dict) -> list[Overlay]:
    import torch

    from daam_store.heatmap import WordHeatMap

    base = enlarge(image)
    return [
        Overlay(word, index, WordHeatMap(torch.from_numpy(value), word, index).overlay_image(base))
        for index, (word, value) in sorted(word_maps.items())
        if value is not None
    ]


def _facts(summary, experiment: GenerationExperiment | None, maps: str = "") -> list[dict[str, str]]:
    metadata = experiment.metadata if experiment is not None else {}
    model = metadata.get("model_info", {})
    timings = metadata.get("timings") or {}
    facts = {
        "model": f"{summary.model} ({summary.family}, {model.get('source', '?')})",
        "seed": summary.seed,
        "steps": summary.steps,
        "guidance": summary.guidance_scale,
        "negative prompt": metadata.get("negative_prompt", ""),
        "scheduler": metadata.get("scheduler", ""),
        "maps average": rules.DESCRIPTIONS.get(metadata.get("heat_map_rule"))
        if experiment
        else maps or "no numeric maps",
        "size": f"{summary.width} x {summary.height}",
        "created": f"{summary.created_at:%Y-%m-%d %H:%M:%S}",
        "author": summary.author or "",
        "tags": ", ".join(summary.tags),
        "status": summary.status,
        "timings": ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items()),
    }
    return [{"what": what, "value": "" if value is None else str(value)} for what, value in facts.items()]


def _statistics_row(row) -> dict[str, object]:
    return {
        "word": row.word,
        "word_idx": row.word_idx,
        "share": row.share,
        "total": row.total,
        "peak": row.peak,
        "entropy": row.entropy,
        "centroid x": row.centroid_x,
        "centroid y": row.centroid_y,
        "area above tau": row.area_above_tau,
    }
