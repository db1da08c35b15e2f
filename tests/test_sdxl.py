"""SDXL behind the same tracing seam: two text encoders, added conditioning left alone, same rule and API."""

import json
import warnings

import pytest
import torch
from daam_reference import ReferenceMaps
from diffusers import StableDiffusionXLPipeline

from daam_store import GenerationExperiment, set_seed, trace
from daam_store.families import family_of
from daam_store.models import describe_pipeline, load_pipeline

STEPS = 3
PROMPT = "a red circle and a blue square"


def run(pipe, prompt, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(prompt, generator=set_seed(seed), output_type="np", **kwargs).images


def word_rows(heat_map, word):
    return list(next(w for w in heat_map.words() if w.text == word).token_indices)


def test_family_and_layers(sdxl_pipe):
    assert family_of(sdxl_pipe).name == "SDXL"
    with trace(sdxl_pipe) as tc:
        run(sdxl_pipe, PROMPT, num_inference_steps=1)
    labels = tc.layer_labels()
    assert len(labels) == len(set(labels)) == 11  # down 1 (1), down 2 (2 x 1), up 0 (2 x 2), up 1 (2 x 1), mid (2)
    assert "down 2, 4x4, attn 0.1" in labels and "up 1, 8x8, attn 1.0" in labels and "mid, 4x4, attn 0.1" in labels
    assert [tc.layer_names[i].startswith("mid_block") for i in tc.default_layers()] == [False] * 9


@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_image_unchanged_and_maps_match_the_reference(sdxl_pipe, guidance):
    untraced = run(sdxl_pipe, PROMPT, guidance_scale=guidance)
    with trace(sdxl_pipe) as tc, ReferenceMaps(sdxl_pipe) as ref:
        traced = run(sdxl_pipe, PROMPT, guidance_scale=guidance)
    assert (untraced == traced).all()
    assert tc.call_info["do_cfg"] is (guidance > 1)
    heat_map = tc.compute_global_heat_map()
    for word in ("red", "square"):
        expected = ref.word_map(word_rows(heat_map, word), 1, guidance > 1, 0, (16, 16))
        torch.testing.assert_close(heat_map.compute_word_heat_map(word).value, expected, rtol=1e-4, atol=1e-6)


def test_non_square_batch_negative_prompt_and_steps(sdxl_pipe):
    prompts = ["a red circle", "a blue square and a green triangle"]
    with trace(sdxl_pipe, save_steps=True) as tc, ReferenceMaps(sdxl_pipe) as ref:
        images = run(sdxl_pipe, prompts, num_images_per_prompt=2, negative_prompt=["blue", "red"], height=48, width=24)
    assert images.shape == (4, 48, 24, 3) and len(tc.images) == 4
    for image_idx in range(4):
        heat_map = tc.compute_global_heat_map(image_idx=image_idx)
        assert heat_map.prompt == prompts[image_idx // 2] and heat_map.heat_maps.shape[-2:] == (24, 12)
        word = heat_map.words()[2].text
        expected = ref.word_map(word_rows(heat_map, word), 4, True, image_idx, (24, 12))
        torch.testing.assert_close(heat_map.compute_word_heat_map(word).value, expected, rtol=1e-4, atol=1e-6)
    steps = tc.step_heat_maps(image_idx=1)
    assert steps.shape[0] == STEPS
    torch.testing.assert_close(steps.sum(0), tc.compute_global_heat_map(image_idx=1).heat_maps, rtol=1e-4, atol=1e-6)
    assert tc.to_experiment(image_idx=3).metadata["negative_prompt"] == "red"


def test_experiment_and_store_round_trip_without_a_tokenizer(sdxl_pipe, tmp_path):
    from daam_store.store import open_store

    with trace(sdxl_pipe) as tc:
        sdxl_pipe(PROMPT, generator=set_seed(0), num_inference_steps=2)
    experiment = tc.to_experiment(tmp_path / "exp", seed=0)
    experiment.save()
    saved = json.loads((tmp_path / "exp" / "tokens.json").read_text())
    assert saved["tokens"][0] == "<|startoftext|>" and [w["text"] for w in saved["words"]][1] == "red"
    loaded = GenerationExperiment.load(tmp_path / "exp")
    assert loaded.metadata["family"] == "SDXL" and loaded.prompt_tokens == experiment.prompt_tokens
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        generation_id = store.save(loaded, model=describe_pipeline(sdxl_pipe))
        back = store.load_experiment(generation_id)
    assert back.prompt_tokens == experiment.prompt_tokens
    assert back.metadata["model_info"]["family"] == "SDXL"
    circle = back.heat_map().compute_word_heat_map("circle").value
    torch.testing.assert_close(circle, experiment.heat_map().compute_word_heat_map("circle").value, atol=1e-3, rtol=0)


def test_load_pipeline_detects_sdxl_folders(tiny_sdxl_model_dir):
    pipe = load_pipeline(str(tiny_sdxl_model_dir))
    assert isinstance(pipe, StableDiffusionXLPipeline)
    info = describe_pipeline(pipe)
    assert info.family == "SDXL" and info.source == "local" and info.resolution == 32


def test_unsupported_pipeline_class_is_one_line(tmp_path):
    from daam_store.models import ModelNotFoundError

    folder = tmp_path / "kandinsky"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(ModelNotFoundError, match="KandinskyPipeline pipelines cannot be traced"):
        load_pipeline(str(folder))


def test_cli_writes_the_seed_files_and_stores_family_sdxl(tiny_sdxl_model_dir, tmp_path, capsys):
    from daam_store.cli import daam_main
    from daam_store.store import open_store, queries

    url = f"sqlite:///{tmp_path / 'store.db'}"
    out = tmp_path / "out"
    arguments = ["--model", str(tiny_sdxl_model_dir), "--steps", "2", "-o", str(out), "--store", "--db", url]
    code = daam_main([PROMPT, *arguments])
    assert code == 0, capsys.readouterr().err
    names = {path.name for path in out.iterdir()}
    assert {"output.png", "generation.pt", "prompt.txt", "seed.txt", "tokens.json", "circle.heat_map.png"} <= names
    assert GenerationExperiment.load(out).metadata["family"] == "SDXL"
    with open_store(url) as store, store.session() as session:
        assert [(m.family, m.generations) for m in queries.list_models(session)] == [("SDXL", 1)]


@pytest.mark.usefixtures("no_leaked_workers")
def test_dashboard_generates_explores_and_compares_sdxl_beside_sd1(
    tiny_sdxl_model_dir, tiny_model_dir, tmp_path, monkeypatch
):
    from test_compare_page import charts, choose, values
    from test_dashboard_app import DASHBOARD, assert_clean, fill_generate_form, run_page, until_finished

    monkeypatch.syspath_prepend(str(DASHBOARD))
    monkeypatch.setenv("DAAM_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    for model in (tiny_sdxl_model_dir, tiny_model_dir):
        page = run_page("app_pages/1_Generate.py")
        app = until_finished(fill_generate_form(page, str(model), PROMPT, "0-1", steps=2, tags="families"))
        assert_clean(app)
    explore = run_page("app_pages/2_Explore.py", {"generation": "1"})
    assert_clean(explore)
    facts = {row["what"]: row["value"] for row in explore.dataframe[0].value.to_dict("records")}
    assert "(SDXL, local)" in facts["model"] and facts["maps average"].startswith("down and up blocks")
    compare = run_page("app_pages/4_Compare.py")
    compare = choose(compare, tag="families", view="Across models")
    assert_clean(compare)
    means = charts(compare)[0]
    words = {trace["name"]: values(trace["x"]) for trace in means["data"] if trace.get("mode") == "markers"}
    assert set(words) == {"a", "red", "circle", "and", "blue", "square"} and all(len(x) == 1 for x in words.values())
    axes = f"{means['layout']['xaxis']['title']['text']} / {means['layout']['yaxis']['title']['text']}"
    assert "tiny-sdxl" in axes and "tiny-sd1" in axes, axes


def test_a_different_prompt_2_warns_and_is_recorded(sdxl_pipe):
    with pytest.warns(UserWarning, match="prompt_2 differs"), trace(sdxl_pipe) as tc:
        run(sdxl_pipe, "a red cube", prompt_2="a very different second prompt", negative_prompt_2="blue")
    metadata = tc.to_experiment().metadata
    assert metadata["prompt_2"] == "a very different second prompt" and metadata["negative_prompt_2"] == "blue"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the same second prompt (or none) says nothing
        with trace(sdxl_pipe):
            run(sdxl_pipe, "a red cube", prompt_2="a red cube", num_inference_steps=1)


def test_builtin_sdxl_tiny_sweeps_beside_sd1_tiny_and_compares_across_families(tmp_path):
    """The shipped SDXL-family model needs no download: a sweep runs it next to sd1-tiny and Compare pairs
    the two families word by word."""
    from daam_store.store import open_store, queries
    from daam_store.sweep import SweepSettings, run_sweep
    from daam_store.views import compare

    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        run_sweep(store, [PROMPT], [0, 1], ["sd1-tiny", "sdxl-tiny"], SweepSettings(steps=4), name="families")
        with store.session() as session:
            models = {m.name: (m.id, m.family) for m in queries.list_models(session)}
        assert {name: family for name, (_, family) in models.items()} == {"sd1-tiny": "SD1", "sdxl-tiny": "SDXL"}
        selection = compare.Selection(tag="sweep:families")
        means = compare.model_share_means(store, selection, models["sd1-tiny"][0], models["sdxl-tiny"][0])
        assert set(means["word"]) == {"a", "red", "circle", "and", "blue", "square"}
        assert (means["pairs"] == 2).all() and means[["share_a", "share_b"]].notna().all().all()
