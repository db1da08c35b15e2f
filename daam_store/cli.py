"""Command lines: `daam "prompt"` (the original DAAM's CLI) and `daam-store <command>`."""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from daam_store.commands.common import (
    TAGS_HELP,
    OneLineErrorParser,
    add_db_option,
    check_device,
    finite_float,
    open_store,
    plural,
    quiet_libraries,
    run_reporting_errors,
)
from daam_store.errors import UserError
from daam_store.tags import check_author, parse_tags

DAAM_DESCRIPTION = """Generate an image with Stable Diffusion and write one DAAM heat map per word:
output.png, <word>.heat_map.png, generation.pt, prompt.txt and seed.txt (plus metadata.json)."""


def daam_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="daam", description=DAAM_DESCRIPTION)
    parser.add_argument("prompt", help="the text prompt")
    parser.add_argument(
        "--model", default=None, help="built-in name (sd1-tiny, sd2-tiny, sdxl-tiny), hub id or local folder"
    )
    parser.add_argument("--seed", default="0", help="random seed, a whole number (default 0)")
    parser.add_argument(
        "--steps", "-n", "--num-timesteps", dest="steps", type=int, default=25, help="denoising steps (default 25)"
    )
    parser.add_argument("--guidance", type=finite_float, default=7.5, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--negative-prompt", default=None, help="negative prompt")
    parser.add_argument(
        "--height", type=int, default=None, help="image height in pixels (multiple of 8; default: the model's)"
    )
    parser.add_argument(
        "--width", type=int, default=None, help="image width in pixels (multiple of 8; default: the model's)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16"],
        help="float16/bfloat16 run under autocast",
    )
    parser.add_argument("--words", default=None, help="comma-separated words to draw maps for (default: all)")
    parser.add_argument("--output-dir", "-o", default=".", help="where to write the files (default: here)")
    parser.add_argument("--save-steps", action="store_true", help="also keep per-step maps in generation.pt")
    parser.add_argument(
        "--mid-block",
        action="store_true",
        help="average the UNet's mid block into the maps too (the original DAAM, and the default, leave it out)",
    )
    parser.add_argument("--store", action="store_true", help="also save the generation to the database")
    add_db_option(parser)
    parser.add_argument("--author", default=None, help="author recorded with --store")
    parser.add_argument("--tags", default="", help=f"{TAGS_HELP} with --store")
    return parser


def run_daam(args: argparse.Namespace) -> int:
    from daam_store.families import family_of
    from daam_store.generate import GenerationRequest, generate
    from daam_store.heatmap import split_words
    from daam_store.models import describe_pipeline, load_pipeline, resolve_model
    from daam_store.utils import parse_seed

    request = GenerationRequest(
        prompt=args.prompt,
        seed=parse_seed(args.seed),
        steps=args.steps,
        guidance_scale=args.guidance,
        negative_prompt=args.negative_prompt,
        height=args.height,
        width=args.width,
        dtype=args.dtype,
        save_steps=args.save_steps,
        mid_block=args.mid_block,
    )
    request.validate()
    tags, author = parse_tags(args.tags), check_author(args.author)  # what the store refuses fails before generating
    check_device(args.device)
    resolve_model(args.model)  # an unknown model fails before anything is loaded
    store = open_store(args.db, write=True) if args.store else None  # so does an unusable database
    pipe = load_pipeline(args.model, device=args.device)
    request.check_size(pipe)
    tokenizer = family_of(pipe).tokenizer(pipe)
    request.validate(tokenizer)
    words = _chosen_words(args.words, [w.text for w in split_words(tokenizer, args.prompt)[0]])
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails before the generation runs
    pipe.set_progress_bar_config(disable=False, desc="denoising")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt has .* tokens")  # the tracer's: said once, below
        experiment = generate(pipe, request)
    note = experiment.heat_map().prompt_tokens.unmapped_note()
    if note:
        print(f"note: {note}", file=sys.stderr)
    model = describe_pipeline(pipe)
    # Recorded in metadata.json so that `daam-store import` of this folder knows the model, not "unknown".
    experiment.metadata["model"] = model.name
    experiment.metadata["model_info"] = asdict(model)
    experiment.save(output, heat_maps=False)
    written = experiment.save_heat_maps(output, words=words)
    # Words that share a file name (repeats, "Dog" and "dog") are one file: count the files.
    print(f"wrote {output}/output.png and {plural(len(set(written)), 'heat map')}")
    if store is not None:
        generation_id = store.save(experiment, model=model, author=author, tags=tags)
        print(f"stored as generation {generation_id}")
    return 0


def _chosen_words(option: str | None, prompt_words: list[str]) -> list[str] | None:
    if option is None:
        return None
    chosen = [w.strip() for w in option.split(",") if w.strip()]
    known = {w.lower() for w in prompt_words}
    unknown = [w for w in chosen if w.lower() not in known]
    if unknown or not chosen:
        raise UserError(
            f"--words {', '.join(unknown) or option!r} not in the prompt; its words: {', '.join(prompt_words)}"
        )
    return chosen


def daam_main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = daam_parser().parse_args(argv)
    return run_reporting_errors(run_daam, args)


def store_parser() -> argparse.ArgumentParser:
    from daam_store.commands import register_all

    parser = OneLineErrorParser(prog="daam-store", description="Store, compare and evaluate DAAM heat maps.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register_all(subparsers)
    return parser


def store_main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = store_parser().parse_args(argv)
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(daam_main())
