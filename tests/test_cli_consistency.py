"""The CLI agrees with its README: one database option, one tag parser, help without torch, ids that can be
found (`ls`), several ids after one flag, the model recorded by `daam`, one-line errors and counts in words."""

import json
import multiprocessing
import os
import pwd
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from daam_store.cli import daam_main, store_main, store_parser
from daam_store.models.info import ModelInfo
from daam_store.store import open_store, queries
from daam_store.store.testing import synthetic_experiment

MODEL = ModelInfo("sd1-tiny", "builtin", "", "SD1", "rev-a", 32, "epsilon")
OTHER = ModelInfo("sd2-tiny", "builtin", "", "SD2", "rev-b", 32, "v_prediction")

# Runs entry points in a fresh interpreter where importing torch, diffusers or transformers fails.
NO_TORCH = """
import sys
from importlib.abc import MetaPathFinder

class NoTorch(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "transformers"):
            raise ImportError(f"{name} must not be imported here")

sys.meta_path.insert(0, NoTorch())
from daam_store.cli import daam_main, store_main

main = daam_main if sys.argv[1] == "daam" else store_main
try:
    code = main(sys.argv[2:])
except SystemExit as stop:
    code = stop.code
sys.exit(code)
"""


def run_without_torch(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True, timeout=60)


def stored(url, clip_tokenizer, rows) -> list[int]:
    """Save synthetic generations: rows of (prompt, seed, model, author, tags)."""
    with open_store(url) as store:
        return [
            store.save(synthetic_experiment(clip_tokenizer, prompt, seed=seed), model=model, author=author, tags=tags)
            for prompt, seed, model, author, tags in rows
        ]


# -- help and argument errors without torch -------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ("daam", "-h"),
        ("daam-store", "-h"),
        *[("daam-store", *sub, "-h") for sub in (["db"], ["db", "check"], ["db", "upgrade"], ["ls"], ["generations"])],
        *[("daam-store", sub, "-h") for sub in ("import", "export", "sweep", "train-builtin", "eval")],
    ],
)
def test_help_does_not_import_torch(argv):
    done = run_without_torch(*argv)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize(
    "argv,message",
    [
        (("daam",), "required: prompt"),
        (("daam", "a dog", "--guidance", "nan"), "--guidance: 'nan' is not a finite number"),
        (("daam", "a dog", "--steps", "many"), "--steps"),
        (("daam-store", "export"), "required: DIR"),
        (("daam-store", "ls", "--limit", "all"), "--limit"),
        # SQLite's driver fails on a number past 64 bits (OverflowError): refused as an argument instead
        (("daam-store", "ls", "--seed", "9" * 30), "--seed: 999999999999999999999999... is out of range"),
        (("daam-store", "export", "d", "--generation", "9" * 30), "--generation"),
        (("daam-store", "jobs", "cancel", "9" * 30), "out of range"),
        (("daam-store", "nonsense"), "invalid choice"),
    ],
)
def test_argument_errors_are_one_line_without_torch(argv, message):
    done = run_without_torch(*argv)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and message in lines[0]


# -- one database option, one tag parser ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["db", "upgrade"],
        ["db", "check"],
        ["ls"],
        ["import", "dir"],
        ["export", "dir"],
        ["sweep", "--prompts", "p.txt", "--seeds", "0"],
    ],
)
def test_every_command_takes_db_and_still_the_old_url(argv, capsys):
    assert store_parser().parse_args([*argv, "--db", "sqlite:///a.db"]).db == "sqlite:///a.db"
    assert store_parser().parse_args([*argv, "--url", "sqlite:///b.db"]).db == "sqlite:///b.db"
    with pytest.raises(SystemExit):
        store_parser().parse_args([*argv, "-h"])
    shown = capsys.readouterr().out
    assert "--db URL" in shown and "--url" not in shown and "$DAAM_STORE_URL" in shown


def test_one_tag_parser_everywhere():
    from pathlib import Path

    from daam_store import tags
    from daam_store.commands import io

    generate_page = Path(__file__).resolve().parents[1] / "dashboard" / "app_pages" / "1_Generate.py"
    assert "from daam_store.tags import parse_tags" in generate_page.read_text() and io.parse_tags is tags.parse_tags
    assert tags.parse_tags(" x, y ,, x ") == ("x", "y") and tags.parse_tags(None) == ()


