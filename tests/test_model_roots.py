"""The Models page loads local folders only from $DAAM_STORE_MODEL_ROOTS when it is set (issue 14, "Secrets")."""

import pytest

from daam_store.errors import UserError
from daam_store.views.models import register_model


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
        register_model(None, fake_loader, name)
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
            register_model(None, fake_loader, name)


def test_without_roots_any_folder_is_loaded(tmp_path, monkeypatch):
    monkeypatch.delenv("DAAM_STORE_MODEL_ROOTS", raising=False)
    with pytest.raises(Loaded):
        register_model(None, fake_loader, str(tmp_path))
