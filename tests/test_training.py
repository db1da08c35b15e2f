"""Training the built-in models: a few-step CPU smoke run of `daam-store train-builtin`, resume, parts."""

import json

import pytest
import torch
from diffusers import Transformer2DModel
from safetensors.torch import load_file

from daam_store.cli import store_main
from daam_store.errors import UserError
from daam_store.models import load_pipeline
from daam_store.training import RECIPES, TrainOptions, bundle_to_folder, get_recipe, load_bundle, train_builtin
from daam_store.training.ema import EMA
from daam_store.training.loop import learning_rate

SMOKE = ["--vae-steps", "2", "--batch-size", "2", "--quiet"]


def train(out, steps, *extra):
    code = store_main(["train-builtin", "sd2-tiny", "--out", str(out), "--steps", str(steps), *SMOKE, *extra])
    assert code == 0


def unet_weights(folder):
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A 2 + 3 step run (interrupted after step 2, then resumed) and the same 3 steps in one go."""
    root = tmp_path_factory.mktemp("train")
    train(root / "resumed", 2, "--checkpoint-every", "1", "--snapshot", str(root / "resumed" / "snap.safetensors"))
    train(root / "resumed", 3)
    train(root / "straight", 3)
    return root


def test_smoke_training_writes_a_loadable_pipeline_that_generates(smoke_run):
    folder = smoke_run / "straight" / "pipeline"
    pipe = load_pipeline(str(folder))
    assert pipe.scheduler.config.prediction_type == get_recipe("sd2-tiny").prediction_type == "epsilon"
    image = pipe("a red circle", num_inference_steps=2, output_type="np").images[0]
    assert image.shape == (32, 32, 3)
    info = json.loads((folder / "training.json").read_text())
    assert info["unet_steps_done"] == 3 and info["recipe"]["name"] == "sd2-tiny"
    assert [row[0] for row in info["loss_history"]] == ["vae", "unet"]
    assert pipe.vae.config.scaling_factor != 0.18215  # measured from the trained VAE's latents


def test_resumed_run_equals_uninterrupted_run(smoke_run):
    resumed = unet_weights(smoke_run / "resumed" / "pipeline")
    straight = unet_weights(smoke_run / "straight" / "pipeline")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed)


def test_snapshot_bundle_unpacks_to_the_same_model(smoke_run, tmp_path):
    snapshot = smoke_run / "resumed" / "snap.safetensors"
    weights, configs, info = load_bundle(snapshot)
    assert info["unet_steps_done"] == 2 and configs["vae"]["scaling_factor"] != 0.18215
    bundle_to_folder(snapshot, tmp_path / "unpacked")
    pipe = load_pipeline(str(tmp_path / "unpacked"))
    assert pipe.vae.config.scaling_factor == pytest.approx(configs["vae"]["scaling_factor"])
    ids = pipe.tokenizer("a blue square and a red circle", return_tensors="pt").input_ids
    assert torch.isfinite(pipe.text_encoder(ids)[0]).all()


def test_bundle_keeps_world_token_rows_exact_and_the_rest_in_half_precision(smoke_run):
    weights, _, _ = load_bundle(smoke_run / "resumed" / "snap.safetensors")
    (key,) = [k for k in weights["text_encoder"] if k.endswith("token_embedding.weight")]
    table = weights["text_encoder"][key]
    red = 736  # CLIP token of "red</w>": a world token, stored exactly
    assert table.dtype == torch.float32 and table.shape == (49408, 64)
    assert not torch.equal(table[red], table[red].half().float())
    assert torch.equal(table[5000], table[5000].half().float())


def test_checkpoint_of_another_recipe_is_refused(smoke_run):
    options = TrainOptions(out=smoke_run / "resumed", progress=False)
    other = get_recipe("sd2-tiny").with_overrides(batch_size=2, vae_steps=2, unet_steps=3, seed=99)
    with pytest.raises(UserError, match="different recipe.*seed"):
        train_builtin(other, options)


def test_a_checkpoint_of_another_family_is_refused_as_another_recipe(tmp_path):
    """An sd1-tiny run with SD's fourth UNet level, resumed as sdxl-tiny: the same one-line refusal naming the
    family, not the error a mix of the two recipes would give (--unet-levels is SD 1.x/2.x only)."""
    from daam_store.training.checkpoint import load_checkpoint

    saved = get_recipe("sd1-tiny").with_overrides(unet_levels=4, prediction_type="epsilon")
    torch.save({"recipe": saved.to_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match=r"different recipe \(.*family.*unet_levels"):
        load_checkpoint(tmp_path / "checkpoint.pt", get_recipe("sdxl-tiny"), modules={}, ema=None)


@pytest.mark.parametrize(("projection", "refused"), [(None, False), ("linear", False), ("conv", True)])
def test_a_checkpoint_with_a_projection_field_since_removed(tmp_path, projection, refused):
    """Checkpoints written while recipes had `projection`: the family's own resumes, SD 1.x's conv in an sd2-tiny
    run (weights of another shape) is refused in one line rather than failing to load."""
    from daam_store.training.checkpoint import load_checkpoint

    recipe = get_recipe("sd2-tiny")
    ema = EMA({}, decay=0.9)
    saved = {"recipe": recipe.to_dict() | {"projection": projection}, "state": {}, "optimizer": None}
    saved |= {"modules": {}, "ema": ema.state_dict()}
    torch.save(saved, tmp_path / "c.pt")
    if refused:
        with pytest.raises(UserError, match=r"different recipe \(projection\)"):
            load_checkpoint(tmp_path / "c.pt", recipe, modules={}, ema=ema)
    else:
        load_checkpoint(tmp_path / "c.pt", recipe, modules={}, ema=ema)


@pytest.mark.parametrize(
    "model, flag, value, error",
    [
        ("sd1-tiny", "--steps", "0", "--steps must be at least 1"),
        ("sd1-tiny", "--colourless-phrases", "1.5", "--colourless-phrases must be between 0 and 1"),
        ("sdxl-tiny", "--pooled-dropout", "-0.1", "--pooled-dropout must be between 0 and 1"),
        ("sd1-tiny", "--pooled-dropout", "0.5", "--pooled-dropout applies to SDXL-family recipes only"),
        ("sdxl-tiny", "--text-layers", "0", "--text-layers must be at least 1 for sdxl-tiny"),
        ("sd1-tiny", "--extra-colours", "9", "--extra-colours must be between 0 and 8"),
        ("sd2-tiny", "--extra-shapes", "4", "--extra-shapes must be between 0 and 3"),
        ("sd2-tiny", "--shape-shading", "0.5", "--shape-shading must be between 0 and 0.3"),
        ("sd1-tiny", "--object-counts", "0.5,0.6,0.2", "give three shares of 1, 2 and 3 objects that sum to 1"),
        ("sd1-tiny", "--object-counts", "0.5,0.5", "give three shares of 1, 2 and 3 objects that sum to 1"),
        ("sd1-tiny", "--object-counts", "nan,0,1", "give three shares of 1, 2 and 3 objects that sum to 1"),
        ("sd1-tiny", "--object-counts", "a,b,c", "give three shares of 1, 2 and 3 objects that sum to 1"),
        ("sd1-tiny", "--zero-text-residuals", None, "--zero-text-residuals needs text layers"),
        ("sdxl-tiny", "--text-embedding-std", "0", "--text-embedding-std must be a finite number above 0"),
        ("sdxl-tiny", "--text-embedding-std", "-1", "--text-embedding-std must be a finite number above 0"),
        ("sdxl-tiny", "--text-embedding-std", "nan", "--text-embedding-std must be a finite number above 0"),
        ("sdxl-tiny", "--text-embedding-std", "inf", "--text-embedding-std must be a finite number above 0"),
        ("sd2-tiny", "--attention-heads", "3", "--attention-heads must be one of 1, 2, 4, 8, 16, 32"),
        ("sd1-tiny", "--transformer-layers", "0", "--transformer-layers must be between 1 and 4"),
        ("sdxl-tiny", "--transformer-layers", "5", "--transformer-layers must be between 1 and 4"),
        ("sd1-tiny", "--unet-levels", "5", "--unet-levels must be one of 3, 4"),
        ("sdxl-tiny", "--unet-levels", "4", "--unet-levels applies to SD 1.x/2.x recipes only"),
        ("sd2-tiny", "--seed", "-1", "bad seed '-1': a seed is a whole number"),
        ("sd1-tiny", "--seed", "1.5", "bad seed '1.5'"),
    ],
)
def test_bad_arguments_give_one_line_errors(capsys, tmp_path, model, flag, value, error):
    arguments = [flag] if value is None else [flag, value]
    out = tmp_path / "run"
    assert store_main(["train-builtin", model, "--out", str(out), *arguments]) == 2
    assert error in capsys.readouterr().err
    assert not out.exists()  # refused before any output folder is made


def test_a_bundle_written_before_sdxl_support_still_loads(smoke_run, tmp_path):
    from safetensors.torch import safe_open, save_file

    snapshot = smoke_run / "resumed" / "snap.safetensors"
    tensors = load_file(str(snapshot))
    tensors["rows.index"] = tensors.pop("rows.text_encoder.index")  # the keys of the first bundles
    tensors["rows.values"] = tensors.pop("rows.text_encoder.values")
    with safe_open(str(snapshot), framework="pt") as handle:
        save_file(tensors, str(tmp_path / "old.safetensors"), metadata=handle.metadata())
    old, new = load_bundle(tmp_path / "old.safetensors")[0], load_bundle(snapshot)[0]
    assert old.keys() == new.keys() == {"unet", "vae", "text_encoder"}
    assert all(torch.equal(old["text_encoder"][k], new["text_encoder"][k]) for k in new["text_encoder"])


def test_a_checkpoint_from_before_a_new_recipe_field_resumes_with_its_default(smoke_run, tmp_path):
    import shutil

    shutil.copytree(smoke_run / "straight", tmp_path / "old")
    path = tmp_path / "old" / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    del payload["recipe"]["colourless_phrase_prob"]  # written before the field existed
    torch.save(payload, path)
    recipe = get_recipe("sd2-tiny").with_overrides(batch_size=2, vae_steps=2, unet_steps=3)
    assert train_builtin(recipe, TrainOptions(out=tmp_path / "old", progress=False)).exists()
    changed = recipe.with_overrides(colourless_phrase_prob=0.3)
    with pytest.raises(UserError, match="different recipe.*colourless_phrase_prob"):
        train_builtin(changed, TrainOptions(out=tmp_path / "old", progress=False))


def test_naming_the_familys_own_layout_resumes_its_run(tmp_path):
    """A run started with the family's layout (no prediction type or heads named: sd2's v and 2/4/4 heads)
    resumes when the same model is named explicitly; a layout that builds another model does not."""
    import dataclasses

    options = TrainOptions(out=tmp_path / "run", progress=False)
    shipped = get_recipe("sd2-tiny").with_overrides(batch_size=2, vae_steps=2, unet_steps=3)
    recipe = dataclasses.replace(shipped, attention_heads=None, prediction_type=None)
    assert train_builtin(recipe, options).exists()
    family_layout = dict(prediction_type="v_prediction", transformer_layers=1)
    assert train_builtin(recipe.with_overrides(**family_layout), options).exists()
    kept = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["recipe"]
    assert kept["prediction_type"] is None and kept["transformer_layers"] is None  # what the refusals compare with
    with pytest.raises(UserError, match=r"different recipe \(prediction_type\)"):
        train_builtin(recipe.with_overrides(prediction_type="epsilon"), options)
    with pytest.raises(UserError, match=r"different recipe \(attention_heads\)"):
        train_builtin(recipe.with_overrides(attention_heads=4), options)  # 4 heads in the 32-channel block too
    with pytest.raises(UserError, match=r"different recipe \(attention_heads\)"):  # not the fields naming defaults
        train_builtin(recipe.with_overrides(attention_heads=4, **family_layout), options)


def test_recipes_fix_steps_and_seeds():
    assert set(RECIPES) == {"sd1-tiny", "sd2-tiny", "sdxl-tiny"}
    assert [RECIPES[name].family for name in ("sd1-tiny", "sd2-tiny", "sdxl-tiny")] == ["sd1", "sd2", "sdxl"]
    assert len({r.seed for r in RECIPES.values()}) == len(RECIPES)
    assert all(r.unet_steps > 1000 and r.vae_steps > 100 for r in RECIPES.values())


def test_learning_rate_warms_up_then_decays():
    rates = [learning_rate(step, 1000, 1e-3, 100) for step in range(1000)]
    assert rates[0] == pytest.approx(1e-5) and rates[99] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[100:-1], rates[101:], strict=True))
    assert rates[-1] == pytest.approx(5e-5, rel=0.01)


def test_ema_warms_up_and_tracks_the_weights():
    weight = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"w": weight}, decay=0.9)
    with torch.no_grad():
        weight.fill_(1.0)
    ema.update()  # decay min(0.9, 2/11)
    assert torch.allclose(ema.shadow["w"], torch.full((3,), 1 - 2 / 11))
    for _ in range(200):
        ema.update()
    assert torch.allclose(ema.weights("")["w"], torch.ones(3), atol=1e-6)


# -- SDXL ---------------------------------------------------------------------------------------------


def test_sdxl_smoke_training_writes_an_sdxl_pipeline_and_a_bundle_of_both_encoders(tmp_path):
    out = tmp_path / "sdxl"
    args = ["train-builtin", "sdxl-tiny", "--out", str(out), "--steps", "2", *SMOKE]
    assert store_main([*args, "--snapshot", str(out / "snap.safetensors"), "--snapshot-every", "2"]) == 0
    pipe = load_pipeline(str(out / "pipeline"))
    assert type(pipe).__name__ == "StableDiffusionXLPipeline" and type(pipe.scheduler).__name__.startswith("Euler")
    assert pipe("a red circle", num_inference_steps=2, output_type="np").images[0].shape == (32, 32, 3)
    # the vocabulary ships as vocab.json + merges.txt, and the second tokenizer still pads with "!"
    assert not list(out.glob("pipeline/tokenizer*/tokenizer.json"))
    assert pipe.tokenizer("a photo of a dog").input_ids == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert pipe.tokenizer_2.pad_token_id == 0 and pipe.tokenizer.pad_token_id == 49407

    weights, configs, info = load_bundle(out / "snap.safetensors")
    assert {"text_encoder", "text_encoder_2"} <= set(weights) <= set(configs)
    red, exclamation = 736, 0  # "red</w>" and "!" (the second tokenizer's padding): world rows, stored exactly
    for encoder in ("text_encoder", "text_encoder_2"):
        (key,) = [k for k in weights[encoder] if k.endswith("token_embedding.weight")]
        table = weights[encoder][key]
        assert not torch.equal(table[red], table[red].half().float())
        assert torch.equal(table[5000], table[5000].half().float())
    assert not torch.equal(table[exclamation], table[exclamation].half().float())
    bundle_to_folder(out / "snap.safetensors", tmp_path / "unpacked")
    unpacked = load_pipeline(str(tmp_path / "unpacked"))
    assert type(unpacked).__name__ == "StableDiffusionXLPipeline"
    shipped, again = unet_weights(out / "pipeline"), unet_weights(tmp_path / "unpacked")
    assert all(torch.equal(shipped[k], again[k]) for k in shipped)


def test_sdxl_training_conditions_the_unet_as_the_pipeline_does(tmp_path):
    """The conditioning trained on is what `StableDiffusionXLPipeline` passes at inference: both encoders'
    penultimate states, the pooled projection, the size/crop ids, and zeros for the empty caption."""
    from daam_store.training.data import Batch
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sdxl-tiny").with_overrides(batch_size=2, pooled_dropout=0.0)
    trainer = Trainer(recipe, TrainOptions(out=tmp_path, progress=False))
    pipe = trainer.pipe
    caption = "a red circle and a blue square"

    def ids(tokenizer):
        tokens = tokenizer([caption] * 2, padding="max_length", max_length=77, return_tensors="pt")
        return tokens.input_ids

    batch = Batch(
        torch.zeros(2, 3, 32, 32), ids(pipe.tokenizer), ids(pipe.tokenizer_2), torch.tensor([True, False]), None
    )
    with torch.no_grad():
        hidden, added = trainer._condition(batch)
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(caption, device="cpu", num_images_per_prompt=1)
    assert torch.allclose(hidden[1], embeds[0], atol=1e-6) and torch.allclose(
        added["text_embeds"][1], pooled[0], atol=1e-6
    )
    assert torch.equal(hidden[0], negative[0]) and torch.equal(added["text_embeds"][0], negative_pooled[0])
    assert not negative.any()

    trainer.recipe = recipe.with_overrides(pooled_dropout=1.0)  # the global path off, cross-attention kept
    with torch.no_grad():
        hidden_without, added_without = trainer._condition(batch)
    assert not added_without["text_embeds"].any() and torch.equal(hidden_without, hidden)

    seen = []
    pipe.unet.register_forward_pre_hook(
        lambda _, args, kwargs: seen.append(kwargs["added_cond_kwargs"]), with_kwargs=True
    )
    pipe(caption, num_inference_steps=1)
    assert seen[0]["time_ids"][0].tolist() == added["time_ids"][0].tolist()


def test_a_recipe_with_extra_colours_and_shapes_trains_on_them_with_both_tokenizers(tmp_path):
    """The recipe fields reach the trainer's batches: extra colours and shapes drawn, captions with their
    words, and SDXL's second tokenizer (padding with "!") writes them too."""
    from daam_store import world
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sdxl-tiny").with_overrides(batch_size=64, extra_colours=2, extra_shapes=2)
    trainer = Trainer(recipe, TrainOptions(out=tmp_path, progress=False))
    batch = trainer.data.batch("unet", 0)
    token_id = lambda word: trainer.pipe.tokenizer.convert_tokens_to_ids(f"{word}</w>")  # noqa: E731
    extra_ids = {token_id(word) for word in world.EXTRA_COLOURS[:2] + world.EXTRA_SHAPES[:2]}
    unused_ids = {token_id(world.EXTRA_COLOURS[2]), token_id(world.EXTRA_SHAPES[2])}
    for ids in (batch.ids, batch.ids_2):
        used = set(ids.flatten().tolist())
        assert extra_ids <= used and not unused_ids & used
    assert set(extra_ids) <= set(trainer.world_rows)


