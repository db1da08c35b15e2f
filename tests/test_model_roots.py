"""The Models page loads local folders only from $DAAM_STORE_MODEL_ROOTS when it is set (issue 14, "Secrets")."""

import pytest

from daam_store.access import LOCAL_ACTOR, Actor, PermissionDeniedError, Role
from daam_store.errors import UserError
from daam_store.views.models import chosen_model, register_model


class WritableStore:
    """The one store method register_model calls before the loader (which the tests stop with Loaded)."""

    def require_writable(self) -> None:
        pass


WRITABLE = WritableStore()


class Loaded(Exception):
    """Raised by the fake loader: the name got past the roots check."""


def fake_loader(name):
    raise Loaded(name)


@pytest.fixture
def roots(tmp_path, monkeypatch):
    models = tmp_path / "models"
    (models / "sd").mkdir(parents=True)
    monkeypatch.setenv("DAAM_STORE_MODEL_ROOTS", f"{tmp_path / 'elsewhere'}:{models}")
    return models


def refusal(name: str) -> str:
    with pytest.raises(UserError) as raised:
        register_model(WRITABLE, fake_loader, name, LOCAL_ACTOR)
    return str(raised.value).replace(repr(name), "NAME")


def test_folders_outside_the_roots_get_one_message_whatever_exists(roots, tmp_path):
    private = tmp_path / "private"
    (private / "inner").mkdir(parents=True)
    private.chmod(0)
    escape = roots / "escape"
    escape.symlink_to(tmp_path)
    try:
        messages = {
            refusal(name)
            for name in [str(tmp_path / "missing"), "/etc", str(private / "inner"), str(escape), f"{roots}/../private"]
        }
    finally:
        private.chmod(0o700)
    assert len(messages) == 1
    assert messages.pop() == "NAME is neither a hub id (org/name) nor a folder under $DAAM_STORE_MODEL_ROOTS"


def test_folders_under_the_roots_hub_ids_and_builtins_are_loaded(roots):
    for name in [str(roots / "sd"), str(roots / "not-yet"), "org/model", "sd1-tiny"]:
        with pytest.raises(Loaded):
            register_model(WRITABLE, fake_loader, name, LOCAL_ACTOR)


def test_without_roots_any_folder_is_loaded(tmp_path, monkeypatch):
    monkeypatch.delenv("DAAM_STORE_MODEL_ROOTS", raising=False)
    with pytest.raises(Loaded):
        register_model(WRITABLE, fake_loader, str(tmp_path), LOCAL_ACTOR)


@pytest.mark.parametrize("folder", ["/etc", "/nonexistent/x"])
def test_the_generate_page_keeps_to_the_model_roots(folder, tmp_path, monkeypatch):
    """Generate's "another model" box loads through the same check: one message, whatever the path."""
    from test_dashboard_app import DASHBOARD, fill_generate_form, run_page, shown_error

    monkeypatch.syspath_prepend(str(DASHBOARD))
    monkeypatch.setenv("DAAM_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("DAAM_STORE_MODEL_ROOTS", str(tmp_path / "models"))
    app = fill_generate_form(run_page("app_pages/1_Generate.py"), folder, "a dog", "0", steps=1)
    assert not app.exception and len(app.error) == 1
    assert shown_error(app) == f"'{folder}' is neither a hub id (org/name) nor a folder under $DAAM_STORE_MODEL_ROOTS"


def test_team_mode_allows_no_local_folder_until_roots_are_set(tmp_path, monkeypatch):
    monkeypatch.delenv("DAAM_STORE_MODEL_ROOTS", raising=False)
    admin = Actor("root@example.com", Role.ADMIN)
    with pytest.raises(UserError, match="neither a hub id"):
        register_model(WRITABLE, fake_loader, str(tmp_path), admin)
    with pytest.raises(Loaded):  # local use: any folder, as before
        register_model(WRITABLE, fake_loader, str(tmp_path), LOCAL_ACTOR)
    monkeypatch.setenv("DAAM_STORE_MODEL_ROOTS", str(tmp_path))
    with pytest.raises(Loaded):
        register_model(WRITABLE, fake_loader, str(tmp_path), admin)


def test_only_admins_register_or_generate_on_an_unlisted_model(tmp_path):
    for role in (Role.VIEWER, Role.MEMBER):
        actor = Actor("someone@example.com", role)
        with pytest.raises(PermissionDeniedError, match="register models"):
            register_model(WRITABLE, fake_loader, "org/model", actor)
        with pytest.raises(PermissionDeniedError):
            chosen_model(actor, "sd1-tiny", "org/other")
        assert chosen_model(actor, "sd1-tiny", "  ") == "sd1-tiny"
    assert chosen_model(Actor("root@example.com", Role.ADMIN), "sd1-tiny", "org/other") == "org/other"
