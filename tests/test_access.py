"""Team mode's roles (issue 14): who may do what, stored in the database and checked where each action runs.

The pages run under AppTest with `[auth]` secrets and a seeded `st.user`; the real OpenID Connect flow in a
browser is tests/test_signin.py.
"""

from __future__ import annotations

import json

import pytest
from markdown_support import as_read
from streamlit.testing.v1 import AppTest
from team_support import AUTH, DASHBOARD, dashboard_app, signed_in

from daam_store.access import (
    LOCAL_ACTOR,
    Actor,
    Permission,
    PermissionDeniedError,
    Role,
    actor_for,
    list_accounts,
    set_role,
)
from daam_store.cli import store_main
from daam_store.errors import UserError
from daam_store.store import open_store

pytestmark = pytest.mark.usefixtures("no_leaked_workers")  # the frame starts a worker for each test's store


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("DAAM_STORE_URL", url)
    monkeypatch.syspath_prepend(str(DASHBOARD))  # pages import `ui`, as under `streamlit run`
    with open_store(url) as opened:
        set_role(opened, "viewer@example.com", Role.VIEWER)
        set_role(opened, "member@example.com", Role.MEMBER)
        set_role(opened, "admin@example.com", Role.ADMIN)
        yield opened


def test_each_role_may_what_the_issue_lists():
    viewer, member, admin = (Actor("x@example.com", role) for role in (Role.VIEWER, Role.MEMBER, Role.ADMIN))
    assert viewer.may(Permission.BROWSE) and not viewer.may(Permission.GENERATE)
    assert member.may(Permission.GENERATE) and member.may(Permission.CANCEL_OWN_JOBS)
    assert not member.may(Permission.MANAGE_ROLES) and not member.may(Permission.REGISTER_MODELS)
    assert all(admin.may(permission) for permission in Permission)
    assert not any(Actor("x@example.com", Role.NONE).may(permission) for permission in Permission)
    with pytest.raises(PermissionDeniedError, match="viewer role"):
        viewer.require(Permission.GENERATE)
    assert LOCAL_ACTOR.may(Permission.MANAGE_ROLES) and not LOCAL_ACTOR.team_mode


def test_the_author_is_the_signed_in_identity_and_own_things_are_by_identity():
    member = Actor("member@example.com", Role.MEMBER)
    assert member.author("typed by someone") == "member@example.com"
    assert LOCAL_ACTOR.author("ann") == "ann" and LOCAL_ACTOR.author("") is None
    member.require_owner_or("Member@Example.com", Permission.TAG_OWN, Permission.TAG_ANY)
    with pytest.raises(PermissionDeniedError, match="only their own"):
        member.require_owner_or("other@example.com", Permission.CANCEL_OWN_JOBS, Permission.CANCEL_ANY_JOB)
    Actor("a@example.com", Role.ADMIN).require_owner_or("other@example.com", Permission.TAG_OWN, Permission.TAG_ANY)


def test_someone_new_is_recorded_with_the_default_role(store, monkeypatch):
    assert actor_for(store, " New@Example.com ", "New Person") == Actor("new@example.com", Role.NONE, "New Person")
    monkeypatch.setenv("DAAM_STORE_DEFAULT_ROLE", "viewer")
    assert actor_for(store, "other@example.com").role == Role.VIEWER
    assert actor_for(store, "new@example.com").role == Role.NONE  # recorded: the default applies once
    assert {account.identity for account in list_accounts(store)} >= {"new@example.com", "other@example.com"}


def test_roles_change_at_once_and_the_last_admin_stays(store):
    admin = actor_for(store, "admin@example.com")
    member = actor_for(store, "member@example.com")
    with pytest.raises(PermissionDeniedError, match="manage roles"):
        set_role(store, "viewer@example.com", Role.ADMIN, by=member)
    set_role(store, "viewer@example.com", Role.MEMBER, by=admin)
    assert actor_for(store, "viewer@example.com").role == Role.MEMBER
    with pytest.raises(UserError, match="only admin"):
        set_role(store, "admin@example.com", Role.VIEWER, by=admin)
    with pytest.raises(UserError, match="no spaces"):
        set_role(store, "two words", Role.VIEWER)