def test_a_recipe_with_shape_shading_trains_on_shaded_scenes(tmp_path):
    """The recipe field reaches the trainer's batches: the same scenes, rendered with the shading."""
    from daam_store import world
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sd1-tiny").with_overrides(batch_size=8, shape_shading=0.2)
    trainer = Trainer(recipe, TrainOptions(out=tmp_path, progress=False))
    scenes = trainer.data.scenes("unet", 5)
    images = trainer.data.batch("unet", 5).images
    assert torch.allclose(images, world.render(scenes, shading=0.2)[0] * 2 - 1)
    assert not torch.allclose(images, world.render(scenes)[0] * 2 - 1)


def test_a_recipe_with_other_object_counts_trains_on_them(tmp_path):
    from daam_store import world
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sd2-tiny").with_overrides(batch_size=64, object_counts=(0.0, 0.0, 1.0))
    trainer = Trainer(recipe, TrainOptions(out=tmp_path, progress=False))
    batch = trainer.data.batch("unet", 0)
    ands = (batch.ids == trainer.data.tokens.and_).sum(dim=1)
    commas = (batch.ids == trainer.data.tokens.comma).sum(dim=1)
    assert bool((ands[~batch.dropped] == 1).all() and (commas[~batch.dropped] == 1).all())  # "a .., a .. and a .." only
    assert get_recipe("sd2-tiny").object_counts == world.OBJECT_COUNT_PROBS  # the recipe default is the world's


