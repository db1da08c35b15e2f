"""Smoke tests of the built-in models' benchmarks: a few steps each (the real runs take minutes)."""

import re

import numpy as np
from benchmark_support import load_benchmark, run_benchmark


def test_builtin_speed_prints_load_and_image_times_of_every_builtin_model():
    output = run_benchmark("builtin_speed.py", "--runs", "1", "--steps", "2")
    rows = re.findall(r"\| (\S+-tiny) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", output)
    assert [name for name, *_ in rows] == ["sd1-tiny", "sd2-tiny", "sdxl-tiny"], output
    assert all(0 < float(load) < 60 and 0 < float(image) < 60 and 1 < float(mb) < 40 for _, load, image, mb in rows)


def test_builtin_speed_times_a_trained_folder_beside_a_builtin_model(tiny_model_dir):
    output = run_benchmark("builtin_speed.py", "--runs", "1", "--steps", "2", "--models", f"sd1-tiny,{tiny_model_dir}")
    rows = re.findall(r"\| (\S+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", output)
    assert [name for name, *_ in rows] == ["sd1-tiny", str(tiny_model_dir)], output


def test_pooled_only_reads_the_images_of_each_conditioning(tiny_sdxl_model_dir):
    output = run_benchmark("pooled_only.py", "--model", str(tiny_sdxl_model_dir), "--n", "2", "--steps", "2")
    rows = re.findall(r"\| ([a-z -]+) \| ([\d.]+) \| ([\d.]+) \|", output)
    assert [way for way, *_ in rows] == [
        "as the pipeline does",
        "pooled embedding zeroed",
        "cross-attention inputs zeroed",
    ], output
    assert all(0 <= float(present) <= 1 and 0 <= float(correct) <= 1 for _, present, correct in rows)


def test_word_map_zones_prints_a_row_per_word_class():
    output = run_benchmark("word_map_zones.py", "--models", "sd1-tiny", "--n", "4", "--steps", "2")
    rows = re.findall(r"\| sd1-tiny \| (colour|shape) \| (.+) \|", output)
    assert [word for word, _ in rows] == ["colour", "shape"], output
    assert all(len(cells.split(" | ")) == 5 for _, cells in rows)


def test_word_map_zones_splits_an_object_into_interior_edge_and_surroundings():
    module = load_benchmark("word_map_zones.py")
    square, other = np.zeros((32, 32), bool), np.zeros((32, 32), bool)
    square[4:14, 4:14] = True  # 10 x 10
    other[20:26, 20:26] = True
    masks = module.zones(square, square | other, other)
    assert masks["interior"].sum() == 6 * 6 and masks["edge"].sum() == 100 - 36
    assert masks["just outside"].sum() == 14 * 14 - 100  # a 2 px ring, clear of the other object
    assert masks["far background"].sum() == 32 * 32 - 16 * 16 - 12 * 12
    assert masks["other object"] is other


def test_missing_colours_counts_the_misses_the_benchmark_counts():
    from daam_store.evaluation.benchmark import evaluate
    from daam_store.evaluation.settings import EvalSettings
    from daam_store.models import load_pipeline

    output = run_benchmark("missing_colours.py", "--models", "sd1-tiny", "--n", "8", "--steps", "2")
    row = re.search(r"\| sd1-tiny \| (\d+) \| (\d+) \((\d+)\) \|", output)
    assert row, output
    objects, missed, images = map(int, row.groups())
    assert objects == 14  # the benchmark's first 8 images: two with one object, six with two
    present = evaluate(load_pipeline("sd1-tiny"), EvalSettings(n=8, steps=2, influence_n=0))["adherence"]["colour"]
    assert present["n_all"] == objects and missed == round((1 - present["all"]) * objects)
    assert (missed == 0) == (images == 0) and images <= missed


def test_missing_colours_names_the_unasked_colour_that_covers_the_most_pixels():
    module = load_benchmark("missing_colours.py")
    from daam_store import world

    image = np.full((32, 32, 3), world.BACKGROUND, np.uint8)
    image[2:8, 2:8] = world.PALETTE["red"]  # asked
    image[10:14, 10:14] = world.PALETTE["navy"]  # 16 pixels, not asked
    image[20:22, 20:22] = world.PALETTE["magenta"]  # 4 pixels, not asked
    assert module.drawn_instead(image, {"red", "blue"}, min_pixels=10) == "navy"
    assert module.drawn_instead(image, {"red", "blue"}, min_pixels=20) == "none"
    assert module.drawn_instead(image, {"red", "navy", "blue"}, min_pixels=1) == "magenta"


