"""The attention processor that records cross-attention maps while the original one computes the output.

It wraps whatever processor a module already has (SDPA by default), so generation keeps its fast fused
attention and produces bit-identical images. The query and key projections are captured with forward
hooks on `to_q`/`to_k` as the original processor computes them, so nothing is projected twice; the map
is then softmax(QK^T * scale) over all 77 text tokens, for the conditional half of the batch only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.models.attention_processor import Attention

# (layer_idx, probabilities (images, heads, pixels, tokens)) -> None
MapSink = Callable[[int, torch.Tensor], None]
# batch size of the UNet input -> slice of the rows that hold the conditional (prompted) images
CondSelector = Callable[[int], slice]


class RecordingProcessor:
    def __init__(self, original, attn: Attention, layer_idx: int, sink: MapSink, select_cond: CondSelector):
        self.original = original
        self.layer_idx = layer_idx
        self.sink = sink
        self.select_cond = select_cond
        self._captured: dict[str, torch.Tensor] = {}
        self._armed = False
        self._hooks = [
            attn.to_q.register_forward_hook(self._capture("query")),
            attn.to_k.register_forward_hook(self._capture("key")),
        ]

    def _capture(self, name: str):
        def hook(_module, _inputs, output):
            if self._armed:
                self._captured[name] = output

        return hook

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        self._armed = True
        try:
            output = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        finally:
            self._armed = False
        query, key = self._captured.pop("query", None), self._captured.pop("key", None)
        if query is not None and key is not None and encoder_hidden_states is not None:
            self.sink(self.layer_idx, self._probabilities(attn, query, key))
        return output

    @torch.no_grad()
    def _probabilities(self, attn: Attention, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        rows = self.select_cond(query.shape[0])
        query, key = query[rows].float(), key[rows].float()
        images, pixels, inner = query.shape
        head_dim = inner // attn.heads
        query = query.view(images, pixels, attn.heads, head_dim).transpose(1, 2)
        key = key.view(images, key.shape[1], attn.heads, head_dim).transpose(1, 2)
        scores = torch.matmul(query, key.transpose(-1, -2)) * attn.scale
        return scores.softmax(dim=-1)  # (images, heads, pixels, tokens)
