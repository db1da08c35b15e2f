"""Running sums of attention maps, and their assembly into one map per token.

The aggregation rule (the original DAAM's, so the paper's thresholds carry over):
1. per layer and head, the attention of each latent pixel to each token is summed over denoising steps at
   the layer's own resolution (a running sum: memory does not grow with the number of steps);
2. each (layer, head) sum is upsampled bicubic to the latent resolution and clamped at 0;
3. the result is the mean over all selected (layer, head) pairs: by default the layers of the UNet's down and up
   blocks, not its mid block, and none at 1/8 of the latent size, as the original's locator and hooks choose
   them (see `daam_store.families`);
4. a word's map is the mean of its tokens' maps (see `daam_store.heatmap`).
Per-step records (opt-in) keep each step's map per layer, averaged over heads.

Sums stay on the device that computed them: a copy to the CPU per layer and step would synchronise
the GPU hundreds of times per image (it cost 30 % of the generation time on an H200). Only the
assembled maps come back to the CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def layer_grid(pixels: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a layer with `pixels` positions: the latent size halved (rounding up) until it fits."""
    height, width = latent_hw
    while height * width > pixels:
        height, width = -(-height // 2), -(-width // 2)
    if height * width != pixels:
        raise RuntimeError(f"cannot place {pixels} attention positions on a {latent_hw} latent grid")
    return height, width


class MapAccumulator:
    def __init__(self, num_rows: int, latent_hw: tuple[int, int], save_steps: bool, num_images: int = 0):
        self.num_rows = num_rows  # tokens kept per map: <|startoftext|> + prompt tokens + <|endoftext|>
        self.num_images = num_images  # images the pipeline call generates (0: unknown, record every row)
        self.latent_hw = latent_hw
        self.save_steps = save_steps
        self.sums: dict[int, torch.Tensor] = {}  # layer -> (images, heads, pixels, rows)
        self.grids: dict[int, tuple[int, int]] = {}  # layer -> (h, w) of its pixels
        self.steps: list[dict[int, torch.Tensor]] = []  # step -> layer -> (images, pixels, rows)
        self._pending: list[tuple[int, Callable[[], torch.Tensor]]] = []  # maps to compute when the UNet returns

    def start_step(self) -> None:
        self.flush()  # maps recorded outside a UNet forward (gradient checkpointing recomputes attention)
        if self.save_steps:
            self.steps.append({})

    def add_later(self, layer_idx: int, compute_maps: Callable[[], torch.Tensor]) -> None:
        """Add maps computed at the end of the UNet call (`flush`), from tensors the caller keeps alive until then.

        On a CPU, a map's few small tensor operations cost ~30 % less run back to back after the UNet than
        each between two of its large kernels (time inside the recording code, sd1-tiny, 25 steps: 20-24 ms
        instead of 28-35 ms per generation). Memory stays flat over steps, but the peak within a call grows: the
        queries of every cross-attention layer of one UNet call are held until it returns (~90 MB for SD 1.5 at
        512 px with guidance).
        """
        self._pending.append((layer_idx, compute_maps))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for layer_idx, compute_maps in pending:
            self.add(layer_idx, compute_maps())

    def conditional_rows(self, batch: int) -> slice:
        """The rows of a UNet batch that hold the prompted images (their maps are the ones recorded)."""
        if self.num_images in (0, batch):
            return slice(None)
        if batch == 2 * self.num_images:  # classifier-free guidance: [unconditional..., conditional...]
            return slice(self.num_images, None)
        raise RuntimeError(f"UNet batch of {batch} does not match {self.num_images} generated images")

    def add(self, layer_idx: int, probabilities: torch.Tensor) -> None:
        # Summed as (images, heads, pixels, rows), the layout attention comes in: no copy per step.
        kept = probabilities  # processors may already have cut the rows (no slicing op then: see processor.py)
        if probabilities.shape[-1] > self.num_rows:
            kept = probabilities[..., : self.num_rows]
        if layer_idx in self.sums:
            self.sums[layer_idx] += kept
        else:
            self.grids[layer_idx] = layer_grid(probabilities.shape[2], self.latent_hw)
            self.sums[layer_idx] = kept.to(torch.float32, copy=True)
        if self.save_steps and self.steps:
            self.steps[-1][layer_idx] = kept.mean(1)

    def factor(self, layer_idx: int) -> int:
        return self.latent_hw[0] // self.grids[layer_idx][0]

    def _as_grid(self, layer_idx: int, maps: torch.Tensor) -> torch.Tensor:
        """(..., pixels, rows) -> (..., rows, h, w)."""
        height, width = self.grids[layer_idx]
        return maps.transpose(-1, -2).reshape(*maps.shape[:-2], maps.shape[-1], height, width)

    def assemble(
        self,
        image_idx: int,
        rows: int,
        layers: list[int],
        head_idx: int | None = None,
        time_idx: list[int] | None = None,
    ) -> torch.Tensor:
        """(rows, latent h, latent w): the mean over the selected layers' (and heads') upsampled maps."""
        total, count = None, 0
        for layer in layers:
            maps = self._layer_maps(layer, image_idx, head_idx, time_idx)
            if maps is None:
                continue
            maps = maps[:, :rows]
            upsampled = F.interpolate(maps, size=self.latent_hw, mode="bicubic").clamp_(min=0)
            total = upsampled.sum(0) if total is None else total + upsampled.sum(0)
            count += maps.shape[0]
        if total is None:
            raise ValueError("no heat maps match the given layer/head/step selection")
        return (total / count).to("cpu", torch.float32)

    def _layer_maps(self, layer: int, image_idx: int, head_idx: int | None, time_idx: list[int] | None):
        """(heads or 1, rows, h, w) for one layer, or None when the selection excludes it."""
        if time_idx is None:
            per_head = self._as_grid(layer, self.sums[layer][image_idx])
            if head_idx is None:
                return per_head
            return per_head[head_idx : head_idx + 1] if head_idx < per_head.shape[0] else None
        if head_idx is not None:
            raise ValueError("per-step records average the heads: time_idx and head_idx cannot be combined")
        return self._as_grid(layer, sum(self.steps[t][layer][image_idx] for t in time_idx))[None]