@pytest.mark.parametrize("zeroed", [False, True])
def test_zeroed_text_residuals_start_the_encoder_as_its_embeddings(tmp_path, zeroed):
    """With the option a 1-layer encoder's output is its embeddings through the final layer norm (the 0-layer
    encoder's), and the zeroed projections still get gradients; without it the layer changes the output."""
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sd1-tiny").with_overrides(text_layers=1, zero_text_residuals=zeroed, batch_size=4)
    trainer = Trainer(recipe, TrainOptions(out=tmp_path, progress=False))
    encoder = trainer.text_encoders["text_encoder"]
    text_model = getattr(encoder, "text_model", encoder)  # transformers 5 flattened CLIPTextModel
    ids = trainer.data.batch("unet", 0).ids
    output = text_model(ids).last_hidden_state
    embeddings_only = text_model.final_layer_norm(text_model.embeddings(input_ids=ids))
    assert torch.allclose(output, embeddings_only, atol=1e-5) == zeroed
    output.square().mean().backward()
    assert text_model.encoder.layers[0].mlp.fc2.weight.grad.abs().sum() > 0


def test_zeroed_text_residuals_reach_both_sdxl_encoders(tmp_path):
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sdxl-tiny").with_overrides(zero_text_residuals=True, batch_size=4)
    trainer = Trainer(recipe, TrainOptions(out=tmp_path, progress=False))
    for name, encoder in trainer.text_encoders.items():
        projections = [p for n, p in encoder.named_parameters() if "out_proj" in n or "fc2" in n]
        assert projections and all(not p.any() for p in projections), name


