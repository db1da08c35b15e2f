"""Experiments on disk (no pickle) and the seed-compatible `daam` CLI."""

import pickle

import pytest
import torch

from daam_store import GenerationExperiment, set_seed, trace
from daam_store.cli import daam_main
from daam_store.errors import UserError

SEED_FILES = {"output.png", "prompt.txt", "seed.txt", "generation.pt"}


def test_experiment_round_trip_without_pickle(sd1_pipe, tmp_path):
    with trace(sd1_pipe, save_steps=True) as tc:
        sd1_pipe("a red circle", num_inference_steps=2, generator=set_seed(4))
    tc.to_experiment(tmp_path / "exp", seed=4, metadata={"model": "tiny"}).save()
    assert SEED_FILES | {"red.heat_map.png", "circle.heat_map.png", "a.heat_map.png"} <= {
        p.name for p in (tmp_path / "exp").iterdir()
    }
    raw = torch.load(tmp_path / "exp" / "generation.pt", weights_only=True)
    assert raw["prompt"] == "a red circle"
    loaded = GenerationExperiment.load(tmp_path / "exp")
    assert loaded.prompt == "a red circle" and loaded.seed == 4 and loaded.metadata["model"] == "tiny"
    assert loaded.metadata["steps"] == 2 and loaded.metadata["scheduler"] == "DDIMScheduler"
    torch.testing.assert_close(loaded.global_heat_map, tc.compute_global_heat_map().heat_maps)
    assert loaded.step_heat_maps.shape[0] == 2 and loaded.layer_heat_maps.shape[0] == 7
    assert loaded.image.size == (32, 32)
    word = loaded.heat_map().compute_word_heat_map("circle").value
    torch.testing.assert_close(word, tc.compute_global_heat_map().compute_word_heat_map("circle").value)


def test_loading_refuses_pickled_files(tmp_path):
    (tmp_path / "generation.pt").write_bytes(pickle.dumps(object()))
    with pytest.raises(UserError, match="never unpickled") as refused:
        GenerationExperiment.load(tmp_path)
    # torch's hint to unpickle anyway ("if you trust the source") is not passed on
    assert "trust" not in str(refused.value)
    with pytest.raises(UserError, match="not an experiment directory"):
        GenerationExperiment.load(tmp_path / "missing")


