"""The README's table of the built-in models' benchmark says what their shipped evaluation files measured.

Retraining a model rewrites its evaluation.json; this test fails until the README's table is retaken with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from daam_store.models.pipelines import BUILTIN_DIR, BUILTIN_MODELS

ROOT = Path(__file__).resolve().parents[1]
MODELS = list(BUILTIN_MODELS)  # the table has a column for each, in the registry's order
NUMBER = re.compile(r"\d+\.\d+|\d+")


def _readme_table() -> dict[str, dict[str, str]]:
    """Row label -> {model: cell} of the table whose header names the three built-in models."""
    lines = (ROOT / "README.md").read_text().splitlines()
    header = "| | " + " | ".join(MODELS) + " | target |"
    start = lines.index(header)
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        label, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[label] = dict(zip(MODELS, cells[: len(MODELS)], strict=True))
    return table


def _numbers(cell: str) -> list[str]:
    return NUMBER.findall(cell)


def _f(value: float) -> str:
    return f"{value:.2f}"


def _load(model: str, name: str) -> dict:
    return json.loads((BUILTIN_DIR / model / name).read_text())


@pytest.mark.parametrize("model", MODELS)
def test_readme_table_gives_each_models_held_out_figures(model):
    table = _readme_table()
    results = _load(model, "evaluation.json")
    adherence, binding, miou = results["adherence"], results["binding"], results["miou"]

    def cell(label: str) -> list[str]:
        return _numbers(table[label][model])

    for kind, label in (("colour", "colour present"), ("shape", "shape correct")):
        measured = adherence[kind]
        expected = [_f(measured["all"]), _f(measured["one_object"]), _f(measured["two_objects"])]
        assert cell(f"{label} (one-object / two-object)") == expected, (model, label)
    shape = adherence["shape"]
    assert cell("shape correct: objects of held-out / seen pairs") == [
        _f(shape["held_out_pair"]),
        _f(shape["seen_pair"]),
    ]
    assert cell("binding: both shapes right / swapped (two-object images)") == [
        _f(binding["right"]),
        _f(binding["swapped"]),
        str(binding["n"]),
    ]
    for kind in ("colour", "shape"):
        word = miou[kind]["word"]
        assert cell(f"mIoU, {kind} words") == [_f(word["mean"]), _f(word["low"]), _f(word["high"])], (model, kind)
    assert cell("other object's word (baseline): colour / shape") == [
        _f(miou["colour"]["other_object"]["mean"]),
        _f(miou["shape"]["other_object"]["mean"]),
    ]
    met = sum(target["met"] for target in results["targets"])
    assert table["targets met"][model] == f"{met} of {len(results['targets'])}"


@pytest.mark.parametrize("model", MODELS)
def test_readme_table_bolds_exactly_the_targets_a_model_meets(model):
    table = _readme_table()
    met = {target["key"]: target["met"] for target in _load(model, "evaluation.json")["targets"]}
    cells = {
        "adherence.colour.all": table["colour present (one-object / two-object)"][model],
        "adherence.shape.all": table["shape correct (one-object / two-object)"][model],
        "miou.colour.word.mean": table["mIoU, colour words"][model],
        "miou.shape.word.mean": table["mIoU, shape words"][model],
    }
    colour_other, shape_other = table["other object's word (baseline): colour / shape"][model].split(" / ")
    cells["miou.colour.other_object.mean"] = colour_other
    cells["miou.shape.other_object.mean"] = shape_other
    for key, text in cells.items():
        assert text.startswith("**") == met[key], (model, key, text)


@pytest.mark.parametrize("model", MODELS)
def test_readme_table_gives_each_models_training_pair_figures(model):
    table = _readme_table()
    results = _load(model, "evaluation-train.json")
    (shape_label,) = [label for label in table if label.startswith("*training pairs* (")]
    images = re.search(r"\((\d+) / (\d+) / (\d+) images\)", shape_label).groups()
    assert images[MODELS.index(model)] == str(results["images"]["total"])
    shape = results["adherence"]["shape"]
    assert _numbers(table[shape_label][model]) == [_f(shape["all"]), _f(shape["two_objects"])]
    binding = results["binding"]
    assert _numbers(table["*training pairs*: binding right / swapped"][model]) == [
        _f(binding["right"]),
        _f(binding["swapped"]),
    ]
    miou = results["miou"]
    assert _numbers(table["*training pairs*: mIoU colour (other) / shape (other)"][model]) == [
        _f(miou["colour"]["word"]["mean"]),
        _f(miou["colour"]["other_object"]["mean"]),
        _f(miou["shape"]["word"]["mean"]),
        _f(miou["shape"]["other_object"]["mean"]),
    ]


@pytest.mark.parametrize("model", MODELS)
def test_readme_table_gives_each_models_figures_with_the_mid_block(model):
    table = _readme_table()
    results = _load(model, "evaluation-mid-block.json")
    assert results["settings"]["mid_block"] is True and results["settings"]["split"] == "heldout"
    miou = results["miou"]
    for kind, label in (
        ("colour", "with the mid block (`--mid-block`): mIoU, colour words"),
        ("shape", "with the mid block: mIoU, shape words"),
    ):
        word = miou[kind]["word"]
        assert _numbers(table[label][model]) == [_f(word["mean"]), _f(word["low"]), _f(word["high"])], (model, kind)
    assert _numbers(table["with the mid block: other object's word, colour / shape"][model]) == [
        _f(miou["colour"]["other_object"]["mean"]),
        _f(miou["shape"]["other_object"]["mean"]),
    ]
    met = sum(target["met"] for target in results["targets"])
    assert table["with the mid block: targets met"][model] == f"{met} of {len(results['targets'])}"