EMBEDDING_TABLES = ("token_embedding.weight", "position_embedding.weight")  # parameter names' endings


@pytest.mark.parametrize(("model", "encoders"), [("sd1-tiny", 1), ("sdxl-tiny", 2)])
def test_text_embedding_std_redraws_every_encoders_tables_from_the_seed(tmp_path, model, encoders):
    """The option sets the scale of every token and position embedding the UNet reads, the same for a seed, in the
    weights and in the EMA that ships; every other initial weight stays as without it."""
    from daam_store.training.loop import Trainer

    def weights(std, seed=3):
        recipe = get_recipe(model).with_overrides(text_embedding_std=std, seed=seed, batch_size=4)
        trainer = Trainer(recipe, TrainOptions(out=tmp_path / f"{std}-{seed}", progress=False))
        assert all(torch.equal(trainer.ema.shadow[n], p) for n, p in trainer.ema.parameters.items())
        return {name: parameter.detach().clone() for name, parameter in trainer.ema.parameters.items()}

    def tables(named):
        return [w for n, w in named.items() if n.endswith(EMBEDDING_TABLES)]

    clip_init, redrawn = weights(None), weights(0.7)
    assert len(tables(redrawn)) == 2 * encoders
    assert all(abs(table.std().item() - 0.02) < 0.002 for table in tables(clip_init))
    assert all(abs(table.std().item() - 0.7) < 0.02 for table in tables(redrawn))
    untouched = [n for n in redrawn if not n.endswith(EMBEDDING_TABLES)]
    assert untouched and all(torch.equal(redrawn[n], clip_init[n]) for n in untouched)
    assert all(torch.equal(a, b) for a, b in zip(tables(redrawn), tables(weights(0.7)), strict=True))
    assert not torch.equal(tables(redrawn)[0], tables(weights(0.7, seed=4))[0])


