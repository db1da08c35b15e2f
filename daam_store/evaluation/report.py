"""Text and Markdown tables of a benchmark result (for the terminal, the README and model cards)."""

from __future__ import annotations

from daam_store.evaluation.metrics import TAU_SWEEP


def fmt(value, digits: int = 2) -> str:
    """A figure for the report's tables: fixed digits, "n/a" for a missing or NaN value."""
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def fmt_interval(summary: dict | None) -> str:
    if not summary:
        return "n/a"
    return f"{fmt(summary['mean'])} [{fmt(summary['low'])}, {fmt(summary['high'])}]"


def format_markdown(results: dict, model: str) -> str:
    s = results["settings"]
    images = results["images"]
    lines = [
        f"Model `{model}`: {images['total']} {s['split']} images ({images['one_object']} one-object, "
        f"{images['two_objects']} two-object; seeds {s['first_seed']}-{s['first_seed'] + images['total'] - 1}), "
        f"{results.get('sampler', 'DDIM')} {s['steps']} steps, guidance {s['guidance']:g}, {maps_rule(s)}.",
        "",
        "| adherence | all | one-object | two-object | objects of held-out pairs | objects of seen pairs |",
        "|---|---|---|---|---|---|",
    ]
    for kind, label in (("colour", "colour present"), ("shape", "shape correct")):
        row = results["adherence"].get(kind, {})
        subsets = ("all", "one_object", "two_objects", "held_out_pair", "seen_pair")
        lines.append(f"| {label} | " + " | ".join(fmt(row.get(subset)) for subset in subsets) + " |")
    binding = results.get("binding", {})
    if binding.get("n"):
        lines += [
            "",
            f"Binding: of {binding['n']} two-object images with two different shapes and both colours drawn, "
            f"both shapes on their own colour {fmt(binding['right'])}, the two shapes swapped "
            f"{fmt(binding['swapped'])}, otherwise {fmt(binding['other'])}.",
        ]
    tau = s["tau"]
    lines += _shape_maps_by_binding(binding.get("shape_word_maps", {}), tau)
    lines += [
        "",
        f"| mIoU at tau {tau:g} (95 % interval) | the word | other object's word | centre prior | uniform map | n |",
        "|---|---|---|---|---|---|",
    ]
    for word_class in ("colour", "shape"):
        row = results["miou"].get(word_class, {})
        n = row.get("word", {}).get("n", 0)
        lines.append(
            f"| {word_class} words | {fmt_interval(row.get('word'))} | {fmt_interval(row.get('other_object'))} | "
            f"{fmt(row.get('centre', {}).get('mean'))} | {fmt(row.get('uniform', {}).get('mean'))} | {n} |"
        )
    taus = [f"{t:g}" for t in TAU_SWEEP]
    lines += ["", "| tau sweep (mIoU) | " + " | ".join(taus) + " |", "|---|" + "---|" * len(taus)]
    for key, label in (
        ("colour.word", "colour words"),
        ("shape.word", "shape words"),
        ("colour.other_object", "other object's colour word"),
        ("shape.other_object", "other object's shape word"),
    ):
        sweep = results["tau_sweep"].get(key, {})
        lines.append(f"| {label} | " + " | ".join(fmt(sweep.get(t)) for t in taus) + " |")
    influence = results.get("influence") or {}
    if influence:
        lines += [
            "",
            "| word influence: mean pixel change (0-1) | shape word swapped | colour word swapped | different noise |",
            "|---|---|---|---|",
            f"| {influence['noise']['n']} images, same noise unless stated | {fmt_interval(influence['shape_word'])} | "
            f"{fmt_interval(influence['colour_word'])} | {fmt_interval(influence['noise'])} |",
        ]
    classifier = results["classifier"]
    shaded = f" (shaded {classifier['shading']:.0%} as in training)" if classifier.get("shading") else ""
    lines += [
        "",
        f"Reading ground truth (colour / shape correct): rendered scenes{shaded} "
        f"{fmt(classifier['renders']['colour'])} / {fmt(classifier['renders']['shape'])}; "
        f"after the model's VAE {fmt(classifier['vae']['colour'])} / {fmt(classifier['vae']['shape'])} "
        f"({classifier['vae']['objects']} objects){_region_ceiling(classifier)}.{_extra_shapes_read(classifier)}",
        "",
        "| target | measured | target | met |",
        "|---|---|---|---|",
    ]
    for check in results["targets"]:
        lines.append(
            f"| {check['label']} | {fmt(check['value'])} | {check['target']} | {'yes' if check['met'] else 'NO'} |"
        )
    met = sum(c["met"] for c in results["targets"])
    lines += ["", f"{met} of {len(results['targets'])} targets met; evaluation took {results['seconds']:.0f} s."]
    return "\n".join(lines)


def maps_rule(settings: dict) -> str:
    """The layers the scored maps average, in words (results written before the option have no `mid_block`)."""
    if settings.get("mid_block"):
        return "maps averaged over every cross-attention layer, the mid block's too (`--mid-block`), summed over steps"
    return "maps by the original DAAM's rule (the down and up blocks' cross-attention, summed over steps)"


def _shape_maps_by_binding(by_outcome: dict, tau: float) -> list[str]:
    """A swapped image draws each shape on the other colour: does the shape word's map follow the drawing?
    One-object images, where binding cannot fail, show the map alone."""
    parts = []
    for outcome, scores in by_outcome.items():
        other = f" / {fmt(scores['other'])}" if "other" in scores else ""
        parts.append(f"{outcome.replace('_', ' ')} ({scores['n']}): {fmt(scores['own'])}{other}")
    if not parts:
        return []
    return [
        "",
        f"Shape words' maps, IoU at tau {tau:g} with their own colour's object / the other object (shape words "
        "scored), by binding outcome: " + "; ".join(parts) + ".",
    ]


def _region_ceiling(classifier: dict) -> str:
    if "region_iou" not in classifier["vae"]:  # results written before the region check
        return ""
    return (
        f"; the region read against the true mask, IoU {fmt(classifier['renders']['region_iou'])} rendered, "
        f"{fmt(classifier['vae']['region_iou'])} after the VAE"
    )


def _extra_shapes_read(classifier: dict) -> str:
    """The model was trained on extra shapes too: its images, and the check above, are read with them."""
    from daam_store.world import EXTRA_SHAPES  # here: the world imports torch, formatting a report need not

    extra_shapes = classifier.get("extra_shapes", 0)
    if not extra_shapes:
        return ""
    return (
        f" Images are read with the model's training-only shapes too ({', '.join(EXTRA_SHAPES[:extra_shapes])}): "
        "drawing one where a benchmark shape was asked counts as a wrong shape."
    )
