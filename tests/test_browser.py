"""The dashboard in a real browser: `streamlit run dashboard/Home.py` driven by Debian's headless Chromium.

One server on 127.0.0.1 with a temporary SQLite store; the test visits every page, runs one generation
through the Generate form (queued as a job, run by the dashboard's own worker thread, followed by the page
until it lands), opens it in Explore, checks that images and heat maps show and that no page shows an
exception, and saves a screenshot of each page under test-artifacts/browser/.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import playwright.sync_api as playwright_api  # a missing browser stack fails the run, never skips it
import pytest
from browser_support import (  # capture.py (docs/screenshots) takes these from here too
    GENERATION_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    REPO,
    check_no_exception,
    launch_chromium,
    open_page,
    start_dashboard,
    stop_dashboard,
    wait_until_idle,
)

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "browser"


@contextmanager
def live_dashboard(store_url: str, log_file: Path, kept_log: str) -> Iterator[str]:
    """A live dashboard over `store_url` (its URL); stopped afterwards, its log kept in test-artifacts/browser/ as
    `kept_log`."""
    url, server = start_dashboard(store_url, log_file)
    try:
        yield url
    finally:
        stop_dashboard(server)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / kept_log).write_text(log_file.read_text())


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory):
    """A live dashboard over an empty temporary store; stopped (and its log kept) after the module."""
    folder = tmp_path_factory.mktemp("browser")
    with live_dashboard(f"sqlite:///{folder / 'store.db'}", folder / "streamlit.log", "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser_page():
    with playwright_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = launch_chromium(playwright, profile, {"width": 1400, "height": 1000})
        try:
            yield context.new_page()
        finally:
            context.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def expect_loaded_images(page, count: int, at_least: bool = False) -> None:
    """Wait until the page shows `count` visible images (with `at_least`, that many or more), then check that the
    browser decoded each (a broken image has naturalWidth 0), each scrolled into view first (Streamlit loads them
    lazily). Images in closed tabs do not count."""
    images = page.locator('[data-testid="stImage"] img').locator("visible=true")
    if at_least:
        playwright_api.expect(images.nth(count - 1)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    else:
        playwright_api.expect(images).to_have_count(count, timeout=PAGE_TIMEOUT_MS)
    for index in range(images.count()):
        image = images.nth(index)
        image.scroll_into_view_if_needed()
        decoded = image.evaluate("img => img.decode().then(() => img.naturalWidth > 0, () => false)")
        assert decoded, f"image {index + 1} of {images.count()} did not decode"


def generate_through_ui(page, url: str, model: str, prompt: str, seed: int, steps: int) -> None:
    """Fill in the Generate form (an empty `model` keeps the default built-in choice), submit it, and wait
    until its job has run and its result is on the page (the page follows the job from the store)."""
    open_page(page, f"{url}/Generate", "Prompts, one per line")
    if model:
        page.get_by_label("…or another model", exact=False).fill(model)
    page.get_by_label("Prompts, one per line", exact=True).fill(prompt)
    page.get_by_label("Steps", exact=True).fill(str(steps))
    page.get_by_label("Seeds", exact=True).fill(str(seed))
    page.get_by_label("Seeds", exact=True).press("Tab")  # Streamlit commits a text input on blur
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Batch: 1 of 1 finished", exact=False).wait_for(timeout=GENERATION_TIMEOUT_MS)
    failed = page.locator('[data-testid="stAlertContentError"]')
    assert failed.count() == 0, f"the job failed: {failed.first.inner_text()}"
    page.get_by_text("Generation #", exact=False).first.wait_for(timeout=60_000)  # the page reran to show it
    wait_until_idle(page)


def test_every_page_and_one_generation_in_chromium(dashboard_url, browser_page, tiny_model_dir):
    page = browser_page

    open_page(page, dashboard_url, "The store is empty")
    check_no_exception(page, "Home (empty)")
    screenshot(page, "home-empty")

    for path, text, name in [
        ("Explore", "No generations", "explore-empty"),
        ("Models", "Built-in models", "models"),
    ]:
        open_page(page, f"{dashboard_url}/{path}", text)
        check_no_exception(page, name)
        screenshot(page, name)

    generate_through_ui(page, dashboard_url, str(tiny_model_dir), "a red circle and a blue square", seed=7, steps=4)
    check_no_exception(page, "Generate")
    # The generated image, one overlay per word (a, red, circle, and, a, blue, square) and their colour scale.
    expect_loaded_images(page, 1 + 7 + 1)
    for word in ("red", "circle", "blue", "square"):
        assert page.get_by_text(word, exact=True).count() >= 1, f"no heat map labelled {word!r}"
    screenshot(page, "generate-result")

    page.get_by_text("Open in Explore").first.click()
    page.get_by_text("Word heat maps", exact=False).first.wait_for(timeout=60_000)
    wait_until_idle(page)
    check_no_exception(page, "Explore detail")
    assert page.get_by_text("a red circle and a blue square", exact=True).count() >= 1
    expect_loaded_images(page, 1 + 7, at_least=True)
    screenshot(page, "explore-detail")

    open_page(page, f"{dashboard_url}/Explore", "1 generation")
    check_no_exception(page, "Explore gallery")
    expect_loaded_images(page, 1)
    screenshot(page, "explore-gallery")

    open_page(page, dashboard_url, "Latest generations")
    check_no_exception(page, "Home (filled)")
    screenshot(page, "home-filled")
    # One navigation, from the frame (dashboard/Home.py): each page once, in its order.
    links = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    titles = [text.strip().splitlines()[-1] for text in links]  # after each page's icon
    assert titles == ["Home", "Generate", "Explore", "Models", "Compare", "Jobs", "Users"], links  # local: admin
    assert page.get_by_text("Executor: local, 1 worker connected", exact=False).count() == 1

    # Every page file, including those added later (Compare, Jobs, Users), renders on the filled store.
    for name in page_names():
        open_page(page, f"{dashboard_url}/{name}", name, heading=True)
        check_no_exception(page, f"{name} (filled)")
        screenshot(page, f"{name.lower()}-filled")
        if name == "Jobs":  # the generation's job, done, in everyone's queue
            assert page.get_by_text("The newest 1", exact=False).count() == 1
            assert page.locator('[data-testid="stDataFrame"]').count() == 1


def page_names() -> list[str]:
    """The pages as Streamlit names them: app_pages/2_Explore.py -> "Explore" (also its URL path). The default page
    (0_Overview.py, Home) is the root URL, visited above."""
    pages = sorted(path for path in (REPO / "dashboard" / "app_pages").glob("*.py") if not path.stem.startswith("0_"))
    names = [path.stem.split("_", 1)[-1].replace("_", " ") for path in pages]
    assert {"Generate", "Explore", "Models", "Compare", "Jobs", "Users"} <= set(names), names
    return names


# -- the Compare page (issue 7): charts drawn from a store filled by a small sweep -----------------------
@pytest.fixture(scope="module")
def compare_dashboard_url(tmp_path_factory, swept_store_url):
    """A second live dashboard, over the swept store of conftest's `swept_store_url`."""
    log_file = tmp_path_factory.mktemp("browser-compare") / "streamlit.log"
    with live_dashboard(swept_store_url, log_file, "streamlit-compare.log") as url:
        yield url


