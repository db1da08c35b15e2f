"""One traced generation from plain arguments: shared by the `daam` CLI, the dashboard and sweeps."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from daam_store.errors import UserError
from daam_store.experiment import GenerationExperiment
from daam_store.families import family_of
from daam_store.heatmap import MAX_PROMPT_TOKENS, split_words
from daam_store.tracing import trace
from daam_store.utils import parse_seed, set_seed

MAX_SIZE_FACTOR = 4  # largest image side, as a multiple of the model's default side
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class GenerationRequest:
    prompt: str
    seed: int = 0
    steps: int = 25
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    height: int | None = None
    width: int | None = None
    dtype: str = "float32"  # float16/bfloat16 run the pipeline under autocast
    save_steps: bool = False
    mid_block: bool = False  # maps average the UNet's mid block too (rules.DAAM_WITH_MID_BLOCK)

    def validate(self, tokenizer=None) -> list[str]:
        """Raise UserError on bad input; return the words CLIP cut from an over-long prompt.

        Without a tokenizer only the plain values are checked (before a model is loaded)."""
        if not self.prompt or not self.prompt.strip():
            raise UserError("the prompt is empty: give the text to generate")
        self.seed = parse_seed(self.seed)
        if not 1 <= int(self.steps) <= 1000:
            raise UserError(f"bad number of steps {self.steps}: use 1 to 1000")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if not math.isfinite(float(self.guidance_scale)):
            raise UserError(f"bad guidance {self.guidance_scale}: use a finite number, e.g. 7.5 (1 = off)")
        for side in (self.height, self.width):
            if side is not None and (side < 8 or side % 8):
                raise UserError(f"bad image size {side}: use a multiple of 8")
        if tokenizer is None:
            return []
        words, cut = split_words(tokenizer, self.prompt)
        if not words:
            raise UserError("the prompt has no words CLIP can read")
        return cut

    def check_size(self, pipe) -> None:
        """Refuse sizes far beyond the model's own before any memory is allocated for them.

        A 100,000 px side would need tens of GB for its latent and attention maps and fail deep inside
        torch; no model makes sense beyond a few times the resolution it was trained at."""
        default = pipe.unet.config.sample_size * pipe.vae_scale_factor
        limit = MAX_SIZE_FACTOR * default
        for name, side in (("height", self.height), ("width", self.width)):
            if side is not None and side > limit:
                raise UserError(
                    f"{name} {side} px is too large for this model: at most {limit} px "
                    f"({MAX_SIZE_FACTOR}x its default {default} px)"
                )


def generate(
    pipe,
    request: GenerationRequest,
    on_step: Callable[[int, int], None] | None = None,
) -> GenerationExperiment:
    """Run the pipeline under `trace`; return the experiment (image, maps, metadata with timings)."""
    cut = request.validate(family_of(pipe).tokenizer(pipe))
    request.check_size(pipe)
    device_type = pipe.device.type
    dtype = DTYPES[request.dtype]
    autocast = torch.autocast(device_type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    callback = None
    if on_step is not None:

        def callback(_pipe, step, _timestep, tensors):
            on_step(step + 1, request.steps)
            return tensors

    started = time.perf_counter()
    with trace(pipe, save_steps=request.save_steps) as tc, autocast:
        pipe(
            request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_inference_steps=int(request.steps),
            guidance_scale=float(request.guidance_scale),
            height=request.height,
            width=request.width,
            generator=set_seed(request.seed),
            callback_on_step_end=callback,
        )
        generated = time.perf_counter()
        metadata = {"timings": {"generate": generated - started}}
        if cut:
            metadata["cut_words"] = cut
            metadata["max_prompt_tokens"] = MAX_PROMPT_TOKENS
        experiment = tc.to_experiment(path=None, seed=request.seed, metadata=metadata, mid_block=request.mid_block)
    experiment.metadata["timings"]["maps"] = time.perf_counter() - generated
    experiment.metadata["dtype"] = request.dtype
    return experiment