@pytest.mark.parametrize("model", ["sd1-tiny", "sd2-tiny", "sdxl-tiny"])
def test_attention_heads_split_the_same_initial_weights_differently(tmp_path, model):
    """A head-count ablation changes one thing: every cross- and self-attention layer has the new head count,
    the config that ships says so, and the seeded initial weights are those of the recipe's own layout."""
    from daam_store.training.loop import Trainer

    def initial_unet(heads):
        recipe = get_recipe(model).with_overrides(attention_heads=heads, batch_size=4)
        return Trainer(recipe, TrainOptions(out=tmp_path / str(heads), progress=False)).unet

    default, wide = initial_unet(None), initial_unet(1)  # one head: no recipe's own layout
    attention = [m for n, m in wide.named_modules() if n.endswith(("attn1", "attn2"))]
    assert attention and {m.heads for m in attention} == {1}
    assert {m.heads for n, m in default.named_modules() if n.endswith("attn2")} != {1}
    assert wide.config.attention_head_dim in (1, [1, 1, 1], (1, 1, 1))
    for (name, weight), expected in zip(wide.state_dict().items(), default.state_dict().values(), strict=True):
        assert torch.equal(weight, expected), name


@pytest.mark.parametrize("model", ["sd1-tiny", "sdxl-tiny"])
def test_transformer_layers_deepen_every_cross_attention_block(tmp_path, model):
    """A depth ablation: every cross-attention block, the mid block's too, gets the same number of transformer
    layers, each with its own cross-attention for the tracer to see."""
    from daam_store.training.loop import Trainer

    recipe = get_recipe(model).with_overrides(transformer_layers=3, batch_size=4)
    unet = Trainer(recipe, TrainOptions(out=tmp_path, progress=False)).unet
    blocks = [m for m in unet.modules() if isinstance(m, Transformer2DModel)]
    assert blocks and {len(m.transformer_blocks) for m in blocks} == {3}
    # 7 cross-attention blocks in both layouts (SDXL's one level lower): 7 or 11 attn2 layers by default
    assert sum(name.endswith("attn2") for name, _ in unet.named_modules()) == 3 * 7
    assert unet.config.transformer_layers_per_block in (3, [3, 3, 3], (3, 3, 3))


