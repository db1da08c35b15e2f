"""What the browser tests share (tests/test_browser.py, tests/test_signin.py; docs/screenshots/capture.py through
test_browser): Debian's headless Chromium, a live `streamlit run dashboard/Home.py` on 127.0.0.1, and waiting on
Streamlit's pages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from daam_store.store.testing import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 90
PAGE_TIMEOUT_MS = 60_000
GENERATION_TIMEOUT_MS = 180_000
# Streamlit's script run states in which no script runs ("initial": before the first run, is not one)
IDLE_SCRIPT_STATES = {"notRunning", "compilationError"}


# -- the server ------------------------------------------------------------------------------------------
def start_dashboard(
    store_url: str,
    log_file: Path,
    *,
    port: int | None = None,
    extra_args: Iterable[str] = (),
    unset_env: Iterable[str] = (),
    extra_env: Mapping[str, str] | None = None,
    script: str = "dashboard/Home.py",
) -> tuple[str, subprocess.Popen]:
    """`streamlit run dashboard/Home.py` on 127.0.0.1 over the store at `store_url`, answering health checks;
    its URL and process. `port` (a free one when None) for callers that must name it beforehand (a redirect URI);
    `extra_args` go to `streamlit run` (such as `--secrets.files PATH`); `unset_env` are left out of its
    environment, `extra_env` added to it; `script` runs instead of the dashboard where a test needs its own
    page. Its output goes to `log_file`; a server that does not come up is
    stopped and the test fails."""
    port = free_port() if port is None else port
    env = {
        **os.environ,
        "DAAM_STORE_URL": store_url,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    for name in unset_env:
        env.pop(name, None)
    env |= dict(extra_env or {})
    command = [
        sys.executable, "-m", "streamlit", "run", script, *extra_args,
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with open(log_file, "w") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, log_file)
    except BaseException:
        stop_dashboard(server)
        raise
    return url, server


def wait_until_healthy(url: str, server: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {SERVER_START_TIMEOUT} s:\n{log_file.read_text()[-3000:]}")


def stop_dashboard(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# -- the browser -----------------------------------------------------------------------------------------
def launch_chromium(playwright, profile: str, viewport: dict[str, int]):
    """Debian's Chromium, headless, with nothing that reaches the network; `profile` is its user-data-dir."""
    return playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, viewport=viewport
    )


def launch_chromium_for_contexts(playwright):
    """The same Chromium for callers that open one isolated context per visitor (`browser.new_context()`: its
    own cookies and storage, as a fresh profile has) rather than starting the browser again for each."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)


def open_page(page, url: str, expected_text: str, heading: bool = False) -> None:
    """Go to a page and wait for the app's own text (or page heading): Streamlit renders only after its
    websocket connects."""
    page.goto(url)
    if heading:
        page.get_by_role("heading", name=expected_text, exact=True).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    else:
        page.get_by_text(expected_text, exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_until_idle(page)


def wait_until_idle(page, quiet_s: float = 0.75) -> None:
    """Wait until the script run has finished: the app root's script state (Streamlit's `data-test-script-state`,
    what its own end-to-end tests wait on) has read "not running" for `quiet_s` seconds. The quiet spell catches a
    run that starts again at once (st.rerun, a click's rerun on its way); a fragment that polls (run_every) runs
    briefly and is idle between polls."""
    deadline = time.monotonic() + GENERATION_TIMEOUT_MS / 1000
    app = page.locator('[data-testid="stApp"]')
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        assert time.monotonic() < deadline, "the page kept running"
        if app.get_attribute("data-test-script-state") not in IDLE_SCRIPT_STATES:
            quiet_since = time.monotonic()
        page.wait_for_timeout(100)


def check_no_exception(page, name: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name} shows an exception: {exceptions.first.inner_text()[:2000]}"
