"""Is the Compare page responsive with 10,000 generations in the store? Measured at two sizes in one run.

    python benchmarks/compare_scale.py                         # 1,000 then 10,000 generations, SQLite
    python benchmarks/compare_scale.py --sizes 200 --repeats 1 --browser   # a quick look, with Chromium

The store is filled through `store.save()` (statistics, codec, PNG, one transaction each) with synthetic
generations (`daam_store.store.testing.synthetic_experiment`: smooth random 16x16 maps per token, the
built-in models' latent size): 25 prompts "a <colour> <animal> <verb> next to a <object>", two models,
seeds 0, 1, 2, ...; one generation per prompt and model also has per-step maps. All rows are tagged
sweep:bench.

At each size it times, as medians over --repeats runs:
1. data: the `daam_store.views.compare` functions behind each view, called directly (no cache);
2. page: the whole Compare page script for each view under Streamlit's AppTest, with the page's
   cache cleared first (what a user waits for after a filter change) and again without clearing it
   (a rerun that hits the cache: clicks, switching views back);
3. with --browser: a real `streamlit run` and headless Chromium (after one warm-up visit of Home), from
   opening Compare, then from a click on each view, to its own chart title visible and no element left
   stale (server run, transfer and Plotly rendering included), one uncached run each, on the page's
   defaults: all generations and the most frequent word.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "dashboard"

COLOURS = ["red", "blue", "green", "yellow", "black"]
ANIMALS = ["dog", "cat", "horse", "bird", "fox"]
VERBS = ["sitting", "running", "sleeping", "eating", "standing"]
OBJECTS = ["lamp", "chair", "tree", "car", "table"]
PROMPTS = [
    f"a {COLOURS[i % 5]} {ANIMALS[i // 5]} {VERBS[(i * 2) % 5]} next to a {OBJECTS[(i * 3) % 5]}" for i in range(25)
]
WORD = "dog"  # in 5 of the 25 prompts
TAG = "sweep:bench"
VIEWS = ["Across prompts", "Across seeds", "Across models", "Word overlap", "Per step"]


def models():
    from daam_store.models.info import ModelInfo

    return [
        ModelInfo("bench-sd1", "builtin", "", "SD1", "bench-sd1", 32, "epsilon"),
        ModelInfo("bench-sd2", "builtin", "", "SD2", "bench-sd2", 32, "v_prediction"),
    ]


def fill(store, target: int, tokenizer) -> float:
    """Add generations (prompt-major within each seed) until the store holds `target`; seconds taken."""
    from daam_store.store import queries
    from daam_store.store.testing import synthetic_experiment

    with store.session() as session:
        have = queries.count_generations(session)
    started = time.perf_counter()
    per_seed = len(PROMPTS) * 2
    for index in range(have, target):
        seed, rest = divmod(index, per_seed)
        prompt_index, model_index = divmod(rest, 2)
        experiment = synthetic_experiment(
            tokenizer, PROMPTS[prompt_index], seed=seed * 2 + model_index, steps=5 if seed == 0 else 0
        )
        experiment.seed = seed
        store.save(experiment, model=models()[model_index], tags=(TAG,))
    return time.perf_counter() - started


def median_ms(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def time_data(store, repeats: int) -> dict[str, float]:
    from daam_store.views import compare

    selection = compare.Selection(tag=TAG)
    options = compare.compare_options(store, TAG)
    model_a, model_b = list(options.models)[:2]
    first_prompt = next(iter(options.prompts))
    steps_generation = next(iter(compare.generations_with_steps(store, selection)))
    calls = {
        "options (filters)": lambda: compare.compare_options(store, TAG),
        "across prompts: per generation": lambda: compare.word_share_per_generation(store, selection, WORD),
        "across prompts: per prompt": lambda: compare.word_share_by_prompt(store, selection, WORD),
        "across prompts: every word": lambda: compare.all_words_by_prompt(store, selection),
        "across prompts: prompt edit": lambda: compare.prompt_edit(
            store, selection, *list(options.prompts)[:2], model_a
        ),
        "across seeds: stability": lambda: compare.seed_stability(store, selection, WORD),
        "across seeds: map grid": lambda: compare.seed_maps(store, selection, "a", first_prompt, model_a),
        "across models: share scatter": lambda: compare.model_share_scatter(store, selection, model_a, model_b),
        "across models: agreement, one prompt": lambda: compare.model_agreement(
            store, selection.narrowed(prompt_ids=(first_prompt,)), model_a, model_b
        ),
        "overlap: averaged": lambda: compare.mean_overlap(store, selection),
        "per step: shares": lambda: compare.step_shares(store, steps_generation),
    }
    return {name: median_ms(call, repeats) for name, call in calls.items()}


def time_page(url: str, repeats: int) -> dict[str, tuple[float, float]]:
    """(cold, warm) median ms of the Compare page script per view, under AppTest."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["DAAM_STORE_URL"] = url
    os.environ["DAAM_STORE_WORKERS"] = "0"  # pages only: no job worker polling the store while they are timed
    sys.path.insert(0, str(DASHBOARD))
    # Through the frame (Home.py), as in the browser: it finds who is using the page before the page runs.
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=600).run()
    app.switch_page("app_pages/4_Compare.py").run()
    _widget(app, "selectbox", "Sweep or tag").set_value(TAG)
    _widget(app, "selectbox", "Word").set_value(WORD)
    app.run()
    results = {}
    for view in VIEWS:
        _widget(app, "button_group", "View").set_value(view)

        def cold(app=app):
            st.cache_data.clear()
            app.run()

        cold_ms = median_ms(cold, repeats)
        warm_ms = median_ms(app.run, repeats)
        if app.exception or app.error:
            raise RuntimeError(f"{view}: {[e.value for e in [*app.exception, *app.error]]}")
        results[view] = (cold_ms, warm_ms)
    return results


