"""`daam-store eval --model NAME`: the localisation benchmark on held-out prompts of the generated world."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from daam_store.commands.common import finite_float, single_command_main
from daam_store.errors import UserError
from daam_store.evaluation.settings import MID_BLOCK_RESULTS, TRAIN_RESULTS, EvalSettings


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a model's word maps against the objects it generates (held-out world prompts)",
        description="Generate held-out prompts of the generated world over several seeds, trace them, and report "
        "prompt adherence, mIoU of colour and shape words at tau against their objects with baselines and "
        "a tau sweep, and word influence.",
    )
    parser.add_argument("--model", default="sd1-tiny", help="built-in name, local folder or hub id (default sd1-tiny)")
    parser.add_argument("--n", type=int, default=EvalSettings.n, help="number of images (default %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the full results as JSON here")
    parser.add_argument("--steps", type=int, default=EvalSettings.steps, help="denoising steps (default %(default)s)")
    parser.add_argument(
        "--guidance", type=finite_float, default=EvalSettings.guidance, help="guidance (default %(default)s)"
    )
    parser.add_argument("--split", choices=["heldout", "train"], default="heldout", help="prompts to use")
    parser.add_argument(
        "--tau", type=finite_float, default=EvalSettings.tau, help="map threshold (default %(default)s)"
    )
    parser.add_argument("--influence", type=int, default=EvalSettings.influence_n, help="images for word influence")
    parser.add_argument("--batch-size", type=int, default=EvalSettings.batch_size, help="images per pipeline call")
    parser.add_argument(
        "--mid-block",
        action="store_true",
        help="score maps averaged over every layer, the UNet's mid block too (the default: the original DAAM's layers)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--write-card", action="store_true", help="write MODEL_CARD.md into the model's folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daam_store.evaluation import evaluate, format_markdown
    from daam_store.evaluation.model_card import write_model_card
    from daam_store.models import ModelNotFoundError, load_pipeline

    settings = EvalSettings(
        n=args.n,
        steps=args.steps,
        guidance=args.guidance,
        split=args.split,
        batch_size=args.batch_size,
        influence_n=min(args.influence, args.n),
        tau=args.tau,
        mid_block=args.mid_block,
    )
    settings.validate()
    if args.write_card and args.split != "heldout":
        raise UserError(
            "--write-card reports the held-out benchmark; save a training-pairs run with "
            f"--json MODEL_FOLDER/{TRAIN_RESULTS} and the card includes it"
        )
    if args.write_card and args.mid_block:
        raise UserError(
            "--write-card reports the default rule's maps; save a --mid-block run with "
            f"--json MODEL_FOLDER/{MID_BLOCK_RESULTS} and the card includes it"
        )
    try:
        pipe = load_pipeline(args.model, device=args.device)
    except ModelNotFoundError as error:
        raise UserError(str(error)) from None
    results = evaluate(pipe, settings, progress=_progress)
    results["model"] = args.model
    results["device"] = args.device
    print(format_markdown(results, args.model))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_finite(results), indent=2) + "\n")
    if args.write_card:
        folder = Path(pipe.daam_source.location)
        if pipe.daam_source.kind == "hub":
            raise UserError("--write-card needs a built-in model or a local folder, not a hub id")
        print(f"wrote {write_model_card(folder, args.model, results)}")
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rgenerated and scored {done}/{total} images", end="\n" if done == total else "", file=sys.stderr)


def _finite(value):
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """`python -m daam_store.commands.evaluate ...`: this command without the rest of the CLI."""
    return single_command_main(register, argv)


if __name__ == "__main__":
    sys.exit(main())