def test_cli_writes_the_seed_files(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = daam_main(
        [
            "A dog, running across the field.",
            "--model",
            str(tiny_model_dir),
            "--steps",
            "2",
            "--seed",
            "7",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert SEED_FILES <= names
    assert {f"{w}.heat_map.png" for w in ("a", "dog", "running", "across", "the", "field")} <= names
    assert (out / "seed.txt").read_text() == "7"
    assert (out / "prompt.txt").read_text() == "A dog, running across the field."
    assert GenerationExperiment.load(out).seed == 7


def test_cli_words_subset_and_options(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    code = daam_main(
        [
            "a red circle",
            "--model",
            str(tiny_model_dir),
            "-n",
            "2",
            "--words",
            "circle",
            "--guidance",
            "1",
            "--negative-prompt",
            "blue",
            "--height",
            "24",
            "--width",
            "40",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.glob("*.heat_map.png")) == ["circle.heat_map.png"]
    experiment = GenerationExperiment.load(out)
    assert experiment.image.size == (40, 24)
    assert experiment.metadata["negative_prompt"] == "blue" and experiment.metadata["do_cfg"] is False


@pytest.mark.parametrize(
    "args,message",
    [
        (["a dog", "--model", "no-such-model"], "unknown model"),
        (["a dog", "--seed", "abc"], "bad seed"),
        (["a dog", "--seed", "-1"], "bad seed"),
        (["   "], "prompt is empty"),
        (["a dog", "--words", "cat"], "not in the prompt"),
        (["a dog", "--steps", "0"], "bad number of steps"),
        (["a dog", "--device", "nonsense"], "unknown device"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(args, message, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    if "--model" not in args:
        args = [*args, "--model", str(tiny_model_dir)]
    assert daam_main([*args, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_cli_store_saves_the_generation(tiny_model_dir, tmp_path):
    from daam_store.store import open_store, queries

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["a red circle", "--model", str(tiny_model_dir), "-n", "2", "--output-dir", str(tmp_path / "out")]
    assert daam_main([*args, "--store", "--db", url, "--author", "ann", "--tags", "cli,test"]) == 0
    store = open_store(url)
    with store.session() as session:
        ids = queries.all_generation_ids(session)
        generation = queries.get_generation(session, ids[0])
    assert len(ids) == 1 and generation.author == "ann" and set(generation.tags) == {"cli", "test"}
    experiment = store.load_experiment(ids[0])
    assert experiment.prompt == "a red circle" and experiment.seed == 0


def test_cli_store_unreachable_database_fails_before_generating(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    assert daam_main(["a dog", "--model", str(tiny_model_dir), "--store", "--db", url, "--output-dir", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


def test_saving_over_an_experiment_leaves_none_of_its_overlays(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    assert daam_main(["a red circle", "--model", str(tiny_model_dir), "-n", "1", "--output-dir", str(out)]) == 0
    assert (out / "circle.heat_map.png").is_file()
    assert daam_main(["a blue square", "--model", str(tiny_model_dir), "-n", "1", "--output-dir", str(out)]) == 0
    overlays = {p.name for p in out.glob("*.heat_map.png")}
    assert overlays == {"a.heat_map.png", "blue.heat_map.png", "square.heat_map.png"}
    plain = tmp_path / "plain"  # no experiment there yet: files that only look like overlays are left alone
    plain.mkdir()
    (plain / "mine.heat_map.png").write_bytes(b"kept")
    assert daam_main(["a red circle", "--model", str(tiny_model_dir), "-n", "1", "--output-dir", str(plain)]) == 0
    assert (plain / "mine.heat_map.png").read_bytes() == b"kept"


def test_cli_refuses_a_tag_or_author_the_store_cannot_keep_before_generating(tmp_path, capsys):
    """The model named does not exist: the tag's error comes first, so nothing was loaded or generated."""
    base = ["a dog", "--model", str(tmp_path / "no-model"), "--store", "--db", f"sqlite:///{tmp_path / 's.db'}"]
    assert daam_main([*base, "--tags", "ok," + "t" * 150]) == 2
    assert "has 150 characters: a tag has at most 100" in capsys.readouterr().err
    assert daam_main([*base, "--author", "a" * 201]) == 2
    assert "has 201 characters: at most 200" in capsys.readouterr().err


def test_a_long_cut_is_named_in_a_short_line():
    from daam_store.heatmap import PromptTokens, cut_message

    words = [f"word{i}" for i in range(5000)]
    assert len(cut_message(5080, words)) < 300 and cut_message(5080, words).endswith("... and 4988 more")
    tokens = PromptTokens(("<|startoftext|>", "<|endoftext|>"), (), cut_words=tuple(words))
    assert len(tokens.unmapped_note()) < 300


def test_cli_unwritable_output_is_one_line(tiny_model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert daam_main(["a dog", "--model", str(tiny_model_dir), "-n", "1", "--output-dir", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_cli_says_once_what_has_no_map(tiny_model_dir, tmp_path, capsys):
    """Symbols and words cut by the 77-token limit: one line on stderr, each named once (the tracer's own
    warning is not repeated)."""
    prompt = "a 🐶 " + " ".join(["red"] * 73) + " big blue whale"
    code = daam_main([prompt, "--model", str(tiny_model_dir), "--steps", "1", "--output-dir", str(tmp_path / "o")])
    assert code == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "whale" in line or "🐶" in line]
    assert len(notes) == 1 and err.count("whale") == 1 and err.count("🐶") == 1, err
    assert "Symbols and emoji get no map: 🐶" in notes[0] and "3 words cut by CLIP's 77-token limit" in notes[0]


def test_a_hub_id_with_the_hub_unreachable_loads_from_the_cache_or_fails_at_once(tiny_model_dir, tmp_path, monkeypatch):
    """With no route to the hub, huggingface_hub retries each request for about a minute; load_pipeline asks once,
    serves what the local cache holds, and names the cause for the rest."""
    import shutil
    import time

    import huggingface_hub.constants

    from daam_store.models import ModelNotFoundError, load_pipeline, pipelines
    from daam_store.store.testing import free_port

    closed_port = free_port()  # nothing listens there: the connection is refused
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pipelines.urllib.request, "getproxies", dict)  # no proxy between
    cached = tmp_path / "hub" / "models--someorg--tiny"  # huggingface_hub's cache layout: a snapshot and its ref
    shutil.copytree(tiny_model_dir, cached / "snapshots" / ("0" * 40))
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text("0" * 40)

    started = time.monotonic()
    assert load_pipeline("someorg/tiny").daam_source.kind == "hub"
    with pytest.raises(ModelNotFoundError) as missing:
        load_pipeline("someorg/missing")
    assert time.monotonic() - started < 20
    assert str(missing.value).startswith("could not load model 'someorg/missing' from the local cache (")
    assert str(missing.value).endswith(f"the model hub cannot be reached (127.0.0.1:{closed_port}: Connection refused)")


def test_the_hub_probe_is_bounded_and_stands_aside_for_a_proxy(monkeypatch):
    import time

    import huggingface_hub.constants

    from daam_store.models import pipelines

    def hanging_connection(address, timeout):  # a name lookup or a silent network that never answers
        time.sleep(30)

    monkeypatch.setattr(pipelines.socket, "create_connection", hanging_connection)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://hub.example")
    monkeypatch.setattr(pipelines.urllib.request, "getproxies", dict)  # no proxy between
    started = time.monotonic()
    assert pipelines.hub_unreachable_reason() == "hub.example:443: no answer within 3 s"
    assert time.monotonic() - started < pipelines.HUB_PROBE_TIMEOUT_S + 2
    monkeypatch.undo()  # the environment's own proxies again, with one set
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert pipelines.hub_unreachable_reason() is None  # only the proxy can tell
