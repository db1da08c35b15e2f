"""Shared fixtures. Everything is offline: tiny pipelines with seeded random weights, the real CLIP tokenizer."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402

from daam_store.models import build_random_pipeline  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def sd1_pipe():
    """SD 1.x-like tiny pipeline (conv projection, one head size, epsilon prediction)."""
    return build_random_pipeline("sd1", seed=0)


@pytest.fixture(scope="session")
def sd2_pipe():
    """SD 2.x-like tiny pipeline (linear projection, head-size list, v-prediction)."""
    return build_random_pipeline("sd2", seed=1)


@pytest.fixture(scope="session")
def sdxl_pipe():
    """SDXL-like tiny pipeline: two text encoders (64-wide concatenated context), text_time conditioning."""
    return build_random_pipeline("sdxl", seed=2)


@pytest.fixture(scope="session")
def tiny_sdxl_model_dir(tmp_path_factory, sdxl_pipe):
    folder = tmp_path_factory.mktemp("models") / "tiny-sdxl"
    sdxl_pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, sd1_pipe):
    """The SD1-like tiny pipeline saved as an ordinary diffusers folder (a 'local model')."""
    folder = tmp_path_factory.mktemp("models") / "tiny-sd1"
    sd1_pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sd2_model_dir(tmp_path_factory, sd2_pipe):
    folder = tmp_path_factory.mktemp("models") / "tiny-sd2"
    sd2_pipe.save_pretrained(folder)
    return folder


# -- the store: the same tests on a SQLite file and on a real PostgreSQL server ---------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 for the whole run.

    If it cannot start, every test using it errors (the run fails): PostgreSQL is never skipped silently.
    """
    from daam_store.store.testing import PostgresServer

    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """URL of an empty database: a fresh SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    import uuid

    return request.getfixturevalue("postgres_server").create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def clip_tokenizer():
    from daam_store.models import load_clip_tokenizer

    return load_clip_tokenizer()


# -- a store filled by a small sweep: the Compare page's tests (app and browser) ----------------------------
SWEPT_PROMPTS = ("a red dog", "a dog and a cat")
SWEPT_SEEDS = (0, 1)


@pytest.fixture(scope="session")
def swept_store_url(tmp_path_factory, tiny_model_dir, tiny_sd2_model_dir):
    """SQLite file holding sweep "small": 2 prompts x 2 seeds x 2 tiny models (SD1- and SD2-like), 2 steps,
    with per-step maps. Read-only for the tests that use it."""
    from daam_store.store import open_store
    from daam_store.sweep import SweepSettings, run_sweep

    url = f"sqlite:///{tmp_path_factory.mktemp('swept') / 'store.db'}"
    with open_store(url) as store:
        models = [str(tiny_model_dir), str(tiny_sd2_model_dir)]
        run_sweep(store, SWEPT_PROMPTS, SWEPT_SEEDS, models, SweepSettings(steps=2, save_steps=True), name="small")
    return url


# -- the dashboard's job workers: none outlives the test that started it ------------------------------------
@pytest.fixture
def no_leaked_workers():
    """After the test: stop the local worker threads its dashboard started (the frame starts one per process and
    store), so that none polls the next test's database."""
    yield
    import threading

    from daam_store.jobs.local import stop_local_workers

    stop_local_workers(timeout_s=120)  # a running job finishes first
    left = [thread.name for thread in threading.enumerate() if thread.name == "daam-store local worker"]
    assert not left, f"{len(left)} local worker thread(s) still running after the test"
