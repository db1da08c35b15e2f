"""`trace(pipe)`: hook a StableDiffusionPipeline's cross-attention while it generates."""

from __future__ import annotations

import functools
import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import PIL.Image
import torch

from daam_store.heatmap import MAX_PROMPT_TOKENS, GlobalHeatMap, cut_message
from daam_store.trace.aggregate import MapAccumulator
from daam_store.trace.processor import WrappingRecordingProcessor, recording_processor

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

CONTEXT_TOKENS = MAX_PROMPT_TOKENS + 2


def cross_attention_modules(unet) -> list[tuple[str, torch.nn.Module]]:
    """Every `attn2` (text cross-attention) module of the UNet, in forward order of the blocks."""
    return [(name, module) for name, module in unet.named_modules() if name.endswith("attn2")]


class DiffusionHeatMapHooker:
    """Context manager recording cross-attention maps of every generation run inside it.

    Each pipeline call inside the block replaces the maps of the previous one. On exit (also after an
    exception) the original attention processors and pipeline methods are restored.
    """

    def __init__(self, pipeline: StableDiffusionPipeline, save_steps: bool = False):
        self.pipe = pipeline
        self.save_steps = save_steps
        self.layer_names = [name for name, _ in cross_attention_modules(pipeline.unet)]
        self.images: list[PIL.Image.Image] = []
        self.call_info: dict = {}
        self.num_steps = 0
        self._accumulator: MapAccumulator | None = None
        self._num_images = 0
        self._kept_rows: list[int] = []
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
        for layer_idx, (_, module) in enumerate(cross_attention_modules(self.pipe.unet)):
            original = module.processor
            recorder = recording_processor(original, module, layer_idx, lambda: self._accumulator)
            module.set_processor(recorder)
            self._undo.append(lambda m=module, o=original: m.set_processor(o))
            if isinstance(recorder, WrappingRecordingProcessor):
                self._undo.append(recorder.remove_hooks)
        handle = self.pipe.unet.register_forward_pre_hook(self._on_unet_call, with_kwargs=True)
        self._undo.append(handle.remove)
        handle = self.pipe.unet.register_forward_hook(self._on_unet_return, always_call=True)  # also on errors
        self._undo.append(handle.remove)

    def _hook_pipeline(self) -> None:
        self._patch("encode_prompt", self._wrap_encode_prompt)
        self._patch("run_safety_checker", self._wrap_safety_checker)

    def _patch(self, name: str, make_wrapper) -> None:
        had_own = name in vars(self.pipe)
        original = getattr(self.pipe, name)
        setattr(self.pipe, name, make_wrapper(original))

        def restore():
            if had_own:
                setattr(self.pipe, name, original)
            else:
                delattr(self.pipe, name)

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

    def _wrap_safety_checker(self, original):
        @functools.wraps(original)
        def run_safety_checker(image, *args, **kwargs):
            image, flagged = original(image, *args, **kwargs)
            if isinstance(image, torch.Tensor):
                self.images = self.pipe.image_processor.postprocess(image.detach(), output_type="pil")
            else:
                self.images = self.pipe.numpy_to_pil(image)
            return image, flagged

        return run_safety_checker

    def _start_generation(self, arguments: dict) -> None:
        prompt = arguments.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt) if prompt is not None else None
        per_prompt = int(arguments.get("num_images_per_prompt") or 1)
        if prompts is None:
            embeds = arguments["prompt_embeds"]
            self._kept_rows = [CONTEXT_TOKENS] * embeds.shape[0]
        else:
            self._kept_rows = [self._rows_for(p) for p in prompts]
        self._num_images = len(self._kept_rows) * per_prompt
        negative = arguments.get("negative_prompt")
        self.call_info = {
            "prompts": prompts,
            "negative_prompts": [negative] if isinstance(negative, str) else negative,
            "num_images_per_prompt": per_prompt,
            "do_cfg": bool(arguments.get("do_classifier_free_guidance")),
            "guidance_scale": float(getattr(self.pipe, "guidance_scale", 1.0) or 1.0),
        }
        self.images, self.num_steps, self._accumulator = [], 0, None

    def _rows_for(self, prompt: str) -> int:
        tokenizer = self.pipe.tokenizer
        tokens = tokenizer.tokenize(prompt)
        if len(tokens) > MAX_PROMPT_TOKENS:
            from daam_store.heatmap import split_words

            warnings.warn(cut_message(len(tokens), split_words(tokenizer, prompt)[1]), stacklevel=4)
        return min(len(tokens), MAX_PROMPT_TOKENS) + 2

    def _on_unet_call(self, _unet, args, kwargs) -> None:
        sample = args[0] if args else kwargs["sample"]
        if self._accumulator is None:
            latent_hw = tuple(sample.shape[-2:])
            rows = max(self._kept_rows, default=CONTEXT_TOKENS)
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
    ) -> GlobalHeatMap:
        """Maps of every token of image `image_idx`'s prompt, aggregated by the rule in `trace.aggregate`.

        `factors`: keep layers whose resolution is the latent's divided by one of these (1, 2, 4, ...);
        `layer_idx`, `time_idx`: an index or a list of them (time needs `trace(..., save_steps=True)`);
        `normalize`: divide each pixel by the sum over the prompt's tokens (drops start/end tokens).
        """
        accumulator = self._require_maps(image_idx, time_idx)
        prompt = self._prompt_of(image_idx) if prompt is None else prompt
        rows = min(len(self.pipe.tokenizer.tokenize(prompt)), MAX_PROMPT_TOKENS) + 2
        layers = [i for i in _as_list(layer_idx, range(len(self.layer_names))) if i in accumulator.sums]
        if factors is not None:
            layers = [i for i in layers if accumulator.factor(i) in set(factors)]
        maps = accumulator.assemble(image_idx, rows, layers, head_idx, _as_list(time_idx, None))
        if normalize:
            maps = maps / (maps[1:-1].sum(0, keepdim=True) + 1e-6)
        return GlobalHeatMap(self.pipe.tokenizer, prompt, maps)

    def layer_heat_maps(self, image_idx: int = 0) -> torch.Tensor:
        """(layers, tokens, h, w): each layer's maps aggregated over heads and steps."""
        return torch.stack(
            [self.compute_global_heat_map(layer_idx=i, image_idx=image_idx).heat_maps for i in self._layers()]
        )

    def step_heat_maps(self, image_idx: int = 0) -> torch.Tensor:
        """(steps, tokens, h, w): each step's maps aggregated over layers (needs `save_steps=True`)."""
        return torch.stack(
            [self.compute_global_heat_map(time_idx=t, image_idx=image_idx).heat_maps for t in range(self.num_steps)]
        )

    def to_experiment(
        self, path=None, seed: int | None = None, image_idx: int = 0, image=None, metadata=None, **kwargs
    ):
        """The last generation (image `image_idx`) as a `GenerationExperiment` to save or store."""
        from daam_store.experiment import GenerationExperiment

        image = image if image is not None else self._image(image_idx)
        info = {k: v for k, v in self.call_info.items() if k not in ("prompts", "negative_prompts")}
        negatives = self.call_info.get("negative_prompts")
        if negatives:
            info["negative_prompt"] = negatives[min(self._prompt_index(image_idx), len(negatives) - 1)]
        info["scheduler"] = type(self.pipe.scheduler).__name__
        info["dtype"] = str(self.pipe.unet.dtype).removeprefix("torch.")
        info.update(metadata or {})
        return GenerationExperiment(
            image=image,
            global_heat_map=self.compute_global_heat_map(image_idx=image_idx, **kwargs).heat_maps,
            prompt=self._prompt_of(image_idx),
            seed=seed,
            path=Path(path) if path is not None else None,
            metadata=info,
            layer_heat_maps=self.layer_heat_maps(image_idx),
            layer_names=list(self.layer_names),
            step_heat_maps=self.step_heat_maps(image_idx) if self.save_steps else None,
        )

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


def _as_list(value, default):
    if value is None:
        return list(default) if default is not None else None
    return [value] if isinstance(value, int) else list(value)


trace = DiffusionHeatMapHooker
