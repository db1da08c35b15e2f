"""Faults the store must survive with a clear message and no lost or partial data.

Child processes are forked (they inherit the imported library, so each costs milliseconds, not the
seconds a fresh interpreter needs to import torch and diffusers).
"""

import multiprocessing
import os
import pwd
import signal
import sqlite3
import stat
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import delete, event, select, update

from daam_store.cli import store_main
from daam_store.models import load_clip_tokenizer
from daam_store.models.info import ModelInfo
from daam_store.store import (
    CorruptBlobError,
    DatabaseUnavailableError,
    ReadOnlyDatabaseError,
    StoreError,
    UnknownCodecError,
    open_store,
    queries,
)
from daam_store.store.check import check_database
from daam_store.store.schema import Generation, HeatMap, Image, MapStack, Tag, Word
from daam_store.store.testing import free_port, synthetic_experiment

FORK = multiprocessing.get_context("fork")
MODEL = ModelInfo("sd1-tiny", "builtin", "", "SD1", "rev-a", 32, "epsilon")
WRITERS = 4
SAVES_PER_WRITER = 8


def row_counts(store) -> dict[str, int]:
    with store.session() as session:
        return {
            table.__tablename__: len(session.scalars(select(table)).all())
            for table in (Generation, Word, HeatMap, Image, MapStack)
        }


