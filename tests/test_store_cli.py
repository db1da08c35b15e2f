"""`daam-store db`, `import` and `export` end to end, with both directory layouts."""

import pickle

import numpy as np
import PIL.Image
import pytest
from sqlalchemy import select

from daam_store.cli import store_main
from daam_store.experiment import GenerationExperiment
from daam_store.models.info import ModelInfo
from daam_store.store import StoreError, open_store, queries
from daam_store.store.schema import STATUS_OVERLAYS_ONLY, Generation
from daam_store.store.testing import synthetic_experiment

MODEL = ModelInfo("sd2-tiny", "builtin", "", "SD2", "rev-b", 32, "v_prediction")


def test_export_then_import_round_trips(tmp_path, clip_tokenizer, capsys):
    source = f"sqlite:///{tmp_path / 'a.db'}"
    target = f"sqlite:///{tmp_path / 'b.db'}"
    with open_store(source) as store:
        ids = [
            store.save(synthetic_experiment(clip_tokenizer, prompt, seed=s, layers=2), model=MODEL, tags=("t",))
            for prompt, s in [("a cat on a mat", 0), ("a dog, in the snow", 1)]
        ]
    assert store_main(["export", str(tmp_path / "out"), "--url", source]) == 0
    assert store_main(["export", str(tmp_path / "one"), "--generation", str(ids[1]), "--url", source]) == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == [f"generation-{ids[1]}"]

    exported = GenerationExperiment.load(tmp_path / "out" / f"generation-{ids[1]}")
    assert exported.prompt == "a dog, in the snow" and exported.layer_heat_maps.shape[0] == 2
    assert (tmp_path / "out" / f"generation-{ids[1]}" / "snow.heat_map.png").is_file()

    assert store_main(["import", str(tmp_path / "out"), "--url", target, "--author", "cy", "--tags", "x, y"]) == 0
    assert store_main(["import", str(tmp_path / "out"), "--url", target]) == 0  # again: recognised, not doubled
    output = capsys.readouterr().out
    assert "imported 2 of 2 directories" in output
    with open_store(target) as store, store.session() as session:
        rows = queries.list_generations(session)
        assert len(rows) == 2 and {r.model for r in rows} == {"sd2-tiny"} and {r.family for r in rows} == {"SD2"}
        assert {r.author for r in rows} == {"cy"} and {r.tags for r in rows} == {("x", "y")}
        again = store.load_experiment(rows[0].id)
        assert again.metadata["store"]["generation_id"] == rows[0].id  # this database's id, not the source's
        extra = session.scalar(select(Generation.extra).where(Generation.id == rows[0].id))
        assert not set(extra) & {"store", "model", "model_info"}  # derived on load, not stored twice
        assert np.array_equal(np.asarray(again.image), np.asarray(exported.image))
    assert store_main(["db", "check", "--url", target]) == 0


class Bomb:
    """Unpickling this would create the marker file: proof that import never unpickles."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def original_daam_directory(path, marker):
    path.mkdir()
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path / "output.png")
    (path / "prompt.txt").write_text("a cat and a dog")
    (path / "seed.txt").write_text("1234")
    for word in ("cat", "dog"):
        PIL.Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path / f"{word}.heat_map.png")
    (path / "generation.pt").write_bytes(pickle.dumps(Bomb(marker)))


def test_import_of_the_original_daam_layout_never_unpickles(tmp_path, capsys):
    marker = tmp_path / "unpickled"
    original_daam_directory(tmp_path / "orig", marker)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert store_main(["import", str(tmp_path / "orig"), "--url", url, "--model", "CompVis/sd-v1-4"]) == 0
    assert not marker.exists()
    assert "original daam layout" in capsys.readouterr().out
    with open_store(url) as store, store.session() as session:
        (row,) = queries.list_generations(session)
        assert (row.prompt, row.seed, row.status, row.model) == (
            "a cat and a dog",
            1234,
            STATUS_OVERLAYS_ONLY,
            "CompVis/sd-v1-4",
        )
        assert [w.word for w in queries.word_statistics(session, row.id)] == ["a", "cat", "and", "a", "dog"]
        with pytest.raises(StoreError, match="no numeric heat maps"):
            store.load_experiment(row.id)
    assert store_main(["db", "check", "--url", url]) == 0
    assert store_main(["export", str(tmp_path / "back"), "--url", url]) == 0
    back = tmp_path / "back" / f"generation-{row.id}"
    assert (back / "cat.heat_map.png").read_bytes() == (tmp_path / "orig" / "cat.heat_map.png").read_bytes()
    assert (back / "seed.txt").read_text() == "1234"


def test_import_reports_bad_directories_and_keeps_the_good_ones(tmp_path, clip_tokenizer, capsys):
    good = tmp_path / "good"
    synthetic_experiment(clip_tokenizer, "a red cat", seed=1).save(good)
    bad = tmp_path / "bad"
    original_daam_directory(bad, tmp_path / "marker")
    (bad / "prompt.txt").write_text("")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert store_main(["import", str(good), str(bad), "--url", url]) == 2
    captured = capsys.readouterr()
    assert "prompt.txt is missing or empty" in captured.err and "imported 1 of 2" in captured.out
    assert store_main(["import", str(tmp_path / "nowhere"), "--url", url]) == 2
    assert "is not a directory" in capsys.readouterr().err
    with open_store(url) as store, store.session() as session:
        assert queries.count_generations(session) == 1
