"""The Generate page: batches of prompts x seeds on one model and the sweep grid, queued as jobs; model choices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from daam_store.errors import UserError
from daam_store.generate import GenerationRequest
from daam_store.sweep import parse_seed_spec

if TYPE_CHECKING:
    from daam_store.experiment import GenerationExperiment

# A click on Generate runs at most this many generations: a bigger grid belongs in `daam-store sweep`.
MAX_BATCH = 64


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


MAX_SWEEP = 512  # jobs one click may queue: a bigger grid belongs in `daam-store sweep`


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


@dataclass(frozen=True)
class GenerationResult:
    generation_id: int
    experiment: GenerationExperiment

    def for_display(self) -> GenerationResult:
        """Image and word maps only: the per-layer and per-step stacks (tens of MB per image on a real
        SD model) are in the store, and a page keeping a batch in its session need not hold them too."""
        light = replace(self.experiment, layer_heat_maps=None, step_heat_maps=None, layer_names=[])
        return GenerationResult(self.generation_id, light)


# -- as jobs: the page submits, the local worker (or Ray) runs, the page follows the store ----------------


def submit_batch(store, actor, batch: BatchRequest, model: str) -> list[int]:
    """Queue the batch's generations on `model` (a value of `model_choices`) as jobs; their ids in the batch's
    order (all seeds of the first prompt first). Follow them with `daam_store.jobs.jobs_progress(store, ids)`:
    progress lives in the store, so a reload or another tab sees it too. Checks the actor's role."""
    from daam_store.jobs.queue import JobRequest, submit

    requests = [
        JobRequest(
            model=model,
            prompt=job.prompt,
            seed=job.seed,
            steps=job.steps,
            guidance_scale=job.guidance_scale,
            negative_prompt=job.negative_prompt or "",
            save_steps=job.save_steps,
            mid_block=job.mid_block,
            tags=batch.tags,
        )
        for job in batch.jobs
    ]
    return submit(store, actor, requests, author=batch.author)


def submit_sweep(store, actor, grid: SweepGrid, settings, name: str | None) -> list[int]:
    """Queue the sweep grid (`settings`: a daam_store.sweep.SweepSettings) as jobs named `name`: submitting the
    same sweep again adds no job, and what is stored already is done at once."""
    from daam_store.jobs.grid import submit_grid

    return submit_grid(store, actor, grid.prompts, grid.seeds, grid.models, settings, sweep=name)


def landed_results(store, progress, shown: set[int]) -> list[GenerationResult]:
    """Results of the finished jobs of `progress` (a JobsProgress) whose generation is not in `shown` yet,
    loaded from the store and light for display: the page shows each as it lands."""
    results = []
    for generation_id in progress.generation_ids:
        if generation_id not in shown:
            results.append(GenerationResult(generation_id, store.load_experiment(generation_id)).for_display())
    return results


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
