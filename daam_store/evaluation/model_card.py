"""MODEL_CARD.md of a built-in model: what it is, what it learnt from, how it was trained, how it scores."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from daam_store import world
from daam_store.errors import UserError
from daam_store.evaluation.benchmark import lookup
from daam_store.evaluation.report import fmt, fmt_interval, format_markdown
from daam_store.evaluation.settings import MID_BLOCK_RESULTS, TRAIN_RESULTS


def _parameters(folder: Path, component: str) -> int:
    from safetensors import safe_open

    total = 0
    for file in sorted((folder / component).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                total += _numel(handle.get_slice(key).get_shape())
    return total


def _numel(shape) -> int:
    count = 1
    for side in shape:
        count *= side
    return count


def model_card(folder: Path, name: str, results: dict) -> str:
    folder = Path(folder)
    info_file = folder / "training.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    recipe = info.get("recipe", {})
    pipeline_class = json.loads((folder / "model_index.json").read_text())["_class_name"]
    unet = json.loads((folder / "unet" / "config.json").read_text())
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    vae = json.loads((folder / "vae" / "config.json").read_text())
    held_out = ", ".join(f"{c} {s}" for c, s in world.HELD_OUT_PAIRS)
    encoders = [c for c in ("text_encoder", "text_encoder_2") if (folder / c / "config.json").exists()]
    sizes = {c: _parameters(folder, c) for c in ("unet", "vae", *encoders)}
    sampler = scheduler["_class_name"].removesuffix("Scheduler")
    minutes = info.get("training_seconds", 0) / 60
    counts = tuple(recipe.get("object_counts", world.OBJECT_COUNT_PROBS))
    lines = [
        f"# {name}",
        "",
        f"A tiny text-to-image model with the real Stable Diffusion architecture (a diffusers `{pipeline_class}`: "
        f"{', '.join(_encoder_classes(folder, encoders))}, the real CLIP tokenizer, AutoencoderKL, "
        f"UNet2DConditionModel, {sampler}), trained from scratch on daam-store's generated world so that its DAAM "
        "word maps can be scored against known objects. It draws coloured shapes on gray at 32x32 pixels and "
        "nothing else.",
        "",
        "## Configuration",
        f"- UNet: {sizes['unet']:,} parameters, channels {unet['block_out_channels']}, "
        f"{unet['layers_per_block']} layer per block, {_attention_layout(unet)}, "
        f"{'linear' if unet.get('use_linear_projection') else 'conv'} projection in the transformer blocks"
        f"{_added_conditioning(unet)}.",
        f"- Prediction: {scheduler['prediction_type']}; scheduler {sampler} ({scheduler['beta_schedule']} betas, "
        f"{scheduler['num_train_timesteps']} training timesteps).",
        f"- VAE: {sizes['vae']:,} parameters, factor 2 (32x32x3 images, 16x16x4 latents), "
        f"latent scaling factor {vae['scaling_factor']:.4f} (1 / std of its latents).",
        *[_encoder_line(folder, encoder, sizes[encoder], len(encoders)) for encoder in encoders],
        "",
        "## Data",
        "Generated on the fly by `daam_store.world` (seeded per step): a gray (128,128,128) 32x32 image with 1-3 "
        f"non-overlapping objects (shares {counts}), shapes {', '.join(world.SHAPES)}, colours "
        f"{', '.join(f'{c} {world.PALETTE[c]}' for c in world.COLOURS)}, distinct within an image, random sizes "
        "and positions; captions such as 'a red circle and a blue square' with the objects in random order. "
        f"Held out of training (never drawn, only evaluated): {held_out}. "
        f"{recipe.get('empty_caption_prob', 0.1):.0%} of captions are empty (for classifier-free guidance).",
        "",
        "## Training",
        f"- Recipe `{recipe.get('name', name)}`: seed {recipe.get('seed')}, batch {recipe.get('batch_size')}, "
        f"VAE {recipe.get('vae_steps')} steps (lr {recipe.get('vae_lr')}, MSE + {recipe.get('kl_weight')} KL), "
        f"then UNet + text encoder {info.get('unet_steps_done')} steps (AdamW lr {recipe.get('unet_lr')}, "
        f"{recipe.get('warmup_steps')} warm-up steps then cosine decay, min-SNR weighting gamma "
        f"{recipe.get('min_snr_gamma')}, EMA {recipe.get('ema_decay')}; the EMA weights ship).",
        *_recipe_variations(recipe),
        "- No loss uses attention maps or object masks: the maps below emerged from denoising alone.",
        f"- Trained in {minutes:.1f} min on {info.get('device', 'unknown')} (torch {info.get('torch', '?')}).",
        *([f"- {info['note']}"] if info.get("note") else []),
        _reproduce_line(info),
        "",
        "## Evaluation (`daam-store eval`)",
        "",
        format_markdown(results, name),
        "",
        *_in_distribution(folder),
        *_with_mid_block(folder),
        "## Limits",
        *_unmet(results),
        "Only the world's words mean anything to this model; other words map to untrained embeddings. "
        "Images are 32x32. Scores come from this model's own generations read by a palette segmentation and a "
        "template shape classifier (see `daam_store.world`), not from human annotation.",
        "",
    ]
    return "\n".join(lines)


def _reproduce_line(info: dict) -> str:
    from daam_store.training.recipes import RECIPES, train_command

    recipe = info.get("recipe", {})
    if not recipe.get("name"):
        return "- Reproduce: no training recipe recorded (no training.json beside the weights)."
    if recipe["name"] not in RECIPES:
        return f"- Reproduce: trained from a recipe {recipe['name']!r}, which `daam-store train-builtin` does not have."
    if "unet_steps" in info:  # the run's own length: a time budget or a resumed run can change the recipe's
        recipe = recipe | {"unet_steps": info["unet_steps"]}
    command, unflagged = train_command(recipe)
    # a run whose recipe no flag gives back (a learning rate changed in code) says so rather than claim the command
    edited = f" with the recipe edited to {', '.join(unflagged)}" if unflagged else ""
    return (
        f"- Reproduce: `{command}`{edited} (add `--device cuda` on a GPU; it resumes from checkpoints). GPU and "
        "CPU arithmetic differ, so a rerun gives a model of the same recipe, not the same bits."
    )


def _recipe_variations(recipe: dict) -> list[str]:
    lines = []
    if recipe.get("pooled_dropout") and recipe.get("family") == "sdxl":
        lines.append(
            f"- Pooled-embedding dropout {recipe['pooled_dropout']:.0%}: SDXL's pooled text embedding (its global "
            "path) is zeroed in that share of training samples, so the caption also has to pass through "
            "cross-attention; trained without it, the model drew from the pooled embedding alone and its maps "
            "were noise (docs/builtin-models-ablations.md)."
        )
    if recipe.get("zero_text_residuals") and recipe.get("text_layers"):
        lines.append(
            "- The text layers started as the identity (attention and MLP output projections zeroed), so the "
            "encoder began as its embeddings and learned to mix tokens only as denoising rewarded it."
        )
    if recipe.get("text_embedding_std"):
        # only SDXL's cross-attention reads the embeddings raw; SD 1.x/2.x read them through the final layer norm
        reads = " (SDXL's cross-attention reads them raw, not layer-normed)" if recipe.get("family") == "sdxl" else ""
        lines.append(
            f"- The text embeddings (token and position) started at std {recipe['text_embedding_std']:g} instead of "
            f"CLIP's 0.02{reads}."
        )
    if recipe.get("extra_colours"):
        extras = world.EXTRA_COLOURS[: recipe["extra_colours"]]
        lines.append(
            f"- Training scenes also use {', '.join(f'{c} {world.PALETTE[c]}' for c in extras)} (not in the "
            "benchmark), each with every shape: more colour-shape pairs whose binding only the caption tells."
        )
    if recipe.get("extra_shapes"):
        extras = world.EXTRA_SHAPES[: recipe["extra_shapes"]]
        lines.append(
            f"- Training scenes also draw {', '.join(extras)} (not in the benchmark), each in every colour: a "
            "benchmark colour's shape is told by the caption among more shapes. The evaluation reads images with "
            "these shapes too, so drawing one where a benchmark shape was asked counts as a wrong shape."
        )
    if recipe.get("shape_shading"):
        lines.append(
            f"- Training objects fade toward the background by up to {recipe['shape_shading']:.0%} in a pattern of "
            "their shape (a circle toward its rim, a square left to right, a triangle apex to base, an extra shape "
            "like the circle), so a shape shows inside its object as well as along its outline."
        )
    counts = recipe.get("object_counts")
    if counts is not None and tuple(counts) != world.OBJECT_COUNT_PROBS:
        lines.append(
            "- Training scenes hold 1, 2 and 3 objects in shares "
            f"{' / '.join(f'{share:.0%}' for share in counts)} (the world's default: "
            f"{' / '.join(f'{share:.0%}' for share in world.OBJECT_COUNT_PROBS)})."
        )
    if recipe.get("colourless_phrase_prob"):
        lines.append(f"- {recipe['colourless_phrase_prob']:.0%} of caption phrases are written without their colour.")
    return lines


def _in_distribution(folder: Path) -> list[str]:
    """The training-pairs check (`daam-store eval --split train --json FOLDER/evaluation-train.json`), if run:
    it tells binding (right in distribution) from generalising to the held-out pairs."""
    train = _results_beside(folder, TRAIN_RESULTS, split="train", mid_block=False)
    if train is None:
        return []
    value = partial(lookup, train)  # None where the run had no image to score it on

    return [
        "## In distribution (`daam-store eval --split train`)",
        "",
        f"The same benchmark ({_settings(train)}) on {train['images']['total']} images of prompts made of training "
        "pairs only "
        "(objects the model has seen, in new combinations and positions): shape correct "
        f"{fmt(value('adherence.shape.all'))} (two-object {fmt(value('adherence.shape.two_objects'))}), "
        f"colour present {fmt(value('adherence.colour.all'))}; mIoU colour words "
        f"{fmt(value('miou.colour.word.mean'))} (other object's "
        f"{fmt(value('miou.colour.other_object.mean'))}), shape words "
        f"{fmt(value('miou.shape.word.mean'))} (other object's "
        f"{fmt(value('miou.shape.other_object.mean'))}). "
        "The targets above are measured on the held-out pairs.",
        "",
    ]


def _with_mid_block(folder: Path) -> list[str]:
    """The held-out benchmark under daam-store's other rule (`daam-store eval --mid-block --json
    FOLDER/evaluation-mid-block.json`), if run: sd1-tiny draws its shapes with its mid block's cross-attention."""
    results = _results_beside(folder, MID_BLOCK_RESULTS, split="heldout", mid_block=True)
    if results is None:
        return []
    value = partial(lookup, results)
    met = [check for check in results["targets"] if check["met"]]
    return [
        "## With the mid block (`daam-store eval --mid-block`)",
        "",
        f"The held-out benchmark ({_settings(results)}, {results['images']['total']} images) with each word's map "
        "averaged over every cross-attention layer, the UNet's mid block too, instead of the original DAAM's "
        f"layers: mIoU colour words {fmt_interval(value('miou.colour.word'))} (other object's "
        f"{fmt(value('miou.colour.other_object.mean'))}), shape words {fmt_interval(value('miou.shape.word'))} "
        f"(other object's {fmt(value('miou.shape.other_object.mean'))}); {len(met)} of {len(results['targets'])} "
        "targets met by this rule. The targets above are measured with the original DAAM's layers.",
        "",
    ]


def _results_beside(folder: Path, name: str, split: str, mid_block: bool) -> dict | None:
    """A further `daam-store eval --json` run saved beside the model (None if there is none): it must be the run
    its file name says, or the card would label another run's figures."""
    path = folder / name
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    settings = results.get("settings", {})
    if settings.get("split") != split or settings.get("mid_block", False) != mid_block or "targets" not in results:
        flags = f"--split {split}" + (" --mid-block" if mid_block else "")
        raise UserError(f"{path} is not a `daam-store eval {flags}` run: run that command with --json {path}")
    return results


def _settings(results: dict) -> str:
    settings = results.get("settings", {})
    return f"{results.get('sampler', 'DDIM')} {settings.get('steps')} steps, guidance {settings.get('guidance')}"


def _encoder_classes(folder: Path, encoders: list[str]) -> list[str]:
    return [json.loads((folder / e / "config.json").read_text())["architectures"][0] for e in encoders]


def _attention_layout(unet: dict) -> str:
    """Where the cross-attention layers are, in latent pixels (the UNet's sample size, halved by each down block), their
    depth and heads (the up blocks mirror the down blocks; the mid block has the last down block's depth and heads)."""
    sides = [unet["sample_size"] // 2**i for i in range(len(unet["down_block_types"]))]
    depths = _per_block(unet.get("transformer_layers_per_block", 1), len(sides))
    # diffusers' SD configs name the head count `attention_head_dim` (a slip it keeps for old checkpoints)
    heads = _per_block(unet["attention_head_dim"], len(sides))
    placed = [
        f"{side}x{side} ({_site(depth, count)})"
        for side, depth, count, kind in zip(sides, depths, heads, unet["down_block_types"], strict=True)
        if kind.startswith("CrossAttn")
    ]
    mid = f"the mid block at {sides[-1]}x{sides[-1]} ({_site(depths[-1], heads[-1])})"
    return f"cross-attention at {', '.join(placed)} and {mid}"


def _per_block(value: int | list[int], blocks: int) -> list[int]:
    """diffusers takes one value for every block or a list with one per block."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * blocks


def _site(depth: int, heads: int) -> str:
    layers = f"{depth} transformer layers, " if depth > 1 else ""
    return layers + f"{heads} head" + ("" if heads == 1 else "s")


def _added_conditioning(unet: dict) -> str:
    if unet.get("addition_embed_type") != "text_time":
        return ""
    return "; SDXL's 'text_time' added conditioning (the second encoder's pooled embedding and the size/crop ids)"


def _encoder_line(folder: Path, encoder: str, parameters: int, count: int) -> str:
    text = json.loads((folder / encoder / "config.json").read_text())
    label = "Text encoder" if count == 1 else f"Text encoder {1 if encoder == 'text_encoder' else 2}"
    # SDXL's pipeline conditions on the penultimate hidden state: the last layer only feeds the pooled embedding.
    penultimate = " (the UNet reads the penultimate hidden state)" if count > 1 else ""
    return (
        f"- {label}: {text['architectures'][0]} with {_layers(text['num_hidden_layers'])}{penultimate}, "
        f"hidden size {text['hidden_size']}, the full {text['vocab_size']:,}-token CLIP vocabulary ({parameters:,} "
        "parameters, almost all in the token table; only the world's words were trained)."
    )


def _layers(count: int) -> str:
    return f"{count} transformer layer{'' if count == 1 else 's'}"


def _unmet(results: dict) -> list[str]:
    unmet = [f"{c['label']} {fmt(c['value'])} (target {c['target']})" for c in results["targets"] if not c["met"]]
    if not unmet:
        return []
    return [f"Targets not reached: {'; '.join(unmet)}.", ""]


def write_model_card(folder: Path, name: str, results: dict) -> Path:
    path = Path(folder) / "MODEL_CARD.md"
    path.write_text(model_card(folder, name, results))
    return path
