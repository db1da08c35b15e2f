"""Build and load Stable Diffusion pipelines: built-in models, hub ids, local folders, random test ones."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import diffusers.utils.logging
import huggingface_hub.constants
import torch
import transformers.utils.logging
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from daam_store.errors import UserError, first_line
from daam_store.families import UnsupportedPipelineError, family_for_class_name
from daam_store.models import configs
from daam_store.models.configs import Family

TOKENIZER_DIR = Path(__file__).parent / "clip_tokenizer"
BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_FAMILIES = {"sd1-tiny": "SD1", "sd2-tiny": "SD2", "sdxl-tiny": "SDXL"}  # built-in model -> its family's name
BUILTIN_MODELS = tuple(BUILTIN_FAMILIES)
DEFAULT_MODEL = "sd1-tiny"
HUB_PROBE_TIMEOUT_S = 3


class ModelNotFoundError(UserError):
    """The name is neither a built-in model, a local pipeline folder nor a loadable hub id."""


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user typed (or the built-in name)
    kind: str  # "builtin" | "local" | "hub"
    location: str  # folder path or hub id


def load_clip_tokenizer(**overrides) -> CLIPTokenizer:
    """The real CLIP tokenizer, from the files shipped in the package (no hub access)."""
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), **overrides)


def resolve_model(name_or_path: str | None) -> ModelSource:
    name = name_or_path or DEFAULT_MODEL
    if name in BUILTIN_MODELS:
        folder = BUILTIN_DIR / name
        if not (folder / "model_index.json").exists():
            raise ModelNotFoundError(
                f"built-in model {name!r} has no weights in {folder}; run `daam-store train-builtin {name}`"
            )
        return ModelSource(name, "builtin", str(folder))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").exists():
            raise ModelNotFoundError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        return ModelSource(name, "local", str(path.resolve()))
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ModelSource(name, "hub", name)
    raise ModelNotFoundError(
        f"unknown model {name!r}: use a built-in model ({', '.join(BUILTIN_MODELS)}), "
        "a local diffusers folder or a hub id like 'org/name'"
    )


def load_pipeline(
    name_or_path: str | None = None, device: str | torch.device | None = None, dtype: torch.dtype | None = None
) -> DiffusionPipeline:
    """A ready pipeline from a built-in name (default), a local folder or a hub id.

    The folder's model_index.json names the pipeline class, and so the family (SD 1.x/2.x or SDXL).
    """
    source = resolve_model(name_or_path)
    local_only = source.kind != "hub" or _offline()
    unreachable = None if local_only else hub_unreachable_reason()
    local_only = local_only or unreachable is not None  # the local cache still serves what was downloaded before
    try:
        with _quiet_loading():
            config = DiffusionPipeline.load_config(source.location, local_files_only=local_only)
            pipeline_class = family_for_class_name(str(config.get("_class_name"))).pipeline_class()
            kwargs = {"torch_dtype": dtype} if dtype is not None else {}
            if pipeline_class is StableDiffusionPipeline:
                kwargs |= {"safety_checker": None, "requires_safety_checker": False}
            pipe = pipeline_class.from_pretrained(source.location, local_files_only=local_only, **kwargs)
    except UnsupportedPipelineError as error:
        raise ModelNotFoundError(f"model {source.name!r}: {error}") from None
    except (OSError, ValueError) as error:
        if unreachable is not None:
            cache_error = first_line(error).rstrip(".")
            raise ModelNotFoundError(
                f"could not load model {source.name!r} from the local cache ({cache_error}), and the model hub cannot "
                f"be reached ({unreachable})"
            ) from error
        raise ModelNotFoundError(f"could not load model {source.name!r}: {first_line(error)}") from error
    pipe.set_progress_bar_config(disable=True)
    pipe.daam_source = source  # remembered for the store's model record
    return pipe.to(device) if device is not None else pipe


def build_random_pipeline(
    family: Family = "sd1",
    seed: int = 0,
    text_layers: int = 0,
    attention_heads: int | None = None,
    transformer_layers: int | None = None,
    unet_levels: int = 3,
    prediction_type: str | None = None,
) -> DiffusionPipeline:
    """A pipeline with the built-in geometry and seeded random weights: for tests and training.

    `attention_heads` (None: the family's layout) changes only how the attention splits its channels, not the
    weights' shapes, so the same seed gives the same initial weights whatever the head count.
    `transformer_layers` (None: the family's layout) sets the depth of every cross-attention block; the added
    layers draw from the seeded stream, so the UNet starts from other weights (the text encoder and VAE do not).
    `unet_levels` 4 (SD 1.x/2.x only; every built-in layout has 3) gives the UNet SD's fourth level
    (`configs.unet_config`). `prediction_type` None: the family's (`configs.scheduler_config`)."""
    # the configs first: they refuse an unknown layout or prediction type before any weights are drawn
    unet_config, scheduler_config = configs.unet_and_scheduler_configs(
        family, prediction_type, attention_heads, transformer_layers, unet_levels
    )
    torch.manual_seed(seed)
    if family == "sdxl":
        text_config = configs.sdxl_text_encoder_config(max(text_layers, 1))
        return assemble_sdxl_pipeline(  # built in this order: the seeded stream gives each its weights
            text_encoder=CLIPTextModel(CLIPTextConfig(**text_config)),
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text_config)),
            vae=AutoencoderKL(**configs.vae_config()),
            unet=UNet2DConditionModel(**unet_config),
            scheduler=EulerDiscreteScheduler(**scheduler_config),
        )
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs.text_encoder_config(text_layers)))
    vae = AutoencoderKL(**configs.vae_config())
    unet = UNet2DConditionModel(**unet_config)
    return assemble_pipeline(text_encoder, vae, unet, DDIMScheduler(**scheduler_config))