# -- unreachable or unusable databases --------------------------------------------------------------------
def test_unreachable_postgresql_fails_fast_with_one_line(capsys):
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/missing"
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match="cannot open database .*DAAM_STORE_URL"):
        open_store(url)
    assert time.monotonic() - started < 10
    assert store_main(["db", "check", "--url", url]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot open database") and error.count("\n") == 1
    assert "Traceback" not in error


@contextmanager
def frozen(server):
    """Every process of the PostgreSQL server stopped (SIGSTOP), as a paused VM or a swapped-out host is;
    always resumed, so the other tests sharing the server go on."""
    postmaster = int((server.root / "data" / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    pids = [postmaster, *map(int, children)]
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.postgres
def test_frozen_postgresql_fails_within_the_bound_then_works_again(postgres_server, monkeypatch, capsys):
    monkeypatch.setenv("DAAM_STORE_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("DAAM_STORE_STATEMENT_TIMEOUT_S", "1")
    url = postgres_server.create_database(f"frozen_{os.getpid()}")
    with open_store(url) as store:
        # A pooled connection, open when the server freezes: its ping gets no answer in 1 + 1 s, and the
        # fresh connection the pool then tries, none within the 1 s connect timeout.
        with store.session() as session:
            assert queries.count_generations(session) == 0
        with frozen(postgres_server):
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError, match="cannot open database") as raised:
                with store.session() as session:
                    queries.count_generations(session)
            assert time.monotonic() - started < 5 and "\n" not in str(raised.value)
            started = time.monotonic()
            assert store_main(["db", "check", "--url", url]) == 2  # a new connection: the connect timeout
            assert time.monotonic() - started < 5
            error = capsys.readouterr().err
            assert error.startswith("error: cannot open database") and error.count("\n") == 1
        with store.session() as session:
            assert queries.count_generations(session) == 0


def test_unusable_sqlite_path_and_bad_urls():
    with pytest.raises(DatabaseUnavailableError, match="cannot create the folder"):
        open_store("sqlite:////proc/daam-store-test/x.db")
    with pytest.raises(DatabaseUnavailableError, match="bad database URL"):
        open_store("not a url at all")
    with pytest.raises(DatabaseUnavailableError, match="SQLite and PostgreSQL"):
        open_store("mysql://someone@localhost/db")


def _save_as_unprivileged(url: str, prompt: str, results) -> None:
    """Child: drop root (which ignores file modes), then try to write to the read-only database."""
    try:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        store = open_store(url)
        with store.session() as session:
            readable = queries.count_generations(session)
        store.save(synthetic_experiment(load_clip_tokenizer(), prompt, seed=5), model=MODEL)
        results.put(("saved", readable, ""))
    except Exception as error:  # report the type and message to the parent
        results.put((type(error).__name__, -1, str(error)))


def test_read_only_database_file_refuses_writes_and_keeps_data(clip_tokenizer):
    folder = Path(tempfile.mkdtemp(prefix="daam-ro-"))
    folder.chmod(0o777)  # the folder stays writable (SQLite's -shm file); only the database is read-only
    url = f"sqlite:///{folder / 'store.db'}"
    with open_store(url) as store:
        store.save(synthetic_experiment(clip_tokenizer, "a cat", seed=1), model=MODEL)
    (folder / "store.db").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)

    results = FORK.Queue()
    child = FORK.Process(target=_save_as_unprivileged, args=(url, "a dog", results))
    child.start()
    child.join(60)
    outcome, readable, message = results.get(timeout=5)
    assert outcome == ReadOnlyDatabaseError.__name__, message
    assert "read-only" in message and "writable" in message and "\n" not in message
    (folder / "store.db").chmod(0o644)
    with open_store(url) as store:
        assert row_counts(store)["generation"] == 1
        assert check_database(store.engine).ok


# -- damaged rows ---------------------------------------------------------------------------------------
def test_corrupted_blob_and_unknown_codec_version_are_reported(store_url, clip_tokenizer, capsys):
    with open_store(store_url) as store:
        generation_id = store.save(synthetic_experiment(clip_tokenizer, "a red cat on a mat", seed=3), model=MODEL)
        with store.session() as session:
            maps = session.scalars(select(HeatMap).order_by(HeatMap.id)).all()
        damaged = bytearray(maps[0].blob)
        damaged[len(damaged) // 2] ^= 0xFF
        with store.write_session() as session:
            session.execute(update(HeatMap).where(HeatMap.id == maps[0].id).values(blob=bytes(damaged)))
            session.execute(update(HeatMap).where(HeatMap.id == maps[1].id).values(codec_version=2))

        with store.session() as session, pytest.raises(CorruptBlobError, match=f"heat map {maps[0].id}: .*damaged"):
            queries.word_heat_map(session, generation_id, 0)
        with store.session() as session, pytest.raises(UnknownCodecError, match="version 2 .*upgrade daam-store"):
            queries.word_heat_map(session, generation_id, 1)
        with store.session() as session:  # statistics stay readable: charts never decode blobs
            assert len(queries.word_statistics(session, generation_id)) == 6
        report = check_database(store.engine)
    assert not report.ok and len(report.problems) == 2
    assert store_main(["db", "check", "--url", store_url]) == 1
    output = capsys.readouterr().out
    assert "2 problems" in output and f"heat map {maps[0].id}" in output and "version 2" in output


def test_invalid_json_in_a_sqlite_row_is_one_line_and_the_others_still_export(tmp_path, clip_tokenizer, capsys):
    """SQLite never validates JSON columns: one edited by hand stops reads of its generation with one line,
    `db check` names the row, and an export of every generation writes the others."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        ids = [store.save(synthetic_experiment(clip_tokenizer, p, seed=1), model=MODEL) for p in ("a cat", "a dog")]
        with store.session() as session:
            stack_id = session.scalar(select(MapStack.id).where(MapStack.generation_id == ids[0]))
    with sqlite3.connect(tmp_path / "store.db") as connection:
        connection.execute("UPDATE map_stack SET labels = 'not json{' WHERE id = ?", (stack_id,))

    assert store_main(["db", "check", "--url", url]) == 1
    output = capsys.readouterr().out
    assert f"map_stack (id {stack_id}): labels is not valid JSON" in output, output
    assert f"generation {ids[0]}: a stored JSON value does not parse" in output  # and the other one was read:
    assert "2 generations, 2 heat maps checked: 2 problems" in output and "stopped" not in output, output

    assert store_main(["export", str(tmp_path / "out"), "--db", url]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"generation {ids[0]}: a stored JSON value does not parse" in captured.err
    assert "exported 1 of 2 generations" in captured.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"generation-{ids[1]}"]


def test_a_damaged_image_greys_its_own_tile_and_the_listings_still_show(tmp_path, clip_tokenizer):
    from daam_store.views.explore import gallery_page
    from daam_store.views.home import store_overview

    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        ids = [store.save(synthetic_experiment(clip_tokenizer, p, seed=1), model=MODEL) for p in ("a cat", "a dog")]
        with store.write_session() as session:
            session.execute(update(Image).where(Image.generation_id == ids[0]).values(png=b"not a png at all"))
        for cards in (gallery_page(store, queries.GenerationFilter(), page=1), store_overview(store).latest):
            problems = {card.generation_id: card.problem for card in cards}
            assert problems[ids[1]] is None
            assert problems[ids[0]] == "stored image does not decode (not an image); re-import the generation"


# -- several writers, and a writer killed mid-transaction ----------------------------------------------------
def _write_many(url: str, worker: int, barrier, results) -> None:
    from daam_store.models import load_clip_tokenizer

    try:
        tokenizer = load_clip_tokenizer()
        experiments = [
            synthetic_experiment(tokenizer, f"a cat and a dog number {worker}", seed=i) for i in range(SAVES_PER_WRITER)
        ]
        barrier.wait(timeout=60)
        store = open_store(url)  # all four open a fresh database at once: it must be migrated exactly once
        ids = [store.save(exp, model=MODEL, tags=(f"worker-{worker}",)) for exp in experiments]
        store.close()
        results.put((worker, ids, ""))
    except Exception as error:
        results.put((worker, [], f"{type(error).__name__}: {error}"))


def test_four_processes_writing_at_once_lose_nothing(store_url):
    barrier = FORK.Barrier(WRITERS)
    results = FORK.Queue()
    children = [FORK.Process(target=_write_many, args=(store_url, w, barrier, results)) for w in range(WRITERS)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    errors = [message for _, _, message in outcomes if message]
    assert not errors, errors
    ids = sorted(i for _, worker_ids, _ in outcomes for i in worker_ids)
    assert len(ids) == len(set(ids)) == WRITERS * SAVES_PER_WRITER
    with open_store(store_url) as store:
        counts = row_counts(store)
        assert counts["generation"] == WRITERS * SAVES_PER_WRITER
        with store.session() as session:
            assert [n for _, n in queries.list_tags(session)] == [SAVES_PER_WRITER] * WRITERS
        assert check_database(store.engine).ok


def _save_then_hang(url: str, flushed) -> None:
    """Child: save, but stop for good after every row was sent and before the commit."""
    from sqlalchemy.orm import Session

    from daam_store.models import load_clip_tokenizer

    @event.listens_for(Session, "before_commit")
    def _hang(session) -> None:
        flushed.set()
        time.sleep(120)

    store = open_store(url)
    store.save(synthetic_experiment(load_clip_tokenizer(), "a dog in the snow", seed=9, layers=2), model=MODEL)


def test_kill_9_during_a_save_leaves_nothing_partial(store_url, clip_tokenizer):
    with open_store(store_url) as store:
        store.save(synthetic_experiment(clip_tokenizer, "a cat on a mat", seed=1), model=MODEL)
        before = row_counts(store)

    flushed = FORK.Event()
    child = FORK.Process(target=_save_then_hang, args=(store_url, flushed))
    child.start()
    assert flushed.wait(60), "the child never reached the end of its inserts"
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert child.exitcode == -signal.SIGKILL

    with open_store(store_url) as store:
        assert row_counts(store) == before
        assert check_database(store.engine).ok
        # The killed save left no lock or half row behind: the same generation saves normally now.
        store.save(synthetic_experiment(clip_tokenizer, "a dog in the snow", seed=9, layers=2), model=MODEL)
        assert row_counts(store)["generation"] == before["generation"] + 1


# -- the same generation saved by several processes at once ---------------------------------------------------
RACERS = 6
ROUNDS = 3


def _save_racing(url: str, seed: int, tag: str, barrier, results) -> None:
    """Child: prepare first (slow), then save the same generation as the others at the same moment."""
    from daam_store.models import load_clip_tokenizer
    from daam_store.store.writer import prepare_experiment

    try:
        prepared = prepare_experiment(
            synthetic_experiment(load_clip_tokenizer(), "a cat racing a dog", seed=seed), MODEL, tags=(tag,)
        )
        store = open_store(url)
        barrier.wait(timeout=60)
        results.put((tag, store.save_prepared(prepared), ""))
        store.close()
    except Exception as error:
        results.put((tag, None, f"{type(error).__name__}: {error}"))


def _race(url: str, seed: int, tags: list[str]) -> list[tuple]:
    barrier = FORK.Barrier(len(tags))
    results = FORK.Queue()
    children = [FORK.Process(target=_save_racing, args=(url, seed, tag, barrier, results)) for tag in tags]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    return outcomes


def _tags_of(store, generation_id: int) -> set[str]:
    with store.session() as session:
        return set(session.scalars(select(Tag.name).where(Tag.generation_id == generation_id)))


def test_processes_saving_one_generation_at_once_get_one_id_and_keep_every_tag(store_url, clip_tokenizer):
    with open_store(store_url) as store:
        for round_ in range(ROUNDS):
            # An existing generation re-saved with one new tag by every process: no unique violation.
            seed = 100 + round_
            known = store.save(synthetic_experiment(clip_tokenizer, "a cat racing a dog", seed=seed), model=MODEL)
            outcomes = _race(store_url, seed, [f"again-{round_}"] * RACERS)
            assert [message for _, _, message in outcomes if message] == []
            assert {gen_id for _, gen_id, _ in outcomes} == {known}
            assert _tags_of(store, known) == {f"again-{round_}"}

            # A new generation inserted by every process, each with its own tag: the losers' tags are kept.
            tags = [f"writer-{round_}-{w}" for w in range(RACERS)]
            outcomes = _race(store_url, 200 + round_, tags)
            assert [message for _, _, message in outcomes if message] == []
            ids = {gen_id for _, gen_id, _ in outcomes}
            assert len(ids) == 1
            assert _tags_of(store, ids.pop()) == set(tags)
        assert row_counts(store)["generation"] == 2 * ROUNDS
        assert check_database(store.engine).ok


# -- a damaged SQLite file ----------------------------------------------------------------------------------
def _damaged_copy(tmp_path, clip_tokenizer, damage) -> str:
    """A real store file (two generations), copied, then damaged in place by `damage(data, page_size, conn)`."""
    path = tmp_path / "store.db"
    with open_store(f"sqlite:///{path}") as store:
        for seed in (1, 2):
            store.save(synthetic_experiment(clip_tokenizer, "a red cat on a mat", seed=seed), model=MODEL)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        data = bytearray(path.read_bytes())
        damage(data, page_size, connection)
    connection.close()
    copy = tmp_path / "damaged.db"
    copy.write_bytes(data)
    return f"sqlite:///{copy}"


def _overwrite_index_page(data: bytearray, page_size: int, connection) -> None:
    (root,) = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND name = 'ix_word_key_generation_id'"
    ).fetchone()
    start = (root - 1) * page_size
    data[start + 8 : start + page_size] = b"\x5a" * (page_size - 8)  # keep the page header, garble the cells


def _garble_schema(data: bytearray, _page_size: int, _connection) -> None:
    start = data.find(b"CREATE TABLE tag")
    data[start + 7 : start + 12] = b"\xff\xfe\xff\xfe\xff"


def test_db_check_runs_sqlite_integrity_check_on_a_damaged_index_page(tmp_path, clip_tokenizer, capsys):
    url = _damaged_copy(tmp_path, clip_tokenizer, _overwrite_index_page)
    assert store_main(["db", "check", "--url", url]) == 1
    output = capsys.readouterr().out
    assert "all complete and decodable" not in output
    assert "integrity_check" in output and "ix_word_key_generation_id" in output, output


def _overwrite_word_table_page(data: bytearray, page_size: int, connection) -> None:
    (root,) = connection.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'word'").fetchone()
    start = (root - 1) * page_size
    data[start + 8 : start + page_size] = b"\x5a" * (page_size - 8)


def test_db_check_keeps_the_integrity_report_when_a_table_page_is_damaged(tmp_path, clip_tokenizer, capsys):
    """Reading the rows then fails too: what the engine's check found is still reported, with where it stopped."""
    url = _damaged_copy(tmp_path, clip_tokenizer, _overwrite_word_table_page)
    assert store_main(["db", "check", "--url", url]) == 1
    output = capsys.readouterr().out
    assert "integrity_check" in output and "reading the rows stopped" in output, output


def test_schema_with_invalid_bytes_is_one_line_in_check_upgrade_and_export(tmp_path, clip_tokenizer, capsys):
    url = _damaged_copy(tmp_path, clip_tokenizer, _garble_schema)
    for command in (["db", "check", "--url", url], ["db", "upgrade", "--url", url], ["export", "--db", url]):
        assert store_main([*command, str(tmp_path / "out")] if command[0] == "export" else command) != 0
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and captured.err.count("\n") == 1, (command, captured.err)
        assert "malformed" in captured.err or "damaged" in captured.err, captured.err


# -- generations stored at schema 0001, before token-map stacks were kept --------------------------------------
def test_generation_without_token_maps_says_what_is_missing_not_overlays(store_url, clip_tokenizer):
    with open_store(store_url) as store:
        generation_id = store.save(synthetic_experiment(clip_tokenizer, "a red cat on a mat", seed=4), model=MODEL)
        with store.write_session() as session:  # as a generation written at 0001 and upgraded has it
            session.execute(delete(MapStack).where(MapStack.generation_id == generation_id))
        with pytest.raises(StoreError, match=f"generation {generation_id} was stored before token maps") as raised:
            store.load_experiment(generation_id)
        assert "overlay" not in str(raised.value) and "word maps are in the store" in str(raised.value)
        with store.session() as session:  # the word maps still open
            assert queries.word_heat_map(session, generation_id, 1).shape[0] > 0


@pytest.mark.postgres
def test_a_urls_own_connection_options_are_kept_beside_the_timeouts(postgres_server):
    """A team's `?options=-c search_path=...` and its own connect_timeout reach the server; the statement timeout
    is added to its options, not put in their place."""
    from sqlalchemy import text

    from daam_store.store.session import make_engine

    url = postgres_server.create_database(f"options_{os.getpid()}")
    engine = make_engine(f"{url}?options=-c%20search_path%3Dteam,public&connect_timeout=17")
    try:
        with engine.connect() as connection:
            search_path = connection.execute(text("SHOW search_path")).scalar()
            statement_timeout = connection.execute(text("SHOW statement_timeout")).scalar()
            connect_timeout = connection.connection.dbapi_connection.info.get_parameters().get("connect_timeout")
    finally:
        engine.dispose()
    assert search_path == "team,public" and statement_timeout == "5min" and connect_timeout == "17"


@contextmanager
def held_elsewhere(url: str, statement: str, seconds: float):
    """Another session holds a lock (taken by `statement`) for `seconds`, then lets go."""
    import threading

    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    taken = threading.Event()

    def hold():
        with engine.begin() as connection:
            connection.execute(text(statement))
            taken.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        yield
    finally:
        holder.join()
        engine.dispose()


@pytest.mark.postgres
def test_db_upgrade_and_check_run_past_the_statement_timeout(postgres_server, monkeypatch, capsys):
    """A migration or a full check of a big store outlasts the bound pages and sweeps keep to (here 1 s, waiting
    2.5 s on a lock another session holds): `db upgrade` and `db check` are not cut off, while pages still are."""
    from sqlalchemy import text

    from daam_store.store.migrate import POSTGRES_LOCK_KEY
    from daam_store.store.session import make_engine

    monkeypatch.setenv("DAAM_STORE_STATEMENT_TIMEOUT_S", "1")
    url = postgres_server.create_database(f"maintenance_{os.getpid()}")
    with open_store(url):
        pass
    with held_elsewhere(url, f"SELECT pg_advisory_xact_lock({POSTGRES_LOCK_KEY})", 2.5):
        assert store_main(["db", "upgrade", "--url", url]) == 0, capsys.readouterr().err
    with held_elsewhere(url, "LOCK TABLE generation IN ACCESS EXCLUSIVE MODE", 2.5):
        assert store_main(["db", "check", "--url", url]) == 0, capsys.readouterr().err
    with held_elsewhere(url, "LOCK TABLE generation IN ACCESS EXCLUSIVE MODE", 2.5):
        with pytest.raises(StoreError), open_store(url) as store, store.session() as session:
            queries.count_generations(session)  # everything else keeps the bound
    engine = make_engine(f"{url}?options=-c%20statement_timeout%3D1000", maintenance=True)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "0"
            parameters = connection.connection.dbapi_connection.info.get_parameters()
    finally:
        engine.dispose()
    assert parameters["connect_timeout"] == "5" and parameters["keepalives"] == "1"


@pytest.mark.postgres
def test_db_check_says_the_index_check_was_skipped_when_amcheck_may_not_run(postgres_server, clip_tokenizer, capsys):
    """amcheck revokes its functions from PUBLIC: a store owned by an ordinary user is sound, and `db check` says
    in one line that it could not check the indexes, and why, instead of reporting a problem in the store."""
    import psycopg

    name = f"amcheck_{os.getpid()}"
    role = f"owner_{os.getpid()}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN")
        connection.execute(f'CREATE DATABASE "{name}" OWNER {role}')
    url = postgres_server.url(name).replace("postgres@", f"{role}@", 1)
    with open_store(url) as store:
        store.save(synthetic_experiment(clip_tokenizer, "a red cat", seed=1), model=MODEL)

    assert store_main(["db", "check", "--url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(checked by the engine: every table read in full)") and "1 generation" in lines[0]
    assert lines[1:] == ["index check skipped: the amcheck extension is not installed (CREATE EXTENSION amcheck)"]

    with psycopg.connect(postgres_server.url(name), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION amcheck")
    assert store_main(["db", "check", "--url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "all complete and decodable" in lines[0] and "problem" not in lines[0], lines
    assert lines[1:] == [
        f"index check skipped: user {role} may not run amcheck's public.bt_index_check "
        f"(GRANT EXECUTE ON FUNCTION public.bt_index_check(regclass) TO {role})"
    ]

    with psycopg.connect(postgres_server.url(name), autocommit=True) as connection:
        connection.execute(f"GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO {role}")
    assert store_main(["db", "check", "--url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "checked by amcheck" in lines[0], lines
