"""`daam-store train-builtin NAME`: reproduce a built-in model by training it on the generated world."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from daam_store.commands.common import check_device, single_command_main
from daam_store.errors import UserError
from daam_store.models.configs import PREDICTION_TYPES
from daam_store.training.recipes import RECIPES, TRAIN_FLAGS, Recipe


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-builtin",
        help="train a built-in model (sd1-tiny, sd2-tiny, sdxl-tiny) on the generated world",
        description="Train a built-in model from its recipe (fixed seeds and step counts). "
        "Interrupted runs resume from OUT/checkpoint.pt; the result is OUT/pipeline, a diffusers folder.",
    )
    parser.add_argument("name", choices=sorted(RECIPES), help="which built-in model")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: ./train-NAME)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument(
        "--seed",
        default=None,
        help="seed of the initial weights and the scenes; another seed replicates a run (default: the recipe's)",
    )
    parser.add_argument("--steps", type=int, default=None, help="UNet steps (default: the recipe's)")
    parser.add_argument("--vae-steps", type=int, default=None, help="VAE steps (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the recipe's)")
    parser.add_argument("--text-layers", type=int, default=None, help="text encoder layers (default: the recipe's)")
    parser.add_argument(
        "--zero-text-residuals",
        action="store_true",
        default=None,
        help="start each text layer as the identity (its output projections zeroed; default: the recipe's)",
    )
    parser.add_argument(
        "--attention-heads",
        type=int,
        default=None,
        help="heads in every UNet attention block; fewer heads are wider (default: the recipe's)",
    )
    parser.add_argument(
        "--transformer-layers",
        type=int,
        default=None,
        help="transformer layers in every UNet cross-attention block, the mid block's too (default: the recipe's)",
    )
    parser.add_argument(
        "--unet-levels",
        type=int,
        default=None,
        help="SD 1.x/2.x: 4 gives the UNet the real models' four levels, cross-attention at 4x4 too "
        "(default: the recipe's, 3)",
    )
    parser.add_argument(
        "--prediction-type",
        choices=PREDICTION_TYPES,
        default=None,
        help="what the UNet learns to predict (default: the recipe's; sd2-tiny v_prediction, the others epsilon)",
    )
    parser.add_argument(
        "--colourless-phrases",
        type=float,
        default=None,
        help="share of caption phrases written without their colour word (default: the recipe's)",
    )
    parser.add_argument(
        "--pooled-dropout",
        type=float,
        default=None,
        help="SDXL: share of samples trained without the pooled text embedding (default: the recipe's)",
    )
    parser.add_argument(
        "--extra-colours",
        type=int,
        default=None,
        help="training-only colours added to the scenes, each with every shape (default: the recipe's)",
    )
    parser.add_argument(
        "--extra-shapes",
        type=int,
        default=None,
        help="training-only shapes (diamond, cross, ring, in that order) added to the scenes, each in every "
        "colour (default: the recipe's)",
    )
    parser.add_argument(
        "--shape-shading",
        type=float,
        default=None,
        help="training objects fade toward the background by up to this share, in a pattern of their shape, "
        "so the shape shows inside them (default: the recipe's)",
    )
    parser.add_argument(
        "--text-embedding-std",
        type=float,
        default=None,
        help="initial std of the text encoders' token and position embeddings (default: the recipe's; CLIP's "
        "0.02 when unset)",
    )
    parser.add_argument(
        "--object-counts",
        default=None,
        metavar="ONE,TWO,THREE",
        help="shares of training scenes with 1, 2 and 3 objects, e.g. 0.2,0.6,0.2 (default: the recipe's)",
    )
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument(
        "--snapshot", type=Path, default=None, help="also keep a one-file bundle of the EMA weights here"
    )
    parser.add_argument("--snapshot-every", type=int, default=500, help="UNet steps between snapshots")
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds for the whole run: sets the UNet step count"
    )
    parser.add_argument("--log-file", type=Path, default=None, help="append progress lines to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _object_counts(text: str | None) -> tuple[float, ...] | None:
    """'0.2,0.6,0.2' -> (0.2, 0.6, 0.2); a one-line error unless three shares that sum to 1."""
    from daam_store.world import valid_object_counts

    if text is None:
        return None
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        shares = ()
    if not valid_object_counts(shares):
        raise UserError(f"--object-counts {text!r}: give three shares of 1, 2 and 3 objects that sum to 1")
    return shares


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The named recipe with every flag given (TRAIN_FLAGS: recipe field -> flag) put over it."""
    from daam_store.training import get_recipe
    from daam_store.utils import parse_seed

    overrides = {field: getattr(args, flag.removeprefix("--").replace("-", "_")) for field, flag in TRAIN_FLAGS.items()}
    if overrides["seed"] is not None:
        overrides["seed"] = parse_seed(overrides["seed"])
    overrides["object_counts"] = _object_counts(overrides["object_counts"])
    return get_recipe(args.name).with_overrides(**overrides)


def run(args: argparse.Namespace) -> int:
    from daam_store.training import TrainOptions, train_builtin
    from daam_store.world import EXTRA_COLOURS, EXTRA_SHAPES, MAX_SHADING

    recipe = recipe_from_args(args)
    for flag, value in (("--steps", args.steps), ("--vae-steps", args.vae_steps), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    for flag, share in (("--colourless-phrases", args.colourless_phrases), ("--pooled-dropout", args.pooled_dropout)):
        if share is not None and not 0 <= share <= 1:
            raise UserError(f"{flag} must be between 0 and 1, got {share}")
    if not 0 <= recipe.extra_colours <= len(EXTRA_COLOURS):
        raise UserError(f"--extra-colours must be between 0 and {len(EXTRA_COLOURS)}, got {recipe.extra_colours}")
    if not 0 <= recipe.extra_shapes <= len(EXTRA_SHAPES):
        raise UserError(f"--extra-shapes must be between 0 and {len(EXTRA_SHAPES)}, got {recipe.extra_shapes}")
    if not 0 <= recipe.shape_shading <= MAX_SHADING:
        raise UserError(f"--shape-shading must be between 0 and {MAX_SHADING}, got {recipe.shape_shading}")
    if recipe.text_embedding_std is not None and not 0 < recipe.text_embedding_std < math.inf:
        raise UserError(f"--text-embedding-std must be a finite number above 0, got {recipe.text_embedding_std}")
    if recipe.zero_text_residuals and not recipe.text_layers:
        raise UserError("--zero-text-residuals needs text layers: add --text-layers 1 or more")
    sdxl = recipe.family == "sdxl"
    if recipe.pooled_dropout and not sdxl:
        raise UserError(f"--pooled-dropout applies to SDXL-family recipes only, not {args.name}")
    if recipe.text_layers < (1 if sdxl else 0):
        # SDXL reads the penultimate hidden state, so its encoders need a layer after the embeddings
        raise UserError(f"--text-layers must be at least {1 if sdxl else 0} for {args.name}, got {recipe.text_layers}")
    check_device(args.device)
    options = TrainOptions(
        out=args.out or Path(f"train-{args.name}"),
        device=args.device,
        resume=not args.no_resume,
        checkpoint_every=args.checkpoint_every,
        snapshot=args.snapshot,
        snapshot_every=args.snapshot_every,
        time_budget=args.time_budget,
        log_file=args.log_file,
        progress=not args.quiet,
    )
    folder = train_builtin(recipe, options)
    print(f"trained {args.name}: {folder} (load it with load_pipeline({str(folder)!r}))")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m daam_store.commands.train ...`: this command without the rest of the CLI."""
    return single_command_main(register, argv)


if __name__ == "__main__":
    sys.exit(main())