@pytest.mark.parametrize("model", ["sd1-tiny", "sd2-tiny"])
def test_four_unet_levels_give_the_sd_layout_cross_attention_at_4x4(tmp_path, model):
    """SD 1.x's and 2.x's four levels: cross-attention at 16x16, 8x8 and 4x4, a plain block at 2x2, the mid block
    at 2x2; the other recipe fields keep their layout (both recipes' two heads)."""
    from daam_store.training.loop import Trainer

    recipe = get_recipe(model).with_overrides(unet_levels=4, batch_size=4)
    unet = Trainer(recipe, TrainOptions(out=tmp_path, progress=False)).unet
    assert list(unet.config.down_block_types) == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert list(unet.config.up_block_types) == ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
    assert sum(name.endswith("attn2") for name, _ in unet.named_modules()) == 3 + 3 * 2 + 1
    heads = {m.heads for n, m in unet.named_modules() if n.endswith("attn2")}
    assert heads == {2}
    latents = torch.zeros(1, 4, 16, 16)
    context = torch.zeros(1, 77, unet.config.cross_attention_dim)
    assert unet(latents, 10, encoder_hidden_states=context).sample.shape == latents.shape


def test_a_head_count_that_does_not_split_the_channels_is_refused_by_the_library_too():
    from daam_store.models import build_random_pipeline

    with pytest.raises(UserError, match="--attention-heads must be one of"):
        build_random_pipeline("sd2", attention_heads=3)


