"""Attention processors that record cross-attention maps while the UNet generates, changing nothing.

Two ways to see the attention without disturbing the image:
- `SdpaRecordingProcessor`, for modules running diffusers' default `AttnProcessor2_0`: it performs the same
  operations itself, so images stay bit-identical and the query and key are at hand. Where PyTorch's SDPA
  would run a fused kernel that can return the softmax normaliser (log-sum-exp per query: the CPU flash
  kernel; on CUDA the flash, memory-efficient and cuDNN kernels), it calls that kernel directly, so a map is
  exp(QK^T * scale - lse) over the prompt's tokens only, much less work than a second softmax over all 77
  tokens. A CUDA kernel is trusted only after checking, once per shape and dtype, that its output is the one
  SDPA gives and its normaliser the softmax's. Elsewhere (math backend, attention masks, a check that failed)
  it computes softmax(QK^T * scale + mask) separately.
- `WrappingRecordingProcessor`, for any other processor: it calls the module's own processor and captures
  the query and key projections with forward hooks on `to_q`/`to_k`, so nothing is projected twice. Its
  scale is `attn.scale`, the one diffusers' non-SDPA processors use.
Both record the conditional half of a classifier-free-guidance batch only, in float32 also under autocast.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch.nn.attention import SDPBackend

from daam_store.tracing.aggregate import MapAccumulator

# -> the accumulator of the generation running now (None outside a traced pipeline call)
CurrentMaps = Callable[[], "MapAccumulator | None"]


def recording_processor(original, attn: Attention, layer_idx: int, current_maps: CurrentMaps):
    """The cheapest processor that records `attn`'s maps while computing exactly what `original` computes."""
    if type(original) is AttnProcessor2_0 and _is_plain_attention(attn):
        return SdpaRecordingProcessor(original, layer_idx, current_maps)
    return WrappingRecordingProcessor(original, attn, layer_idx, current_maps)


def _is_plain_attention(attn: Attention) -> bool:
    """No normalisation inside the module: AttnProcessor2_0 is then to_q/k/v, SDPA, to_out."""
    return (
        attn.spatial_norm is None
        and attn.group_norm is None
        and not attn.norm_cross
        and attn.norm_q is None
        and attn.norm_k is None
    )


