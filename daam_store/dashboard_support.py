"""What the dashboard pages need from the library, kept free of Streamlit so it can be tested directly:
reading the Generate form, running a traced batch with step-level progress, and turning stored
experiments into the pictures and files the pages show.

Pages call these functions and render what comes back; they never build SQL or touch tensors.
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
import weakref
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from daam_store import rules
from daam_store.errors import UserError, first_line
from daam_store.generate import GenerationRequest, generate
from daam_store.sweep import parse_seed_spec
from daam_store.tags import parse_tags  # noqa: F401  (the Generate page's tag parser, shared with the CLI)

if TYPE_CHECKING:
    from daam_store.experiment import GenerationExperiment

# A click on Generate runs at most this many generations: a bigger grid belongs in `daam-store sweep`.
MAX_BATCH = 64
# Built-in images are 32x32: shown this small, a heat map is unreadable, so pictures are enlarged first.
DISPLAY_SIDE = 256

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in the whole batch)


def parse_prompts(text: str) -> list[str]:
    """One prompt per non-empty line, surrounding blanks removed; a repeated line runs once."""
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UserError("enter at least one prompt (one per line)")
    return list(dict.fromkeys(prompts))


@dataclass(frozen=True)
class BatchRequest:
    """Everything the Generate form asks for: a prompt x seed grid on one model."""

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int = GenerationRequest.steps
    guidance_scale: float = GenerationRequest.guidance_scale
    negative_prompt: str = ""
    author: str | None = None
    tags: tuple[str, ...] = ()
    save_steps: bool = False
    mid_block: bool = False

    def __post_init__(self) -> None:
        if not self.prompts or not self.seeds:
            raise UserError("enter at least one prompt and one seed")
        if len(self.jobs) > MAX_BATCH:
            raise UserError(
                f"{len(self.prompts)} prompts x {len(self.seeds)} seeds = {len(self.jobs)} generations; "
                f"the dashboard runs at most {MAX_BATCH} at once (use `daam-store sweep` for more)"
            )
        if not 1 <= self.steps <= 1000:
            raise UserError(f"steps must be between 1 and 1000, not {self.steps}")
        if self.guidance_scale < 0:
            raise UserError(f"guidance must be 0 or more, not {self.guidance_scale}")

    @property
    def jobs(self) -> list[GenerationRequest]:
        """One request per (prompt, seed), all seeds of the first prompt first."""
        return [
            GenerationRequest(
                prompt=prompt,
                seed=seed,
                steps=self.steps,
                guidance_scale=self.guidance_scale,
                negative_prompt=self.negative_prompt or None,
                save_steps=self.save_steps,
                mid_block=self.mid_block,
            )
            for prompt in self.prompts
            for seed in self.seeds
        ]

    @property
    def total_steps(self) -> int:
        return len(self.prompts) * len(self.seeds) * self.steps


MAX_SWEEP = 512  # generations one click may start: a sweep runs inside the server process


@dataclass(frozen=True)
class SweepGrid:
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    models: tuple[str, ...]

    @classmethod
    def parse(cls, prompts_text: str, seeds_text: str, models: Sequence[str]) -> SweepGrid:
        if not models:
            raise UserError("pick at least one model for the sweep")
        grid = cls(tuple(parse_prompts(prompts_text)), tuple(parse_seed_spec(seeds_text)), tuple(models))
        size = len(grid.prompts) * len(grid.seeds) * len(grid.models)
        if size > MAX_SWEEP:
            raise UserError(
                f"{size} generations is more than one click may start ({MAX_SWEEP}): "
                "use `daam-store sweep` for big grids"
            )
        return grid


class GenerationFailed(UserError):
    """One generation of a batch failed: it saved nothing; those before it stay saved."""


@dataclass(frozen=True)
class GenerationResult:
    generation_id: int
    experiment: GenerationExperiment

    def for_display(self) -> GenerationResult:
        """Image and word maps only: the per-layer and per-step stacks (tens of MB per image on a real
        SD model) are in the store, and a page keeping a batch in its session need not hold them too."""
        light = replace(self.experiment, layer_heat_maps=None, step_heat_maps=None, layer_names=[])
        return GenerationResult(self.generation_id, light)


def run_generations(
    pipe, batch: BatchRequest, store, on_progress: ProgressCallback | None = None
) -> Iterator[GenerationResult]:
    """Generate, trace and save every (prompt, seed) of the batch, one at a time.

    Each generation goes through `daam_store.generate.generate`, as the CLI's does, so `daam "prompt"
    --seed N` on the same model gives the same image. Results are yielded as they are saved, so a page
    can show them at once; `on_progress(done, total)` is called after every denoising step of the batch.
    """
    from daam_store.models import describe_pipeline

    model = describe_pipeline(pipe)  # hashes the weights once per batch, not once per image
    jobs = batch.jobs
    for number, job in enumerate(jobs, start=1):
        steps_before = (number - 1) * batch.steps

        def on_step(step: int, _steps: int, before: int = steps_before) -> None:
            if on_progress is not None:
                on_progress(min(before + step, batch.total_steps), batch.total_steps)

        try:
            with pipeline_lock(pipe):
                experiment = generate(pipe, job, on_step=on_step)
            generation_id = store.save(experiment, model=model, author=batch.author, tags=batch.tags)
        except Exception as error:  # any cause: the page shows one line, never a traceback
            before = number - 1
            saved = f"; the {before} before it {'was' if before == 1 else 'were'} saved" if before else ""
            raise GenerationFailed(
                f"generation {number} of {len(jobs)} ({job.prompt!r}, seed {job.seed}) failed and saved "
                f"nothing: {first_line(error)}{saved}"
            ) from error
        yield GenerationResult(generation_id, experiment)


_PIPELINE_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PIPELINE_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe) -> threading.Lock:
    """One generation at a time per pipeline object. Streamlit runs every browser session in its own
    thread and they share the cached pipeline, whose scheduler state and `trace` hooks one call owns."""
    with _PIPELINE_LOCKS_GUARD:
        return _PIPELINE_LOCKS.setdefault(pipe, threading.Lock())


MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>~$])")  # what makes inline Markdown, links or math


def escape_markdown(text: str) -> str:
    """User text (prompts, words, model names) made literal for Streamlit elements that render Markdown."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


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


def word_overlay_png(experiment: GenerationExperiment, word_idx: int, cmap: str) -> bytes:
    """The chosen word's overlay with its colour scale beside it, as a PNG file (the page's download)."""
    from daam_store.heatmap import WordHeatMap

    span = _word_span(experiment, word_idx)
    word_map = WordHeatMap(experiment.global_heat_map[list(span.token_indices)].mean(0), span.text, span.index)
    buffer = io.BytesIO()
    word_map.save_overlay(enlarge(experiment.image), buffer, cmap=cmap)
    return buffer.getvalue()


def unmapped_words_note(experiment: GenerationExperiment) -> str | None:
    """What of the prompt has no map, in one line: symbols and emoji (DAAM maps words only) and the words
    CLIP's 77-token limit cut. None when every word has its map."""
    heat_map = experiment.heat_map()
    symbols = [span.text for span in heat_map.words(include_punctuation=True) if span.is_punctuation]
    parts = []
    if symbols:
        parts.append(f"symbols and emoji get no map: {' '.join(dict.fromkeys(symbols))}")
    if heat_map.cut_words:
        cut = heat_map.cut_words
        parts.append(f"{len(cut)} word{'s' if len(cut) != 1 else ''} cut by CLIP's 77-token limit: {' '.join(cut)}")
    return "; ".join(parts).capitalize() if parts else None


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


def file_stem(text: str, limit: int = 80) -> str:
    """A download file name from user text: letters, digits, '-', '_' and '.' kept, runs of others -> '_'."""
    stem = re.sub(r"[^\w.-]+", "_", text, flags=re.ASCII).strip("._")[:limit]
    return stem or "download"


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


@dataclass(frozen=True)
class GenerationCard:
    """What a gallery tile shows."""

    generation_id: int
    prompt: str
    seed: int | None
    model: str
    created_at: datetime
    image: Image.Image


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]  # label -> number, in display order
    database: str  # the URL with any password hidden
    latest: list[GenerationCard]


def store_overview(store, latest: int = 8) -> Overview:
    from daam_store.store import queries

    with store.session() as session:
        summary = queries.store_summary(session)
        cards = _cards(session, queries.list_generations(session, limit=latest))
    counts = {
        "Generations": summary.generations,
        "Prompts": summary.prompts,
        "Models": summary.models,
        "Distinct words": summary.words,
    }
    return Overview(counts=counts, database=store.url, latest=cards)


def _cards(session, summaries) -> list[GenerationCard]:
    from daam_store.store import queries
    from daam_store.store.reader import image_from_png

    cards = []
    for row in summaries:
        png = queries.image_png(session, row.id)
        image = image_from_png(png) if png else Image.new("RGB", (row.width, row.height), (128, 128, 128))
        cards.append(GenerationCard(row.id, row.prompt, row.seed, row.model, row.created_at, image))
    return cards


# -- models ------------------------------------------------------------------------------------------


def model_choices(store) -> dict[str, str]:
    """Generate page's model list: label -> what `load_pipeline` takes. Built-ins first, then the models
    registered in the store that can be loaded again (a hub id or a local folder)."""
    from daam_store.models import BUILTIN_MODELS
    from daam_store.store import queries

    choices = {f"{name} (built-in)": name for name in BUILTIN_MODELS}
    with store.session() as session:
        models = queries.list_models(session)
    for model in models:
        if model.source in ("hub", "local") and model.location:
            choices.setdefault(f"{model.name} ({model.source}, {model.family})", model.location)
    return choices


def builtin_model_table() -> list[dict[str, str]]:
    """The built-in models and whether their weights are present (they are trained by a command)."""
    from daam_store.models import BUILTIN_FAMILIES, ModelNotFoundError, resolve_model

    rows = []
    for name, family in BUILTIN_FAMILIES.items():
        try:
            status = f"ready ({resolve_model(name).location})"
        except ModelNotFoundError as error:
            status = str(error)
        rows.append({"name": name, "family": family, "status": status})
    return rows


def family_table() -> list[dict[str, str]]:
    """The model families daam-store traces, with the pipeline class that loads each."""
    from daam_store.families import families

    return [
        {"family": family.name, "pipeline": ", ".join(family.pipeline_class_names), "default maps": family.default_rule}
        for family in sorted(families(), key=lambda family: family.name)
    ]


def model_table(store) -> list[dict[str, object]]:
    """Every model in the store with how many generations it made."""
    from daam_store.store import queries

    with store.session() as session:
        models = queries.list_models(session)
    return [
        {
            "name": model.name,
            "family": model.family,
            "source": model.source,
            "location": model.location,
            "revision": model.revision,
            "resolution": model.resolution,
            "prediction": model.prediction_type,
            "generations": model.generations,
        }
        for model in models
    ]


def register_model(store, load_pipeline: Callable[[str], object], name: str):
    """Load the model the user named (proving it works) and record it in the store; its ModelInfo."""
    from daam_store.models import describe_pipeline
    from daam_store.store import queries

    name = name.strip()
    if not name:
        raise UserError("enter a hub id (org/name) or the path of a local diffusers folder")
    info = describe_pipeline(load_pipeline(name))
    with store.write_session() as session:
        queries.register_model(session, info)
    return info


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
        return _cards(session, rows)


# -- one generation in detail ------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationDetails:
    generation_id: int
    prompt: str
    image: Image.Image
    experiment: GenerationExperiment | None  # None when only rendered overlays were imported
    facts: list[dict[str, str]]  # what / value, as text
    word_statistics: list[dict[str, object]]
    stored_overlays: list[Overlay]  # overlay images kept verbatim (imported from the original daam layout)


def parse_generation_id(text: str) -> int:
    if not str(text).strip().isdigit():
        raise UserError(f"bad generation id {text!r}: it is a whole number, as in ?generation=12")
    return int(text)


def generation_details(store, generation_id: int) -> GenerationDetails:
    from daam_store.store import GenerationNotFoundError, queries
    from daam_store.store.reader import image_from_png

    with store.session() as session:
        summary = queries.get_generation(session, generation_id)
        if summary is None:
            raise GenerationNotFoundError(f"no generation {generation_id} in the store: pick one in the gallery")
        statistics = queries.word_statistics(session, generation_id)
        image = image_from_png(queries.image_png(session, generation_id))
        attachments = queries.attachments(session, generation_id)
    has_maps = any(row.has_map for row in statistics)
    experiment = store.load_experiment(generation_id) if has_maps else None
    return GenerationDetails(
        generation_id=generation_id,
        prompt=summary.prompt,
        image=image,
        experiment=experiment,
        facts=_facts(summary, experiment),
        word_statistics=[_statistics_row(row) for row in statistics if row.has_map],
        stored_overlays=[
            Overlay(name.removesuffix(".heat_map.png"), index, image_from_png(data))
            for index, (name, media_type, data) in enumerate(attachments)
            if media_type == "image/png"
        ],
    )


RULE_DESCRIPTIONS = {
    rules.DAAM: "down and up blocks (the original DAAM's layers)",
    rules.DAAM_WITH_MID_BLOCK: "every layer, mid block included",
    rules.CUSTOM: "layers, heads or steps chosen by hand",
    None: "unknown layers",
}


def _facts(summary, experiment: GenerationExperiment | None) -> list[dict[str, str]]:
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
        "maps average": RULE_DESCRIPTIONS.get(metadata.get("heat_map_rule")) if experiment else "no numeric maps",
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
