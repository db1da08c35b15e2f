"""Team mode in a real browser: OpenID Connect sign-in and roles (issue 14, "Sign-in and roles").

One module-wide setup: a real OIDC provider (`oidc-provider-mock`, tests/oidc_provider.py) on 127.0.0.1, and
`streamlit run dashboard/Home.py` configured for it through a secrets file outside the repository
(`--secrets.files`), over a temporary SQLite store. Each identity signs in through the provider's own flow in
its own context of one headless Chromium (as a fresh profile: no cookie is shared): the dashboard's Sign in
button, the provider's authorize form, back to the dashboard. Roles are given from a shell as the operator would
(`daam-store users set EMAIL ROLE`), or by an admin on the Users page.

On a failure the message carries the tail of the dashboard's and the provider's logs, and a screenshot lands in
test-artifacts/signin/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import playwright.sync_api as playwright_api  # a missing browser stack fails the run, never skips it
import pytest
from browser_support import (
    GENERATION_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    REPO,
    check_no_exception,
    launch_chromium_for_contexts,
    open_page,
    start_dashboard,
    stop_dashboard,
    wait_until_idle,
)
from oidc_provider import OidcProvider, start_provider

from daam_store.store.testing import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "signin"

VIEWER = "vera.viewer@example.com"
MEMBER = "max.member@example.com"
ADMIN = "ada.admin@example.com"
NEWCOMER = "nick.new@example.com"
PROMOTED = "pat.promoted@example.com"
PROMPT = "a red circle and a blue square"


@dataclass
class Team:
    url: str  # the dashboard
    store_url: str
    provider: OidcProvider
    server: subprocess.Popen
    log_file: Path

    def logs(self) -> str:
        lines = self.log_file.read_text(errors="replace").splitlines()
        dashboard = "\n".join(line for line in lines if '"GET /static/' not in line)[-4000:]  # not its assets
        provider = self.provider.log_tail()
        return f"--- streamlit log (tail) ---\n{dashboard}\n--- OIDC provider log (tail) ---\n{provider}"


# -- the server pair -------------------------------------------------------------------------------------
def write_secrets(folder: Path, dashboard_port: int, provider: OidcProvider) -> Path:
    secrets = folder / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{dashboard_port}/oauth2callback"\n'
        f'cookie_secret = "{os.urandom(24).hex()}"\n'
        'client_id = "daam-store-test"\n'
        'client_secret = "not-a-secret"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n'
    )
    return secrets


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Iterator[Team]:
    """The provider and a dashboard in team mode over an empty store; both stopped (logs kept) after the module."""
    folder = tmp_path_factory.mktemp("signin")
    provider = start_provider(folder / "provider.log")
    server = None
    try:
        port = free_port()
        secrets = write_secrets(folder, port, provider)
        store_url = f"sqlite:///{folder / 'store.db'}"
        log_file = folder / "streamlit.log"
        url, server = start_dashboard(
            store_url,
            log_file,
            port=port,
            extra_args=["--secrets.files", str(secrets)],
            unset_env=["DAAM_STORE_DEFAULT_ROLE"],  # newcomers get the documented default: no role
            # The mock provider sends no email_verified claim (as Microsoft Entra): trusted as an operator would.
            extra_env={"DAAM_STORE_IDENTITY_CLAIM": "email"},
        )
        yield Team(url, store_url, provider, server, log_file)
    finally:
        if server is not None:
            stop_dashboard(server)
        provider.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name in ("streamlit.log", "provider.log"):
            if (folder / name).exists():
                (ARTIFACTS / name).write_text((folder / name).read_text(errors="replace"))


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module (starting it costs ~2 s here); each visitor gets its own context."""
    with playwright_api.sync_playwright() as instance:
        browser = launch_chromium_for_contexts(instance)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser(chromium, team: Team, name: str) -> Iterator[playwright_api.Page]:
    """A fresh browser context (its own cookies and storage: nothing from another identity). On a failure inside,
    a screenshot goes to test-artifacts/signin/<name>.png and the servers' log tails join the message."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        yield page
    except (AssertionError, playwright_api.Error) as error:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            where = f"page {page.url}, screenshot test-artifacts/signin/{name}.png"
        except playwright_api.Error:
            where = f"page {page.url}"
        raise AssertionError(f"{error}\n({where})\n{team.logs()}") from error
    finally:
        context.close()


# -- driving the pages -----------------------------------------------------------------------------------
def sign_in(page, team: Team, email: str) -> None:
    """The whole OIDC flow as a person does it: Sign in on the dashboard, the provider's authorize form with the
    subject (the mock provider makes it the `email` claim too), Authorize, back on the dashboard."""
    open_page(page, team.url, "sign in to use it")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{team.provider.url}/oauth2/authorize*", timeout=PAGE_TIMEOUT_MS)
    page.locator('input[name="sub"]').fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{team.url}/**", timeout=PAGE_TIMEOUT_MS)
    page.get_by_text(email, exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)  # sidebar or the no-role line
    wait_until_idle(page)
    check_no_exception(page, f"the first page after {email} signed in")


def navigation(page) -> list[str]:
    """The page titles in the sidebar navigation, in order (each link's text ends with its title)."""
    links = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    return [text.strip().splitlines()[-1] for text in links if text.strip()]


def sidebar_text(page) -> str:
    sidebar = page.locator('[data-testid="stSidebar"]')
    return sidebar.inner_text() if sidebar.count() else ""


def users_listed(page) -> dict[str, str]:
    """The Users page's table as identity -> role. st.dataframe draws on a canvas; its cells are read from the
    grid's accessible table (hidden, so text contents rather than visible text)."""
    table = page.locator('[data-testid="stDataFrame"]')
    table.locator('td[role="gridcell"]').first.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
    header = table.locator('th[role="columnheader"]').all_text_contents()
    identity, role = header.index("identity"), header.index("role")
    listed = {}
    for row in table.locator('tbody tr[role="row"]').all():
        cells = row.locator('td[role="gridcell"]').all_text_contents()
        listed[cells[identity]] = cells[role]
    return listed


def cli(*args: str) -> str:
    """`daam-store ARGS` in its own process, as an operator runs it; its stdout."""
    command = [sys.executable, "-c", "import sys; from daam_store.cli import store_main; sys.exit(store_main())"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"daam-store {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def roles(team: Team, shell: bool = False) -> dict[str, str]:
    """identity -> role as the store has them: from `daam-store users ls --json` (`shell`), else read here (each
    CLI run costs seconds of imports)."""
    if shell:
        rows = json.loads(cli("users", "ls", "--json", "--db", team.store_url))
        return {row["identity"]: row["role"] for row in rows}
    from daam_store.access import list_accounts
    from daam_store.store import open_store

    with open_store(team.store_url) as store:
        return {account.identity: account.role.value for account in list_accounts(store)}


def give_role(team: Team, email: str, role: str, shell: bool = False) -> None:
    """What the operator does to name roles: `daam-store users set EMAIL ROLE` (`shell`), else access.set_role."""
    if shell:
        cli("users", "set", email, role, "--db", team.store_url)
        return
    from daam_store.access import parse_role, set_role
    from daam_store.store import open_store

    with open_store(team.store_url) as store:
        set_role(store, email, parse_role(role))


def assert_nothing_of_the_store(page, name: str) -> None:
    """What a visitor without access may see: the frame's title and its sign-in or no-role line, nothing else."""
    check_no_exception(page, name)
    body = page.locator("body").inner_text()
    for leak in ("Generations", "Latest generations", "The store is empty", "Prompts, one per line"):
        assert leak not in body, f"{name}: the page shows {leak!r}:\n{body[:2000]}"
    assert page.locator('[data-testid="stMetric"]').count() == 0, f"{name}: a store metric is shown"
    assert not {"Home", "Explore", "Generate", "Models", "Compare", "Users"} & set(navigation(page)), navigation(page)


# -- the tests -------------------------------------------------------------------------------------------
def test_not_signed_in_sees_only_the_sign_in_screen(team, chromium):
    with browser(chromium, team, "not-signed-in") as page:
        open_page(page, team.url, "sign in to use it")
        assert page.get_by_role("button", name="Sign in").count() == 1
        assert_nothing_of_the_store(page, "the sign-in screen")

        for path in ("Explore", "Generate", "Users"):  # a page's own URL, typed in: still the sign-in screen
            open_page(page, f"{team.url}/{path}", "sign in to use it")
            assert_nothing_of_the_store(page, f"/{path} before signing in")
            assert page.get_by_role("heading", name=path, exact=True).count() == 0


def test_a_newcomer_signs_in_and_waits_for_a_role(team, chromium):
    assert NEWCOMER not in roles(team)
    with browser(chromium, team, "newcomer") as page:
        sign_in(page, team, NEWCOMER)
        page.get_by_text("no role here yet", exact=False).wait_for(timeout=PAGE_TIMEOUT_MS)
        assert_nothing_of_the_store(page, "the no-role screen")
        assert page.get_by_role("button", name="Sign out").count() >= 1
        body = page.locator("body").inner_text()  # not even where the store is (sidebar included)
        store_path = team.store_url.removeprefix("sqlite:///")
        assert store_path not in body and "Database" not in body, f"the no-role screen names the store:\n{body}"
    assert roles(team, shell=True)[NEWCOMER] == "none"  # recorded, so that an admin can find them and grant a role


def test_a_viewer_browses_but_cannot_generate(team, chromium):
    give_role(team, VIEWER, "viewer", shell=True)
    with browser(chromium, team, "viewer") as page:
        sign_in(page, team, VIEWER)
        page.locator('[data-testid="stMetric"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)  # Home: the store's counts
        assert f"{VIEWER} (viewer)" in sidebar_text(page)
        titles = navigation(page)
        assert {"Home", "Explore", "Compare"} <= set(titles), titles
        assert "Generate" not in titles and "Users" not in titles, titles

        for path in ("Explore", "Compare"):
            open_page(page, f"{team.url}/{path}", path, heading=True)
            check_no_exception(page, path)

        page.goto(f"{team.url}/Generate")  # typed in: not one of the viewer's pages
        page.get_by_text(f"{VIEWER} (viewer)", exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        wait_until_idle(page)
        assert page.get_by_text("Prompts, one per line", exact=False).count() == 0
        assert page.get_by_role("button", name="Generate").count() == 0
        assert page.get_by_role("heading", name="Generate", exact=True).count() == 0


def test_a_viewer_calling_the_actions_directly_is_refused(team):
    """The server-side checks without the browser: what the pages call, called with a viewer's actor."""
    from daam_store.access import Actor, Permission, PermissionDeniedError, Role, actor_for, set_role
    from daam_store.jobs import JobRequest, count_jobs, submit, submit_grid
    from daam_store.store import open_store
    from daam_store.views.models import chosen_model, register_model

    give_role(team, VIEWER, "viewer")

    def must_not_load(name):
        raise AssertionError(f"a viewer's request loaded model {name!r}")

    with open_store(team.store_url) as store:
        viewer = actor_for(store, VIEWER)
        assert viewer == Actor(VIEWER, Role.VIEWER, viewer.name)
        viewer.require(Permission.BROWSE)
        for permission in (Permission.GENERATE, Permission.REGISTER_MODELS, Permission.MANAGE_ROLES):
            with pytest.raises(PermissionDeniedError, match="viewer role"):
                viewer.require(permission)
        jobs_before = count_jobs(store)
        with pytest.raises(PermissionDeniedError, match="viewer role"):  # the generation queue
            submit(store, viewer, [JobRequest("sd1-tiny", PROMPT, seed=1, steps=2)])
        with pytest.raises(PermissionDeniedError, match="viewer role"):  # a sweep
            submit_grid(store, viewer, [PROMPT], [1, 2], ["sd1-tiny"], sweep="not-mine")
        assert count_jobs(store) == jobs_before, "a viewer's refused request left jobs behind"
        with pytest.raises(PermissionDeniedError):
            register_model(store, must_not_load, "sd2-tiny", viewer)
        with pytest.raises(PermissionDeniedError):
            chosen_model(viewer, "sd1-tiny", "someone/else")
        with pytest.raises(PermissionDeniedError):
            set_role(store, VIEWER, Role.ADMIN, by=viewer)
        assert actor_for(store, VIEWER).role == Role.VIEWER  # still a viewer
        nobody = actor_for(store, NEWCOMER)
        assert not any(nobody.may(permission) for permission in Permission)


def test_a_member_generates_as_themselves(team, chromium):
    give_role(team, MEMBER, "member")
    with browser(chromium, team, "member") as page:
        sign_in(page, team, MEMBER)
        assert f"{MEMBER} (member)" in sidebar_text(page)
        titles = navigation(page)
        assert "Generate" in titles and "Users" not in titles, titles

        open_page(page, f"{team.url}/Generate", "Prompts, one per line")
        check_no_exception(page, "Generate")
        page.get_by_text("Record with the generations", exact=False).first.click()
        page.get_by_label("Tags, comma-separated", exact=True).wait_for(timeout=PAGE_TIMEOUT_MS)
        assert page.get_by_label("Author", exact=True).count() == 0, "a member can type an author"

        page.get_by_label("Prompts, one per line", exact=True).fill(PROMPT)
        page.get_by_label("Steps", exact=True).fill("2")
        page.get_by_label("Seeds", exact=True).fill("5")
        page.get_by_label("Seeds", exact=True).press("Tab")  # Streamlit commits a text input on blur
        page.get_by_role("button", name="Generate", exact=True).click()
        # The batch runs (as a job, on the dashboard's worker) and its result lands on the page.
        result = page.get_by_text("Generation #", exact=False).first
        failed = page.locator('[data-testid="stAlertContentError"]').first
        result.or_(failed).wait_for(timeout=GENERATION_TIMEOUT_MS)
        assert failed.count() == 0, f"the generation failed: {failed.inner_text()}"
        wait_until_idle(page)
        check_no_exception(page, "Generate after a generation")

        open_page(page, f"{team.url}/Users", f"{MEMBER} (member)")  # typed in: not a member's page
        assert page.get_by_role("heading", name="Users", exact=True).count() == 0
        assert page.get_by_role("button", name="Set role").count() == 0
        assert ADMIN not in page.locator("body").inner_text()

    generations = json.loads(cli("ls", "--json", "--db", team.store_url))
    assert [(row["prompt"], row["seed"], row["steps"]) for row in generations] == [(PROMPT, 5, 2)]
    assert generations[0]["author"] == MEMBER
    assert generations[0]["model"] == "sd1-tiny"
    from daam_store.jobs import list_jobs
    from daam_store.store import open_store

    with open_store(team.store_url) as store:  # the job that ran it (the page queues its batch) is theirs too
        jobs = [job for job in list_jobs(store) if job.generation_id == generations[0]["id"]]
    assert [job.author for job in jobs] == [MEMBER], jobs


def test_an_admin_sets_a_role_on_the_users_page(team, chromium):
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer"), (MEMBER, "member")):
        give_role(team, email, role)
    assert PROMOTED not in roles(team)
    with browser(chromium, team, "admin") as page:
        sign_in(page, team, ADMIN)
        assert f"{ADMIN} (admin)" in sidebar_text(page)
        assert "Users" in navigation(page), navigation(page)

        open_page(page, f"{team.url}/Users", "Set role")
        check_no_exception(page, "Users")
        listed = users_listed(page)
        assert listed == roles(team), "the Users page and `daam-store users ls` differ"
        assert {ADMIN: "admin", VIEWER: "viewer", MEMBER: "member"}.items() <= listed.items(), listed

        page.get_by_label("E-mail address", exact=False).fill(PROMOTED)
        page.get_by_label("Role", exact=True).click()  # Streamlit's selectbox: open it, pick the option
        page.get_by_role("option", name="member", exact=True).click()
        page.get_by_role("button", name="Set role").click()
        page.get_by_text("Role set.", exact=False).wait_for(timeout=PAGE_TIMEOUT_MS)
        wait_until_idle(page)
        check_no_exception(page, "Users after setting a role")
        assert users_listed(page).get(PROMOTED) == "member"
    assert roles(team)[PROMOTED] == "member"


def test_signing_out_returns_to_the_sign_in_screen(team, chromium):
    give_role(team, MEMBER, "member")
    with browser(chromium, team, "sign-out") as page:
        sign_in(page, team, MEMBER)
        page.locator('[data-testid="stMetric"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)  # Home: the store, shown
        page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
        end_session = page.get_by_role("button", name="End session")
        end_session.or_(page.get_by_text("sign in to use it")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        if page.url.startswith(team.provider.url):  # the provider ends its session too, on a confirmation
            end_session.click()
        page.get_by_text("sign in to use it", exact=False).wait_for(timeout=PAGE_TIMEOUT_MS)
        wait_until_idle(page)
        assert_nothing_of_the_store(page, "the screen after signing out")
        assert PROMPT not in page.locator("body").inner_text()

        open_page(page, team.url, "sign in to use it")  # the identity cookie is gone: a new visit is signed out
        assert_nothing_of_the_store(page, "a new visit after signing out")