def _full_precision(device_type: str):
    """Autocast off: matmul/baddbmm would otherwise run in fp16/bf16 whatever the inputs' dtype."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _probabilities(query: torch.Tensor, key: torch.Tensor, scale: float, tokens: int, mask=None) -> torch.Tensor:
    """softmax(QK^T * scale + mask) for (images, heads, pixels|tokens, d) inputs, cut to the first `tokens` tokens.

    `mask` as SDPA takes it: additive, or boolean with True where attention is allowed.
    """
    with _full_precision(query.device.type):
        scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
        if mask is not None and mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        elif mask is not None:
            scores = scores + mask
        return scores.softmax(dim=-1)[..., :tokens]


def _normalised_maps(query, key, log_sum_exp, images: range, tokens: int) -> torch.Tensor:
    """exp(QK^T / sqrt(d) - lse) over the first `tokens` tokens: the softmax, with the kernel's normaliser.

    (images, heads, pixels, tokens), from detached inputs. One batched GEMM per image over 3-D views. Written
    for few tensor operations: between the UNet's large kernels each small one costs 10-80 us on a CPU (cold
    caches and dispatch), far more than its arithmetic, so there is no copy, cast or detach that is not needed.
    """
    tokens = min(tokens, key.shape[2])  # a context shorter than the prompt's rows (the UNet called directly)
    alpha = query.shape[-1] ** -0.5
    with _full_precision(query.device.type):
        per_image = [
            torch.baddbmm(
                log_sum_exp[image, :, :, None],
                _float(query[image]),
                _float(key[image, :, :tokens]).mT,
                beta=-1,
                alpha=alpha,
            )
            for image in images
        ]
    maps = per_image[0][None] if len(per_image) == 1 else torch.stack(per_image)
    return maps.exp_()


def _float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.dtype == torch.float32 else tensor.float()


def _fused_kernel_with_lse(query, key, value) -> Callable | None:
    """The fused kernel F.scaled_dot_product_attention would run here, as a call returning (output, log-sum-exp
    of shape (batch, heads, queries)); None where SDPA would run one that gives no normaliser (math)."""
    choice = torch._fused_sdp_choice(query, key, value, None, 0.0, False)
    if query.device.type == "cpu":
        return torch._scaled_dot_product_flash_attention_for_cpu if choice == SDPBackend.FLASH_ATTENTION.value else None
    if choice == SDPBackend.FLASH_ATTENTION.value and query.shape[-1] % 8 == 0:  # else SDPA pads the head dim
        kernel = functools.partial(torch.ops.aten._scaled_dot_product_flash_attention, dropout_p=0.0)
    elif choice == SDPBackend.EFFICIENT_ATTENTION.value:
        kernel = functools.partial(
            torch.ops.aten._scaled_dot_product_efficient_attention, attn_bias=None, compute_log_sumexp=True
        )
    elif choice == SDPBackend.CUDNN_ATTENTION.value:
        kernel = functools.partial(
            torch.ops.aten._scaled_dot_product_cudnn_attention, attn_bias=None, compute_log_sumexp=True
        )
    else:
        return None

    def output_and_lse(q, k, v):
        output, lse = kernel(q, k, v)[:2]
        # memory-efficient pads the queries to a multiple of 32, cuDNN may add a trailing axis
        return output, lse.reshape(*lse.shape[:2], -1)[..., : q.shape[2]]

    return output_and_lse


def _sdp_switches() -> tuple[bool, bool, bool]:
    """The backends `sdpa_kernel` leaves enabled (the CPU flash kernel follows the flash switch)."""
    backends = torch.backends.cuda
    return backends.flash_sdp_enabled(), backends.mem_efficient_sdp_enabled(), backends.cudnn_sdp_enabled()


# (device, dtype, shapes, the kernel SDPA picks) -> whether that kernel passed the check below
_CHECKED_KERNELS: dict[tuple, bool] = {}


def _kernel_agrees_with_sdpa(kernel: Callable, query, key, value) -> bool:
    """Once per device, dtype, shapes and kernel: the kernel called directly gives SDPA's output bit for bit, and
    exp(QK^T / sqrt(d) - lse) sums to 1 over the tokens (the normaliser is the softmax's, natural log). A kernel
    that fails is not used (maps by a separate softmax: slower, so say it once)."""
    choice = torch._fused_sdp_choice(query, key, value, None, 0.0, False)
    asked = (query.device, query.dtype, query.shape, key.shape, choice)
    if asked not in _CHECKED_KERNELS:
        with torch.no_grad():
            output, lse = kernel(query, key, value)
            same = torch.equal(output, F.scaled_dot_product_attention(query, key, value))
            maps = _normalised_maps(query, key, lse, range(query.shape[0]), key.shape[2])
            normalised = torch.allclose(maps.sum(-1), torch.ones_like(maps[..., 0]), atol=1e-3)
        _CHECKED_KERNELS[asked] = same and normalised
        if not _CHECKED_KERNELS[asked]:
            warnings.warn(
                f"SDPA kernel {SDPBackend(choice).name} called directly does not match SDPA for {tuple(query.shape)} "
                f"{query.dtype} (same output: {same}, normaliser: {normalised}); its maps use a separate softmax",
                stacklevel=2,
            )
    return _CHECKED_KERNELS[asked]


class SdpaRecordingProcessor:
    """diffusers' AttnProcessor2_0 for a plain cross-attention module, recording its maps on the way."""

    def __init__(self, original: AttnProcessor2_0, layer_idx: int, current_maps: CurrentMaps):
        self.original = original
        self.layer_idx = layer_idx
        self.current_maps = current_maps
        self._kernel_asked: tuple | None = None  # what the kernel below was chosen for (see _fused_kernel)
        self._kernel: Callable | None = None

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        maps = self.current_maps()
        if maps is None or encoder_hidden_states is None or hidden_states.ndim != 3:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        batch, context_length, _ = encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context_length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])

        query = attn.to_q(hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))

        output = self._attend_and_record(maps, query, key, value, attention_mask)

        output = output.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        output = attn.to_out[1](attn.to_out[0](output))
        if attn.residual_connection:
            output = output + hidden_states
        return output / attn.rescale_output_factor

    def _fused_kernel(self, maps: MapAccumulator, query, key, value) -> Callable | None:
        """SDPA's kernel (when it gives a normaliser), asked again only when the generation, shapes, dtype, device
        or the backend switches (`sdpa_kernel`, which the CPU flash kernel follows too) change."""
        asked = (maps, query.shape, key.shape, query.dtype, query.device, _sdp_switches())
        if asked != self._kernel_asked:  # (the generation compares by identity)
            kernel = _fused_kernel_with_lse(query, key, value)
            if (
                kernel is not None
                and query.device.type != "cpu"
                and not _kernel_agrees_with_sdpa(kernel, query, key, value)
            ):
                kernel = None
            self._kernel, self._kernel_asked = kernel, asked
        return self._kernel

    def _attend_and_record(self, maps: MapAccumulator, query, key, value, mask) -> torch.Tensor:
        rows = maps.conditional_rows(query.shape[0])
        kernel = self._fused_kernel(maps, query, key, value) if mask is None else None
        if kernel is not None:
            output, log_sum_exp = kernel(query, key, value)
            if torch.is_grad_enabled():  # the maps are a record, never part of an autograd graph
                query, key, log_sum_exp = query.detach(), key.detach(), log_sum_exp.detach()
            images, tokens = range(*rows.indices(query.shape[0])), maps.num_rows
            maps.add_later(self.layer_idx, lambda: _normalised_maps(query, key, log_sum_exp, images, tokens))
            return output
        output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False)
        scale = query.shape[-1] ** -0.5  # SDPA's default, which AttnProcessor2_0 relies on
        query, key, mask = query.detach()[rows], key.detach()[rows], mask[rows] if mask is not None else None
        maps.add(self.layer_idx, _probabilities(query, key, scale, maps.num_rows, mask))
        return output