def test_another_seed_replicates_the_recipe_from_other_weights_and_scenes(tmp_path):
    from daam_store.training.loop import Trainer

    train(tmp_path / "seed7", 3, "--seed", "7")
    assert json.loads((tmp_path / "seed7" / "pipeline" / "training.json").read_text())["recipe"]["seed"] == 7

    def start(seed):
        recipe = get_recipe("sd2-tiny").with_overrides(seed=seed, batch_size=4)
        return Trainer(recipe, TrainOptions(out=tmp_path / str(seed), progress=False))

    recipes_own, seeded = start(None), start(7)
    weights = zip(recipes_own.unet.state_dict().values(), seeded.unet.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in weights)
    first_captions = [trainer.data.batch("unet", 0).ids for trainer in (recipes_own, seeded)]
    assert not torch.equal(*first_captions)


def test_the_prediction_type_is_a_recipe_field_the_trained_pipeline_keeps(tmp_path):
    """sd2-tiny's recipe predicts the noise (epsilon, as SD 2.x base); --prediction-type v_prediction trains it
    on v instead (as SD 2.1-768), and the exported scheduler tells the pipeline which it is."""
    from daam_store.models import load_pipeline
    from daam_store.training.loop import Trainer

    recipe = get_recipe("sd2-tiny").with_overrides(batch_size=4)
    assert recipe.prediction_type == "epsilon"
    assert Trainer(recipe, TrainOptions(out=tmp_path / "eps", progress=False))._epsilon()  # the loss's target
    v_recipe = recipe.with_overrides(prediction_type="v_prediction")
    assert not Trainer(v_recipe, TrainOptions(out=tmp_path / "start", progress=False))._epsilon()
    train(tmp_path / "v", 1, "--prediction-type", "v_prediction")
    folder = tmp_path / "v" / "pipeline"
    assert json.loads((folder / "training.json").read_text())["recipe"]["prediction_type"] == "v_prediction"
    assert load_pipeline(str(folder)).scheduler.config.prediction_type == "v_prediction"


