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
