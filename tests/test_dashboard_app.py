"""The dashboard: its library half (`daam_store.views`) and every page under Streamlit's AppTest.

Pages run against a real temporary SQLite store (through $DAAM_STORE_URL) and a real tiny pipeline saved
as a local diffusers folder, so a generation here is the same code path as in the browser: the Generate page
queues jobs, the local worker thread the frame starts runs them, and the page (run again until they are
finished, as its live fragment would) shows what the store says.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from markdown_support import as_read
from PIL import Image
from streamlit.testing.v1 import AppTest

from daam_store.errors import UserError
from daam_store.experiment import GenerationExperiment
from daam_store.generate import GenerationRequest, generate
from daam_store.tags import parse_tags
from daam_store.views.common import enlarge, word_overlays
from daam_store.views.explore import experiment_zip, layer_overlays, step_overlays, token_rows
from daam_store.views.generate import MAX_BATCH, BatchRequest, parse_prompts

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
PROMPT = "a red circle and a blue square"
WORDS = ["a", "red", "circle", "and", "a", "blue", "square"]
DOG = "a dog **bold** <b>html</b>"  # user text that Markdown or HTML would change

pytestmark = pytest.mark.usefixtures("no_leaked_workers")  # each test's dashboard worker stops with it


# -- reading the Generate form ---------------------------------------------------------------------


def test_prompts_one_per_line_and_tags_comma_separated():
    assert parse_prompts("  a dog \n\n a cat\na dog") == ["a dog", "a cat"]
    with pytest.raises(UserError):
        parse_prompts(" \n ")
    assert parse_tags(" x, y ,, x ") == ("x", "y")


def test_batch_request_is_prompt_by_seed_and_refuses_a_grid_over_the_limit():
    batch = BatchRequest(prompts=("a", "b"), seeds=(1, 2, 3), steps=4)
    assert [(job.prompt, job.seed) for job in batch.jobs] == [(p, s) for p in "ab" for s in (1, 2, 3)]
    assert batch.total_steps == 2 * 3 * 4
    assert all(job.steps == 4 and job.guidance_scale == GenerationRequest.guidance_scale for job in batch.jobs)
    with pytest.raises(UserError, match="at most"):
        BatchRequest(prompts=tuple(f"p{i}" for i in range(MAX_BATCH + 1)), seeds=(0,))
    with pytest.raises(UserError, match="steps"):
        BatchRequest(prompts=("a",), seeds=(0,), steps=0)


# -- pictures and files of one experiment ----------------------------------------------------------


@pytest.fixture(scope="module")
def experiment(sd1_pipe) -> GenerationExperiment:
    return generate(sd1_pipe, GenerationRequest(prompt=PROMPT, seed=3, steps=3, save_steps=True))


def test_small_images_are_enlarged_by_a_whole_factor_with_sharp_pixels():
    image = Image.new("RGB", (32, 32), (10, 20, 30))
    image.putpixel((0, 0), (255, 0, 0))
    big = enlarge(image, 256)
    assert big.size == (256, 256)
    assert big.getpixel((7, 7)) == (255, 0, 0) and big.getpixel((8, 8)) == (10, 20, 30)
    assert enlarge(Image.new("RGB", (512, 512)), 256).size == (512, 512)


def test_word_overlays_follow_the_prompt_and_the_opacity(experiment):
    overlays = word_overlays(experiment, alpha=0.0)
    assert [overlay.label for overlay in overlays] == WORDS
    assert [overlay.word_idx for overlay in overlays] == list(range(len(WORDS)))
    plain = enlarge(experiment.image)
    assert all(overlay.image.tobytes() == plain.tobytes() for overlay in overlays)  # alpha 0 = the image
    opaque = word_overlays(experiment, alpha=1.0)
    assert opaque[1].image.tobytes() != opaque[2].image.tobytes()  # "red" and "circle" differ


def test_token_rows_map_every_heat_map_row_to_its_word(experiment):
    rows = token_rows(experiment)
    assert len(rows) == experiment.global_heat_map.shape[0]
    assert rows[0]["token"] == "<|startoftext|>" and rows[0]["word"] == ""
    assert [row["word"] for row in rows[1:-1]] == WORDS
    assert rows[-1]["token"] == "<|endoftext|>"


def test_layer_and_step_views_have_one_map_per_layer_and_step(experiment):
    layers = layer_overlays(experiment, word_idx=2)
    assert len(layers) == len(experiment.layer_names) == 7
    assert layers[0].label == "down 0, 16x16, attn 0.0" and layers[-1].label == "mid, 4x4, attn 0.0"
    stored_before_labels = replace(experiment, layer_names=["up_blocks.1.attentions.0.transformer_blocks.0.attn2"] * 7)
    assert layer_overlays(stored_before_labels, word_idx=2)[0].label == "up 1, attn 0.0"
    assert len(step_overlays(experiment, word_idx=2)) == 3
    without_steps = GenerationExperiment(experiment.image, experiment.global_heat_map, PROMPT)
    assert step_overlays(without_steps, 2) == [] and layer_overlays(without_steps, 2) == []
    with pytest.raises(UserError):
        layer_overlays(experiment, word_idx=99)


def test_experiment_zip_holds_a_directory_that_loads_back(experiment, tmp_path):
    path_before = experiment.path
    data = experiment_zip(experiment, "generation-1")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path)
    assert {"generation-1/output.png", "generation-1/generation.pt", "generation-1/red.heat_map.png"} <= names
    loaded = GenerationExperiment.load(tmp_path / "generation-1")
    assert loaded.prompt == PROMPT and loaded.seed == 3
    assert loaded.global_heat_map.equal(experiment.global_heat_map)
    assert experiment.path == path_before  # the caller's experiment still points where it did


# -- the pages under AppTest -----------------------------------------------------------------------

PAGES = [
    "Home.py",
    "app_pages/1_Generate.py",
    "app_pages/2_Explore.py",
    "app_pages/3_Models.py",
    "app_pages/5_Jobs.py",
    "app_pages/6_Users.py",
]
TIMEOUT = 120
JOB_TIMEOUT = 300  # a few tiny generations, on a machine other test runs share


@pytest.fixture(autouse=False)
def dashboard_path(monkeypatch):
    # `streamlit run dashboard/Home.py` puts dashboard/ on sys.path (pages import `ui`); AppTest does not.
    monkeypatch.syspath_prepend(str(DASHBOARD))


@pytest.fixture
def empty_store_url(tmp_path, monkeypatch, dashboard_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("DAAM_STORE_URL", url)
    return url


def run_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    """Open the app at Home (the entry point, as in the browser) and go to `page`."""
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=TIMEOUT).run()
    assert not app.exception, app.exception
    if page != "Home.py":
        app.switch_page(page)
    for key, value in (query or {}).items():
        app.query_params[key] = value
    return app.run()


def widget(widgets, label_start: str):
    matches = [w for w in widgets if w.label.startswith(label_start)]
    assert len(matches) == 1, f"{len(matches)} widgets labelled {label_start!r}"
    return matches[0]


def shown_error(app: AppTest) -> str:
    """The error line as the reader sees it (the page escapes Markdown in it)."""
    return as_read(app.error[0].value)


def texts(app: AppTest) -> list[str]:
    return [element.value for element in app.text]


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def test_one_frame_navigates_every_page_and_shows_the_database(empty_store_url):
    """dashboard/Home.py is the frame: page config, store and sidebar once, then the chosen page (st.navigation).
    (AppTest drops the sidebar of st.navigation apps on reruns, so the sidebar is read on the first run.)"""
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=TIMEOUT).run()
    assert_clean(app)
    assert [element.value for element in app.sidebar.get("text")] == [empty_store_url]
    assert "The store is empty" in " ".join(element.value for element in app.info)  # the default page: Home
    pages = sorted(path.name for path in (DASHBOARD / "app_pages").glob("*.py"))
    frame = (DASHBOARD / "Home.py").read_text()
    assert all(f'"app_pages/{name}"' in frame for name in pages)  # every page file is in the navigation
    assert all("setup_page" not in (DASHBOARD / "app_pages" / name).read_text() for name in pages)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(empty_store_url, page):
    app = run_page(page)
    assert_clean(app)
    info = " ".join(element.value for element in app.info)
    expected = {
        "Home.py": "The store is empty",
        "app_pages/1_Generate.py": "",
        "app_pages/2_Explore.py": "No generations in the store yet",
        "app_pages/3_Models.py": "No model is registered yet",
        "app_pages/5_Jobs.py": "No jobs match.",
        "app_pages/6_Users.py": "Single-user mode",
    }[page]
    assert expected in info


@pytest.mark.parametrize("page", PAGES)
def test_an_unreachable_database_is_one_error_on_every_page(tmp_path, monkeypatch, dashboard_path, page):
    monkeypatch.setenv("DAAM_STORE_URL", "postgresql://nobody@127.0.0.1:9/nowhere")  # port 9: nothing listens
    app = run_page(page)
    assert not app.exception
    assert len(app.error) == 1
    message = shown_error(app)
    assert "cannot open database" in message and "DAAM_STORE_URL" in message and "\n" not in message


def fill_generate_form(app: AppTest, model: str, prompts: str, seeds: str, steps: int = 3, **extra) -> AppTest:
    """Fill in and submit the Generate form: the run that queues the batch (see `until_finished`)."""
    widget(app.text_input, "…or another model").input(model)
    widget(app.text_area, "Prompts").input(prompts)
    widget(app.text_input, "Seeds").input(seeds)
    widget(app.number_input, "Steps").set_value(steps)
    if "author" in extra:
        widget(app.text_input, "Author").input(extra["author"])
    if "tags" in extra:
        widget(app.text_input, "Tags").input(extra["tags"])
    if extra.get("save_steps"):
        widget(app.checkbox, "Keep per-step maps").check()
    widget(app.button, "Generate").click()
    return app.run()


def bars(app: AppTest) -> list[str]:
    """The progress bars' texts as the reader sees them (the page escapes Markdown in them)."""
    return [as_read(bar.proto.text) for bar in app.get("progress")]


