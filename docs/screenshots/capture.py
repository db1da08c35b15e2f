"""Take the README's dashboard screenshots: `python docs/screenshots/capture.py [--model NAME]`.

Starts the dashboard over a temporary store, runs one generation through the Generate form in
headless Chromium (the same helpers as tests/test_browser.py; the form queues a job, and the helper waits
until the dashboard's worker has run it and the page shows its result) and saves:
    docs/screenshots/generate.png   the Generate page's result: image and per-word overlays
    docs/screenshots/explore.png    that generation opened in Explore
    docs/screenshots/compare.png    Compare, across models, on a small sweep over sd1-tiny and sdxl-tiny (two families)
The model is the built-in `sd1-tiny` by default; `--model` takes any other name, folder or hub id.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_browser as browser  # noqa: E402  (its helpers, and browser_support's it imports, are kept working by the test)
from playwright.sync_api import sync_playwright  # noqa: E402


def mapped_words(prompt: str) -> int:
    """How many words of `prompt` get a map (DAAM maps words, not symbols; CLIP's 77-token limit cuts the rest)."""
    from daam_store.heatmap import PromptTokens
    from daam_store.models.pipelines import load_clip_tokenizer

    return sum(not word.is_punctuation for word in PromptTokens.from_tokenizer(load_clip_tokenizer(), prompt).words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model for the generation (default: the built-in sd1-tiny)")
    parser.add_argument("--prompt", default="a red circle and a blue square")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        folder = Path(scratch)
        url, server = browser.start_dashboard(f"sqlite:///{folder / 'store.db'}", folder / "streamlit.log")
        context = browser.launch_chromium(playwright, str(folder / "profile"), {"width": 1280, "height": 1100})
        try:
            page = context.new_page()
            browser.generate_through_ui(page, url, args.model, args.prompt, args.seed, args.steps)
            images = 1 + mapped_words(args.prompt) + 1  # the image, an overlay per word, the colour scale
            browser.expect_loaded_images(page, images, at_least=True)
            result = page.locator(".st-key-generation-1")  # the page keys each result's container
            result.scroll_into_view_if_needed()
            result.screenshot(path=str(HERE / "generate.png"))

            browser.open_page(page, f"{url}/Explore?generation=1", "Word heat maps")
            browser.expect_loaded_images(page, images, at_least=True)
            page.screenshot(path=str(HERE / "explore.png"))

            sweep_two_families(f"sqlite:///{folder / 'store.db'}", args.steps)
            browser.open_page(page, f"{url}/Compare?tag=sweep:readme&view=Across+models", "Compare", heading=True)
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
            browser.wait_until_idle(page)
            page.screenshot(path=str(HERE / "compare.png"), full_page=True)
        finally:
            context.close()
            browser.stop_dashboard(server)
    print(f"wrote {HERE / 'generate.png'}, {HERE / 'explore.png'} and {HERE / 'compare.png'}")
    return 0


SWEPT_PROMPTS = ["a red circle and a blue square", "a blue square and a red circle"]


def sweep_two_families(url: str, steps: int) -> None:
    from daam_store.store import open_store
    from daam_store.sweep import SweepSettings, run_sweep

    with open_store(url) as store:
        models = ["sd1-tiny", "sdxl-tiny"]
        run_sweep(store, SWEPT_PROMPTS, range(4), models, SweepSettings(steps=steps), name="readme")


if __name__ == "__main__":
    raise SystemExit(main())
