"""Recipes of the built-in models: everything `daam-store train-builtin NAME` needs to reproduce one."""

from __future__ import annotations

import json
import shlex
from dataclasses import MISSING, asdict, dataclass, fields, replace

from daam_store.errors import UserError
from daam_store.models.configs import Family


@dataclass(frozen=True)
class Recipe:
    name: str
    family: Family
    text_layers: int = 0  # CLIP text encoder layers (0 = token + position embeddings only)
    # Start every text layer as the identity (its attention output and MLP output projections zeroed): an SD
    # encoder begins as the 0-layer one, whose maps localise, and mixes tokens only as training finds it useful.
    # (SDXL's cross-attention reads the penultimate states, the embeddings with 1 layer: only its pooled path changes.)
    zero_text_residuals: bool = False
    # initial std of the text encoders' token and position embeddings (None: CLIP's 0.02). SDXL's cross-attention
    # reads the penultimate states raw, at their small trained scale, where SD reads them layer-normed (std 1)
    text_embedding_std: float | None = None
    attention_heads: int | None = None  # one head count for every UNet attention block (None: the family's)
    transformer_layers: int | None = None  # one depth for every UNet cross-attention block (None: the family's)
    # 3 in every family's layout; SD 1.x/2.x: 4 gives the UNet the real models' fourth level, cross-attention at
    # 4x4 (1/4) too. (A checkpoint written before this field existed reads as 3, the layout it was made with.)
    unet_levels: int = 3
    # what the UNet learns to predict, "epsilon" (the noise) or "v_prediction" (None: the family's: sd2 v as
    # SD 2.1-768, sd1 and sdxl epsilon; SD 2.x base checkpoints predict epsilon too)
    prediction_type: str | None = None
    seed: int = 0
    batch_size: int = 256
    vae_steps: int = 2000
    vae_lr: float = 1e-3
    unet_steps: int = 6000
    unet_lr: float = 8e-4
    warmup_steps: int = 300
    ema_decay: float = 0.999
    empty_caption_prob: float = 0.1  # classifier-free guidance needs the unconditional caption
    min_snr_gamma: float = 5.0  # min-SNR loss weighting: shape is decided at middle noise levels
    colourless_phrase_prob: float = 0.0  # a caption variation: "a triangle" for a phrase, whatever its colour
    # SDXL: share of samples trained with the pooled text embedding zeroed (its global path otherwise carries
    # the whole caption and cross-attention maps stop localising)
    pooled_dropout: float = 0.0
    # training-only colours (world.EXTRA_COLOURS) with every shape: more pairs that bind only by the caption
    extra_colours: int = 0
    # training-only shapes (world.EXTRA_SHAPES) in every colour: a benchmark colour's shape is then told by the
    # caption among more shapes, not guessed from the few it comes in
    extra_shapes: int = 0
    # objects fade toward the background by up to this share in a pattern of their shape (world.render): the
    # shape then shows inside an object, not only along its outline
    shape_shading: float = 0.0
    # shares of training scenes with 1, 2 and 3 objects: only scenes with two or more teach binding
    # (world.OBJECT_COUNT_PROBS, written out: the CLI's help reads the recipes and must not import torch)
    object_counts: tuple[float, float, float] = (0.4, 0.45, 0.15)
    kl_weight: float = 1e-6

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, **overrides) -> Recipe:
        return replace(self, **{key: value for key, value in overrides.items() if value is not None})