def _widget(app, kind: str, label: str):
    return next(w for w in app.get(kind) if getattr(w, "label", None) == label)


# Text that only the view's own charts show: the view is drawn when it is visible and nothing is stale.
BROWSER_STEPS = [
    ("Every word", "Share of every word across prompts"),
    ("Across seeds", "across seeds"),
    ("Across models", "Agreement of the maps"),
    ("Word overlap", "Word x word IoU"),
    ("Per step", "at every denoising step"),
    ("Across prompts", "How attribution moves"),
]


def time_browser(url: str) -> dict[str, float]:
    """Seconds from a click to the new view's charts drawn in Chromium, on the page's defaults (all
    generations, the most frequent word), each view's first (uncached) visit."""
    sys.path.insert(0, str(REPO / "tests"))
    from playwright.sync_api import sync_playwright
    from test_browser import launch_chromium, start_dashboard, stop_dashboard, wait_until_idle

    log_file = Path(tempfile.mkdtemp()) / "streamlit.log"
    server_url, server = start_dashboard(url, log_file)
    results = {}
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            context = launch_chromium(playwright, profile, {"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(server_url)  # the server's first run imports torch & co: not the Compare page's cost
            page.get_by_role("heading").first.wait_for(timeout=600_000)
            wait_until_idle(page, quiet_s=0.5)
            started = time.perf_counter()
            page.goto(f"{server_url}/Compare")
            results["first visit (imports plotly, pandas)"] = _drawn(page, "How attribution moves") - started
            for control, marker in BROWSER_STEPS:
                page.get_by_text(control, exact=True).click()
                started = time.perf_counter()
                results[control] = _drawn(page, marker) - started
            context.close()
    finally:
        stop_dashboard(server)
    return results


def _drawn(page, marker: str) -> float:
    """When `marker` became visible and Streamlit had no stale element left (polled every 50 ms)."""
    page.get_by_text(marker, exact=False).first.wait_for(state="visible", timeout=600_000)
    while page.locator('[data-stale="true"]').count():
        page.wait_for_timeout(50)
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="store sizes to measure at, ascending")
    parser.add_argument("--repeats", type=int, default=5, help="runs per timing (median)")
    parser.add_argument("--db", default=None, help="SQLite file to fill and keep (default: a temporary one)")
    parser.add_argument("--browser", action="store_true", help="also time the views in headless Chromium")
    args = parser.parse_args()

    from daam_store.models import load_clip_tokenizer
    from daam_store.store import open_store

    sizes = [int(size) for size in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="compare-scale-"))
    url = f"sqlite:///{args.db or folder / 'store.db'}"
    tokenizer = load_clip_tokenizer()
    print(f"Compare page at scale: {url}, median of {args.repeats} runs, {os.cpu_count()} CPUs")
    table: dict[int, dict] = {}
    for size in sizes:
        with open_store(url) as store:
            seconds = fill(store, size, tokenizer)
            print(f"\n== {size} generations (filled in {seconds:.0f} s) ==")
            data = time_data(store, args.repeats)
        for name, ms in data.items():
            print(f"  data  {name:34s} {ms:8.1f} ms")
        page = time_page(url, args.repeats)
        for view, (cold, warm) in page.items():
            print(f"  page  {view:34s} {cold:8.1f} ms cold, {warm:6.1f} ms cached")
        table[size] = {"data": data, "page": page}
        if args.browser:
            for name, seconds in time_browser(url).items():
                print(f"  browser {name:32s} {seconds:8.2f} s")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\nratio {large} / {small} generations (page, cold):")
        for view in VIEWS:
            ratio = table[large]["page"][view][0] / table[small]["page"][view][0]
            print(f"  {view:34s} x{ratio:.2f}")


if __name__ == "__main__":
    main()