def run_until(app: AppTest, done: Callable[[AppTest], bool], what: str, timeout_s: float = JOB_TIMEOUT) -> AppTest:
    """Run the page again (as its live fragment does every second) until `done(app)`; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not done(app):
        assert not app.exception, [e.value for e in app.exception]
        assert time.monotonic() < deadline, f"{what} not after {timeout_s} s; the page shows {bars(app)}"
        time.sleep(0.5)
        app.run()
    return app


def finished(label: str) -> Callable[[AppTest], bool]:
    """Whether the page's bar for `label` ("Batch", "Sweep grid") says all its jobs are finished."""
    pattern = re.compile(rf"{re.escape(label)}: (\d+) of \1 finished")
    return lambda app: any(pattern.match(text) for text in bars(app))


def until_finished(app: AppTest, label: str = "Batch") -> AppTest:
    return run_until(app, finished(label), f"{label}: all finished")


def generation_titles(app: AppTest) -> list[str]:
    return [t for t in texts(app) if t.startswith("Generation #")]


def open_store_at(url: str):
    from daam_store.store import open_store

    return open_store(url)


def stored_jobs(url: str):
    from daam_store.jobs import list_jobs

    with open_store_at(url) as store:
        return list_jobs(store, limit=1000)[::-1]  # oldest first