@pytest.mark.parametrize(
    ("family", "wanted", "expected"),
    [
        ("sd2", None, "v_prediction"),
        ("sdxl", "v_prediction", "v_prediction"),
        ("sdxl", None, "epsilon"),
        ("sd1", None, "epsilon"),
    ],
)
def test_the_random_pipeline_predicts_what_it_is_told_or_its_familys_default(family, wanted, expected):
    from daam_store.models import build_random_pipeline

    assert build_random_pipeline(family, prediction_type=wanted).scheduler.config.prediction_type == expected


def test_an_unknown_prediction_type_is_refused_in_one_line():
    from daam_store.models import build_random_pipeline

    with pytest.raises(UserError, match="--prediction-type must be one of epsilon, v_prediction, got 'sample'"):
        build_random_pipeline("sd2", prediction_type="sample")


def test_the_train_command_a_card_names_trains_the_same_recipe():
    """train_command (the model card's "Reproduce" line) read back through the real parser gives the recipe."""
    import shlex
    from dataclasses import replace

    from daam_store.cli import store_parser
    from daam_store.commands.train import recipe_from_args
    from daam_store.training.recipes import train_command

    def round_trip(recipe):
        command, unflagged = train_command(json.loads(json.dumps(recipe.to_dict())))  # as training.json has it
        assert command.startswith(f"daam-store train-builtin {recipe.name}")
        return recipe_from_args(store_parser().parse_args(shlex.split(command)[1:])), command, unflagged

    shipped = get_recipe("sd1-tiny")
    assert round_trip(shipped) == (shipped, "daam-store train-builtin sd1-tiny", [])
    changes = dict(seed=11, unet_steps=4800, prediction_type="v_prediction", transformer_layers=2)
    changed = replace(shipped, **changes, object_counts=(0.2, 0.6, 0.2))
    rebuilt, command, unflagged = round_trip(changed)
    assert rebuilt == changed and not unflagged
    assert "--seed 11" in command and "--object-counts 0.2,0.6,0.2" in command
    xl = replace(
        get_recipe("sdxl-tiny"),
        pooled_dropout=0.95,
        zero_text_residuals=True,
        shape_shading=0.2,
        text_embedding_std=0.7,
    )
    assert round_trip(xl)[0] == xl
    # what no flag gives back is named, not dropped: a learning rate, the family's heads instead of the recipe's two
    _, command, unflagged = round_trip(replace(shipped, unet_lr=1e-3, attention_heads=None))
    assert command == "daam-store train-builtin sd1-tiny" and unflagged == ["attention_heads None", "unet_lr 0.001"]
    old = {key: value for key, value in shipped.to_dict().items() if key != "prediction_type"}  # before the field
    assert train_command(old) == ("daam-store train-builtin sd1-tiny", [])
