"""The store on a real SQLite file and a real PostgreSQL server: save, load, idempotency, queries."""

import math

import numpy as np
import pytest

from daam_store import set_seed, trace
from daam_store.analysis.statistics import prompt_statistics
from daam_store.heatmap import PromptTokens
from daam_store.models import describe_pipeline
from daam_store.models.info import ModelInfo
from daam_store.store import GenerationNotFoundError, StoreError, open_store, queries
from daam_store.store.codec import max_abs_error_bound
from daam_store.store.testing import synthetic_experiment

MODEL_A = ModelInfo("sd1-tiny", "builtin", "", "SD1", "rev-a", 32, "epsilon")
MODEL_B = ModelInfo("sd2-tiny", "builtin", "", "SD2", "rev-b", 32, "v_prediction")


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


def assert_within_codec_bound(decoded, original):
    original = np.asarray(original, dtype=np.float32)
    decoded = np.asarray(decoded, dtype=np.float32)
    assert decoded.shape == original.shape
    slices_o = original.reshape(-1, *original.shape[-2:])
    slices_d = decoded.reshape(-1, *decoded.shape[-2:])
    for o, d in zip(slices_o, slices_d, strict=True):
        assert np.abs(d - o).max() <= max_abs_error_bound(o) * 1.001 + 1e-7


def word_maps_of(exp):
    return [(span, value.numpy()) for span, value in exp.heat_map().word_heat_maps()]


def test_save_and_load_round_trip(store, clip_tokenizer):
    exp = synthetic_experiment(
        clip_tokenizer,
        "A photorealistic cat, on a red mat",
        seed=42,
        layers=3,
        steps=2,
        metadata={"negative_prompt": "blurry", "custom": {"note": "kept"}},
    )
    generation_id = store.save(exp, model=MODEL_A, author="ann", tags=("cats", "test"))
    back = store.load_experiment(generation_id)

    assert (back.prompt, back.seed) == (exp.prompt, 42)
    assert np.array_equal(np.asarray(back.image), np.asarray(exp.image))
    assert_within_codec_bound(back.global_heat_map, exp.global_heat_map)
    assert_within_codec_bound(back.layer_heat_maps, exp.layer_heat_maps)
    assert_within_codec_bound(back.step_heat_maps, exp.step_heat_maps)
    assert back.layer_names == exp.layer_names
    meta = back.metadata
    assert (meta["negative_prompt"], meta["steps"], meta["guidance_scale"]) == ("blurry", 5, 7.5)
    assert meta["custom"] == {"note": "kept"} and meta["timings"] == {"generate": 0.25, "maps": 0.01}
    assert meta["model"] == "sd1-tiny" and meta["model_info"]["family"] == "SD1"
    assert meta["store"]["tags"] == ["cats", "test"] and meta["store"]["author"] == "ann"

    originals = word_maps_of(exp)
    expected = prompt_statistics([m for _, m in originals])
    with store.session() as session:
        rows = queries.word_statistics(session, generation_id)
        assert [r.word for r in rows] == ["a", "photorealistic", "cat", ",", "on", "a", "red", "mat"]
        comma = rows[3]
        assert comma.is_punctuation and not comma.has_map and comma.share is None
        mapped = [r for r in rows if r.has_map]
        assert math.isclose(sum(r.share for r in mapped), 1.0, rel_tol=1e-9)
        for row, stats, (span, original) in zip(mapped, expected, originals, strict=True):
            assert row.word_idx == span.index and row.token_indices == span.token_indices
            assert row.share == pytest.approx(stats.share) and row.entropy == pytest.approx(stats.entropy)
            assert (row.centroid_x, row.centroid_y) == (
                pytest.approx(stats.centroid_x),
                pytest.approx(stats.centroid_y),
            )
            assert (row.peak, row.area_above_tau) == (pytest.approx(stats.peak), stats.area_above_tau)
            assert_within_codec_bound(queries.word_heat_map(session, generation_id, row.word_idx), original)
        assert queries.word_heat_map(session, generation_id, comma.word_idx) is None
        png = queries.image_png(session, generation_id)
        assert png.startswith(b"\x89PNG")


def test_saving_the_same_generation_twice_keeps_one(store, clip_tokenizer):
    exp = synthetic_experiment(clip_tokenizer, "a dog in the snow", seed=1)
    first = store.save(exp, model=MODEL_A)
    assert store.save(exp, model=MODEL_A) == first
    other_seed = store.save(synthetic_experiment(clip_tokenizer, "a dog in the snow", seed=2), model=MODEL_A)
    other_model = store.save(exp, model=MODEL_B)
    assert len({first, other_seed, other_model}) == 3
    with store.session() as session:
        assert queries.count_generations(session) == 3
        assert queries.store_summary(session).prompts == 1


