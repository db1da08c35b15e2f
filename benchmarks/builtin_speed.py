"""How fast the built-in models load and draw a traced 25-step image on this machine, side by side.

The built-in models issue bounds a 25-step image at 2 s on the project's 2-core CPU. Each round loads every
model and times one traced generation (guidance 5, maps computed for every word), rotating the models'
order so drift on a shared VM spreads evenly; prints the medians and the bundle size on disk.
Run: python benchmarks/builtin_speed.py [--runs 5] [--steps 25] [--models sd1-tiny,runs/X/pipeline]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from daam_store import set_seed, trace
from daam_store.models import BUILTIN_MODELS, load_pipeline, resolve_model

PROMPT = "a red circle and a blue square"


def folder_megabytes(name: str) -> float:
    folder = Path(resolve_model(name).location)
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def time_one(name: str, steps: int) -> tuple[float, float]:
    started = time.perf_counter()
    pipe = load_pipeline(name)
    loaded = time.perf_counter()
    with trace(pipe) as tc:
        image = pipe(PROMPT, num_inference_steps=steps, generator=set_seed(0)).images[0]
        tc.compute_global_heat_map().compute_word_heat_map("circle").expand_as(image)
    return loaded - started, time.perf_counter() - loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--models", default=",".join(BUILTIN_MODELS), help="names or folders, comma-separated")
    args = parser.parse_args()
    models = list(dict.fromkeys(m.strip() for m in args.models.split(",") if m.strip()))  # each once, in order
    for name in models:  # warm-up: imports, first-call allocations
        time_one(name, 2)
    loads, images = {m: [] for m in models}, {m: [] for m in models}
    for round_ in range(args.runs):
        for name in models[round_ % len(models) :] + models[: round_ % len(models)]:
            load_s, image_s = time_one(name, args.steps)
            loads[name].append(load_s)
            images[name].append(image_s)
    threads = torch.get_num_threads()
    print(f"{platform.machine()} CPU, {threads} threads, torch {torch.__version__}; median of {args.runs}")
    print(f"| model | load (s) | traced {args.steps}-step image (s) | folder (MB) |")
    print("|---|---|---|---|")
    for name in models:
        print(
            f"| {name} | {statistics.median(loads[name]):.2f} | {statistics.median(images[name]):.2f} "
            f"| {folder_megabytes(name):.1f} |"
        )


if __name__ == "__main__":
    main()
