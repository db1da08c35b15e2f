"""Batch runs: a prompt x seed x model grid, traced and stored, that skips what is stored and resumes.

Each generation is saved in its own transaction, so a crash loses at most the one that was running;
running the same sweep again finds what is stored (same model, prompt, seed and settings) and carries on.
Every row a sweep covers (new or found) is tagged `sweep:<name>`, so the Compare page can select it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daam_store.errors import UserError, first_line
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
) -> SweepReport:
    """Generate and store every (model, prompt, seed) not stored yet with these settings.

    Stops at the first failure with a UserError saying how far it got; running it again resumes.
    `on_progress` gets a `SweepProgress` after every denoising step and every job (a progress bar).
    """
    from daam_store.models import ModelNotFoundError, describe_pipeline, load_clip_tokenizer, resolve_model

    store.require_writable()  # before any model loads or generation runs
    settings = settings or SweepSettings()
    tags = (sweep_tag(check_sweep_name(name)),) if name else ()
    requests = {prompt: _request(prompt, 0, settings) for prompt in prompts}
    tokenizer = load_clip_tokenizer()
    for request in requests.values():  # bad input fails before anything runs
        request.validate(tokenizer)
    try:
        for model in models:
            resolve_model(model)
    except ModelNotFoundError as error:
        raise UserError(str(error)) from None

    progress = SweepProgress(total=len(prompts) * len(seeds) * len(models), steps=settings.steps)
    report = SweepReport(name=name, total=progress.total)

    def on_step(step: int, steps: int) -> None:
        progress.step, progress.steps = step, steps
        if on_progress is not None:
            on_progress(progress)

    for model in models:
        pipe = _load(model, device)
        info = describe_pipeline(pipe)
        stored = _stored(store, info, prompts, seeds, settings, tags)
        for prompt in prompts:
            for seed in seeds:
                progress.job, progress.step = SweepJob(model, prompt, seed), 0
                generation_id = stored.get((prompt, seed))
                if generation_id is None:
                    generation_id = _generate_and_save(store, pipe, info, progress, settings, tags, on_step)
                    progress.generated += 1
                else:
                    progress.skipped += 1
                report.generation_ids.append(generation_id)
                progress.done, progress.step = progress.done + 1, 0
                if on_progress is not None:
                    on_progress(progress)
        del pipe  # one model in memory at a time
    report.generated, report.skipped = progress.generated, progress.skipped
    return report


def _request(prompt: str, seed: int, settings: SweepSettings) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt,
        seed=seed,
        steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        negative_prompt=settings.negative_prompt,
        save_steps=settings.save_steps,
    )


def _stored(store, model, prompts, seeds, settings: SweepSettings, tags) -> dict[tuple[str, int], int]:
    """What this sweep would produce on `model` that is stored already; those rows get the sweep's tag."""
    from daam_store.store import queries

    with store.session() as session:
        stored = queries.find_generations(
            session,
            model,
            prompts,
            seeds,
            steps=settings.steps,
            guidance_scale=settings.guidance_scale,
            negative_prompt=settings.negative_prompt or "",
        )
    if stored and tags:
        with store.write_session() as session:
            for tag in tags:
                queries.add_tag(session, list(stored.values()), tag)
    return stored


def _load(model: str, device: str | None):
    from daam_store.models import ModelNotFoundError, load_pipeline

    try:
        return load_pipeline(model, device=device)
    except ModelNotFoundError as error:
        raise UserError(str(error)) from None


def _generate_and_save(store, pipe, info, progress: SweepProgress, settings, tags, on_step) -> int:
    job = progress.job
    try:
        experiment = generate(pipe, _request(job.prompt, job.seed, settings), on_step=on_step)
        return store.save(experiment, model=info, author=settings.author, tags=tags)
    except Exception as error:  # any cause: one line saying what is kept and how to go on
        raise UserError(
            f"sweep stopped at {job.model} / {job.prompt!r} / seed {job.seed}: "
            f"{first_line(error)}; {progress.done} of {progress.total} are stored, "
            "run the same sweep again to resume"
        ) from error