class WrappingRecordingProcessor:
    """Any attention processor, with the query and key its module projects captured to record the maps."""

    def __init__(self, original, attn: Attention, layer_idx: int, current_maps: CurrentMaps):
        self.original = original
        self.layer_idx = layer_idx
        self.current_maps = current_maps
        self._captured: dict[str, torch.Tensor] = {}
        self._armed = False
        self._hooks = [
            attn.to_q.register_forward_hook(self._capture("query")),
            attn.to_k.register_forward_hook(self._capture("key")),
        ]
        # diffusers passes a processor only the keyword arguments that `processor.__call__`'s signature names
        # (Attention.forward inspects it): show it the wrapped processor's, so that a processor's own
        # arguments (cross_attention_kwargs) still reach it.
        self.__call__ = functools.wraps(original.__call__)(functools.partial(WrappingRecordingProcessor.__call__, self))

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
        maps = self.current_maps()
        if maps is not None and query is not None and key is not None and encoder_hidden_states is not None:
            self._record(maps, attn, query, key)
        return output

    @torch.no_grad()
    def _record(self, maps: MapAccumulator, attn: Attention, query: torch.Tensor, key: torch.Tensor) -> None:
        rows = maps.conditional_rows(query.shape[0])
        query, key = query[rows], key[rows]
        images, pixels, inner = query.shape
        head_dim = inner // attn.heads
        query = query.view(images, pixels, attn.heads, head_dim).transpose(1, 2)
        key = key.view(images, key.shape[1], attn.heads, head_dim).transpose(1, 2)
        maps.add(self.layer_idx, _probabilities(query, key, attn.scale, maps.num_rows))
