"""The Compare page's tables, on a store of hand-made generations whose numbers are known.

Prompt "a dog" (rows: <sot>, a, dog, <eot>), 2x2 maps, two models, seeds 0 and 1:

    model m1, seed 0: a [[1,0],[0,0]]  dog [[0,1],[1,1]]   shares 1/4, 3/4
    model m1, seed 1: a [[1,1],[0,0]]  dog [[0,0],[1,1]]   shares 1/2, 1/2
    model m2, seed 0: a [[1,0],[0,0]]  dog [[0,0],[1,1]]   shares 1/3, 2/3
    model m2, seed 1: a [[0,0],[1,1]]  dog [[1,1],[1,0]]   shares 2/5, 3/5   (tag "other" only)

The dog maps [[0,1],[1,1]] and [[0,0],[1,1]] have correlation 0.5/sqrt(0.75) and tau-mask IoU 2/3;
a and dog overlap (IoU 1/4) only in m2 seed 1.
"""

import math

import numpy as np
import PIL.Image
import pytest
import torch

from daam_store.experiment import GenerationExperiment
from daam_store.models.info import ModelInfo
from daam_store.store import open_store
from daam_store.views import compare

A_CORNER = [[1, 0], [0, 0]]
DOG_L = [[0, 1], [1, 1]]
DOG_BOTTOM = [[0, 0], [1, 1]]
DOG_CORR = 0.5 / math.sqrt(0.75)


def model(name: str) -> ModelInfo:
    return ModelInfo(name, "memory", "", "SD1", f"rev-{name}", 32, "epsilon")


def experiment(seed: int, *word_maps, steps=None, prompt: str = "a dog") -> GenerationExperiment:
    """One generation of `prompt` whose word maps are `word_maps` (start and end tokens all zero)."""
    zeros = np.zeros((2, 2))
    rows = np.stack([zeros, *[np.array(m, float) for m in word_maps], zeros])
    return GenerationExperiment(
        image=PIL.Image.new("RGB", (32, 32), (seed * 40, 80, 120)),
        global_heat_map=torch.tensor(rows, dtype=torch.float32),
        prompt=prompt,
        seed=seed,
        metadata={"steps": 2, "guidance_scale": 7.5},
        step_heat_maps=None if steps is None else torch.tensor(np.array(steps, float), dtype=torch.float32),
    )


@pytest.fixture(scope="module")
def known_store(tmp_path_factory):
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('compare') / 'store.db'}")
    zeros = np.zeros((2, 2))
    # Per-step maps of m1 seed 0: step 1 gives a and dog equal mass, step 2 the final 1:3.
    steps = [
        np.stack([zeros, [[1, 0], [0, 0]], [[0, 1], [0, 0]], zeros]),
        np.stack([zeros, A_CORNER, DOG_L, zeros]),
    ]
    ids = {
        ("m1", 0): store.save(experiment(0, A_CORNER, DOG_L, steps=steps), model("m1"), tags=["sweep:known"]),
        ("m1", 1): store.save(experiment(1, [[1, 1], [0, 0]], DOG_BOTTOM), model("m1"), tags=["sweep:known"]),
        ("m2", 0): store.save(experiment(0, A_CORNER, DOG_BOTTOM), model("m2"), tags=["sweep:known"]),
        ("m2", 1): store.save(experiment(1, [[0, 0], [1, 1]], [[1, 1], [1, 0]]), model("m2"), tags=["other"]),
    }
    yield store, ids
    store.close()


KNOWN = compare.Selection(tag="sweep:known")


def model_ids(store) -> dict[str, int]:
    return {label: model_id for model_id, label in compare.compare_options(store).models.items()}


def test_options_list_sweeps_first(known_store):
    store, _ids = known_store
    options = compare.compare_options(store, tag="sweep:known")
    assert options.tags == ["sweep:known", "other"]
    assert set(options.models.values()) == {"m1", "m2"}
    assert list(options.prompts.values()) == ["a dog"]
    assert set(options.words) == {"a", "dog"} and options.seeds == [0, 1]


