"""What the dashboard pages need from the library, kept free of Streamlit so it can be tested directly:
reading the Generate form, running a traced batch with step-level progress, and turning stored
experiments into the pictures and files the pages show.

Pages call these functions and render what comes back; they never build SQL or touch tensors.
"""

from __future__ import annotations

import io
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from daam_store.errors import UserError
from daam_store.utils import MAX_SEED

if TYPE_CHECKING:
    from daam_store.experiment import GenerationExperiment

# A click on Generate runs at most this many generations: a bigger grid belongs in `daam-store sweep`.
MAX_BATCH = 64
# Built-in images are 32x32: shown this small, a heat map is unreadable, so pictures are enlarged first.
DISPLAY_SIDE = 256

_SEED_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in the whole batch)


def parse_prompts(text: str) -> list[str]:
    """One prompt per non-empty line, surrounding blanks removed."""
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UserError("enter at least one prompt (one per line)")
    return prompts


def parse_seeds(text: str) -> list[int]:
    """Seeds as a comma-separated list of numbers and ranges: "0, 3, 10-12" -> [0, 3, 10, 11, 12]."""
    seeds: list[int] = []
    for part in (item.strip() for item in text.replace(";", ",").split(",")):
        if not part:
            continue
        match = _SEED_RANGE.match(part)
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            if last < first:
                raise UserError(f"seed range {part!r} goes backwards: write it as {last}-{first}")
            if last - first >= MAX_BATCH:
                raise UserError(f"seed range {part!r} is longer than {MAX_BATCH} seeds")
            seeds.extend(range(first, last + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise UserError(f"bad seed {part!r}: use whole numbers and ranges, e.g. 0, 3, 10-12")
    if not seeds:
        raise UserError("enter at least one seed, e.g. 0 or 0-3")
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise UserError(f"seed {seed} is out of range: seeds are 0 to {MAX_SEED}")
    return list(dict.fromkeys(seeds))  # keep order, drop repeats: a repeated seed is the same image


def parse_tags(text: str) -> tuple[str, ...]:
    """Comma-separated tags, blanks removed, repeats dropped."""
    tags = (tag.strip() for tag in text.split(","))
    return tuple(dict.fromkeys(tag for tag in tags if tag))


@dataclass(frozen=True)
class GenerationRequest:
    """Everything the Generate form asks for: a prompt x seed grid on one model."""

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int = 20
    guidance_scale: float = 7.5
    negative_prompt: str = ""
    author: str | None = None
    tags: tuple[str, ...] = ()
    save_steps: bool = False

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
    def jobs(self) -> list[tuple[str, int]]:
        """(prompt, seed) pairs in the order they run: all seeds of the first prompt first."""
        return [(prompt, seed) for prompt in self.prompts for seed in self.seeds]

    @property
    def total_steps(self) -> int:
        return len(self.jobs) * self.steps


class GenerationFailed(UserError):
    """One generation of a batch failed: it saved nothing; those before it stay saved."""


@dataclass(frozen=True)
class GenerationResult:
    generation_id: int
    experiment: GenerationExperiment


def run_generations(
    pipe, request: GenerationRequest, store, on_progress: ProgressCallback | None = None
) -> Iterator[GenerationResult]:
    """Generate, trace and save every (prompt, seed) of the request, one at a time.

    Each generation is seeded like the CLI's (`set_seed(seed)`), so `daam "prompt" --seed N` on the same
    model gives the same image. Results are yielded as they are saved, so a page can show them at once;
    `on_progress` is called after every denoising step of the whole batch.
    """
    from daam_store.models import describe_pipeline

    model = describe_pipeline(pipe)  # hashes the weights once per batch, not once per image
    total = request.total_steps
    done = 0

    def on_step_end(_pipe, _step, _timestep, callback_kwargs):
        nonlocal done
        done = min(done + 1, total)
        if on_progress is not None:
            on_progress(done, total)
        return callback_kwargs

    for number, (prompt, seed) in enumerate(request.jobs, start=1):
        try:
            experiment = _generate_one(pipe, prompt, seed, request, on_step_end)
            generation_id = store.save(experiment, model=model, author=request.author, tags=request.tags)
        except Exception as error:  # any cause: the page shows one line, never a traceback
            saved = f"; the {number - 1} before it were saved" if number > 1 else ""
            raise GenerationFailed(
                f"generation {number} of {len(request.jobs)} ({prompt!r}, seed {seed}) failed and saved "
                f"nothing: {_first_line(error)}{saved}"
            ) from error
        done = number * request.steps  # a scheduler with fewer or more steps still ends at its share
        yield GenerationResult(generation_id, experiment)


def _generate_one(
    pipe, prompt: str, seed: int, request: GenerationRequest, on_step_end
) -> GenerationExperiment:

    from daam_store import set_seed, trace

    generator = set_seed(seed)
    started = time.perf_counter()
    with trace(pipe, save_steps=request.save_steps) as tracer:
        pipe(
            prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            generator=generator,
            callback_on_step_end=on_step_end,
        )
        generated = time.perf_counter()
        # Kept in memory for the store; `path` only matters if someone saves it without naming a folder.
        experiment = tracer.to_experiment(Path(tempfile.gettempdir()) / "daam-dashboard", seed=seed)
    experiment.metadata.setdefault("timings", {}).update(
        generate=generated - started, trace=time.perf_counter() - generated
    )
    return experiment


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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


def word_overlays(experiment: GenerationExperiment, alpha: float = 0.5) -> list[Overlay]:
    """The image with each (non-punctuation) word's map on top, in prompt order."""
    from daam_store.heatmap import WordHeatMap

    base = enlarge(experiment.image)
    return [
        Overlay(span.text, span.index, WordHeatMap(value, span.text, span.index).overlay_image(base, alpha))
        for span, value in experiment.heat_map().word_heat_maps()
    ]


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


def layer_overlays(experiment: GenerationExperiment, word_idx: int, alpha: float = 0.5) -> list[Overlay]:
    """The word's map in each hooked cross-attention layer (empty when the experiment has none)."""
    maps = getattr(experiment, "layer_heat_maps", None)
    if maps is None:
        return []
    names = list(getattr(experiment, "layer_names", None) or [f"layer {i}" for i in range(maps.shape[0])])
    return _finer_overlays(experiment, maps, names, word_idx, alpha)


def step_overlays(experiment: GenerationExperiment, word_idx: int, alpha: float = 0.5) -> list[Overlay]:
    """The word's map at each denoising step (empty unless traced with `save_steps=True`)."""
    maps = getattr(experiment, "step_heat_maps", None)
    if maps is None:
        return []
    return _finer_overlays(experiment, maps, [f"step {i + 1}" for i in range(maps.shape[0])], word_idx, alpha)


def _finer_overlays(experiment, maps, labels: Sequence[str], word_idx: int, alpha: float) -> list[Overlay]:
    from daam_store.heatmap import WordHeatMap

    span = _word_span(experiment, word_idx)
    base = enlarge(experiment.image, DISPLAY_SIDE // 2)
    rows = list(span.token_indices)
    overlays = []
    for i, label in enumerate(labels):
        word_map = WordHeatMap(maps[i, rows].mean(0), span.text, span.index)
        overlays.append(Overlay(label, span.index, word_map.overlay_image(base, alpha)))
    return overlays


def _word_span(experiment: GenerationExperiment, word_idx: int):
    for span in experiment.heat_map().words():
        if span.index == word_idx:
            return span
    raise UserError(f"generation has no word at index {word_idx}")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def experiment_zip(experiment: GenerationExperiment, folder_name: str = "experiment") -> bytes:
    """The experiment directory (output.png, prompt.txt, seed.txt, maps, generation.pt) as a zip file."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch) / folder_name
        experiment.save(directory)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(directory.rglob("*")):
                if file.is_file():
                    archive.write(file, Path(folder_name) / file.relative_to(directory))
        return buffer.getvalue()
