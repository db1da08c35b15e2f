"""Where a prompt's colour is missing from a built-in model's image, what did the model draw instead?

Generates the benchmark's first n images (its prompts, seeds and guidance), finds every named object whose
colour the palette reader does not find (what "colour present" counts as a miss) and reads that image's
pixels against the whole palette, the training-only extra colours included (nearest colour, no tolerance):
the colour covering the most pixels (at least --min-pixels, by default as many as the reader needs for an
object) that the prompt did not ask for, or "none" (the object was drawn in the other object's colour, in a
shade of its own outside the reader's tolerance, too small, or not at all). A named colour is a candidate, not
a verdict: a training-only neighbour (navy for blue) reads the same as a darkened asked colour, and a blend of
the two asked colours reads as purple (red + blue), teal (green + blue) or olive (red or yellow + green).
The label is the whole image's: two misses in one image get the same one.
Run: python benchmarks/missing_colours.py [--models sd2-tiny ...] [--n 96] [--split heldout]
"""

from __future__ import annotations

from collections import Counter

from daam_store import world
from daam_store.evaluation.benchmark import evaluation_items, generate
from daam_store.evaluation.settings import EvalSettings, benchmark_parser
from daam_store.models import load_pipeline

NAMES = ("background", *world.ALL_COLOURS)


def colour_counts(image) -> Counter:
    """Pixels per palette colour (nearest centre, extras included, no tolerance: a census, not a segmentation)."""
    nearest = world.palette_distances(image, world.ALL_COLOURS).argmin(-1)
    return Counter(NAMES[i] for i in nearest.ravel())


def drawn_instead(image, asked: set[str], min_pixels: int) -> str:
    unasked = [(n, k) for n, k in colour_counts(image).most_common() if n not in asked and n != "background"]
    return unasked[0][0] if unasked and unasked[0][1] >= min_pixels else "none"


def missing_colours(model: str, settings: EvalSettings, min_pixels: int) -> tuple[int, int, Counter]:
    """(objects asked for, images with a miss, Counter of (colour asked, shape asked, drawn instead))."""
    pipe = load_pipeline(model)
    items = evaluation_items(settings.split, settings.n, settings.first_seed)
    objects, images_with_a_miss, misses = 0, 0, Counter()
    for start in range(0, len(items), settings.batch_size):
        batch = items[start : start + settings.batch_size]
        for (pairs, _), image in zip(batch, generate(pipe, batch, settings), strict=True):
            found = world.read_objects(image)
            missed = [(colour, shape) for colour, shape in pairs if colour not in found]
            objects += len(pairs)
            images_with_a_miss += bool(missed)
            instead = drawn_instead(image, {colour for colour, _ in pairs}, min_pixels) if missed else None
            misses.update((colour, shape, instead) for colour, shape in missed)
    return objects, images_with_a_miss, misses


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0], "images per model (the benchmark's first n)", n_default=96)
    parser.add_argument(
        "--min-pixels", type=int, default=world.MIN_OBJECT_PIXELS, help="pixels an unasked colour needs to count"
    )
    args = parser.parse_args()
    settings = EvalSettings(n=args.n, steps=args.steps, guidance=args.guidance, split=args.split, influence_n=0)
    print(f"{args.split} prompts, {args.n} images each, {args.steps} steps, guidance {args.guidance:g}\n")
    print("| model | objects | missed (images) | colour asked | shape asked | drawn instead | count |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        objects, images, misses = missing_colours(model, settings, args.min_pixels)
        print(f"| {model} | {objects} | {sum(misses.values())} ({images}) | | | | |")
        for (colour, shape, instead), count in sorted(misses.items(), key=lambda item: (-item[1], item[0])):
            print(f"| | | | {colour} | {shape} | {instead} | {count} |")


if __name__ == "__main__":
    main()