def test_shares_across_prompts(known_store):
    store, ids = known_store
    per_generation = compare.word_share_per_generation(store, KNOWN, "Dog")
    assert sorted(per_generation["share"]) == pytest.approx([1 / 2, 2 / 3, 3 / 4])
    by_prompt = compare.word_share_by_prompt(store, KNOWN, "dog")
    assert by_prompt["generations"].tolist() == [3]
    assert by_prompt["mean_share"].iloc[0] == pytest.approx((3 / 4 + 1 / 2 + 2 / 3) / 3)
    everything = compare.all_words_by_prompt(store, compare.Selection())  # both tags: all four generations
    m1 = everything[everything["model"] == "m1"].set_index("word")
    assert m1.loc["a", "mean_share"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert m1.loc["dog", "generations"] == 2
    assert everything[everything["model"] == "m2"].set_index("word").loc["a", "mean_share"] == pytest.approx(
        (1 / 3 + 2 / 5) / 2
    )


def test_stability_across_seeds(known_store):
    store, ids = known_store
    table = compare.seed_stability(store, KNOWN, "dog").set_index("model")
    assert table.loc["m1", "seeds"] == 2
    assert table.loc["m1", "mean_correlation"] == pytest.approx(DOG_CORR, abs=1e-5)
    assert table.loc["m1", "mean_iou"] == pytest.approx(2 / 3)
    assert table.loc["m2", "seeds"] == 1 and math.isnan(table.loc["m2", "mean_iou"])  # one seed: no pair
    grid = compare.seed_maps(store, KNOWN, "dog", prompt_id=1, model_id=model_ids(store)["m1"])
    assert [(m.seed, m.generation_id) for m in grid] == [(0, ids["m1", 0]), (1, ids["m1", 1])]
    np.testing.assert_allclose(grid[0].heat_map, DOG_L, atol=1e-6)


def test_agreement_across_models(known_store):
    store, ids = known_store
    models = model_ids(store)
    pairs = compare.model_pairs(store, KNOWN, models["m1"], models["m2"])
    assert pairs[["seed", "generation_id_a", "generation_id_b"]].values.tolist() == [[0, ids["m1", 0], ids["m2", 0]]]
    scatter = compare.model_share_scatter(store, KNOWN, models["m1"], models["m2"]).set_index("word")
    assert scatter.loc["dog", "share_a"] == pytest.approx(3 / 4) and scatter.loc["dog", "share_b"] == pytest.approx(
        2 / 3
    )
    everything = compare.Selection()  # m2 seed 1 too: seeds 0 and 1 are shared
    means = compare.model_share_means(store, everything, models["m1"], models["m2"]).set_index("word")
    assert means.loc["dog", "pairs"] == 2 and means.loc["dog", "generation_id_a"] == ids["m1", 0]
    assert means.loc["dog", "share_a"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert means.loc["dog", "share_b"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    assert means.loc["dog", "std_a"] == pytest.approx(1 / 8)
    agreement = compare.model_agreement(store, KNOWN, models["m1"], models["m2"]).set_index("word")
    assert agreement.loc["dog", "pairs"] == 1
    assert agreement.loc["dog", "iou"] == pytest.approx(2 / 3)
    assert agreement.loc["dog", "correlation"] == pytest.approx(DOG_CORR, abs=1e-5)
    assert agreement.loc["dog", "share_difference"] == pytest.approx(3 / 4 - 2 / 3)
    assert agreement.loc["a", "iou"] == pytest.approx(1.0)
    shown = compare.generation_maps(store, ids["m1", 0])
    assert [w.word for w in shown.words] == ["a", "dog"] and shown.image_png.startswith(b"\x89PNG")


def test_overlap_one_generation_and_averaged(known_store):
    store, ids = known_store
    single = compare.overlap_of_generation(store, ids["m1", 1])  # a top row, dog bottom row: disjoint
    assert single.loc["a", "dog"] == 0.0 and single.loc["dog", "dog"] == 1.0
    assert compare.mean_overlap(store, KNOWN).loc["a", "dog"] == 0.0  # disjoint in all three
    assert compare.mean_overlap(store, compare.Selection(tag="other")).loc["a", "dog"] == pytest.approx(1 / 4)
    everything = compare.mean_overlap(store, compare.Selection())
    assert everything.loc["a", "dog"] == pytest.approx(1 / 16) and list(everything.index) == ["a", "dog"]
    newest_two = compare.mean_overlap(store, compare.Selection(), max_generations=2)  # m2 seed 1 and m2 seed 0
    assert newest_two.loc["a", "dog"] == pytest.approx(1 / 8)


def test_per_step_shares(known_store):
    store, ids = known_store
    assert list(compare.generations_with_steps(store, KNOWN)) == [ids["m1", 0]]
    table = compare.step_shares(store, ids["m1", 0]).set_index(["step", "word"])
    assert table.loc[(1, "a"), "share"] == pytest.approx(1 / 2)
    assert table.loc[(2, "dog"), "share"] == pytest.approx(3 / 4)
    assert compare.step_shares(store, ids["m1", 1]).empty  # traced without per-step records


def test_csv_of_a_matrix_keeps_row_labels(known_store):
    store, ids = known_store
    text = compare.to_csv(compare.overlap_of_generation(store, ids["m1", 1])).decode()
    assert text.splitlines() == [",a,dog", "a,1.0,0.0", "dog,0.0,1.0"]
    assert compare.to_csv(compare.word_share_by_prompt(store, KNOWN, "dog")).decode().startswith("prompt_id,prompt,")


def test_an_unknown_word_or_empty_selection_gives_empty_tables(known_store):
    store, _ids = known_store
    assert compare.word_share_per_generation(store, KNOWN, "cat").empty
    assert compare.seed_stability(store, KNOWN, "cat").empty
    nothing = compare.Selection(tag="sweep:none")
    assert compare.model_agreement(store, nothing, 1, 2).empty
    assert compare.model_share_scatter(store, nothing, 1, 2).empty
    assert compare.mean_overlap(store, nothing).empty


def test_prompt_edit_a_dog_to_a_red_dog(tmp_path):
    # "a dog": a 1/4, dog 3/4 (the L); "a red dog": a 1/4, red 1/4, dog 1/2 (the right column); seeds 0, 1.
    store = open_store(f"sqlite:///{tmp_path / 'edit.db'}")
    for seed in (0, 1):
        store.save(experiment(seed, A_CORNER, DOG_L), model("m1"))
        store.save(experiment(seed, A_CORNER, [[0, 0], [1, 0]], [[0, 1], [0, 1]], prompt="a red dog"), model("m1"))
    store.save(experiment(2, A_CORNER, DOG_L), model("m1"))  # no "a red dog" for seed 2: not a pair
    options = compare.compare_options(store)
    prompts = {text: prompt_id for prompt_id, text in options.prompts.items()}
    m1 = next(iter(options.models))
    edit = compare.prompt_edit(store, compare.Selection(), prompts["a dog"], prompts["a red dog"], m1)
    moves = edit.set_index("word")
    assert list(edit["word"]) == ["a", "red", "dog"] and list(edit["status"]) == ["kept", "added", "kept"]
    assert (edit["pairs"] == 2).all()
    assert moves.loc["red", "share_b"] == pytest.approx(1 / 4) and moves.loc["red", "share_a"] == 0.0
    assert moves.loc["dog", "share_change"] == pytest.approx(1 / 2 - 3 / 4)
    assert moves.loc["a", "share_change"] == pytest.approx(0.0, abs=1e-6)
    assert moves.loc["dog", "iou"] == pytest.approx(2 / 3)  # {top-right, bottom-left, bottom-right} vs right column
    assert moves.loc["dog", "correlation"] == pytest.approx(DOG_CORR, abs=1e-5)
    assert math.isnan(moves.loc["red", "iou"])
    assert compare.prompt_edit(store, compare.Selection(), prompts["a dog"], prompts["a dog"], m1).empty
    store.close()


def test_chart_labels_show_user_text_literally():
    import pandas as pd

    from daam_store.views import compare_charts as charts

    assert charts.plain("<b>dog</b> & <a href='x'>") == "&lt;b&gt;dog&lt;/b&gt; &amp; &lt;a href='x'&gt;"
    matrix = pd.DataFrame([[1.0, 0.2], [0.2, 1.0]], index=["<b>", "dog"], columns=["<b>", "dog"])
    figure = charts.overlap_figure(matrix, "overlap of <i>a</i>")
    assert list(figure.data[0].x) == ["&lt;b&gt;", "dog"] and "<i>" not in figure.layout.title.text


def test_maps_of_two_rules_are_never_mixed(tmp_path):
    """The same generation stored with the original's layers and with every layer: Compare offers the rules and
    each chart reads one."""
    from dataclasses import replace

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    base = experiment(0, A_CORNER, DOG_L)
    store.save(replace(base, metadata={**base.metadata, "heat_map_rule": "daam"}), model("m1"), tags=["t"])
    with_mid = experiment(0, A_CORNER, DOG_BOTTOM)
    store.save(replace(with_mid, metadata={**with_mid.metadata, "heat_map_rule": "daam+mid"}), model("m1"), tags=["t"])
    options = compare.compare_options(store, "t")
    assert sorted(options.rules) == ["daam", "daam+mid"]
    for rule, share in (("daam", 0.75), ("daam+mid", 2 / 3)):
        shares = compare.word_share_per_generation(store, compare.Selection(tag="t", heat_map_rule=rule), "dog")
        assert list(shares["share"]) == pytest.approx([share])
    assert len(compare.word_share_per_generation(store, compare.Selection(tag="t"), "dog")) == 2