def test_generate_saves_exactly_one_row_per_prompt_and_seed(empty_store_url, tiny_model_dir):
    from daam_store.store import queries

    app = run_page("app_pages/1_Generate.py")
    app = fill_generate_form(
        app, str(tiny_model_dir), f"{PROMPT}\na cat", "4-5", steps=3, author="ann", tags="first, demo"
    )
    assert_clean(app)
    assert len(app.query_params["job"]) == 4  # the batch is in the URL: a reload follows it
    app = until_finished(app)
    assert_clean(app)
    assert app.get("progress")[0].value == 100  # AppTest reports the bar in percent
    assert bars(app) == ["Batch: 4 of 4 finished (4 done)"]
    shown = texts(app)
    assert generation_titles(app) == [
        "Generation #1 · seed 4", "Generation #2 · seed 5", "Generation #3 · seed 4", "Generation #4 · seed 5"
    ]  # fmt: skip
    assert shown.count("circle") == 2 and shown.count("cat") == 2  # one overlay per word per generation
    assert len(app.get("image")) == 2 * (1 + len(WORDS)) + 2 * (1 + 2) + 1  # + the maps' colour scale

    with open_store_at(empty_store_url) as store, store.session() as session:
        summary = queries.store_summary(session)
        rows = queries.list_generations(session, limit=100)
        statistics = {row.id: queries.word_statistics(session, row.id) for row in rows}
        models = queries.list_models(session)
    assert (summary.generations, summary.prompts, summary.models) == (4, 2, 1)
    assert summary.heat_maps == 2 * len(WORDS) + 2 * 2
    assert sorted((row.prompt, row.seed) for row in rows) == sorted(
        (prompt, seed) for prompt in (PROMPT, "a cat") for seed in (4, 5)
    )
    assert all(row.steps == 3 and row.author == "ann" and row.tags == ("demo", "first") for row in rows)
    assert all(row.status == "done" for row in rows)
    for row in rows:
        words = [stat.word for stat in statistics[row.id]]
        assert words == (WORDS if row.prompt == PROMPT else ["a", "cat"])
        assert sum(stat.share for stat in statistics[row.id]) == pytest.approx(1.0, abs=1e-5)
    assert [(m.source, m.location, m.generations) for m in models] == [("local", str(tiny_model_dir), 4)]
    jobs = stored_jobs(empty_store_url)
    assert [(job.status, job.author, job.generation_id) for job in jobs] == [("done", "ann", i) for i in range(1, 5)]

    widget(app.slider, "Heat-map opacity").set_value(1.0).run()  # a rerun shows the batch again
    assert_clean(app)
    assert generation_titles(app) == [
        f"Generation #{i} · seed {seed}" for i, seed in zip(range(1, 5), (4, 5, 4, 5), strict=True)
    ]

    # The same form again finds every generation stored: its jobs are done at once, with no new rows.
    app = fill_generate_form(
        app, str(tiny_model_dir), f"{PROMPT}\na cat", "4-5", steps=3, author="ann", tags="first, demo"
    )
    assert_clean(app)
    assert bars(app) == ["Batch: 4 of 4 finished (4 done)"]  # on the first run: nothing waited for a worker
    assert len(generation_titles(app)) == 4
    again = stored_jobs(empty_store_url)[4:]
    assert [(job.status, job.generation_id, job.attempts) for job in again] == [("done", i, 0) for i in range(1, 5)]
    with open_store_at(empty_store_url) as store, store.session() as session:
        assert queries.count_generations(session) == 4


@pytest.mark.parametrize(
    ("model", "seeds", "message"),
    [
        ("{model}", "x", "bad seed 'x'"),
        ("{model}", "3-1", "goes backwards"),
        ("{model}", f"0-{MAX_BATCH}", f"at most {MAX_BATCH}"),
    ],
)
def test_bad_generate_input_is_one_error_and_queues_nothing(empty_store_url, tiny_model_dir, model, seeds, message):
    from daam_store.store import queries

    app = fill_generate_form(run_page("app_pages/1_Generate.py"), model.format(model=tiny_model_dir), "a dog", seeds)
    assert not app.exception
    assert len(app.error) == 1 and message in shown_error(app)
    assert "job" not in app.query_params and not app.get("progress")
    assert stored_jobs(empty_store_url) == []
    with open_store_at(empty_store_url) as store, store.session() as session:
        assert queries.count_generations(session) == 0


def test_an_unknown_model_is_one_failed_job_line_and_saves_nothing(empty_store_url):
    """Which models exist is the worker's to find out (it loads them): the job fails with one line, shown once."""
    from daam_store.store import queries

    app = fill_generate_form(run_page("app_pages/1_Generate.py"), "/no/such/folder", "a dog", "0")
    app = until_finished(app)
    assert not app.exception
    assert bars(app) == ["Batch: 1 of 1 finished (1 failed)"]
    assert len(app.error) == 1
    message = shown_error(app)
    assert message.startswith("Job 1 ('a dog', seed 0) failed: unknown model '/no/such/folder'") and "\n" not in message
    assert [(job.status, job.generation_id) for job in stored_jobs(empty_store_url)] == [("failed", None)]
    with open_store_at(empty_store_url) as store, store.session() as session:
        assert queries.count_generations(session) == 0 and queries.list_models(session) == []


def test_generate_offers_the_builtin_models_and_registered_ones(empty_store_url, tiny_model_dir):
    app = run_page("app_pages/1_Generate.py")
    options = widget(app.selectbox, "Model").options
    assert options == ["sd1-tiny (built-in)", "sd2-tiny (built-in)", "sdxl-tiny (built-in)"]
    until_finished(fill_generate_form(app, str(tiny_model_dir), "a dog", "0", steps=2))
    options = widget(run_page("app_pages/1_Generate.py").selectbox, "Model").options
    assert options[3:] == [f"{tiny_model_dir} (local, SD1)"]


def test_a_running_job_shows_its_denoising_step_on_the_page(empty_store_url, monkeypatch):
    """Progress is per denoising step, from the store: a job a worker (here: a claim, no worker thread) is at
    step 2 of 4 of counts half on the bar and says so in the job table."""
    from daam_store.jobs import claims

    monkeypatch.setenv("DAAM_STORE_WORKERS", "0")  # nothing runs the jobs but this test
    app = fill_generate_form(run_page("app_pages/1_Generate.py"), "sd1-tiny", "a dog\na cat", "0", steps=4)
    assert_clean(app)
    assert bars(app) == ["Batch: 0 of 2 finished (2 queued)"] and app.get("progress")[0].value == 0
    first, second = (job.id for job in stored_jobs(empty_store_url))
    with open_store_at(empty_store_url) as store:
        assert claims.claim(store, "test-worker", only_ids=[first]).id == first
        assert claims.report_step(store, first, "test-worker", 2)
    app.run()
    assert_clean(app)
    assert bars(app) == ["Batch: 0 of 2 finished (1 queued, 1 running)"]
    assert app.get("progress")[0].value == 25  # (2/4 + 0) / 2 jobs
    table = app.dataframe[0].value
    assert list(table["job"]) == [first, second] and list(table["step"]) == ["2 of 4", "0 of 4"]
    assert list(table["status"]) == ["running", "queued"] and list(table["worker"]) == ["test-worker", ""]
    assert generation_titles(app) == []


