"""Training batches drawn from the generated world, reproducible per step.

Each step's batch comes from a generator seeded by (seed, phase, step), so a resumed run sees exactly
the batches an uninterrupted run would have seen, with no data-loader state to save.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from daam_store import world

PHASES = {"vae": 1, "unet": 2}


def step_generator(seed: int, phase: str, step: int, device: torch.device) -> torch.Generator:
    mixed = (seed * 1_000_003 + PHASES[phase] * 7_919 + step) % (2**63)
    return torch.Generator(device=device).manual_seed(mixed)


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, 32, 32) in [-1, 1]
    ids: torch.Tensor  # (B, 77) caption token ids; dropped captions are the empty caption
    ids_2: torch.Tensor | None  # the same captions for SDXL's second tokenizer (it pads with "!")
    dropped: torch.Tensor  # (B,) bool: the caption was dropped for classifier-free guidance
    generator: torch.Generator  # the step's generator, for the step's noise (drawn after)


class WorldBatches:
    """Training scenes as images and caption token ids (for one tokenizer, or SDXL's two)."""

    def __init__(
        self,
        tokenizer,
        batch_size: int,
        seed: int,
        device: torch.device,
        empty_caption_prob: float = 0.0,
        tokenizer_2=None,
        colourless_phrase_prob: float = 0.0,
        extra_colours: int = 0,
        shape_shading: float = 0.0,
        object_counts: tuple[float, ...] = world.OBJECT_COUNT_PROBS,
        extra_shapes: int = 0,
    ):
        self.tokens = world.CaptionTokens(tokenizer)
        self.tokens_2 = world.CaptionTokens(tokenizer_2) if tokenizer_2 is not None else None
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.empty_caption_prob = empty_caption_prob
        self.colourless_phrase_prob = colourless_phrase_prob
        self.extra_colours = extra_colours
        self.shape_shading = shape_shading
        self.object_counts = object_counts
        self.extra_shapes = extra_shapes

    def scenes(self, phase: str, step: int) -> world.Scenes:
        """The scenes of that step's batch (before rendering and captions)."""
        return self._sample_scenes(step_generator(self.seed, phase, step, self.device))

    def batch(self, phase: str, step: int) -> Batch:
        generator = step_generator(self.seed, phase, step, self.device)
        scenes = self._sample_scenes(generator)
        images, _ = world.render(scenes, shading=self.shape_shading)
        dropped = torch.rand(self.batch_size, generator=generator, device=self.device) < self.empty_caption_prob
        without_colour = None
        # drawn only then and only for the UNet: recipes without it keep their batches, and its VAE is the baseline's
        if self.colourless_phrase_prob > 0 and phase == "unet":
            shape = (self.batch_size, world.MAX_OBJECTS)
            without_colour = torch.rand(shape, generator=generator, device=self.device) < self.colourless_phrase_prob
        return Batch(
            images=images * 2 - 1,
            ids=self._captions(self.tokens, scenes, dropped, without_colour),
            ids_2=self._captions(self.tokens_2, scenes, dropped, without_colour) if self.tokens_2 is not None else None,
            dropped=dropped,
            generator=generator,
        )

    def _sample_scenes(self, generator: torch.Generator) -> world.Scenes:
        return world.sample_scenes(
            self.batch_size,
            generator,
            extra_colours=self.extra_colours,
            object_counts=self.object_counts,
            extra_shapes=self.extra_shapes,
        )

    def _captions(self, tokens: world.CaptionTokens, scenes, dropped, without_colour) -> torch.Tensor:
        captions = tokens(scenes, without_colour)
        return torch.where(dropped[:, None], tokens.empty(self.batch_size, self.device), captions)
