"""Training batches drawn from the generated world, reproducible per step.

Each step's batch comes from a generator seeded by (seed, phase, step), so a resumed run sees exactly
the batches an uninterrupted run would have seen, with no data-loader state to save.
"""

from __future__ import annotations

import torch

from daam_store import world

PHASES = {"vae": 1, "unet": 2}


def step_generator(seed: int, phase: str, step: int, device: torch.device) -> torch.Generator:
    mixed = (seed * 1_000_003 + PHASES[phase] * 7_919 + step) % (2**63)
    return torch.Generator(device=device).manual_seed(mixed)


class WorldBatches:
    """Images in [-1, 1] (B, 3, 32, 32) and caption token ids (B, 77) of training scenes."""

    def __init__(self, tokenizer, batch_size: int, seed: int, device: torch.device, empty_caption_prob: float = 0.0):
        self.tokens = world.CaptionTokens(tokenizer)
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.empty_caption_prob = empty_caption_prob

    def batch(self, phase: str, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """The step's images and token ids, and its generator (for the step's noise, drawn after)."""
        generator = step_generator(self.seed, phase, step, self.device)
        scenes = world.sample_scenes(self.batch_size, generator)
        images, _ = world.render(scenes)
        ids = self.tokens(scenes)
        drop = torch.rand(self.batch_size, generator=generator, device=self.device) < self.empty_caption_prob
        ids = torch.where(drop[:, None], self.tokens.empty(self.batch_size, self.device), ids)
        return images * 2 - 1, ids, generator