def test_saving_again_adds_new_tags_and_missing_finer_records(store, clip_tokenizer):
    import dataclasses

    exp = synthetic_experiment(clip_tokenizer, "a dog in the snow", seed=1, steps=3)
    plain = dataclasses.replace(exp, step_heat_maps=None)
    first = store.save(plain, model=MODEL_A, tags=["a"])
    assert store.load_experiment(first).step_heat_maps is None
    assert store.save(exp, model=MODEL_A, tags=["a", "sweep:b"]) == first
    with store.session() as session:
        assert queries.count_generations(session) == 1
        assert set(queries.get_generation(session, first).tags) == {"a", "sweep:b"}
    assert store.load_experiment(first).step_heat_maps.shape == exp.step_heat_maps.shape


def test_saving_again_records_an_author_where_none_was_and_keeps_one_that_was(store, clip_tokenizer):
    exp = synthetic_experiment(clip_tokenizer, "a dog in the snow", seed=1)
    first = store.save(exp, model=MODEL_A)
    assert store.save(exp, model=MODEL_A, author="ann") == first
    assert store.save(exp, model=MODEL_A, author="bob") == first
    with store.session() as session:
        assert queries.get_generation(session, first).author == "ann"


def test_maps_that_do_not_fit_the_prompt_are_refused(store, clip_tokenizer):
    exp = synthetic_experiment(clip_tokenizer, "a dog in the snow", seed=1)
    exp.prompt = "a dog in the deep snow"  # one token more than the maps have rows for
    exp.prompt_tokens = PromptTokens.from_tokenizer(clip_tokenizer, exp.prompt)
    with pytest.raises(StoreError, match=r"shape \(7, 16, 16\) but its prompt has 8 tokens"):
        store.save(exp, model=MODEL_A)
    with store.session() as session:
        assert queries.count_generations(session) == 0


def test_loading_a_missing_generation_says_so(store):
    with pytest.raises(GenerationNotFoundError, match="no generation 999"):
        store.load_experiment(999)


PROMPTS = ["a cat on a mat", "a cat and a cat", "a dog in the snow"]


@pytest.fixture
def filled(store, clip_tokenizer):
    """3 prompts x 3 seeds x 2 models, and the expected share of every word in every generation."""
    expected = {}
    for model in (MODEL_A, MODEL_B):
        for prompt in PROMPTS:
            for seed in range(3):
                meta = {"guidance_scale": 5.0 if model is MODEL_B else 7.5}
                exp = synthetic_experiment(
                    clip_tokenizer, prompt, seed=seed + (10 if model is MODEL_B else 0), metadata=meta
                )
                exp.seed = seed
                tags = ("sweep-1",) if prompt != PROMPTS[2] else ()
                generation_id = store.save(exp, model=model, tags=tags, author="bob" if seed == 0 else None)
                originals = word_maps_of(exp)
                shares = {}
                for (span, _), stats in zip(originals, prompt_statistics([m for _, m in originals]), strict=True):
                    shares[span.text] = shares.get(span.text, 0.0) + stats.share
                expected[generation_id] = (model.name, prompt, seed, shares)
    return store, expected


def test_share_across_seeds_prompts_and_models(filled):
    store, expected = filled
    with store.session() as session:
        prompt_ids = {p.text: p.id for p in queries.list_prompts(session)}
        model_ids = {m.name: m.id for m in queries.list_models(session)}

        by_seed = queries.share_by_seed(session, "CAT", prompt_ids["a cat and a cat"], model_ids["sd1-tiny"])
        assert [r.seed for r in by_seed] == [0, 1, 2]
        for row in by_seed:
            assert row.share == pytest.approx(expected[row.generation_id][3]["cat"])  # both occurrences summed

        by_prompt = {r.label: r for r in queries.share_by_prompt(session, "cat")}
        assert set(by_prompt) == {"a cat on a mat", "a cat and a cat"}
        for prompt, row in by_prompt.items():
            values = [shares["cat"] for _, p, _, shares in expected.values() if p == prompt]
            assert row.generations == 6
            assert row.mean == pytest.approx(np.mean(values))
            assert row.std == pytest.approx(np.std(values), abs=1e-6)
            assert (row.min, row.max) == (pytest.approx(min(values)), pytest.approx(max(values)))

        only_p3 = queries.GenerationFilter(prompt_ids=[prompt_ids["a dog in the snow"]])
        by_model = {r.label: r for r in queries.share_by_model(session, "dog", only_p3)}
        assert {r.family for r in by_model.values()} == {"SD1", "SD2"}
        for name, row in by_model.items():
            values = [s["dog"] for m, p, _, s in expected.values() if m == name and p == "a dog in the snow"]
            assert row.generations == 3 and row.mean == pytest.approx(np.mean(values))

        seed_zero = queries.word_shares(session, "mat", queries.GenerationFilter(seeds=[0]))
        assert len(seed_zero) == 2 and {r.model for r in seed_zero} == {"sd1-tiny", "sd2-tiny"}
        assert queries.share_by_prompt(session, "unicorn") == []


