"""The localisation benchmark: generate held-out prompts, trace them, score maps against the objects.

For every image: segment it by the palette (world.read_objects), check that each named object is
there with its colour and its shape (adherence), and score each colour word's and shape word's map,
thresholded at tau, against its object's region (the pixels of the object's colour), next to
baselines that know nothing of the word: the other object's word, a centre prior, a map that marks
every pixel. Word influence compares images from the same initial noise with one word swapped.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline

from daam_store import world
from daam_store.evaluation.metrics import (
    TAU_SWEEP,
    centre_prior,
    iou,
    map_iou,
    mean_with_interval,
    normalise,
    uniform_iou,
)
from daam_store.evaluation.settings import EvalSettings
from daam_store.heatmap import WordHeatMap
from daam_store.tracing import trace

NOISE_OFFSET = 1_000_003  # seed shift for the 'different noise' comparison
MAP_OUTCOMES = ("one_object", "right", "swapped", "other")  # the shape-word maps' split, in report order
TARGETS = (  # (result key, label, comparison, bound): from the built-in models issue
    ("adherence.colour.all", "adherence: colour present", ">=", 0.95),
    ("adherence.shape.all", "adherence: shape correct", ">=", 0.80),
    ("miou.colour.word.mean", "mIoU colour words", ">=", 0.6),
    ("miou.shape.word.mean", "mIoU shape words", ">=", 0.5),
    ("miou.colour.other_object.mean", "other-object baseline (colour)", "<=", 0.1),
    ("miou.shape.other_object.mean", "other-object baseline (shape)", "<=", 0.1),
)


def evaluation_items(split: str, n: int, first_seed: int = 0) -> list[tuple[list[world.Pair], int]]:
    """(objects, seed) of each image: one-object prompts at every fourth image, else two-object ones."""
    singles, doubles = world.heldout_prompts() if split == "heldout" else world.training_prompts()
    random.Random(0).shuffle(doubles)
    items = []
    for i in range(n):
        prompt = singles[(i // 4) % len(singles)] if i % 4 == 0 else doubles[(i - i // 4 - 1) % len(doubles)]
        items.append((prompt, first_seed + i))
    return items


def evaluate(pipe: DiffusionPipeline, settings: EvalSettings, progress=None) -> dict:
    """Run the benchmark; returns a JSON-ready dict (see `format_report`). `progress(done, total)`."""
    settings.validate()
    started = time.perf_counter()
    trained_on = training_world(pipe)  # read first: a bad training.json fails before the long part
    items = evaluation_items(settings.split, settings.n, settings.first_seed)
    scores = _Scores(settings.tau, trained_on.shapes)
    kept_images: list[np.ndarray] = []
    with trace(pipe) as tc:
        for start in range(0, len(items), settings.batch_size):
            batch = items[start : start + settings.batch_size]
            images = generate(pipe, batch, settings)
            for i, ((objects, _), image) in enumerate(zip(batch, images, strict=True)):
                word_maps = tc.compute_global_heat_map(image_idx=i, mid_block=settings.mid_block).word_heat_maps()
                scores.add(start + i, objects, image, word_maps)
                if start + i < settings.influence_n:
                    kept_images.append(np.asarray(image, dtype=np.float32) / 255)
            if progress:
                progress(min(start + len(batch), len(items)), len(items))
    results = {
        "settings": asdict(settings),
        "sampler": type(pipe.scheduler).__name__.removesuffix("Scheduler"),
        "images": {
            "total": len(items),
            "one_object": sum(len(o) == 1 for o, _ in items),
            "two_objects": sum(len(o) == 2 for o, _ in items),
        },
        **scores.summary(),
        "influence": _word_influence(pipe, items[: settings.influence_n], kept_images, settings),
        "classifier": _classifier_accuracy(pipe, trained_on),
    }
    results["targets"] = check_targets(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def generate(pipe, batch, settings: EvalSettings) -> list:
    """The images of `batch` ((objects, seed) items) as the benchmark draws them: its steps and guidance."""
    prompts = [world.caption(objects) for objects, _ in batch]
    generators = [torch.Generator().manual_seed(seed) for _, seed in batch]
    output = pipe(prompts, generator=generators, num_inference_steps=settings.steps, guidance_scale=settings.guidance)
    return output.images


class _Scores:
    """Accumulates adherence and IoU records image by image."""

    def __init__(self, tau: float, shapes: tuple[str, ...] = world.SHAPES) -> None:
        self.tau = tau
        self.shapes = shapes  # what the shape reader may answer
        self.adherence = defaultdict(list)  # (kind, subset) -> [0/1]
        self.iou = defaultdict(list)  # (word class, map kind, tau) -> [iou]
        self.groups = defaultdict(list)  # same keys -> [image index]
        self.binding: list[str] = []  # two objects of different shapes, both drawn: "right" | "swapped" | "other"
        # by binding outcome (and on one-object images), each shape word's map against its own colour's object
        # and against the other object
        self.shape_maps_by_binding = defaultdict(lambda: {"own": [], "other": []})
        self.centre: np.ndarray | None = None

    def add(self, index: int, objects: list[world.Pair], image, word_maps) -> None:
        rgb = np.asarray(image.convert("RGB"))
        found = world.read_objects(rgb, self.shapes)
        subset = "one_object" if len(objects) == 1 else "two_objects"
        if self.centre is None:
            self.centre = centre_prior(rgb.shape[:2])
        words = world.caption_words(objects)
        if [span.text.lower() for span, _ in word_maps] != words:
            raise RuntimeError(f"heat map words {[s.text for s, _ in word_maps]} do not match {words}")
        maps = [normalise(WordHeatMap(m).expand_as(image).numpy()) for _, m in word_maps]
        positions = world.object_word_indices(objects)
        outcome = self._record_binding(objects, found)
        if len(objects) == 1 and objects[0][0] in found:  # no other object to bind: the map alone
            scores = self.shape_maps_by_binding["one_object"]
            scores["own"].append(map_iou(maps[positions[0][1]], found[objects[0][0]][0], self.tau))
        if outcome is not None:
            for k, (colour, _) in enumerate(objects):
                shape_map, other_colour = maps[positions[k][1]], objects[1 - k][0]
                scores = self.shape_maps_by_binding[outcome]
                scores["own"].append(map_iou(shape_map, found[colour][0], self.tau))
                scores["other"].append(map_iou(shape_map, found[other_colour][0], self.tau))
        for k, (colour, shape) in enumerate(objects):
            present = colour in found
            correct = present and found[colour][1] == shape
            pair = "held_out_pair" if (colour, shape) in world.HELD_OUT_PAIRS else "seen_pair"
            for kind, value in (("colour", present), ("shape", correct)):
                for key in (subset, "all", pair):
                    self.adherence[(kind, key)].append(float(value))
            if not present:
                continue  # no region to score against
            region = found[colour][0]
            other = positions[1 - k] if len(objects) == 2 else None
            for word_class, position in (("colour", positions[k][0]), ("shape", positions[k][1])):
                candidates = {"word": maps[position], "centre": self.centre}
                if other is not None:
                    candidates["other_object"] = maps[other[0] if word_class == "colour" else other[1]]
                for tau in sorted({*TAU_SWEEP, self.tau}):
                    for kind, heat_map in candidates.items():
                        self._record((word_class, kind, tau), index, map_iou(heat_map, region, tau))
                    self._record((word_class, "uniform", tau), index, uniform_iou(region))

    def _record_binding(self, objects: list[world.Pair], found: dict) -> str | None:
        """Did the two named shapes land on their own colours, or on each other's? None: not a binding image."""
        if len(objects) != 2 or objects[0][1] == objects[1][1] or any(c not in found for c, _ in objects):
            return None
        (first, first_shape), (second, second_shape) = objects
        drawn = (found[first][1], found[second][1])
        outcome = {(first_shape, second_shape): "right", (second_shape, first_shape): "swapped"}.get(drawn, "other")
        self.binding.append(outcome)
        return outcome

    def _record(self, key, index: int, value: float) -> None:
        self.iou[key].append(value)
        self.groups[key].append(index)

    def summary(self) -> dict:
        adherence = defaultdict(dict)
        for (kind, subset), values in self.adherence.items():
            adherence[kind][subset] = float(np.mean(values)) if values else float("nan")
            adherence[kind][f"n_{subset}"] = len(values)
        miou: dict = {}
        sweep: dict = defaultdict(dict)
        for (word_class, kind, tau), values in self.iou.items():
            summary = mean_with_interval(values, self.groups[(word_class, kind, tau)])
            if tau == self.tau:
                miou.setdefault(word_class, {})[kind] = summary
            sweep[f"{word_class}.{kind}"][f"{tau:g}"] = round(summary["mean"], 4)
        outcomes = ("right", "swapped", "other")
        binding = {o: self.binding.count(o) / len(self.binding) for o in outcomes} if self.binding else {}
        shape_maps = {}
        for outcome in MAP_OUTCOMES:
            if scores := self.shape_maps_by_binding.get(outcome):
                means = {side: float(np.mean(values)) for side, values in scores.items() if values}
                shape_maps[outcome] = means | {"n": len(scores["own"])}
        return {
            "adherence": dict(adherence),
            "binding": binding | {"n": len(self.binding), "shape_word_maps": shape_maps},
            "miou": miou,
            "tau_sweep": dict(sweep),
        }