def test_a_batch_link_with_bad_or_unknown_job_ids_shows_no_batch(empty_store_url):
    app = run_page("app_pages/1_Generate.py", {"job": ["abc", "-1", "0"]})
    assert_clean(app)
    assert not app.get("progress") and generation_titles(app) == []
    app = run_page("app_pages/1_Generate.py", {"job": "999"})
    assert_clean(app)
    assert any("Batch: no such jobs in the store" in as_read(element.value) for element in app.info)


def test_two_sessions_submitting_at_once_each_follow_their_own_batch(empty_store_url, tiny_model_dir):
    """Two browser sessions queue a batch each: one worker runs both, and each page shows its own results."""
    cats = run_page("app_pages/1_Generate.py")
    dogs = run_page("app_pages/1_Generate.py")
    cats = fill_generate_form(cats, str(tiny_model_dir), "a cat on a mat", "1-2", steps=2)
    dogs = fill_generate_form(dogs, str(tiny_model_dir), "a red dog", "4-5", steps=2)
    until_finished(cats)
    until_finished(dogs)
    for app, prompt, seeds in ((cats, "a cat on a mat", (1, 2)), (dogs, "a red dog", (4, 5))):
        assert_clean(app)
        assert bars(app) == ["Batch: 2 of 2 finished (2 done)"]
        assert [t.split(" · ")[1] for t in generation_titles(app)] == [f"seed {seed}" for seed in seeds]
        assert prompt in texts(app) and {"cat", "dog"} - set(texts(app)) == {"dog" if "cat" in prompt else "cat"}
    with open_store_at(empty_store_url) as store:
        for app, prompt in ((cats, "a cat on a mat"), (dogs, "a red dog")):
            for title in generation_titles(app):
                assert store.load_experiment(int(title.split(" ")[1][1:])).prompt == prompt


# -- a filled store --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory, tiny_model_dir, tiny_sd2_model_dir):
    """Seven generations over two models, three prompts, authors and tags; per-step maps on one."""
    from daam_store.models import describe_pipeline, load_pipeline
    from daam_store.store import open_store

    url = f"sqlite:///{tmp_path_factory.mktemp('filled') / 'store.db'}"
    sd1, sd2 = load_pipeline(str(tiny_model_dir)), load_pipeline(str(tiny_sd2_model_dir))
    batches = [
        (sd1, BatchRequest(prompts=(PROMPT, "a cat"), seeds=(0, 1), steps=2, author="ann", tags=("shapes",))),
        (sd1, BatchRequest(prompts=(DOG,), seeds=(7,), steps=2, author="bob")),
        (sd2, BatchRequest(prompts=(PROMPT,), seeds=(0, 1), steps=2, tags=("shapes", "sd2"), save_steps=True)),
    ]
    ids: dict[tuple[str, str, int], int] = {}
    with open_store(url) as store:
        for pipe, batch in batches:
            model = describe_pipeline(pipe)
            for request in batch.jobs:
                generation_id = store.save(generate(pipe, request), model=model, author=batch.author, tags=batch.tags)
                ids[("sd2" if pipe is sd2 else "sd1", request.prompt, request.seed)] = generation_id
    assert len(ids) == 7
    return url, ids


@pytest.fixture
def filled_store_url(filled_store, monkeypatch, dashboard_path):
    url, ids = filled_store
    monkeypatch.setenv("DAAM_STORE_URL", url)
    return ids


def shown_ids(app: AppTest) -> set[int]:
    return {int(t.split(" · ")[0][1:]) for t in texts(app) if t.startswith("#")}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_filled_store(filled_store_url, page):
    app = run_page(page)
    assert_clean(app)


def test_home_counts_what_is_stored_and_shows_the_latest(filled_store_url):
    app = run_page("Home.py")
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics == {
        "Generations": "7",
        "Prompts": "3",
        "Models": "2",
        "Distinct words": "11",
    }  # a red circle and blue square cat dog bold b html
    assert DOG in texts(app)  # a prompt is shown as it was typed, as text
    assert len(app.get("image")) == 7


@pytest.mark.parametrize(
    ("label", "value", "expected"),
    [
        ("Prompt contains", "CIRCLE", {("sd1", PROMPT, 0), ("sd1", PROMPT, 1), ("sd2", PROMPT, 0), ("sd2", PROMPT, 1)}),
        ("Prompt contains", "**", {("sd1", DOG, 7)}),
        ("Word in the prompt", "cat", {("sd1", "a cat", 0), ("sd1", "a cat", 1)}),
        ("Word in the prompt", "circ", set()),
        ("Seeds", "1, 7", {("sd1", PROMPT, 1), ("sd1", "a cat", 1), ("sd2", PROMPT, 1), ("sd1", DOG, 7)}),
    ],
)  # fmt: skip
def test_explore_text_filters_return_the_right_rows(filled_store_url, label, value, expected):
    app = run_page("app_pages/2_Explore.py")
    widget(app.text_input, label).input(value)
    app.run()
    assert_clean(app)
    assert shown_ids(app) == {filled_store_url[key] for key in expected}
    if not expected:
        assert "No generations match these filters." in [element.value for element in app.info]


