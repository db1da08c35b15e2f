"""One-file snapshots of a pipeline's weights (safetensors), small enough to copy off a remote run.

A bundle holds the UNet, VAE and text encoder(s) weights with their configs as JSON metadata. A text
encoder's 49,408-token table is most of its size but the world uses a dozen tokens: each table is
stored in float16 and the rows of the tokens the world uses (`rows`) exactly in float32, so every
caption of the world sees the trained weights bit for bit, and words outside it see their (random,
untrained) rows rounded to float16. SDXL bundles hold both text encoders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, EulerDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import load_file, safe_open, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from daam_store.models.pipelines import TOKENIZER_DIR, assemble_sdxl_pipeline
from daam_store.models.pipelines import assemble_pipeline as assemble_sd_pipeline

TOKEN_TABLE = "token_embedding.weight"  # key suffix: transformers versions differ in the prefix
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


def _token_table_keys(keys) -> dict[str, str]:
    """{text encoder module: its token table's key}."""
    tables = {}
    for key in keys:
        module = key.split(".", 1)[0]
        if module in TEXT_ENCODERS and key.endswith(TOKEN_TABLE):
            tables[module] = key
    return tables


def save_bundle(
    path: Path,
    weights: dict[str, dict[str, torch.Tensor]],
    configs: dict[str, dict],
    rows: list[int],
    info: dict | None = None,
) -> None:
    """Write `weights` {"unet"|"vae"|"text_encoder"[_2]: state_dict} and their `configs` to one file."""
    tensors = {
        f"{module}.{name}": tensor.detach().float().cpu().contiguous()
        for module, state in weights.items()
        for name, tensor in state.items()
    }
    index = torch.tensor(sorted(set(rows)), dtype=torch.long)
    for module, table_key in _token_table_keys(tensors).items():
        table = tensors.pop(table_key)
        tensors[table_key] = table.half()
        tensors[f"rows.{module}.index"] = index.clone()
        tensors[f"rows.{module}.values"] = table[index].clone()
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
    if "rows.index" in tensors:  # bundles written before SDXL: one text encoder, unprefixed rows
        tensors["rows.text_encoder.index"] = tensors.pop("rows.index")
        tensors["rows.text_encoder.values"] = tensors.pop("rows.values")
    for module, table_key in _token_table_keys(tensors).items():
        table = tensors.pop(table_key).float()
        table[tensors.pop(f"rows.{module}.index")] = tensors.pop(f"rows.{module}.values")
        tensors[table_key] = table
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        module, name = key.split(".", 1)
        weights.setdefault(module, {})[name] = tensor
    return weights, json.loads(metadata["configs"]), json.loads(metadata["info"])


def pipeline_configs(pipe: DiffusionPipeline) -> dict[str, dict]:
    """The component configs, without diffusers' private keys (`_use_default_values` would make
    `from_config` forget a changed default such as the VAE's scaling factor)."""

    def public(config) -> dict:
        return {key: value for key, value in dict(config).items() if not key.startswith("_")}

    configs = {
        "unet": public(pipe.unet.config),
        "vae": public(pipe.vae.config),
        "scheduler": public(pipe.scheduler.config),
    }
    for module in TEXT_ENCODERS:
        if getattr(pipe, module, None) is not None:
            configs[module] = getattr(pipe, module).config.to_dict()
    return configs


def assemble_pipeline(weights: dict[str, dict[str, torch.Tensor]], configs: dict[str, dict]) -> DiffusionPipeline:
    """A Stable Diffusion pipeline (DDIM), or an SDXL one (Euler) when there are two text encoders."""
    sdxl = "text_encoder_2" in configs
    modules = {
        "unet": UNet2DConditionModel.from_config(configs["unet"]),
        "vae": AutoencoderKL.from_config(configs["vae"]),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**configs["text_encoder"])),
    }
    if sdxl:
        modules["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"]))
    for name, module in modules.items():
        module.load_state_dict(_align_keys(weights[name], module.state_dict().keys()), strict=True)
        module.eval()
    if sdxl:
        scheduler = EulerDiscreteScheduler.from_config(configs["scheduler"])
        return assemble_sdxl_pipeline(**modules, scheduler=scheduler)
    return assemble_sd_pipeline(**modules, scheduler=DDIMScheduler.from_config(configs["scheduler"]))


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


def compact_tokenizers(folder: Path) -> None:
    """Ship the CLIP vocabulary as vocab.json + merges.txt (1.5 MB) instead of the 3.6 MB tokenizer.json
    that save_pretrained writes: the same tokenizer, and SDXL folders hold two of them."""
    shipped = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    for tokenizer_dir in sorted(Path(folder).glob("tokenizer*")):
        config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(TOKENIZER_DIR / name, tokenizer_dir / name)
        shipped["pad_token"] = config["pad_token"]  # SDXL's second tokenizer pads with "!"
        (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(shipped, indent=2) + "\n")
        (tokenizer_dir / "tokenizer.json").unlink(missing_ok=True)


def bundle_to_folder(bundle: Path, folder: Path) -> dict:
    """Unpack a bundle into a diffusers pipeline folder (safetensors); returns the bundle's info."""
    weights, configs, info = load_bundle(bundle)
    assemble_pipeline(weights, configs).save_pretrained(str(folder), safe_serialization=True)
    compact_tokenizers(folder)
    (Path(folder) / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
