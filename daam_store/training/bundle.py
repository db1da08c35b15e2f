"""One-file snapshots of a pipeline's weights (safetensors), small enough to copy off a remote run.

A bundle holds the UNet, VAE and text encoder weights with their configs as JSON metadata. The text
encoder's 49,408 x 64 token table is most of its size but the world uses a dozen tokens: the table is
stored in float16 and the rows of the tokens the world uses (`rows`) exactly in float32, so every
caption of the world sees the trained weights bit for bit, and words outside it see their (random,
untrained) rows rounded to float16.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, safe_open, save_file
from transformers import CLIPTextConfig, CLIPTextModel

from daam_store.models import load_clip_tokenizer

TOKEN_TABLE = "token_embedding.weight"  # key suffix: transformers versions differ in the prefix


def _token_table_key(keys) -> str:
    (key,) = [k for k in keys if k.startswith("text_encoder.") and k.endswith(TOKEN_TABLE)]
    return key


def save_bundle(
    path: Path,
    weights: dict[str, dict[str, torch.Tensor]],
    configs: dict[str, dict],
    rows: list[int],
    info: dict | None = None,
) -> None:
    """Write `weights` {"unet"|"vae"|"text_encoder": state_dict} and their `configs` to one file."""
    tensors = {
        f"{module}.{name}": tensor.detach().float().cpu().contiguous()
        for module, state in weights.items()
        for name, tensor in state.items()
    }
    table_key = _token_table_key(tensors)
    table = tensors.pop(table_key)
    index = torch.tensor(sorted(set(rows)), dtype=torch.long)
    tensors[table_key] = table.half()
    tensors["rows.index"] = index
    tensors["rows.values"] = table[index].clone()
    metadata = {"configs": json.dumps(configs), "info": json.dumps(info or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)  # a reader never sees half a file


def load_bundle(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict], dict]:
    """(weights by module, configs by module, info) of a bundle written by `save_bundle`."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    table_key = _token_table_key(tensors)
    table = tensors.pop(table_key).float()
    table[tensors.pop("rows.index")] = tensors.pop("rows.values")
    tensors[table_key] = table
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        module, name = key.split(".", 1)
        weights.setdefault(module, {})[name] = tensor
    return weights, json.loads(metadata["configs"]), json.loads(metadata["info"])


def pipeline_configs(pipe: StableDiffusionPipeline) -> dict[str, dict]:
    """The component configs, without diffusers' private keys (`_use_default_values` would make
    `from_config` forget a changed default such as the VAE's scaling factor)."""

    def public(config) -> dict:
        return {key: value for key, value in dict(config).items() if not key.startswith("_")}

    return {
        "unet": public(pipe.unet.config),
        "vae": public(pipe.vae.config),
        "text_encoder": pipe.text_encoder.config.to_dict(),
        "scheduler": public(pipe.scheduler.config),
    }


def assemble_pipeline(weights: dict[str, dict[str, torch.Tensor]], configs: dict[str, dict]) -> StableDiffusionPipeline:
    """A `StableDiffusionPipeline` from configs and weights (the shipped CLIP tokenizer, DDIM)."""
    unet = UNet2DConditionModel.from_config(configs["unet"])
    vae = AutoencoderKL.from_config(configs["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    for module, name in ((unet, "unet"), (vae, "vae"), (text_encoder, "text_encoder")):
        module.load_state_dict(_align_keys(weights[name], module.state_dict().keys()), strict=True)
        module.eval()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=load_clip_tokenizer(),
        unet=unet,
        scheduler=DDIMScheduler.from_config(configs["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _align_keys(state: dict[str, torch.Tensor], wanted) -> dict[str, torch.Tensor]:
    """Add or drop a common key prefix (transformers versions name CLIPTextModel's keys with or
    without 'text_model.')."""
    wanted = set(wanted)
    if set(state) == wanted:
        return state
    for prefix in ("text_model.",):
        added = {prefix + k: v for k, v in state.items()}
        if set(added) == wanted:
            return added
        dropped = {k.removeprefix(prefix): v for k, v in state.items()}
        if set(dropped) == wanted:
            return dropped
    return state  # strict loading then names the mismatch


def bundle_to_folder(bundle: Path, folder: Path) -> dict:
    """Unpack a bundle into a diffusers pipeline folder (safetensors); returns the bundle's info."""
    weights, configs, info = load_bundle(bundle)
    assemble_pipeline(weights, configs).save_pretrained(str(folder), safe_serialization=True)
    (Path(folder) / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