def test_explore_choice_filters_return_the_right_rows(filled_store_url):
    ids = filled_store_url
    app = run_page("app_pages/2_Explore.py")
    assert shown_ids(app) == set(ids.values())
    assert "7 generations" in texts(app)

    models = widget(app.multiselect, "Models")
    sd2_label = next(option for option in models.options if "tiny-sd2" in option)
    models.select(sd2_label)
    app.run()
    assert shown_ids(app) == {ids[("sd2", PROMPT, 0)], ids[("sd2", PROMPT, 1)]}
    widget(app.multiselect, "Models").unselect(sd2_label)

    widget(app.selectbox, "Author").select("ann")
    app.run()
    assert shown_ids(app) == {ids[("sd1", p, s)] for p in (PROMPT, "a cat") for s in (0, 1)}
    widget(app.selectbox, "Tag").select("shapes")  # the sd2 rows are tagged "shapes" too, but have no author
    app.run()
    assert shown_ids(app) == {ids[("sd1", p, s)] for p in (PROMPT, "a cat") for s in (0, 1)}
    widget(app.selectbox, "Author").select("(any)")
    widget(app.selectbox, "Tag").select("sd2")
    app.run()
    assert shown_ids(app) == {ids[("sd2", PROMPT, 0)], ids[("sd2", PROMPT, 1)]}


def test_explore_date_filter_counts_whole_utc_days(filled_store_url):
    from datetime import UTC, datetime, timedelta

    from daam_store.store import open_store
    from daam_store.views.explore import gallery_count, gallery_filter

    today = datetime.now(UTC).date()
    with open_store() as store:
        assert gallery_count(store, gallery_filter(days=(today,))) == 7
        assert gallery_count(store, gallery_filter(days=(today, today))) == 7
        assert gallery_count(store, gallery_filter(days=(today - timedelta(days=3), today - timedelta(days=1)))) == 0
        assert gallery_count(store, gallery_filter(days=(today + timedelta(days=1),))) == 0
    app = run_page("app_pages/2_Explore.py")
    app.date_input[0].set_value((today - timedelta(days=2), today - timedelta(days=1))).run()
    assert_clean(app)
    assert shown_ids(app) == set()


def test_explore_pages_through_the_gallery(filled_store_url, monkeypatch):
    from daam_store.views import explore

    monkeypatch.setattr(explore, "GALLERY_PAGE_SIZE", 3)
    app = run_page("app_pages/2_Explore.py")
    assert len(shown_ids(app)) == 3
    seen = set(shown_ids(app))
    page = widget(app.number_input, "Page")
    assert page.max == 3
    page.set_value(3).run()
    assert len(shown_ids(app)) == 1
    seen |= shown_ids(app)
    widget(app.number_input, "Page").set_value(2).run()
    seen |= shown_ids(app)
    assert seen == set(filled_store_url.values())


def test_explore_detail_shows_the_generation_word_by_word(filled_store_url):
    generation_id = filled_store_url[("sd2", PROMPT, 1)]
    app = run_page("app_pages/2_Explore.py", {"generation": str(generation_id)})
    assert_clean(app)
    shown = texts(app)
    assert PROMPT in shown
    assert [t for t in shown if t in WORDS] == WORDS  # one overlay per word, labelled in prompt order
    assert len(app.get("image")) >= 1 + len(WORDS)
    facts = app.dataframe[0].value
    assert dict(zip(facts["what"], facts["value"], strict=True))["seed"] == "1"
    statistics = app.dataframe[1].value
    assert list(statistics["word"]) == WORDS
    assert statistics["share"].sum() == pytest.approx(1.0, abs=1e-5)
    tokens = app.dataframe[2].value
    assert list(tokens["token"])[:3] == ["<|startoftext|>", "a</w>", "red</w>"]
    assert "Per-step maps were not kept" not in [element.value for element in app.info]  # traced with steps
    assert widget(app.selectbox, "Word to inspect").options[1] == "red (word 1)"
    assert {button.label for button in app.get("download_button")} == {
        "Overlay of the chosen word (PNG)", "Experiment directory (zip)"
    }  # fmt: skip

    widget(app.slider, "Heat-map opacity").set_value(0.9).run()
    assert_clean(app)


def test_explore_detail_without_per_step_maps_says_so(filled_store_url):
    app = run_page("app_pages/2_Explore.py", {"generation": str(filled_store_url[("sd1", "a cat", 0)])})
    assert_clean(app)
    assert any("Per-step maps were not kept" in element.value for element in app.info)


@pytest.mark.parametrize(("query", "message"), [("999", "no generation 999"), ("abc", "bad generation id")])
def test_explore_unknown_generation_is_one_error(filled_store_url, query, message):
    app = run_page("app_pages/2_Explore.py", {"generation": query})
    assert not app.exception
    assert len(app.error) == 1 and message in shown_error(app)


def test_user_text_is_never_rendered_as_markdown(filled_store_url):
    prompt = DOG
    explore = "app_pages/2_Explore.py"
    for page, query in [("Home.py", None), (explore, None),
                        (explore, {"generation": str(filled_store_url[("sd1", prompt, 7)])})]:  # fmt: skip
        app = run_page(page, query)
        assert prompt in texts(app)
        assert not any("bold" in element.value for element in app.markdown)


def test_models_page_lists_counts_and_registers_a_folder(filled_store_url, tiny_model_dir, tmp_path):
    app = run_page("app_pages/3_Models.py")
    assert_clean(app)
    builtin, registered, families = (frame.value for frame in app.dataframe)
    assert list(builtin["name"]) == ["sd1-tiny", "sd2-tiny", "sdxl-tiny"]
    assert list(builtin["family"]) == ["SD1", "SD2", "SDXL"]
    assert all(met.split(":")[0].endswith(" of 6") for met in builtin["benchmark targets met"])
    assert all(met.split(":")[0].endswith(" of 6") for met in builtin["with the mid block in the maps"])
    assert list(families["family"]) == ["SD1", "SD2", "SDXL"]
    assert list(families["pipeline"]) == ["StableDiffusionPipeline"] * 2 + ["StableDiffusionXLPipeline"]
    assert sorted(zip(registered["family"], registered["generations"], strict=True)) == [("SD1", 5), ("SD2", 2)]

    widget(app.text_input, "Hub id or local").input(str(tmp_path / "missing"))
    widget(app.button, "Load and register").click()
    app.run()
    assert not app.exception and len(app.error) == 1 and "unknown model" in shown_error(app)
    assert len(app.dataframe[1].value) == 2


