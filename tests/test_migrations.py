"""Alembic migrations against the ORM models, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from daam_store.cli import store_main
from daam_store.store import SchemaOutdatedError, SchemaTooNewError, open_store
from daam_store.store.migrate import downgrade, head_revision, upgrade
from daam_store.store.schema import Base
from daam_store.store.session import make_engine

TABLES = set(Base.metadata.tables)


@pytest.fixture
def engine(store_url):
    created = make_engine(store_url)
    yield created
    created.dispose()


def table_names(engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names()) & TABLES


def test_migrations_build_exactly_the_models(engine):
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    assert differences == []


def test_upgrade_downgrade_upgrade(engine):
    upgrade(engine)
    assert table_names(engine) == TABLES
    downgrade(engine, "base")
    assert table_names(engine) == set()
    upgrade(engine, "0001")
    assert "map_stack" not in table_names(engine) and "generation" in table_names(engine)
    upgrade(engine)
    assert table_names(engine) == TABLES


def test_an_older_schema_asks_for_the_upgrade_command(engine, store_url, capsys):
    upgrade(engine, "0001")
    with pytest.raises(SchemaOutdatedError, match="revision 0001 .*run `daam-store db upgrade`"):
        open_store(store_url)
    assert store_main(["db", "check", "--url", store_url]) == 1
    assert "daam-store db upgrade" in capsys.readouterr().out
    assert store_main(["db", "upgrade", "--url", store_url]) == 0
    assert f"upgraded from 0001 to schema revision {head_revision()}" in capsys.readouterr().out
    with open_store(store_url) as store:
        assert store.url.endswith(store_url.rsplit("/", 1)[-1])


def test_a_newer_schema_asks_for_a_newer_daam_store(engine, store_url):
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(SchemaTooNewError, match="f00d.*upgrade daam-store"):
        open_store(store_url)


def test_open_store_migrates_only_an_empty_database(store_url):
    with open_store(store_url) as store, store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()


def test_stored_generations_survive_the_upgrade(engine, store_url, clip_tokenizer):
    """A generation written before the rule column (rolled back to 0002, the last schema that had every table the
    writer filled then) comes back after the upgrade with the rule its maps had, every layer, and its words
    from the rows, with no tokenizer."""
    from daam_store.models.info import ModelInfo
    from daam_store.store.testing import synthetic_experiment

    upgrade(engine)
    exp = synthetic_experiment(clip_tokenizer, "a cat on a mat", seed=4)
    with open_store(store_url) as store:
        generation_id = store.save(exp, model=ModelInfo("m", "builtin", "", "SD1", "r", 32, "epsilon"))
    downgrade(engine, "0002")
    with engine.connect() as connection:
        assert "heat_map_rule" not in {c["name"] for c in inspect(connection).get_columns("generation")}
    assert store_main(["db", "upgrade", "--url", store_url]) == 0
    with open_store(store_url) as store:
        back = store.load_experiment(generation_id)
    assert back.prompt == exp.prompt and back.seed == 4
    assert back.metadata["heat_map_rule"] == "daam+mid"
    assert back.prompt_tokens == exp.prompt_tokens
    assert back.heat_map().compute_word_heat_map("mat").value.shape == exp.global_heat_map.shape[1:]
    assert store_main(["db", "check", "--url", store_url]) == 0


def test_the_package_carries_the_migrations_folder():
    """A wheel holds package data only: daam_store/_migrations (a link to migrations/) and the package-data
    patterns must reach every migration file, or `pip install git+...` gives a store that cannot migrate."""
    import tomllib
    from pathlib import Path

    from daam_store.store.migrate import MIGRATIONS_DIR

    root = Path(__file__).resolve().parents[1]
    package = root / "daam_store"
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["daam_store"]
    packaged = {path.relative_to(package) for pattern in patterns for path in package.glob(pattern)}
    files = [p for p in (root / "migrations").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) >= 4
    for path in files:
        relative = path.relative_to(root / "migrations")
        assert (MIGRATIONS_DIR / relative).read_bytes() == path.read_bytes()
        assert Path("_migrations") / relative in packaged, relative


def test_explore_says_what_a_generation_stored_at_0001_lacks(engine, store_url, clip_tokenizer, monkeypatch):
    """Rolled back to 0001 (which had no map_stack table) and upgraded, a generation keeps its image and word maps
    but has no token maps: Explore opens it, shows the word maps, and says what is missing, not "overlays"."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from daam_store.models.info import ModelInfo
    from daam_store.store.testing import synthetic_experiment
    from daam_store.views.explore import generation_details

    upgrade(engine)
    exp = synthetic_experiment(clip_tokenizer, "a red cat on a mat", seed=4)
    with open_store(store_url) as store:
        generation_id = store.save(exp, model=ModelInfo("m", "builtin", "", "SD1", "r", 32, "epsilon"))
    downgrade(engine, "0001")
    upgrade(engine)

    with open_store(store_url) as store:
        details = generation_details(store, generation_id)
    assert details.experiment is None and details.image.size == exp.image.size
    assert "schema 0001" in details.maps_note and "one map per word" in details.maps_note
    assert "not the map of each token" in details.maps_note and "overlay" not in details.maps_note.lower()
    assert [overlay.label for overlay in details.stored_overlays] == ["a", "red", "cat", "on", "a", "mat"]
    assert {"what": "maps average", "value": "word maps only (no token maps)"} in details.facts

    dashboard = Path(__file__).resolve().parents[1] / "dashboard"
    monkeypatch.syspath_prepend(str(dashboard))
    monkeypatch.setenv("DAAM_STORE_URL", store_url)
    monkeypatch.setenv("DAAM_STORE_WORKERS", "0")  # a page view only: no worker left polling this database
    app = AppTest.from_file(str(dashboard / "Home.py"), default_timeout=60).run()
    app.switch_page("app_pages/2_Explore.py")
    app.query_params["generation"] = str(generation_id)
    app = app.run()
    assert not app.exception and not app.error, [e.value for e in [*app.exception, *app.error]]
    notes = [element.value for element in app.info]
    assert any("schema 0001" in note for note in notes) and not any("overlay" in note for note in notes), notes
    assert len(app.get("image")) == 1 + 6