def test_word_map_layers_prints_every_layer_and_step_window_of_each_model():
    output = run_benchmark("word_map_layers.py", "--models", "sd1-tiny", "--n", "2", "--steps", "6")
    header = re.search(r"\| layer \| (.+) \|", output)
    assert header and header.group(1).split(" | ") == ["steps 1-2", "steps 3-4", "steps 5-6", "all steps"], output
    rows = re.findall(r"\| ((?:down|mid|up|DAAM)[^|]*) \| (.+) \|", output)
    labels = [label for label, _ in rows]
    assert len(labels) == 8 == len(set(labels)), output  # sd1-tiny's 7 cross-attention layers and DAAM's rule
    assert "mid, 4x4, attn 0.0" in labels and labels[-1] == "DAAM's rule (down + up blocks)"
    found = int(re.search(r"sd1-tiny \((\d) of 2 objects found\)", output).group(1))
    for _, cells in rows:
        pairs = [cell.split(" / ") for cell in cells.split(" | ")]
        assert len(pairs) == 4, cells
        if found:
            assert all(0 <= float(v) <= 1 for pair in pairs for v in pair), cells
        else:
            assert all(pair == ["-"] for pair in pairs), cells


def test_word_map_layers_splits_the_steps_into_contiguous_thirds():
    module = load_benchmark("word_map_layers.py")
    windows = module.step_windows(25)
    assert windows == {
        "steps 1-8": list(range(0, 8)),
        "steps 9-17": list(range(8, 17)),
        "steps 18-25": list(range(17, 25)),
        "all steps": None,  # the benchmark's own average
    }
    assert list(module.step_windows(2)) == ["steps 1-1", "steps 2-2", "all steps"]  # no empty window


def test_word_map_layers_scores_only_one_object_images_in_benchmark_order():
    module = load_benchmark("word_map_layers.py")
    items = module.one_object_items("heldout", 3)
    assert [seed for _, seed in items] == [0, 4, 8] and all(len(objects) == 1 for objects, _ in items)


def test_caption_knockout_prints_a_row_per_group_of_cross_attention_layers():
    output = run_benchmark("caption_knockout.py", "--models", "sd1-tiny", "--n", "4", "--steps", "2")
    rows = re.findall(r"\| ([a-z0-9 ]+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \(", output)
    # sd1-tiny: one attn2 in each of its two attended down blocks, two in each attended up block, one mid
    assert [(group, int(layers)) for group, layers, *_ in rows] == [
        ("nothing", 0),
        ("16x16", 3),
        ("8x8", 3),
        ("mid block", 1),
        ("down blocks", 2),
        ("up blocks", 4),
    ], output
    assert all(0 <= float(present) <= 1 and 0 <= float(correct) <= 1 for *_, present, correct in rows)


def test_caption_knockout_groups_sdxl_layers_by_resolution():
    from daam_store.models import load_pipeline

    groups = load_benchmark("caption_knockout.py").cross_attention_groups(load_pipeline("sdxl-tiny"))
    # no cross-attention at 16x16; two transformer layers per block at 4x4 and in the mid block
    assert {group: len(modules) for group, modules in groups.items()} == {
        "8x8": 3,
        "4x4": 6,
        "mid block": 2,
        "down blocks": 3,
        "up blocks": 6,
    }


def test_a_caption_knocked_out_of_every_layer_draws_the_empty_captions_image():
    """With the unconditional context in every cross-attention layer an SD 1.x UNet no longer sees the prompt:
    the image is the one the empty caption gives from the same noise."""
    import torch

    from daam_store.models import load_pipeline

    module = load_benchmark("caption_knockout.py")
    pipe = load_pipeline("sd1-tiny")

    def image(prompt: str):
        output = pipe(prompt, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np")
        return output.images[0]

    groups = module.cross_attention_groups(pipe)
    every_layer = groups["down blocks"] + groups["mid block"] + groups["up blocks"]
    with module.knocked_out(every_layer):
        knocked = image("a red circle and a blue square")
    assert np.array_equal(knocked, image(""))
    assert not np.array_equal(image("a red circle and a blue square"), knocked)  # the hooks came off


def test_caption_knockout_needs_guidance():
    import pytest

    with pytest.raises(SystemExit, match="--guidance must be over 1"):
        run_benchmark("caption_knockout.py", "--models", "sd1-tiny", "--n", "1", "--guidance", "1")