def assemble_pipeline(text_encoder, vae, unet, scheduler) -> StableDiffusionPipeline:
    """A pipeline from components built in code, with the shipped CLIP tokenizer and no safety checker."""
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=load_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def assemble_sdxl_pipeline(text_encoder, text_encoder_2, vae, unet, scheduler) -> StableDiffusionXLPipeline:
    """An SDXL pipeline from components built in code, with the shipped CLIP tokenizer for both encoders."""
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=load_clip_tokenizer(),
        tokenizer_2=load_clip_tokenizer(pad_token="!"),  # as OpenCLIP's tokenizer in SDXL pads
        unet=unet,
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextlib.contextmanager
def _quiet_loading():
    """No loading progress bars or hints: a loaded model is reported once, by the caller."""
    diffusers_level = diffusers.utils.logging.get_verbosity()
    transformers_level = transformers.utils.logging.get_verbosity()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers.utils.logging.enable_progress_bar()
        transformers.utils.logging.enable_progress_bar()
        diffusers.utils.logging.set_verbosity(diffusers_level)
        transformers.utils.logging.set_verbosity(transformers_level)


def hub_unreachable_reason() -> str | None:
    """Why the model hub (HF_ENDPOINT) takes no connection now, or None when it does, a proxy stands between or
    the endpoint names no host. Asked once before loading a hub id: huggingface_hub retries each unreachable
    request for about a minute."""
    if any(scheme != "no" for scheme in urllib.request.getproxies()):  # *_proxy variables or the system's
        return None  # only the proxy knows; huggingface_hub goes through it
    endpoint = urllib.parse.urlsplit(huggingface_hub.constants.ENDPOINT)
    try:
        host, port = endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: huggingface_hub will say so itself
        return None
    if not host:
        return None
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    outcome: list[str | None] = []
    # In a thread, so that the wait is bounded: a socket timeout covers neither the name lookup nor each of the
    # host's several addresses.
    probe = threading.Thread(target=lambda: outcome.append(_connection_error(host, port)), daemon=True)
    probe.start()
    probe.join(HUB_PROBE_TIMEOUT_S)
    if not outcome:
        return f"{address}: no answer within {HUB_PROBE_TIMEOUT_S} s"
    return None if outcome[0] is None else f"{address}: {outcome[0]}"


def _connection_error(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as error:
        return error.strerror or str(error)
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