def test_models_page_adds_a_new_local_model(empty_store_url, tiny_model_dir):
    app = run_page("app_pages/3_Models.py")
    widget(app.text_input, "Hub id or local").input(str(tiny_model_dir))
    widget(app.button, "Load and register").click()
    app.run()
    assert_clean(app)
    assert any("Registered" in element.value for element in app.success)
    registered = app.dataframe[1].value
    assert list(registered["location"]) == [str(tiny_model_dir)] and list(registered["generations"]) == [0]


def test_models_page_refuses_a_hub_id_it_cannot_download(empty_store_url):
    app = run_page("app_pages/3_Models.py")
    widget(app.text_input, "Hub id or local").input("someone/some-model")
    widget(app.button, "Load and register").click()
    app.run()
    assert not app.exception and len(app.error) == 1
    assert "could not load model 'someone/some-model'" in shown_error(app)  # HF_HUB_OFFLINE=1 in tests


def test_targets_met_reads_a_models_evaluation_and_survives_a_broken_one(tmp_path):
    from daam_store.views.models import targets_met

    targets = [{"label": "adherence: colour present", "met": True}, {"label": "mIoU shape words", "met": False}]
    (tmp_path / "evaluation.json").write_text(json.dumps({"targets": targets}))
    assert targets_met(tmp_path / "evaluation.json") == "1 of 2: colour present"
    (tmp_path / "evaluation.json").write_text("{not json")
    assert targets_met(tmp_path / "evaluation.json") == "not evaluated"
    assert targets_met(tmp_path / "missing.json") == "not evaluated"


def test_generate_on_the_builtin_model(empty_store_url):
    """The default choice: with its weights shipped it generates; before they are trained, one clear line."""
    from daam_store.models import ModelNotFoundError, resolve_model
    from daam_store.store import queries

    app = run_page("app_pages/1_Generate.py")
    assert widget(app.selectbox, "Model").value == "sd1-tiny (built-in)"
    app = until_finished(fill_generate_form(app, "", "a red circle", "0", steps=2))
    with open_store_at(empty_store_url) as store, store.session() as session:
        stored = queries.list_generations(session)
    try:
        resolve_model("sd1-tiny")
    except ModelNotFoundError:
        assert not app.exception and len(app.error) == 1 and "train-builtin sd1-tiny" in shown_error(app)
        assert stored == []
    else:
        assert_clean(app)
        assert [(row.model, row.prompt, row.seed, row.steps) for row in stored] == [("sd1-tiny", "a red circle", 0, 2)]
        assert texts(app).count("circle") == 1


def test_explore_shows_the_overlays_of_an_imported_original_daam_directory(empty_store_url, tmp_path):
    from daam_store.store.transfer import import_directory

    folder = tmp_path / "original"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "output.png")
    (folder / "prompt.txt").write_text("a red dog")
    (folder / "seed.txt").write_text("5")
    for word in ("red", "dog"):
        Image.new("RGB", (64, 64), (0, 0, 255)).save(folder / f"{word}.heat_map.png")
    with open_store_at(empty_store_url) as store:
        generation_id = import_directory(store, folder).generation_id

    app = run_page("app_pages/2_Explore.py", {"generation": str(generation_id)})
    assert_clean(app)
    assert any("rendered overlays only" in element.value for element in app.info)
    assert [t for t in texts(app) if t in ("red", "dog")] == ["dog", "red"]  # attachments, by file name
    assert len(app.get("image")) == 1 + 2


# -- results shown on the page --------------------------------------------------------------------------


def test_a_result_kept_for_display_drops_the_finer_stacks(experiment):
    from daam_store.views.generate import GenerationResult

    shown = GenerationResult(1, experiment).for_display()
    assert experiment.layer_heat_maps is not None and shown.experiment.layer_heat_maps is None
    assert shown.experiment.step_heat_maps is None and shown.experiment.global_heat_map is experiment.global_heat_map


def test_explore_filters_survive_opening_a_generation(filled_store_url):
    ids = filled_store_url
    cats = {ids[("sd1", "a cat", 0)], ids[("sd1", "a cat", 1)]}
    app = run_page("app_pages/2_Explore.py")
    widget(app.text_input, "Word in the prompt").input("cat")
    app.run()
    assert shown_ids(app) == cats
    app.button(key=f"open-{min(cats)}").click()
    app.run()
    assert app.query_params["generation"] == str(min(cats)) and "a cat" in texts(app)
    widget(app.button, "← Back").click()
    app.run()
    assert_clean(app)
    assert shown_ids(app) == cats


def test_explore_bad_seed_filter_is_one_error_beside_the_filters(filled_store_url):
    app = run_page("app_pages/2_Explore.py")
    widget(app.text_input, "Seeds").input("1-x")
    app.run()
    assert not app.exception
    assert [as_read(element.value) for element in app.sidebar.error] == [
        "bad seed '1-x': a seed is a whole number from 0 to 9223372036854775807"
    ]
    assert shown_ids(app) == set()