def expect_drawn_charts(page, count: int) -> None:
    """Exactly `count` Plotly charts finished drawing (each has its SVG plot area). Streamlit draws a page's charts
    one after another, so this waits for the count rather than reading it when the first one appears."""
    playwright_api.expect(page.locator(".js-plotly-plot:has(.main-svg)")).to_have_count(count, timeout=60_000)


def test_compare_draws_charts_and_a_click_opens_explore(compare_dashboard_url, browser_page):
    page = browser_page
    open_page(page, f"{compare_dashboard_url}/Compare", "Compare", heading=True)
    check_no_exception(page, "Compare")
    expect_drawn_charts(page, 2)  # the word's share across prompts, and how it moves between two prompts
    points = page.locator(".js-plotly-plot .scatterlayer path.point")
    assert points.count() == 2 * 2 * 2  # the chosen word in 2 prompts x 2 seeds x 2 models, one point each
    screenshot(page, "compare-prompts")

    page.get_by_text("Across models", exact=True).click()
    page.get_by_text("One prompt: agreement of the maps, side by side", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    check_no_exception(page, "Compare across models")
    expect_drawn_charts(page, 4)  # share scatter, agreement, and each model's maps
    expect_loaded_images(page, 2)
    screenshot(page, "compare-models")

    page.get_by_text("Across prompts", exact=True).click()
    page.get_by_text("Two prompts: how attribution moves", exact=True).wait_for(timeout=60_000)  # this view's own
    wait_until_idle(page)
    point = page.locator(".js-plotly-plot .scatterlayer path.point").first
    point.wait_for(timeout=60_000)
    box = point.bounding_box()
    # Plotly takes clicks on its drag layer at the point's position, not on the marker element itself.
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/Explore?generation=*", timeout=60_000)
    page.get_by_text("Word heat maps", exact=False).first.wait_for(timeout=60_000)
    wait_until_idle(page)
    check_no_exception(page, "Explore opened from Compare")
    screenshot(page, "compare-click-explore")


def test_compare_back_returns_to_the_view_and_a_shared_link_opens_it(compare_dashboard_url, browser_page):
    page = browser_page
    # As Generate's "Compare the sweep" link opens it: with the sweep chosen.
    open_page(page, f"{compare_dashboard_url}/Compare?tag=sweep%3Asmall", "Compare", heading=True)
    page.get_by_text("Across seeds", exact=True).click()
    page.get_by_text("Stability", exact=True).wait_for(timeout=60_000)  # a heading of that view only
    wait_until_idle(page)
    assert "view=Across+seeds" in page.url and "tag=sweep%3Asmall" in page.url
    shared = page.url

    page.get_by_text("Across models", exact=True).click()
    page.get_by_text("One prompt: agreement of the maps, side by side", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    page.go_back()  # one step: the view before, not a half-written URL
    page.get_by_text("Stability", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    check_no_exception(page, "Compare after Back")
    assert "view=Across+seeds" in page.url

    page.get_by_role("link", name="Explore").first.click()
    page.wait_for_url("**/Explore*", timeout=60_000)
    wait_until_idle(page)
    page.go_back()
    page.get_by_text("Stability", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page)
    check_no_exception(page, "Compare after Back from Explore")
    screenshot(page, "compare-back")

    colleague = page.context.new_page()  # a new tab: a new session that knows only the link
    try:
        open_page(colleague, shared, "Stability")
        check_no_exception(colleague, "Compare from a shared link")
        expect_drawn_charts(colleague, 3)  # distribution, stability and the seed-by-seed maps
    finally:
        colleague.close()


def test_user_text_reads_literally_in_every_kind_of_markdown_element(tmp_path, browser_page):
    """`escape_markdown` against Streamlit's own renderer: emphasis, links, math, emoji and colour directives,
    icons, block syntax and entities each read back as typed (AppTest sees only the escaped string)."""
    from literal_text_page import ELEMENT_KINDS, HOSTILE_TEXTS

    script = str(Path(__file__).with_name("literal_text_page.py"))
    url, server = start_dashboard(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path / "streamlit.log", script=script)
    try:
        open_page(browser_page, url, "end of the hostile texts")
        check_no_exception(browser_page, "literal text page")
        containers = browser_page.locator('[data-testid="stMarkdownContainer"]').all_inner_texts()
    finally:
        stop_dashboard(server)
    shown = [text for text in containers if text not in ("hidden", "end of the hostile texts")]
    expected = [text for text in HOSTILE_TEXTS for _ in range(ELEMENT_KINDS)]
    assert shown == expected
