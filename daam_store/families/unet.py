"""The UNet families: Stable Diffusion 1.x, 2.x and XL.

All three put text cross-attention in the `attn2` module of every transformer block of the UNet, give it
the prompt as a 77-position context, and differ in what the context is made of: CLIP ViT-L (SD1), OpenCLIP
ViT-H (SD2), or both of SDXL's encoders concatenated feature-wise (2048 wide). SDXL's pooled embedding and
size/crop ids reach the UNet through its added conditioning, not the cross-attention, so the tracer leaves
them alone. The two SDXL tokenizers split a prompt identically (the same CLIP BPE), so the first one
defines the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

# down_blocks.1.attentions.0.transformer_blocks.2.attn2 -> ("down", "1", "0", "2")
_LAYER_NAME = re.compile(r"(down|up)_blocks\.(\d+)\.attentions\.(\d+)\.transformer_blocks\.(\d+)\.attn2$")
_MID_LAYER_NAME = re.compile(r"mid_block\.attentions\.(\d+)\.transformer_blocks\.(\d+)\.attn2$")

# The original DAAM skips maps at 1/8 of its latent size (for SD at 512 px: the 8x8 mid block).
ORIGINAL_SKIPPED_FACTOR = 8


@dataclass(frozen=True)
class UNetFamily:
    name: str
    pipeline_type: type
    weight_components: tuple[str, ...]
    linear_projection: bool | None = None  # SD1 vs SD2: told apart by the UNet's config (same pipeline class)
    default_rule: str = "cross-attention of the UNet's down and up blocks (mid block left out, as the original)"

    @property
    def pipeline_class_names(self) -> tuple[str, ...]:
        return (self.pipeline_type.__name__,)

    def pipeline_class(self):
        return self.pipeline_type

    def matches(self, pipe) -> bool:
        if not isinstance(pipe, self.pipeline_type):
            return False
        return self.linear_projection is None or _uses_sd2_attention(pipe.unet.config) == self.linear_projection

    def denoiser(self, pipe) -> torch.nn.Module:
        return pipe.unet

    def cross_attention_layers(self, pipe) -> list[tuple[str, torch.nn.Module]]:
        """Every text cross-attention module, in the UNet's module order (down blocks, up blocks, mid block)."""
        return [(name, module) for name, module in pipe.unet.named_modules() if name.endswith("attn2")]

    def in_default_rule(self, layer_name: str, factor: int) -> bool:
        """The original DAAM's layers: those of the down and up blocks (not the mid block), less any at 1/8."""
        return not layer_name.startswith("mid_block") and factor != ORIGINAL_SKIPPED_FACTOR

    def layer_label(self, layer_name: str, grid: tuple[int, int]) -> str:
        return unet_layer_label(layer_name, grid)

    def tokenizer(self, pipe):
        return pipe.tokenizer

    def context_tokens(self, pipe) -> int:
        return int(pipe.tokenizer.model_max_length)


def _uses_sd2_attention(config) -> bool:
    """SD 2.x UNets use linear projections and per-block head sizes; SD 1.x conv projections."""
    return bool(config.use_linear_projection) or isinstance(config.attention_head_dim, (list, tuple))


def unet_layer_label(layer_name: str, grid: tuple[int, int] | None = None) -> str:
    """'up 1, 16x16, attn 0.2': block, resolution (when known), then attention module and transformer block."""
    size = [f"{grid[0]}x{grid[1]}"] if grid else []
    if match := _LAYER_NAME.search(layer_name):
        where, block, attention, transformer = match.groups()
        return ", ".join([f"{where} {block}", *size, f"attn {attention}.{transformer}"])
    if match := _MID_LAYER_NAME.search(layer_name):
        return ", ".join(["mid", *size, f"attn {match.group(1)}.{match.group(2)}"])
    return ", ".join([layer_name, *size])


SD1 = UNetFamily("SD1", StableDiffusionPipeline, ("unet", "vae", "text_encoder"), linear_projection=False)
SD2 = UNetFamily("SD2", StableDiffusionPipeline, ("unet", "vae", "text_encoder"), linear_projection=True)
SDXL = UNetFamily("SDXL", StableDiffusionXLPipeline, ("unet", "vae", "text_encoder", "text_encoder_2"))