def test_two_workers_sharing_one_pipeline_do_not_mix_their_maps(sd1_pipe):
    """Workers of one process handed the same pipeline take turns on it (jobs.runner.pipeline_lock): `trace`
    hooks that pipeline, so two generations at once must not record each other's attention."""
    import threading

    from daam_store.jobs.runner import pipeline_lock

    def run_generations(batch: BatchRequest) -> list:
        experiments = []
        for request in batch.jobs:
            with pipeline_lock(sd1_pipe):
                experiments.append(generate(sd1_pipe, request))
        return experiments

    batches = {
        "cats": BatchRequest(prompts=("a cat on a mat",), seeds=(1, 2), steps=3),
        "dogs": BatchRequest(prompts=("a red dog",), seeds=(4, 5), steps=3),
    }
    alone = {name: run_generations(batch) for name, batch in batches.items()}
    together: dict[str, list] = {}
    failures: list[BaseException] = []

    def run(name: str) -> None:
        try:
            together[name] = run_generations(batches[name])
        except BaseException as error:  # reported below: a thread's exception would be lost
            failures.append(error)

    threads = [threading.Thread(target=run, args=(name,)) for name in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    for name in batches:
        for single, shared in zip(alone[name], together[name], strict=True):
            assert shared.image.tobytes() == single.image.tobytes()
            assert torch.allclose(shared.global_heat_map, single.global_heat_map, atol=1e-6)


def test_generate_page_runs_a_sweep_over_both_builtin_models_and_resumes(empty_store_url):
    from daam_store.store import queries

    def run_sweep_form():
        app = run_page("app_pages/1_Generate.py")
        assert widget(app.multiselect, "Sweep models").value == ["sd1-tiny (built-in)", "sd2-tiny (built-in)"]
        widget(app.text_area, "Sweep prompts").set_value("a red circle\na blue square")
        widget(app.text_input, "Sweep seeds").set_value("0-1")
        widget(app.number_input, "Sweep steps").set_value(2)
        widget(app.text_input, "Sweep name").set_value("grid")
        widget(app.button, "Run sweep").click()
        app = app.run()
        assert_clean(app)
        assert app.query_params["sweep"] == "grid"
        return app

    first = until_finished(run_sweep_form(), "Sweep grid")
    assert_clean(first)
    assert bars(first) == ["Sweep grid: 8 of 8 finished (8 done)"]
    compare = [link for link in first.get("page_link") if link.proto.label == "Compare the sweep"]
    assert len(compare) == 1 and compare[0].proto.query_string == "tag=sweep%3Agrid"  # Compare opens on it
    jobs = stored_jobs(empty_store_url)
    again = run_sweep_form()  # the same sweep: its jobs, done already; nothing is queued or generated
    assert bars(again) == ["Sweep grid: 8 of 8 finished (8 done)"]
    assert stored_jobs(empty_store_url) == jobs
    with open_store_at(empty_store_url) as store, store.session() as session:
        rows = queries.list_generations(session, limit=100)
        summary = queries.store_summary(session)
    assert len(rows) == 8 and summary.models == 2
    assert all("sweep:grid" in row.tags for row in rows)
    assert sorted(job.generation_id for job in jobs) == sorted(row.id for row in rows)


def test_download_file_names_keep_only_safe_characters_of_user_text():
    from daam_store.views.common import file_stem

    assert file_stem("share_dog_by_seed") == "share_dog_by_seed"
    assert file_stem("share_../../etc/passwd_by_seed") == "share_.._.._etc_passwd_by_seed"
    assert file_stem('stability_"a b"\\c:?*') == "stability__a_b_c"
    assert file_stem("stability_café") == "stability_caf"
    assert file_stem("../") == "download" and len(file_stem("x" * 500)) == 80


def test_errors_and_compare_show_user_text_literally(empty_store_url):
    from daam_store.views.common import escape_markdown

    assert escape_markdown("**bold** [link](x) <b>_i_</b> `c` $m$") == (
        r"\*\*bold\*\* \[link\]\(x\) \<b\>\_i\_\<\/b\> \`c\` \$m\$"
    )
    assert escape_markdown("a &lt; b") == r"a \&lt\; b"  # an entity stays the text typed, not "<"
    assert escape_markdown(":smile: 12:30") == "&#58;smile&#58; 12&#58;30"  # Streamlit's emoji ignore "\:"
    app = run_page("app_pages/1_Generate.py")
    widget(app.text_input, "…or another model").set_value("**bold**/[x](y)")
    widget(app.button, "Generate").click()
    app = until_finished(app.run())  # no such model: the worker's job fails, and says which
    assert len(app.error) == 1 and r"\*\*bold\*\*\/\[x\]\(y\)" in app.error[0].value
    assert not any("bold" in element.value for element in app.markdown)


def test_sweep_grid_refuses_no_model_and_oversized_grids():
    from daam_store.views.generate import MAX_SWEEP, SweepGrid

    with pytest.raises(UserError, match="at least one model"):
        SweepGrid.parse("a dog", "0", [])
    with pytest.raises(UserError, match="daam-store sweep"):
        SweepGrid.parse("a dog\na cat", f"0-{MAX_SWEEP}", ["sd1-tiny"])
    assert SweepGrid.parse("a dog", "0-1", ["sd1-tiny"]).seeds == (0, 1)


def sweep_form(app: AppTest, models: list[str], **fields) -> AppTest:
    widget(app.multiselect, "Sweep models").set_value(models)
    widget(app.text_area, "Sweep prompts").set_value(fields.get("prompts", "a red circle"))
    widget(app.text_input, "Sweep seeds").set_value(fields.get("seeds", "0-1"))
    widget(app.number_input, "Sweep steps").set_value(fields.get("steps", 2))
    widget(app.number_input, "Sweep guidance").set_value(fields.get("guidance", 7.5))
    widget(app.text_input, "Sweep negative prompt").set_value(fields.get("negative_prompt", ""))
    widget(app.text_input, "Sweep author").set_value(fields.get("author", ""))
    if fields.get("save_steps"):
        widget(app.checkbox, "Keep per-step maps (enables").check()
    widget(app.text_input, "Sweep name").set_value(fields.get("name", "form"))
    widget(app.button, "Run sweep").click()
    return app.run()


def test_sweep_form_has_what_the_cli_sweep_has(empty_store_url, tiny_model_dir, monkeypatch):
    from daam_store.store import queries

    monkeypatch.setattr("daam_store.views.generate.model_choices", lambda _store: {"tiny": str(tiny_model_dir)})
    app = sweep_form(
        run_page("app_pages/1_Generate.py"),
        ["tiny"],
        guidance=3.0,
        negative_prompt="blurry",
        author="ann",
        save_steps=True,
    )
    assert_clean(app)
    app = until_finished(app, "Sweep form")
    assert_clean(app)
    assert bars(app) == ["Sweep form: 2 of 2 finished (2 done)"]
    with open_store_at(empty_store_url) as store:
        with store.session() as session:
            rows = queries.list_generations(session, limit=10)
        experiment = store.load_experiment(rows[0].id)
    assert len(rows) == 2 and all(row.author == "ann" and row.guidance_scale == 3.0 for row in rows)
    assert all(row.tags == ("sweep:form",) for row in rows)
    assert experiment.metadata["negative_prompt"] == "blurry" and experiment.step_heat_maps.shape[0] == 2


def test_out_of_range_steps_say_why(empty_store_url, tiny_model_dir):
    app = fill_generate_form(run_page("app_pages/1_Generate.py"), str(tiny_model_dir), "a dog", "0", steps=0)
    assert not app.exception and len(app.error) == 1 and "between 1 and 1000" in shown_error(app)
    app = sweep_form(run_page("app_pages/1_Generate.py"), ["sd1-tiny (built-in)"], steps=5000)
    assert not app.exception and len(app.error) == 1 and "steps" in shown_error(app)


def test_a_cancelled_sweep_says_so_and_submitting_it_again_resumes_it(empty_store_url, tiny_model_dir, monkeypatch):
    """Jobs of a sweep cancelled before they ran (on the Jobs page, or `daam-store jobs cancel`) show as
    cancelled; the same sweep submitted again queues them again and the worker runs only those."""
    from daam_store.access import LOCAL_ACTOR
    from daam_store.jobs import cancel
    from daam_store.store import queries

    monkeypatch.setattr("daam_store.views.generate.model_choices", lambda _store: {"tiny": str(tiny_model_dir)})
    monkeypatch.setenv("DAAM_STORE_WORKERS", "0")  # queued until this test lets a worker start
    app = sweep_form(run_page("app_pages/1_Generate.py"), ["tiny"], seeds="0-3")
    assert_clean(app)
    assert bars(app) == ["Sweep form: 0 of 4 finished (4 queued)"]
    ids = [job.id for job in stored_jobs(empty_store_url)]
    with open_store_at(empty_store_url) as store:
        assert cancel(store, LOCAL_ACTOR, ids[2:]) == ids[2:]
    app.run()
    assert bars(app) == ["Sweep form: 2 of 4 finished (2 queued, 2 cancelled)"]
    assert not [link for link in app.get("page_link") if link.proto.label == "Compare the sweep"]

    monkeypatch.setenv("DAAM_STORE_WORKERS", "1")
    app = until_finished(sweep_form(app, ["tiny"], seeds="0-3"), "Sweep form")  # the same sweep again
    assert_clean(app)
    assert bars(app) == ["Sweep form: 4 of 4 finished (4 done)"]
    jobs = stored_jobs(empty_store_url)
    assert [job.id for job in jobs] == ids and all(job.error is None for job in jobs)
    with open_store_at(empty_store_url) as store, store.session() as session:
        assert sorted(row.seed for row in queries.list_generations(session, limit=10)) == [0, 1, 2, 3]


def test_an_unexpected_error_in_a_job_is_one_line_on_the_page(empty_store_url, tiny_model_dir, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("CUDA went away\n  at some frame")

    monkeypatch.setattr("daam_store.generate.generate", broken)  # what the worker calls
    app = fill_generate_form(run_page("app_pages/1_Generate.py"), str(tiny_model_dir), "a dog", "0", steps=2)
    app = until_finished(app)
    assert not app.exception and len(app.error) == 1
    assert shown_error(app) == "Job 1 ('a dog', seed 0) failed: CUDA went away"
    (job,) = stored_jobs(empty_store_url)
    assert (job.status, job.error, job.generation_id) == ("failed", "CUDA went away", None)


def test_an_unexpected_error_in_a_job_leaves_its_traceback_in_the_log(
    empty_store_url, tiny_model_dir, monkeypatch, caplog
):
    """What ui.errors_as_messages did for an in-page generation: the page says one line, the log keeps the cause
    with its traceback (a bug or a fault of the machine is found from the log)."""
    import logging

    def broken(*_args, **_kwargs):
        raise RuntimeError("CUDA went away")

    caplog.set_level(logging.INFO, logger="daam_store")
    monkeypatch.setattr("daam_store.generate.generate", broken)
    until_finished(fill_generate_form(run_page("app_pages/1_Generate.py"), str(tiny_model_dir), "a dog", "0", 2))
    logged = [record for record in caplog.records if record.exc_info and "CUDA went away" in str(record.exc_info[1])]
    assert len(logged) == 1 and logged[0].exc_info[2] is not None


def _pages_as_nobody(url: str, results) -> None:
    """In a forked child: drop to `nobody`, then render Home and Explore over `url`; what they showed."""
    import pwd

    from streamlit import config as streamlit_config

    try:
        nobody = pwd.getpwnam("nobody")
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
        os.environ["DAAM_STORE_URL"] = url
        # Streamlit's default secrets files include ~/.streamlit/secrets.toml, and ~ is root's (unreadable) here.
        streamlit_config.set_option("secrets.files", [])
        shown = {}
        for page in ("Home.py", "app_pages/2_Explore.py"):
            app = run_page(page)
            shown[page] = ([e.value for e in app.exception], [e.value for e in app.error], texts(app))
        results.put(shown)
    except BaseException as error:  # the parent reports it
        results.put({"error": repr(error)})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_store_the_user_cannot_write_is_browsed(tmp_path, dashboard_path, clip_tokenizer):
    """A SQLite file (and folder) the dashboard's user may only read: every page browses it, no error."""
    import multiprocessing
    import tempfile

    from daam_store.models.info import ModelInfo
    from daam_store.store.testing import synthetic_experiment

    folder = Path(tempfile.mkdtemp(prefix="daam-ro-dashboard-"))
    url = f"sqlite:///{folder / 'store.db'}"
    with open_store_at(url) as store:
        store.save(
            synthetic_experiment(clip_tokenizer, "a read only cat", seed=3),
            model=ModelInfo("m", "builtin", "", "SD1", "r", 32, "epsilon"),
        )
    (folder / "store.db").chmod(0o444)
    folder.chmod(0o755)
    # The child cannot read the interpreter's folders (under /root) as nobody: import what the pages need here.
    os.environ["DAAM_STORE_URL"] = f"sqlite:///{tmp_path / 'warm.db'}"
    try:
        for page in ("Home.py", "app_pages/2_Explore.py"):
            run_page(page)
    finally:
        del os.environ["DAAM_STORE_URL"]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_pages_as_nobody, args=(url, results))
    child.start()
    child.join(120)
    shown = results.get(timeout=5)
    assert "error" not in shown, shown
    for page, (exceptions, errors, page_texts) in shown.items():
        assert not exceptions and not errors, (page, exceptions, errors)
        assert "a read only cat" in page_texts, page