def test_browsing_filters_and_catalogues(filled):
    store, _ = filled
    Filter = queries.GenerationFilter
    with store.session() as session:
        assert queries.count_generations(session) == 18
        assert queries.count_generations(session, Filter(word="dog")) == 6
        assert queries.count_generations(session, Filter(prompt_contains="SNOW")) == 6
        assert queries.count_generations(session, Filter(prompt_contains="100%")) == 0  # LIKE wildcards escaped
        assert queries.count_generations(session, Filter(tag="sweep-1")) == 12
        assert queries.count_generations(session, Filter(author="bob", seeds=[0, 1])) == 6
        page = queries.list_generations(session, Filter(word="cat"), limit=5, offset=5)
        assert len(page) == 5 and all("cat" in g.prompt for g in page)
        assert [g.id for g in page] == sorted((g.id for g in page), reverse=True)
        assert page[0].tags in ((), ("sweep-1",))
        newest = queries.list_generations(session, limit=1)[0]
        assert queries.get_generation(session, newest.id) == newest

        summary = queries.store_summary(session)
        assert (summary.generations, summary.prompts, summary.models) == (18, 3, 2)
        assert summary.heat_maps == 18 * 5
        assert [(m.name, m.generations) for m in queries.list_models(session)] == [("sd1-tiny", 9), ("sd2-tiny", 9)]
        words = dict(queries.list_words(session))
        assert words["a"] == 18 and words["cat"] == 12 and words["snow"] == 6
        assert queries.list_seeds(session) == [0, 1, 2]
        assert queries.list_tags(session) == [("sweep-1", 12)]
        assert queries.list_authors(session) == ["bob"]

        cat_ids = [g.id for g in queries.list_generations(session, Filter(prompt_contains="cat and"), limit=100)]
        maps = queries.word_heat_maps(session, cat_ids, "cat")
        assert set(maps) == set(cat_ids) and all(len(m) == 2 for m in maps.values())
        stats = queries.statistics_of(session, cat_ids[:2])
        assert all(len(rows) == 5 for rows in stats.values())


def test_register_model_is_idempotent(store):
    info = ModelInfo("my/hub-model", "hub", "my/hub-model", "SD2", "abc123", 768, "v_prediction")
    with store.write_session() as session:
        first = queries.register_model(session, info)
    with store.write_session() as session:
        assert queries.register_model(session, info) == first
    with store.session() as session:
        assert [(m.name, m.generations) for m in queries.list_models(session)] == [("my/hub-model", 0)]


def test_a_traced_generation_from_a_real_pipeline(store, sd1_pipe, clip_tokenizer):
    with trace(sd1_pipe) as tc:
        sd1_pipe("a red circle, a blue square", num_inference_steps=2, generator=set_seed(0))
        exp = tc.to_experiment(seed=0)
    generation_id = store.save(exp, model=describe_pipeline(sd1_pipe))
    back = store.load_experiment(generation_id)
    assert back.metadata["model_info"]["family"] == "SD1"
    assert back.metadata["scheduler"] == exp.metadata["scheduler"]
    assert back.metadata["heat_map_rule"] == "daam" and back.prompt_tokens == exp.prompt_tokens
    assert_within_codec_bound(back.global_heat_map, exp.global_heat_map)
    assert_within_codec_bound(back.layer_heat_maps, exp.layer_heat_maps)
    original = exp.heat_map().compute_word_heat_map("square").value.numpy()
    restored = back.heat_map().compute_word_heat_map("square").value.numpy()
    assert np.abs(restored - original).max() <= 2 * max_abs_error_bound(exp.global_heat_map.numpy())
