"""In which layers and at which denoising steps does a word's map find its object?

DAAM's map of a word averages every cross-attention layer of the down and up blocks over every step. The
benchmark scores that average; this script breaks it down. It generates the benchmark's one-object images (its
prompts, seeds and guidance; with one object binding cannot fail), and for every cross-attention layer (the mid
block's too) and every third of the denoising steps scores the colour word's and the shape word's map against
the object's region, as the mIoU does (min-max normalised, thresholded at tau, IoU). Objects the palette reader
does not find are skipped, as in the mIoU. A layer where a word localises shows as a high row, a span of steps
as a high column. The thirds read the per-step records, which average a layer's heads before the layers; the
"all steps" column is the benchmark's own average (over every layer's heads), so DAAM's rule there is the
benchmark's map of one-object images.
Run: python benchmarks/word_map_layers.py [--models sd1-tiny sd2-tiny sdxl-tiny] [--n 24] [--split heldout]
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from daam_store import trace, world
from daam_store.evaluation.benchmark import evaluation_items, generate
from daam_store.evaluation.metrics import map_iou, normalise
from daam_store.evaluation.settings import EvalSettings, benchmark_parser
from daam_store.heatmap import WordHeatMap
from daam_store.models import load_pipeline

DEFAULT_ROW = "DAAM's rule (down + up blocks)"


def step_windows(steps: int, parts: int = 3) -> dict[str, list[int] | None]:
    """Contiguous thirds of the denoising steps (first = most noise), and all of them (None: the benchmark's
    average, not a sum of per-step records)."""
    bounds = np.linspace(0, steps, parts + 1).round().astype(int)
    windows = {f"steps {a + 1}-{b}": list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a}
    return windows | {"all steps": None}


def one_object_items(split: str, n: int) -> list[tuple[list[world.Pair], int]]:
    """The first n one-object images of the benchmark (every fourth image of its order)."""
    return [item for item in evaluation_items(split, 4 * n) if len(item[0]) == 1][:n]


def table_rows(tc) -> list[tuple[str, int | None]]:
    """(label, layer index) of every recorded layer, then DAAM's rule (None: the default layers)."""
    every_layer = tc.default_layers(mid_block=True)  # the "daam+mid" rule's layers: every recorded one
    return [*zip(tc.layer_labels(), every_layer, strict=True), (DEFAULT_ROW, None)]


def score_image(scores, tc, rows, image_idx: int, objects: list[world.Pair], image, windows, tau: float) -> None:
    """Add the colour word's and the shape word's IoU for every (layer row, window) to `scores`."""
    ((colour, _),) = objects
    found = world.read_objects(np.asarray(image.convert("RGB")))
    if colour not in found:
        return
    region = found[colour][0]
    ((colour_word, shape_word),) = world.object_word_indices(objects)
    for label, layer in rows:
        for window, steps in windows.items():
            global_map = tc.compute_global_heat_map(layer_idx=layer, time_idx=steps, image_idx=image_idx)
            word_maps = [m for _, m in global_map.word_heat_maps()]
            for word_class, index in (("colour", colour_word), ("shape", shape_word)):
                heat = normalise(WordHeatMap(word_maps[index]).expand_as(image).numpy())
                scores[(label, window, word_class)].append(map_iou(heat, region, tau))


def measure(pipe, settings: EvalSettings) -> tuple[dict, list[str], dict[str, list[int]]]:
    scores = defaultdict(list)  # (layer label, window, word class) -> [IoU]
    windows = step_windows(settings.steps)
    items = one_object_items(settings.split, settings.n)
    with trace(pipe, save_steps=True) as tc:
        for start in range(0, len(items), settings.batch_size):
            batch = items[start : start + settings.batch_size]
            images = generate(pipe, batch, settings)
            if tc.num_steps != settings.steps:  # a sampler with several UNet calls per step would shift the thirds
                raise SystemExit(f"{tc.num_steps} UNet calls for {settings.steps} steps: the thirds would not be steps")
            rows = table_rows(tc)
            for i, ((objects, _), image) in enumerate(zip(batch, images, strict=True)):
                score_image(scores, tc, rows, i, objects, image, windows, settings.tau)
    return scores, [label for label, _ in rows], windows


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0], n_help="one-object images per model (the benchmark's first n)")
    args = parser.parse_args()
    print(
        f"{args.split} one-object prompts, {args.n} images per model, {args.steps} steps, guidance {args.guidance:g}; "
        f"colour-word / shape-word IoU at tau {EvalSettings().tau:g} against the object\n"
    )
    for model in args.models:
        settings = EvalSettings(n=args.n, steps=args.steps, guidance=args.guidance, split=args.split)
        settings.validate()
        scores, labels, windows = measure(load_pipeline(model), settings)
        found = len(scores[(DEFAULT_ROW, "all steps", "colour")])
        print(f"{model} ({found} of {args.n} objects found)\n")
        print("| layer | " + " | ".join(windows) + " |")
        print("|---|" + "---|" * len(windows))
        for label in labels:
            cells = [
                " / ".join(f"{np.mean(scores[(label, w, c)]):.2f}" for c in ("colour", "shape")) if found else "-"
                for w in windows
            ]
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
