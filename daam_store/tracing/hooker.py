"""`trace(pipe)`: hook a diffusion pipeline's text cross-attention while it generates (SD1, SD2, SDXL)."""

from __future__ import annotations

import functools
import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import PIL.Image
import torch

from daam_store import rules
from daam_store.families import family_of
from daam_store.heatmap import GlobalHeatMap, PromptTokens, cut_message
from daam_store.tracing.aggregate import MapAccumulator
from daam_store.tracing.processor import WrappingRecordingProcessor, recording_processor

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def cross_attention_modules(pipe) -> list[tuple[str, torch.nn.Module]]:
    """Every text cross-attention module of the pipeline's denoiser, in its family's order (`layer_idx`)."""
    return family_of(pipe).cross_attention_layers(pipe)


class DiffusionHeatMapHooker:
    """Context manager recording cross-attention maps of every generation run inside it.

    Each pipeline call inside the block replaces the maps of the previous one. On exit (also after an
    exception) the original attention processors and pipeline methods are restored.
    """

    def __init__(self, pipeline: DiffusionPipeline, save_steps: bool = False):
        self.pipe = pipeline
        self.family = family_of(pipeline)
        self.save_steps = save_steps
        self.layer_names = [name for name, _ in self.family.cross_attention_layers(pipeline)]
        self.images: list[PIL.Image.Image] = []
        self.call_info: dict = {}
        self.num_steps = 0
        self._accumulator: MapAccumulator | None = None
        self._num_images = 0
        self._prompt_tokens: list[PromptTokens | None] = []  # per prompt; None: called with prompt_embeds
        self._undo: list = []

    # -- installing and removing hooks --------------------------------------------------------------
    def __enter__(self) -> DiffusionHeatMapHooker:
        try:
            self._hook_attention()
            self._hook_pipeline()
        except BaseException:
            self._unhook()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._flush_maps()  # maps recorded outside a UNet forward (gradient checkpointing recomputes attention)
        self._unhook()

    def _hook_attention(self) -> None:
        for layer_idx, (_, module) in enumerate(self.family.cross_attention_layers(self.pipe)):
            original = module.processor
            recorder = recording_processor(original, module, layer_idx, lambda: self._accumulator)
            module.set_processor(recorder)
            self._undo.append(lambda m=module, o=original: m.set_processor(o))
            if isinstance(recorder, WrappingRecordingProcessor):
                self._undo.append(recorder.remove_hooks)
        denoiser = self.family.denoiser(self.pipe)
        handle = denoiser.register_forward_pre_hook(self._on_unet_call, with_kwargs=True)
        self._undo.append(handle.remove)
        handle = denoiser.register_forward_hook(self._on_unet_return, always_call=True)  # also on errors
        self._undo.append(handle.remove)

    def _hook_pipeline(self) -> None:
        self._patch(self.pipe, "encode_prompt", self._wrap_encode_prompt)
        self._patch(self.pipe.image_processor, "postprocess", self._wrap_postprocess)

    def _patch(self, owner, name: str, make_wrapper) -> None:
        had_own = name in vars(owner)
        original = getattr(owner, name)
        setattr(owner, name, make_wrapper(original))

        def restore():
            if had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

        self._undo.append(restore)

    def _unhook(self) -> None:
        while self._undo:
            self._undo.pop()()

    # -- what the hooks record -----------------------------------------------------------------------
    def _wrap_encode_prompt(self, original):
        signature = inspect.signature(original)

        @functools.wraps(original)  # keeps the signature visible to a nested trace
        def encode_prompt(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            self._start_generation(bound.arguments)
            return original(*args, **kwargs)

        return encode_prompt

    def _wrap_postprocess(self, original):
        """Keep the pipeline's final images as PIL (after any safety checker or watermark), whatever it returns."""

        @functools.wraps(original)
        def postprocess(image, output_type="pil", *args, **kwargs):
            result = original(image, output_type, *args, **kwargs)
            if output_type == "pil":
                self.images = list(result)
            elif output_type != "latent" and isinstance(image, torch.Tensor):  # latents are no image
                self.images = original(image.detach(), "pil", *args, **kwargs)
            return result

        return postprocess

    def _start_generation(self, arguments: dict) -> None:
        prompt = arguments.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if prompt is not None else None
        per_prompt = int(arguments.get("num_images_per_prompt") or 1)
        if prompts is None:
            self._prompt_tokens = [None] * arguments["prompt_embeds"].shape[0]
        else:
            self._prompt_tokens = [self._tokens_of(p) for p in prompts]
        self._num_images = len(self._prompt_tokens) * per_prompt
        second = _as_prompts(arguments.get("prompt_2"))  # SDXL's second text encoder's prompt
        if second is not None and prompts is not None and second != prompts[: len(second)]:
            warnings.warn(
                "prompt_2 differs from prompt: SDXL's second encoder reads it, so each map row mixes attention to "
                "both prompts' tokens at that position; the maps are labelled with prompt's words",
                stacklevel=4,
            )
        self.call_info = {
            "prompts": prompts,
            "negative_prompts": _as_prompts(arguments.get("negative_prompt")),
            "prompts_2": second,
            "negative_prompts_2": _as_prompts(arguments.get("negative_prompt_2")),
            "num_images_per_prompt": per_prompt,
            "do_cfg": bool(arguments.get("do_classifier_free_guidance")),
            "guidance_scale": float(getattr(self.pipe, "guidance_scale", 1.0) or 1.0),
        }
        self.images, self.num_steps, self._accumulator = [], 0, None

    def _tokens_of(self, prompt: str) -> PromptTokens:
        """The prompt as the pipeline's own tokenizer splits it: the rows its maps will have."""
        tokens = PromptTokens.from_tokenizer(self.family.tokenizer(self.pipe), prompt)
        if tokens.cut_words:
            length = len(self.family.tokenizer(self.pipe).tokenize(prompt))
            warnings.warn(cut_message(length, tokens.cut_words), stacklevel=4)
        return tokens

    def _on_unet_call(self, _unet, args, kwargs) -> None:
        sample = args[0] if args else kwargs["sample"]
        if self._accumulator is None:
            latent_hw = tuple(sample.shape[-2:])
            context = self.family.context_tokens(self.pipe)
            rows = max((len(t.tokens) if t else context for t in self._prompt_tokens), default=context)
            self._accumulator = MapAccumulator(rows, latent_hw, self.save_steps, self._num_images)
            vae_factor = self.pipe.vae_scale_factor
            self.call_info.update(
                latent_height=latent_hw[0],
                latent_width=latent_hw[1],
                height=latent_hw[0] * vae_factor,
                width=latent_hw[1] * vae_factor,
            )
        self.num_steps += 1
        self.call_info["steps"] = self.num_steps
        self._accumulator.start_step()

    def _on_unet_return(self, _unet, _args, _output) -> None:
        self._flush_maps()

    def _flush_maps(self) -> None:
        if self._accumulator is not None:
            self._accumulator.flush()

    # -- results -------------------------------------------------------------------------------------
    @property
    def num_images(self) -> int:
        return self._num_images

    def compute_global_heat_map(
        self,
        prompt: str | None = None,
        factors=None,
        layer_idx=None,
        head_idx: int | None = None,
        time_idx=None,
        normalize: bool = False,
        image_idx: int = 0,
        mid_block: bool = False,
    ) -> GlobalHeatMap:
        """Maps of every token of image `image_idx`'s prompt, aggregated by the rule in `trace.aggregate`.

        By default the layers are the original DAAM's (`default_layers`: the down and up blocks, not the mid
        block); `mid_block=True` adds the mid block's. `layer_idx` (an index or a list) picks layers by index
        in `layer_names` instead, mid block or not. `factors`: of those, keep layers whose resolution is the
        latent's divided by one of these (1, 2, 4, ...). `time_idx`: an index or a list (needs
        `trace(..., save_steps=True)`). `normalize`: divide each pixel by the sum over the prompt's tokens
        (drops start/end tokens). `prompt`: name the prompt when the pipeline got `prompt_embeds`.
        """
        accumulator = self._require_maps(image_idx, time_idx)
        tokens = self._tokens_for(image_idx, prompt)
        layers = self._selected_layers(layer_idx, mid_block)
        if factors is not None:
            layers = [i for i in layers if accumulator.factor(i) in set(factors)]
        maps = accumulator.assemble(image_idx, len(tokens.tokens), layers, head_idx, _as_list(time_idx, None))
        if normalize:
            maps = maps / (maps[1:-1].sum(0, keepdim=True) + 1e-6)
        return GlobalHeatMap(self.family.tokenizer(self.pipe), prompt or self._prompt_of(image_idx), maps, tokens)

    def default_layers(self, mid_block: bool = False) -> list[int]:
        """Indices (in `layer_names`) of the layers the rule averages: the original DAAM's, or with `mid_block`
        every layer (rules.DAAM_WITH_MID_BLOCK)."""
        if mid_block:
            return self._layers()
        factor = self._accumulator.factor
        return [i for i in self._layers() if self.family.in_default_rule(self.layer_names[i], factor(i))]

    def layer_labels(self) -> list[str]:
        """A person's name for each recorded layer: block, resolution, module ("up 1, 16x16, attn 0.0")."""
        return [self.family.layer_label(self.layer_names[i], self._accumulator.grids[i]) for i in self._layers()]

    def layer_heat_maps(self, image_idx: int = 0) -> torch.Tensor:
        """(layers, tokens, h, w): every layer's maps (the mid block's too), aggregated over heads and steps."""
        return torch.stack(
            [self.compute_global_heat_map(layer_idx=i, image_idx=image_idx).heat_maps for i in self._layers()]
        )

    def step_heat_maps(self, image_idx: int = 0, mid_block: bool = False) -> torch.Tensor:
        """(steps, tokens, h, w): each step's maps over the rule's layers (needs `save_steps=True`)."""
        return torch.stack(
            [
                self.compute_global_heat_map(time_idx=t, image_idx=image_idx, mid_block=mid_block).heat_maps
                for t in range(self.num_steps)
            ]
        )

    def to_experiment(
        self,
        path=None,
        seed: int | None = None,
        image_idx: int = 0,
        image=None,
        metadata=None,
        mid_block: bool = False,
        **kwargs,
    ):
        """The last generation (image `image_idx`) as a `GenerationExperiment` to save or store.

        `mid_block` and `kwargs` choose the token maps as for `compute_global_heat_map`; the rule is recorded
        in the metadata (`heat_map_rule`; `custom` when `kwargs` pick layers, heads, steps or resolutions).
        """
        from daam_store.experiment import GenerationExperiment

        image = image if image is not None else self._image(image_idx)
        per_prompt = ("prompts", "negative_prompts", "prompts_2", "negative_prompts_2")
        info = {k: v for k, v in self.call_info.items() if k not in per_prompt}
        for key in per_prompt[1:]:  # this image's negative prompt and SDXL's second prompts, where given
            values = self.call_info.get(key)
            if values:
                info[key.replace("prompts", "prompt")] = values[min(self._prompt_index(image_idx), len(values) - 1)]
        info["scheduler"] = type(self.pipe.scheduler).__name__
        info["dtype"] = str(self.family.denoiser(self.pipe).dtype).removeprefix("torch.")
        info["family"] = self.family.name
        selected = {k for k, v in kwargs.items() if v is not None and k not in ("prompt", "normalize")}
        rule = rules.DAAM_WITH_MID_BLOCK if mid_block else rules.DAAM
        info["heat_map_rule"] = rules.CUSTOM if selected else rule
        info.update(metadata or {})
        global_map = self.compute_global_heat_map(image_idx=image_idx, mid_block=mid_block, **kwargs)
        return GenerationExperiment(
            image=image,
            global_heat_map=global_map.heat_maps,
            prompt=global_map.prompt,
            seed=seed,
            path=Path(path) if path is not None else None,
            metadata=info,
            layer_heat_maps=self.layer_heat_maps(image_idx),
            layer_names=self.layer_labels(),
            step_heat_maps=self.step_heat_maps(image_idx, mid_block) if self.save_steps else None,
            prompt_tokens=global_map.prompt_tokens,
        )

    def _selected_layers(self, layer_idx, mid_block: bool) -> list[int]:
        if layer_idx is None:
            return self.default_layers(mid_block)
        return [i for i in _as_list(layer_idx, None) if i in self._accumulator.sums]

    def _tokens_for(self, image_idx: int, prompt: str | None) -> PromptTokens:
        if prompt is not None:
            return self._tokens_of(prompt)
        tokens = self._prompt_tokens[self._prompt_index(image_idx)]
        if tokens is None:
            raise ValueError("the pipeline was called with prompt_embeds: pass prompt= explicitly")
        return tokens

    def _layers(self) -> list[int]:
        return sorted(self._accumulator.sums) if self._accumulator else []

    def _require_maps(self, image_idx: int, time_idx) -> MapAccumulator:
        if self._accumulator is None or not self._accumulator.sums:
            raise RuntimeError("no heat maps recorded: run the pipeline inside `with trace(pipe) as tc:` first")
        if not 0 <= image_idx < self._num_images:
            raise IndexError(f"image_idx {image_idx} out of range: the last call made {self._num_images} images")
        if time_idx is not None and not self.save_steps:
            raise ValueError("per-step maps were not kept: use trace(pipe, save_steps=True)")
        return self._accumulator

    def _prompt_index(self, image_idx: int) -> int:
        return image_idx // self.call_info["num_images_per_prompt"]

    def _prompt_of(self, image_idx: int) -> str:
        prompts = self.call_info.get("prompts")
        if prompts is None:
            raise ValueError("the pipeline was called with prompt_embeds: pass prompt= explicitly")
        return prompts[self._prompt_index(image_idx)]

    def _image(self, image_idx: int) -> PIL.Image.Image:
        if image_idx >= len(self.images):
            raise ValueError("no image was captured (output_type='latent'?): pass image= explicitly")
        return self.images[image_idx]


def _as_prompts(value) -> list[str] | None:
    return [value] if isinstance(value, str) else list(value) if value is not None else None


def _as_list(value, default):
    if value is None:
        return list(default) if default is not None else None
    return [value] if isinstance(value, int) else list(value)


trace = DiffusionHeatMapHooker