def _word_influence(pipe, items, base_images: list[np.ndarray], settings: EvalSettings) -> dict:
    """Mean absolute pixel change (0-1 scale) from the same noise with the first object's shape word
    or colour word swapped, against the change from different noise with the same prompt."""
    if not items:
        return {}
    variants = {"shape_word": [], "colour_word": [], "noise": []}
    for objects, seed in items:
        colour, shape = objects[0]
        other_shape = world.SHAPES[(world.SHAPES.index(shape) + 1) % len(world.SHAPES)]
        used = {c for c, _ in objects}
        other_colour = next(c for c in world.COLOURS if c not in used)
        variants["shape_word"].append(([(colour, other_shape), *objects[1:]], seed))
        variants["colour_word"].append(([(other_colour, shape), *objects[1:]], seed))
        variants["noise"].append((objects, seed + NOISE_OFFSET))
    result = {}
    for name, edited in variants.items():
        changes = []
        for start in range(0, len(edited), settings.batch_size):
            batch = edited[start : start + settings.batch_size]
            for i, image in enumerate(generate(pipe, batch, settings)):
                pixels = np.asarray(image, dtype=np.float32) / 255
                changes.append(float(np.abs(pixels - base_images[start + i]).mean()))
        result[name] = mean_with_interval(changes)
    return result