def test_users_cli_names_the_first_admin(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def users(*args: str) -> tuple[int, str, str]:
        code = store_main(["users", *args, "--db", url])
        out, err = capsys.readouterr()
        return code, out, err

    assert "no users yet" in users("ls")[1]
    assert users("set", "Alice@Example.com", "admin")[0] == 0
    assert json.loads(users("ls", "--json")[1]) == [
        {"identity": "alice@example.com", "name": "", "role": "admin", "last seen": ""}
    ]
    code, _, err = users("set", "alice@example.com", "boss")
    assert code != 0 and err.strip().count("\n") == 0 and "unknown role" in err
    code, _, err = users("set", "alice@example.com", "viewer")
    assert code != 0 and "only admin" in err


# -- the dashboard in team mode -------------------------------------------------------------------------


def texts(app: AppTest) -> str:
    return "\n".join([e.value for e in app.text] + [e.value for e in app.markdown] + [e.value for e in app.title])


def test_nobody_signed_in_sees_only_the_sign_in_button(store):
    app = dashboard_app({"is_logged_in": False})
    assert [button.label for button in app.button] == ["Sign in"]
    assert "sign in to use it" in texts(app) and "Database" not in texts(app) and not app.metric
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page(str(DASHBOARD / "app_pages/2_Explore.py"))


def test_a_new_person_has_no_access_until_given_a_role(store):
    app = dashboard_app(signed_in("stranger@example.com"))
    assert "no role here yet" in texts(app) and not app.metric
    assert actor_for(store, "stranger@example.com").role == Role.NONE


def test_an_unverified_email_is_not_taken_as_the_identity(store):
    app = dashboard_app({"is_logged_in": True, "email": "admin@example.com", "email_verified": False, "sub": "abc"})
    assert "sub:abc" in texts(app) and "Users" not in [page for page in texts(app).splitlines()]
    assert actor_for(store, "sub:abc").role == Role.NONE


def test_a_viewer_browses_but_cannot_open_generate_or_users(store):
    app = dashboard_app(signed_in("viewer@example.com"))
    assert "viewer@example.com (viewer)" in texts(app)
    for page in ("app_pages/1_Generate.py", "app_pages/6_Users.py"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            app.switch_page(str(DASHBOARD / page))
    explore = dashboard_app(signed_in("viewer@example.com"), "app_pages/2_Explore.py")
    assert not explore.error


def test_a_page_checks_the_role_itself_not_only_the_navigation(store):
    """The Generate page run for a viewer (as if the navigation let it through) stops with one line."""
    app = AppTest.from_file(str(DASHBOARD / "app_pages/1_Generate.py"), default_timeout=60)
    app.session_state["_daam_store_actor"] = Actor("viewer@example.com", Role.VIEWER)
    app.run()
    assert [as_read(e.value) for e in app.error] == [
        "viewer@example.com (viewer role) may not generate and sweep: ask an admin for a role that may"
    ]
    assert not app.button and not app.text_area  # no form


def test_a_member_generates_without_typing_an_author(store):
    app = dashboard_app(signed_in("member@example.com"), "app_pages/1_Generate.py")
    labels = [widget.label for widget in app.text_input]
    assert "Author" not in labels and "Sweep author" not in labels
    assert app.text_area  # the prompts of the form
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page(str(DASHBOARD / "app_pages/6_Users.py"))


def test_an_admin_sets_a_role_on_the_users_page(store):
    app = dashboard_app(signed_in("admin@example.com"), "app_pages/6_Users.py")
    app.text_input[0].input("viewer@example.com")
    app.selectbox[0].select("member")
    next(button for button in app.button if button.label == "Set role").click().run()
    assert not app.error, [e.value for e in app.error]
    assert actor_for(store, "viewer@example.com").role == Role.MEMBER


def test_local_use_says_single_user_mode_and_warns_when_listening_beyond_localhost(store):
    from daam_store.views.home import single_user_note

    assert "this machine only (localhost)" in single_user_note("localhost")
    assert "anyone who reaches it" in single_user_note("0.0.0.0")
    assert "every network interface" in single_user_note(None)
    project_config = (DASHBOARD.parent / ".streamlit" / "config.toml").read_text()
    assert 'address = "localhost"' in project_config
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=60).run()
    assert any("Single-user mode" in caption.value for caption in app.caption)
    assert "Sign out" not in [button.label for button in app.button]


# -- tagging: members tag what they made, admins anything ---------------------------------------------------


@pytest.fixture
def two_generations(store, clip_tokenizer) -> tuple[int, int]:
    from daam_store.models.info import ModelInfo
    from daam_store.store.testing import synthetic_experiment

    model = ModelInfo("m", "builtin", "", "SD1", "r", 32, "epsilon")
    mine = store.save(synthetic_experiment(clip_tokenizer, "a cat", seed=1), model=model, author="member@example.com")
    theirs = store.save(synthetic_experiment(clip_tokenizer, "a dog", seed=2), model=model, author="else@example.com")
    return mine, theirs


def stored_tags(store, generation_id: int) -> tuple[str, ...]:
    from daam_store.store import queries

    with store.session() as session:
        return queries.get_generation(session, generation_id).tags


def test_members_tag_their_own_generations_and_admins_any(store, two_generations):
    from daam_store.views.tagging import add_tags, may_tag

    mine, theirs = two_generations
    member, viewer = Actor("member@example.com", Role.MEMBER), Actor("viewer@example.com", Role.VIEWER)
    assert add_tags(store, mine, "keep, best", member) == ("keep", "best")
    assert set(stored_tags(store, mine)) == {"keep", "best"}
    with pytest.raises(PermissionDeniedError, match="only their own"):
        add_tags(store, theirs, "mine-now", member)
    with pytest.raises(PermissionDeniedError):
        add_tags(store, mine, "x", viewer)
    add_tags(store, theirs, "reviewed", Actor("admin@example.com", Role.ADMIN))
    assert stored_tags(store, theirs) == ("reviewed",)
    assert may_tag(store, mine, member) and not may_tag(store, theirs, member) and not may_tag(store, mine, viewer)
    with pytest.raises(UserError, match="at most 100"):
        add_tags(store, mine, "x" * 101, member)


def test_explore_offers_the_tag_form_only_where_the_role_allows(store, two_generations):
    mine, theirs = two_generations
    app = dashboard_app(signed_in("member@example.com"), "app_pages/2_Explore.py")
    app.query_params["generation"] = str(mine)
    app.run()
    app.text_input(key="new_tags").input("**bold**")
    next(button for button in app.button if button.label == "Add tags").click().run()
    assert [e.value for e in app.success] == ["Tagged&#58; \\*\\*bold\\*\\*"]  # user text, never Markdown
    assert stored_tags(store, mine) == ("**bold**",)
    other = dashboard_app(signed_in("member@example.com"), "app_pages/2_Explore.py")
    other.query_params["generation"] = str(theirs)
    other.run()
    assert "Add tags" not in [button.label for button in other.button]


def test_the_identity_can_be_the_subject_id_alone(store, monkeypatch):
    monkeypatch.setenv("DAAM_STORE_IDENTITY_CLAIM", "sub")
    app = dashboard_app(signed_in("admin@example.com"))  # a verified admin address, yet the subject id counts
    assert "sub:admin (none)" in texts(app) and "no role here yet" in texts(app)


def test_an_email_without_a_verified_claim_counts_only_where_the_operator_trusts_it(store, monkeypatch):
    unverified = {"is_logged_in": True, "email": "admin@example.com", "sub": "Mixed-Case-Id"}  # no email_verified
    assert "sub:Mixed-Case-Id (none)" in texts(dashboard_app(unverified))  # subject ids keep their case
    monkeypatch.setenv("DAAM_STORE_IDENTITY_CLAIM", "email")  # e.g. a one-tenant Entra: addresses are not editable
    assert "admin@example.com (admin)" in texts(dashboard_app(unverified))
    monkeypatch.setenv("DAAM_STORE_IDENTITY_CLAIM", "mail")
    app = AppTest.from_file(str(DASHBOARD / "Home.py"), default_timeout=60)
    app.secrets["auth"], app.user = AUTH, unverified
    app.run()
    (error,) = [e.value.replace("\\", "") for e in app.error]  # shown escaped for Markdown
    assert error == "$DAAM_STORE_IDENTITY_CLAIM is one of verified-email, email, sub, not 'mail'"