# -- finding and exporting generations ------------------------------------------------------------------------
def test_export_takes_several_ids_after_one_flag(tmp_path, clip_tokenizer, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    ids = stored(url, clip_tokenizer, [(p, 0, MODEL, None, ()) for p in ("a cat", "a dog", "a cow")])
    out = tmp_path / "out"
    assert store_main(["export", str(out), "--generation", str(ids[0]), str(ids[2]), "--db", url]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"generation-{ids[0]}", f"generation-{ids[2]}"]
    assert "exported 2 generations" in capsys.readouterr().out
    assert store_main(["export", str(tmp_path / "one"), "--generation", str(ids[1]), "--db", url]) == 0
    assert "exported 1 generation to" in capsys.readouterr().out


def test_jobs_refuses_a_limit_below_one_as_ls_does(tmp_path, capsys):
    for command in ("ls", "jobs"):
        assert store_main([command, "--limit", "0", "--db", f"sqlite:///{tmp_path / 's.db'}"]) == 2
        assert capsys.readouterr().err == "error: --limit must be at least 1, got 0\n"


def test_ls_lists_and_filters_generations(tmp_path, clip_tokenizer, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    ids = stored(
        url,
        clip_tokenizer,
        [
            ("a red cat", 1, MODEL, "ann", ("x",)),
            ("a blue dog", 2, MODEL, "bob", ()),
            ("a red dog", 3, OTHER, "ann", ("x", "y")),
        ],
    )
    assert store_main(["ls", "--db", url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in table[:-1]] == ids[::-1] and table[-1] == "3 generations"

    def listed(*options):
        assert store_main(["generations", "--db", url, "--json", *options]) == 0
        return [row["id"] for row in json.loads(capsys.readouterr().out)]

    assert listed("--model", "sd2-tiny") == [ids[2]]
    assert listed("--prompt", "RED") == [ids[2], ids[0]]
    assert listed("--word", "dog", "--author", "ann") == [ids[2]]
    assert listed("--seed", "1", "2") == [ids[1], ids[0]]
    assert listed("--tag", "x", "--limit", "1") == [ids[2]]
    assert store_main(["ls", "--db", url, "--tag", "y"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 generation"
    assert store_main(["ls", "--db", url, "--limit", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 of 3 generations"
    assert store_main(["ls", "--db", url, "--model", "sd9"]) == 2
    assert "stored models: sd1-tiny, sd2-tiny" in capsys.readouterr().err


# -- what `daam` writes ----------------------------------------------------------------------------------------
def test_daam_records_the_model_and_import_keeps_it(tmp_path, capsys):
    out, url = tmp_path / "out", f"sqlite:///{tmp_path / 's.db'}"
    assert daam_main(["a dog and a dog", "--model", "sd1-tiny", "-n", "2", "--output-dir", str(out)]) == 0
    # "a", "dog" and "and" are three files, though the prompt has five words
    assert len(list(out.glob("*.heat_map.png"))) == 3 and "and 3 heat maps" in capsys.readouterr().out
    recorded = json.loads((out / "metadata.json").read_text())
    assert recorded["model"] == "sd1-tiny" and recorded["model_info"]["family"] == "SD1"
    assert recorded["model_info"]["source"] == "builtin" and recorded["model_info"]["revision"]

    assert store_main(["import", str(out), "--db", url]) == 0
    assert "imported 1 of 1 directory" in capsys.readouterr().out
    with open_store(url) as store, store.session() as session:
        (model,) = queries.list_models(session)
    assert (model.name, model.family, model.revision) == ("sd1-tiny", "SD1", recorded["model_info"]["revision"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--height", "100000", "--width", "100000"], "height 100000 px is too large for this model: at most 128 px"),
        (["--width", "136"], "at most 128 px (4x its default 32 px)"),
    ],
)
def test_daam_refuses_sizes_the_model_cannot_take(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert daam_main(["a dog", "--model", "sd1-tiny", *args, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_daam_and_sweep_refuse_guidance_that_is_not_finite(value, tmp_path, capsys):
    for main, argv in [
        (daam_main, ["a dog", f"--guidance={value}", "--output-dir", str(tmp_path / "out")]),
        (store_main, ["sweep", "--prompts", "p.txt", "--seeds", "0", f"--guidance={value}"]),
    ]:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(err) == 1 and "is not a finite number" in err[0]
    assert not (tmp_path / "out").exists()


def test_generation_request_refuses_nan_guidance():
    from daam_store.errors import UserError
    from daam_store.generate import GenerationRequest

    with pytest.raises(UserError, match="finite"):
        GenerationRequest("a dog", guidance_scale=float("nan")).validate()


# -- databases that cannot be used as asked --------------------------------------------------------------------
def test_db_check_of_a_missing_file_does_not_create_it(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "missing.db"
    assert store_main(["db", "check", "--db", f"sqlite:///{missing}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert not missing.exists() and not missing.parent.exists()


def test_db_check_counts_in_words(tmp_path, clip_tokenizer, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    stored(url, clip_tokenizer, [("a cat", 1, MODEL, None, ())])
    assert store_main(["db", "check", "--db", url]) == 0
    assert ": 1 generation, 2 heat maps checked: all complete" in capsys.readouterr().out


def _as_nobody(argv: list[str], results) -> None:
    """Child: drop root (which ignores file modes), run the CLI, report its exit code and output."""
    import contextlib
    import io

    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = store_main(argv)
    results.put((code, out.getvalue(), err.getvalue()))


def run_as_nobody(argv: list[str]) -> tuple[int, str, str]:
    results = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_as_nobody, args=(argv, results))
    child.start()
    child.join(60)
    return results.get(timeout=5)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
@pytest.mark.parametrize("folder_writable", [True, False])
def test_a_read_only_store_is_browsed_and_refuses_writes_in_one_line(folder_writable, clip_tokenizer, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="daam-ro-#%-"))  # characters that mean something in an SQLite URI
    url = f"sqlite:///{folder / 'store.db'}"
    (generation_id,) = stored(url, clip_tokenizer, [("a cat", 1, MODEL, None, ())])
    exported = tmp_path / "exported"
    assert store_main(["export", str(exported), "--db", url]) == 0
    (folder / "store.db").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    folder.chmod(0o777 if folder_writable else 0o755)
    before = sorted(p.name for p in folder.iterdir())

    code, out, err = run_as_nobody(["ls", "--db", url])
    assert code == 0 and out.splitlines()[-1] == "1 generation" and str(generation_id) in out, err
    code, out, err = run_as_nobody(["import", str(exported), "--db", url])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "read-only" in lines[0] and "browsed" in lines[0]
    if not folder_writable:
        assert sorted(p.name for p in folder.iterdir()) == before