@dataclass(frozen=True)
class TrainingWorld:
    """What of the world a model was trained on changes how its images are read."""

    shading: float = 0.0  # shape shading of the training objects: the reader check renders with it
    extra_shapes: int = 0  # training-only shapes: the reader reads them too, so drawing one is a wrong shape

    def __post_init__(self) -> None:
        world.training_shapes(self.extra_shapes)  # a count no recipe can have fails here, not mid-evaluation

    @property
    def shapes(self) -> tuple[str, ...]:
        return world.training_shapes(self.extra_shapes)


def training_world(pipe) -> TrainingWorld:
    """From the model folder's training.json (the recipe); the plain world if not known."""
    source = getattr(pipe, "daam_source", None)
    info = Path(source.location) / "training.json" if source is not None and source.kind != "hub" else None
    if info is None or not info.is_file():
        return TrainingWorld()
    recipe = json.loads(info.read_text()).get("recipe", {})
    try:
        return TrainingWorld(float(recipe.get("shape_shading", 0.0)), int(recipe.get("extra_shapes", 0)))
    except ValueError as error:
        raise ValueError(f"{info}: {error}") from None


@torch.no_grad()
def _classifier_accuracy(pipe, trained_on: TrainingWorld, n: int = 64, seed: int = 12345) -> dict:
    """How well the palette segmentation and shape classifier read ground-truth scenes of the benchmark's
    colours and shapes (all pairs), rendered as the model was trained on them and read as its images are (with
    its extra shapes), and after a round trip through the model's own VAE (its ceiling for shapes);
    `region_iou`: the region read for each object against its true mask (the ceiling of the maps' IoU, which is
    scored against the region read)."""
    scenes = world.sample_scenes(n, torch.Generator().manual_seed(seed), exclude=())
    images, masks = world.render(scenes, shading=trained_on.shading)
    vae = pipe.vae
    latents = vae.encode((images * 2 - 1).to(vae.device, vae.dtype)).latent_dist.mode()
    decoded = (vae.decode(latents).sample.float().cpu() + 1) / 2
    result = {}
    for name, batch in (("renders", images), ("vae", decoded)):
        colour_ok, shape_ok, region_ious = 0, 0, []
        for i, rgb in enumerate(world.to_uint8(batch)):
            found = world.read_objects(rgb, trained_on.shapes)
            for k, (colour, shape) in enumerate(scenes.objects(i)):
                colour_ok += colour in found
                shape_ok += colour in found and found[colour][1] == shape
                region = found[colour][0] if colour in found else np.zeros(masks.shape[-2:], dtype=bool)
                region_ious.append(iou(region, masks[i, k].cpu().numpy()))
        total = len(region_ious)
        result[name] = {
            "colour": colour_ok / total,
            "shape": shape_ok / total,
            "region_iou": float(np.mean(region_ious)),
            "objects": total,
        }
    result["shading"] = trained_on.shading
    result["extra_shapes"] = trained_on.extra_shapes
    return result


def lookup(results: dict, dotted: str):
    value = results
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_targets(results: dict) -> list[dict]:
    checks = []
    for key, label, comparison, bound in TARGETS:
        value = lookup(results, key)
        met = value is not None and not np.isnan(value) and (value >= bound if comparison == ">=" else value <= bound)
        checks.append({"key": key, "label": label, "value": value, "target": f"{comparison} {bound:g}", "met": met})
    return checks
