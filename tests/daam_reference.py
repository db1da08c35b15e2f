"""An independent re-implementation of the original DAAM's maps, for tests to compare the tracer against."""

import math

import torch
import torch.nn.functional as F

from daam_store.tracing import cross_attention_modules


def original_daam_layers(unet, mid_block=False):
    """The original daam 0.2.0's locator, written out: the attn2 of every transformer block of the UNet's
    cross-attention up and down blocks; the mid block only when asked."""
    blocks = [*unet.up_blocks, *unet.down_blocks, *([unet.mid_block] if mid_block else [])]
    return [
        transformer.attn2
        for block in blocks
        if "CrossAttn" in type(block).__name__
        for spatial in block.attentions
        for transformer in spatial.transformer_blocks
    ]


class ReferenceMaps:
    """Independent DAAM: capture every attn2 input, compute softmax(QK^T / sqrt(d)) explicitly, and average
    the layers as the original package does (its locator's layers; maps at 1/8 of the latent skipped)."""

    def __init__(self, pipe, mid_block=False):
        self.pipe, self.records, self.handles = pipe, [], []
        self.located = {id(m) for m in original_daam_layers(pipe.unet, mid_block)}
        self.skip_factor_8 = not mid_block  # mid_block=True: every layer, as daam-store's "daam+mid" rule

    def __enter__(self):
        for layer, (_, module) in enumerate(cross_attention_modules(self.pipe)):
            if id(module) in self.located:
                self.handles.append(module.register_forward_pre_hook(self._hook(layer, module), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()

    def _hook(self, layer, module):
        def hook(_m, args, kwargs):
            hidden = args[0]
            context = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
            q, k = module.to_q(hidden).double(), module.to_k(context).double()
            heads = module.heads
            d = q.shape[-1] // heads
            q = q.view(q.shape[0], -1, heads, d).permute(0, 2, 1, 3)
            k = k.view(k.shape[0], -1, heads, d).permute(0, 2, 1, 3)
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            self.records.append((layer, probs))

        return hook

    def word_map(self, token_rows, n_images, cfg, image_idx, latent_hw):
        sums = {}
        for layer, probs in self.records:
            cond = probs[n_images:] if cfg else probs
            sums[layer] = sums.get(layer, 0) + cond[image_idx]  # (heads, pixels, tokens)
        maps = []
        for per_head in sums.values():
            pixels = per_head.shape[1]
            factor = int(math.sqrt(latent_hw[0] * latent_hw[1] / pixels))
            if factor == 8 and self.skip_factor_8:
                continue
            h = latent_hw[0] // factor
            grid = per_head.permute(0, 2, 1).reshape(per_head.shape[0], -1, h, pixels // h)
            up = F.interpolate(grid.float(), size=latent_hw, mode="bicubic").clamp(min=0)
            maps.extend(up[:, token_rows])  # one (rows, H, W) per head
        return torch.stack(maps).mean(0).mean(0)
