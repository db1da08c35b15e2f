"""`daam-store sweep`: the prompt x seed x model grid, skipping what is stored, resuming after a crash."""

import pytest

import daam_store.sweep as sweep_module
from daam_store.cli import store_main
from daam_store.errors import UserError
from daam_store.store import open_store, queries
from daam_store.sweep import SweepSettings, parse_seed_spec, read_prompts, run_sweep

PROMPTS = ["a red dog", "a dog and a cat"]


def test_seed_spec_ranges_lists_and_errors():
    assert parse_seed_spec("0-3") == [0, 1, 2, 3]
    assert parse_seed_spec("5, 0-2,2") == [5, 0, 1, 2]  # order kept, repeats dropped
    assert len(parse_seed_spec("0-99")) == 100  # a sweep is not limited to the dashboard's batch size
    for bad in ("3-1", "x", "", "-4"):
        with pytest.raises(UserError):
            parse_seed_spec(bad)


def test_prompts_file_skips_blanks_comments_and_repeats(tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("# animals\na red dog\n\n  a cat  \na red dog\n", encoding="utf-8")
    assert read_prompts(file) == ["a red dog", "a cat"]
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(UserError, match="no prompts"):
        read_prompts(tmp_path / "empty.txt")
    with pytest.raises(UserError, match="cannot read"):
        read_prompts(tmp_path / "missing.txt")


def test_sweep_runs_the_grid_tags_it_and_skips_what_is_stored(store_url, tiny_model_dir, tiny_sd2_model_dir):
    store = open_store(store_url)
    models = [str(tiny_model_dir), str(tiny_sd2_model_dir)]
    settings = SweepSettings(steps=2)
    seen = []
    first = run_sweep(store, PROMPTS, [0], models, settings, name="grid", on_progress=lambda p: seen.append(p.fraction))
    assert (first.total, first.generated, first.skipped) == (4, 4, 0)
    assert len(set(first.generation_ids)) == 4
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 4 * 3  # two steps and the end of each job

    # One prompt with one more seed, under a second name: only the new seed runs; found rows get the tag too.
    second = run_sweep(store, PROMPTS[:1], [0, 1], models, settings, name="grid2")
    assert (second.generated, second.skipped) == (2, 2)
    with store.session() as session:
        tags = dict(queries.list_tags(session))
        assert tags["sweep:grid"] == 4 and tags["sweep:grid2"] == 4
        assert queries.count_generations(session) == 6
        rows = queries.list_generations(session, queries.GenerationFilter(tag="sweep:grid2"), limit=100)
        assert sorted((r.model, r.seed) for r in rows) == sorted((m, s) for m in models for s in (0, 1))
        assert {r.prompt for r in rows} == {PROMPTS[0]} and {r.steps for r in rows} == {2}

    # Other settings make other generations: nothing is skipped.
    third = run_sweep(store, PROMPTS[:1], [0], models[:1], SweepSettings(steps=1))
    assert (third.generated, third.skipped) == (1, 0)
    store.close()


def test_sweep_resumes_after_a_crash(tmp_path, tiny_model_dir, monkeypatch):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    real_generate = sweep_module.generate
    calls = []

    def crashing_generate(pipe, request, on_step=None):
        calls.append((request.prompt, request.seed))
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return real_generate(pipe, request, on_step=on_step)

    monkeypatch.setattr(sweep_module, "generate", crashing_generate)
    with pytest.raises(UserError, match=r"seed 0: out of memory; 2 of 4 are stored, run the same sweep again"):
        run_sweep(store, PROMPTS, [0, 1], [str(tiny_model_dir)], SweepSettings(steps=1), name="crash")
    with store.session() as session:
        assert queries.count_generations(session) == 2  # nothing half-written for the failed one

    calls.clear()
    report = run_sweep(store, PROMPTS, [0, 1], [str(tiny_model_dir)], SweepSettings(steps=1), name="crash")
    assert (report.generated, report.skipped) == (2, 2)
    assert calls == [(PROMPTS[1], 0), (PROMPTS[1], 1)]  # only what was missing ran again
    with store.session() as session:
        assert queries.count_generations(session, queries.GenerationFilter(tag="sweep:crash")) == 4
    store.close()


def test_sweep_checks_everything_before_running(tmp_path, tiny_model_dir):
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(UserError, match="unknown model"):
        run_sweep(store, PROMPTS, [0], [str(tiny_model_dir), "no-such-model"], SweepSettings(steps=2))
    with pytest.raises(UserError, match="steps"):
        run_sweep(store, PROMPTS, [0], [str(tiny_model_dir)], SweepSettings(steps=0))
    with pytest.raises(UserError, match="sweep name"):
        run_sweep(store, PROMPTS, [0], [str(tiny_model_dir)], SweepSettings(steps=2), name="a b")
    with store.session() as session:
        assert queries.count_generations(session) == 0
    store.close()


def test_sweep_command(tmp_path, tiny_model_dir, capsys):
    prompts = tmp_path / "animals.txt"
    prompts.write_text("a red dog\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    argv = ["sweep", "--prompts", str(prompts), "--seeds", "0-1", "--models", str(tiny_model_dir), "--steps", "2"]
    assert store_main([*argv, "--db", url]) == 0
    assert "2 generated, 0 already stored; tagged sweep:animals on 2" in capsys.readouterr().out
    assert store_main([*argv, "--db", url]) == 0
    assert "0 generated, 2 already stored" in capsys.readouterr().out

    assert store_main(["sweep", "--prompts", str(prompts), "--seeds", "2-1", "--db", url]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: seed range '2-1' goes backwards") and error.count("\n") == 1

    spaced = tmp_path / "my prompts.txt"
    spaced.write_text("a red dog\n", encoding="utf-8")
    assert store_main(["sweep", "--prompts", str(spaced), "--seeds", "0", "--db", url]) == 2
    assert "bad sweep name 'my prompts'" in (error := capsys.readouterr().err) and "give one with --name" in error
