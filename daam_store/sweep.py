"""Batch runs: a prompt x seed x model grid, traced and stored, that skips what is stored and resumes.

The grid is a set of jobs in the store (daam_store/jobs), run here or by workers. Each generation is saved in
its own transaction, so a crash loses at most the one that was running; running the same sweep again finds
its jobs and what is stored (same model, prompt, seed, settings and heat-map rule) and carries on.
Every row a sweep covers (new or found) is tagged `sweep:<name>`, so the Compare page can select it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daam_store.errors import UserError
from daam_store.generate import GenerationRequest, generate
from daam_store.utils import parse_seed

TAG_PREFIX = "sweep:"
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
MAX_SEEDS_IN_RANGE = 100_000
_NAME = re.compile(r"^[\w.+-]{1,64}$")


def sweep_tag(name: str) -> str:
    return f"{TAG_PREFIX}{name}"


def check_sweep_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(f"bad sweep name {name!r}: use up to 64 letters, digits, '.', '_', '+' or '-'")
    return name


def parse_seed_spec(text: str) -> list[int]:
    """Seeds as numbers and ranges separated by commas: "0-3,10" -> [0, 1, 2, 3, 10] (repeats dropped)."""
    seeds: list[int] = []
    for part in (item.strip() for item in str(text).split(",")):
        if not part:
            continue
        match = _RANGE.match(part)
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            if last < first:
                raise UserError(f"seed range {part!r} goes backwards: write it as {last}-{first}")
            if last - first >= MAX_SEEDS_IN_RANGE:  # a typo like 0-10000000000 must not fill the memory
                raise UserError(f"seed range {part!r} has over {MAX_SEEDS_IN_RANGE} seeds")
            seeds.extend(range(parse_seed(first), parse_seed(last) + 1))
        else:
            seeds.append(parse_seed(part))
    if not seeds:
        raise UserError(f"no seeds in {text!r}: give numbers and ranges, e.g. 0-31 or 0,5,7")
    return list(dict.fromkeys(seeds))


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped; repeats run once."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the prompts file {file}: {error.__class__.__name__}") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise UserError(f"{file} has no prompts: write one prompt per line")
    return list(dict.fromkeys(prompts))


def parse_models(text: str) -> list[str]:
    models = list(dict.fromkeys(part.strip() for part in str(text).split(",") if part.strip()))
    if not models:
        raise UserError("no models given: e.g. --models sd1-tiny,sd2-tiny")
    return models


@dataclass(frozen=True)
class SweepSettings:
    """What every generation of a sweep shares; part of what makes a stored generation "the same"."""

    steps: int = GenerationRequest.steps
    guidance_scale: float = GenerationRequest.guidance_scale
    negative_prompt: str | None = None
    save_steps: bool = False
    author: str | None = None
    mid_block: bool = False  # the heat-map rule: rules.DAAM_WITH_MID_BLOCK instead of rules.DAAM


@dataclass(frozen=True)
class SweepJob:
    model: str
    prompt: str
    seed: int


@dataclass
class SweepProgress:
    """Handed to the progress callback after every denoising step and after every job."""

    total: int  # jobs in the grid
    done: int = 0  # jobs finished: generated or found in the store
    generated: int = 0
    skipped: int = 0
    step: int = 0  # denoising steps done in the running job
    steps: int = 1
    job: SweepJob | None = None  # the running (or last finished) job

    @property
    def fraction(self) -> float:
        running = self.step / self.steps if self.steps and self.done < self.total else 0.0
        return min(1.0, (self.done + running) / self.total) if self.total else 1.0


@dataclass
class SweepReport:
    name: str | None
    total: int
    generated: int = 0
    skipped: int = 0
    generation_ids: list[int] = field(default_factory=list)  # every row of the grid, new and found


ProgressCallback = Callable[[SweepProgress], None]


def run_sweep(
    store,
    prompts: Sequence[str],
    seeds: Sequence[int],
    models: Sequence[str],
    settings: SweepSettings | None = None,
    name: str | None = None,
    on_progress: ProgressCallback | None = None,
    device: str | None = None,
    actor=None,
) -> SweepReport:
    """Generate and store every (model, prompt, seed) not stored yet with these settings, in this process.

    The grid goes through the job queue (daam_store.jobs.run_grid), as the dashboard's and Ray's do: a named
    sweep submitted again finds its jobs, and what is stored is skipped. Stops at the first failure with a
    UserError saying how far it got; running it again resumes. `on_progress` gets a `SweepProgress` after
    every denoising step and every job (a progress bar). `actor`: who runs it (default: the local user).
    """
    from daam_store.access import LOCAL_ACTOR
    from daam_store.jobs.grid import grid_requests, run_grid
    from daam_store.models import ModelNotFoundError, load_clip_tokenizer, resolve_model

    store.require_writable()  # before any model loads or generation runs
    settings = settings or SweepSettings()
    if name is not None:
        check_sweep_name(name)
    tokenizer = load_clip_tokenizer()
    for prompt in prompts:  # bad input fails before anything runs
        _request(prompt, 0, settings).validate(tokenizer)
    try:
        for model in models:
            resolve_model(model)
    except ModelNotFoundError as error:
        raise UserError(str(error)) from None

    progress = SweepProgress(total=len(prompts) * len(seeds) * len(models), steps=settings.steps)

    def on_event(event) -> None:
        progress.done, progress.step, progress.steps = event.done, event.step, event.steps
        progress.job = SweepJob(event.job.model, event.job.prompt, event.job.seed) if event.job else None
        if event.outcome is not None:
            if event.outcome.status == "generated":
                progress.generated += 1
            elif event.outcome.status == "found":
                progress.skipped += 1
        if on_progress is not None:
            on_progress(progress)

    requests = grid_requests(prompts, seeds, models, settings)
    # `generate` is looked up here, at call time: a test may replace this module's generate.
    grid = run_grid(store, requests, actor=actor or LOCAL_ACTOR, sweep=name, author=settings.author,
                    on_event=on_event, device=device, generate_fn=generate)  # fmt: skip
    if grid.failed is not None:
        job, done = grid.failed.job.request, grid.progress.count("done")
        raise UserError(
            f"sweep stopped at {job.model} / {job.prompt!r} / seed {job.seed}: {grid.failed.error}; "
            f"{done} of {grid.progress.total} are stored, run the same sweep again to resume"
        )
    report = SweepReport(name=name, total=grid.progress.total, generated=grid.generated, skipped=grid.skipped)
    report.generation_ids = [job.generation_id for job in grid.progress.jobs if job.generation_id is not None]
    return report


def _request(prompt: str, seed: int, settings: SweepSettings) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt,
        seed=seed,
        steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        negative_prompt=settings.negative_prompt,
        save_steps=settings.save_steps,
        mid_block=settings.mid_block,
    )