RECIPES: dict[str, Recipe] = {
    # All three trained on the project's 2-core CPU at batch 32, with extra training-only colours: they lifted
    # held-out shapes in the ablations (docs/builtin-models-ablations.md, sessions 7 and 8), and eight rather
    # than four bound more held-out pairs in sd1-tiny and sd2-tiny (session 10 run X8H2, session 11 run sd2X8;
    # sdxl-tiny had four until session 22: with eight alone its colour maps fell below the bar, run sdxlX8; with
    # eight, the three extra shapes and 7200 steps they pass it, run sdxlX8XS3L). sd1-tiny's two heads
    # instead of eight: the same colour maps and 1.6x faster training on the CPU (session 10, run sd1H2).
    # All three also draw three training-only shapes. Each benchmark shape then appears in about half
    # as many scenes, so they train 7200 steps (before: 4800, sdxl 5400; sdxl now 10800, below) to give back
    # part of that (at 4800 the training pairs bound worse; sd2: 0.35 right against 0.85). sd1-tiny then binds
    # held-out pairs (session 16, run sd1XS3L: both shapes right in 0.96 of held-out two-object images, none
    # swapped). sd2-tiny with its family's
    # heads and v-prediction still swapped them, and with either of sd1-tiny's two changes alone too (sessions
    # 15-21); with both, two heads and epsilon (as SD 2.x base checkpoints predict), it binds them (session 21,
    # run sd2H2EL: 0.95 right, 0.02 swapped), but its shape-word maps leave their objects (mIoU 0.22 -> 0.06).
    "sd1-tiny": Recipe(
        name="sd1-tiny",
        family="sd1",
        seed=1,
        attention_heads=2,
        batch_size=32,
        vae_steps=600,
        unet_steps=7200,
        extra_colours=8,
        extra_shapes=3,
    ),
    "sd2-tiny": Recipe(
        name="sd2-tiny",
        family="sd2",
        seed=2,
        attention_heads=2,
        prediction_type="epsilon",
        batch_size=32,
        vae_steps=600,
        unet_steps=7200,
        extra_colours=8,
        extra_shapes=3,
    ),
    # SDXL reads its encoders' penultimate hidden states: with 1 layer that is the token + position
    # embeddings, the text side the SD models use (0 layers); the layer feeds only the pooled embedding.
    "sdxl-tiny": Recipe(
        name="sdxl-tiny",
        family="sdxl",
        seed=3,
        text_layers=1,
        batch_size=32,
        vae_steps=600,
        # 1.5x sd1-tiny's length (session 23, run sdxlX8XS3LL): at 7200 steps it had not learnt even its training
        # pairs' binding (0.36 right); at 10800 they bind more (0.58), held-out pairs a little (0.27 -> 0.36 right,
        # 0.55 swapped), and its shape-word maps find lone objects (one-object images 0.26 -> 0.53)
        unet_steps=10800,
        # Trained without it, the model drew every caption from the pooled embedding alone (zeroed
        # cross-attention inputs changed nothing) and its word maps were noise: see docs/builtin-models-ablations.md.
        pooled_dropout=0.8,
        # sd1-tiny's data and length (session 22, run sdxlX8XS3L): held-out pairs bind more often than with four
        # extra colours, no extra shapes and 5400 steps (0.27 right / 0.56 swapped against 0.13 / 0.66) but still
        # swap, and training pairs bind less (0.36 against 0.66); shipped for the colours drawn (0.90 -> 0.96), 3 of
        # 6 targets against 2 (shipped until session 23, then retrained at 10800 steps, above). Its family's
        # heads: two (with four extra colours, run sdxlH2XS3) did not bind it and moved its shape-word maps off
        # their objects.
        extra_colours=8,
        extra_shapes=3,
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"no training recipe for {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


# The recipe fields `daam-store train-builtin` can change, each with its flag: the command reads its arguments
# through this table, and a model card writes its "Reproduce" command from it.
TRAIN_FLAGS: dict[str, str] = {
    "seed": "--seed",
    "unet_steps": "--steps",
    "vae_steps": "--vae-steps",
    "batch_size": "--batch-size",
    "text_layers": "--text-layers",
    "zero_text_residuals": "--zero-text-residuals",
    "text_embedding_std": "--text-embedding-std",
    "attention_heads": "--attention-heads",
    "transformer_layers": "--transformer-layers",
    "unet_levels": "--unet-levels",
    "prediction_type": "--prediction-type",
    "colourless_phrase_prob": "--colourless-phrases",
    "pooled_dropout": "--pooled-dropout",
    "extra_colours": "--extra-colours",
    "extra_shapes": "--extra-shapes",
    "shape_shading": "--shape-shading",
    "object_counts": "--object-counts",
}


def train_command(trained: dict) -> tuple[str, list[str]]:
    """The `daam-store train-builtin` command that trains the recipe `trained` (as training.json keeps it): the
    named recipe plus a flag for each field that differs from it. Also the differences no flag can give (a
    learning rate, a field set back to the family's default), as "field value"."""
    named = get_recipe(trained["name"])
    base = json.loads(json.dumps(named.to_dict()))
    # as JSON has them (tuples are lists); a field added after the run was made reads as its default, one
    # removed since is left out
    defaults = {field.name: field.default for field in fields(Recipe) if field.default is not MISSING}
    wanted = json.loads(json.dumps(defaults | {key: value for key, value in trained.items() if key in base}))
    words, unflagged = ["daam-store", "train-builtin", named.name], []
    for field, value in wanted.items():
        if value == base.get(field):
            continue
        flag = TRAIN_FLAGS.get(field)
        if flag is None or value is None or value is False:
            unflagged.append(f"{field} {value}")
        elif value is True:
            words.append(flag)
        elif isinstance(value, list):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return shlex.join(words), unflagged
