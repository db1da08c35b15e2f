"""Where do a built-in model's colour-word and shape-word maps put their weight?

Generates the benchmark's first n images (its prompts, seeds and guidance) and, for each named object that the
palette reader finds (objects it does not find are skipped, as in the mIoU), averages the object's colour-word
and shape-word maps (DAAM's rule, resized to the image as the mIoU does, not normalised) over five zones, each
divided by the map's mean over the whole image (1.00 = no preference): the object's interior, its edge (its
pixels within 2 px of its outline), the background just outside it (within 2 px), the far background (over
3 px from every object) and the other object's pixels. A word that localises on its object reads well above 1
inside and below 1 far away; a map near 1 everywhere is flat, and min-max normalising it (as the mIoU does)
only magnifies noise.
Run: python benchmarks/word_map_zones.py [--models sd1-tiny sd2-tiny sdxl-tiny] [--n 24] [--split heldout]
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from daam_store import trace, world
from daam_store.evaluation.benchmark import evaluation_items, generate
from daam_store.evaluation.settings import EvalSettings, benchmark_parser
from daam_store.heatmap import WordHeatMap
from daam_store.models import load_pipeline

ZONES = ("interior", "edge", "just outside", "far background", "other object")


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Boolean dilation by a (2 * pixels + 1) square."""
    grown = F.max_pool2d(torch.from_numpy(mask).float()[None, None], 2 * pixels + 1, stride=1, padding=pixels)
    return grown[0, 0].numpy() > 0


def zones(region: np.ndarray, every_object: np.ndarray, other: np.ndarray | None) -> dict[str, np.ndarray]:
    """The zones of one object's `region` in an image whose objects cover `every_object`."""
    interior = ~dilate(~region, 2)
    masks = {
        "interior": interior,
        "edge": region & ~interior,
        "just outside": dilate(region, 2) & ~every_object,
        "far background": ~dilate(every_object, 3),
    }
    if other is not None:
        masks["other object"] = other
    return masks


def score_image(ratios: dict, objects: list[world.Pair], image, word_maps: list[torch.Tensor]) -> None:
    """Add each found object's zone ratios of its colour word and its shape word to `ratios`."""
    found = world.read_objects(np.asarray(image.convert("RGB")))
    every_object = np.zeros((image.height, image.width), bool)
    for region, _ in found.values():
        every_object |= region
    for k, (colour, _) in enumerate(objects):
        if colour not in found:
            continue
        others = [found[c][0] for c, _ in objects if c != colour and c in found]
        masks = zones(found[colour][0], every_object, others[0] if others else None)
        for word_class, index in zip(("colour", "shape"), world.object_word_indices(objects)[k], strict=True):
            heat = WordHeatMap(word_maps[index]).expand_as(image, absolute=True).numpy()
            for zone, mask in masks.items():
                if mask.any():
                    ratios[(word_class, zone)].append(float(heat[mask].mean() / heat.mean()))


def measure(pipe, settings: EvalSettings) -> dict[tuple[str, str], list[float]]:
    ratios = defaultdict(list)  # (word class, zone) -> [zone mean / map mean]
    items = evaluation_items(settings.split, settings.n)
    with trace(pipe) as tc:
        for start in range(0, len(items), settings.batch_size):
            batch = items[start : start + settings.batch_size]
            for i, ((objects, _), image) in enumerate(zip(batch, generate(pipe, batch, settings), strict=True)):
                word_maps = [m for _, m in tc.compute_global_heat_map(image_idx=i).word_heat_maps()]
                score_image(ratios, objects, image, word_maps)
    return ratios


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0], n_help="images per model (the benchmark's first n)")
    args = parser.parse_args()
    print(
        f"{args.split} prompts, {args.n} images each, {args.steps} steps, guidance {args.guidance:g}; "
        "zone mean / map mean (1.00 = flat)\n"
    )
    print("| model | word | " + " | ".join(ZONES) + " |")
    print("|---|---|" + "---|" * len(ZONES))
    for model in args.models:
        settings = EvalSettings(n=args.n, steps=args.steps, guidance=args.guidance, split=args.split)
        ratios = measure(load_pipeline(model), settings)
        for word_class in ("colour", "shape"):
            cells = [ratios[(word_class, zone)] for zone in ZONES]
            row = " | ".join(f"{np.mean(values):.2f}" if values else "-" for values in cells)
            print(f"| {model} | {word_class} | {row} |")


if __name__ == "__main__":
    main()
