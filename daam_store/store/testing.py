"""Helpers for the store's tests and benchmark: a throwaway PostgreSQL server, synthetic experiments.

The server runs the Debian binaries (/usr/lib/postgresql/<version>/bin, or $DAAM_PG_BIN) as the
`postgres` user when started by root (PostgreSQL refuses to run as root), on 127.0.0.1 and a free
port, with its data in a temporary folder that `stop()` deletes. Any failure to start raises, so a
test run that needs it fails loudly instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image

POSTGRES_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The throwaway server could not be started (the message says why)."""


def postgres_bin_dir() -> Path:
    configured = os.environ.get("DAAM_PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise PostgresUnavailable("no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql)")
    return candidates[-1].parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin_dir: Path
    run_as: str | None

    @classmethod
    def start(cls, durable: bool = False) -> PostgresServer:
        """durable=False turns off fsync (tests: the data dies with the server anyway); benchmarks keep it."""
        bin_dir = postgres_bin_dir()
        run_as = POSTGRES_USER if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="daam-pg-"))
        server = cls(root, free_port(), bin_dir, run_as)
        try:
            if run_as:
                shutil.chown(root, user=run_as)
            server._run("initdb", "-D", str(root / "data"), "--auth=trust", "-U", POSTGRES_USER, "-E", "UTF8")
            options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=60"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            log = root / "server.log"
            server._run("pg_ctl", "-D", str(root / "data"), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        except (OSError, subprocess.CalledProcessError, PostgresUnavailable) as error:
            detail = getattr(error, "stderr", "") or ""
            log = root / "server.log"
            log_text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(f"PostgreSQL did not start: {error}\n{detail}\n{log_text}") from error
        return server

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        subprocess.run(
            command, check=True, capture_output=True, text=True, user=self.run_as, cwd=self.root, timeout=120
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def synthetic_experiment(
    tokenizer,
    prompt: str,
    seed: int = 0,
    size: int = 16,
    image_size: int = 32,
    layers: int = 0,
    steps: int = 0,
    metadata: dict | None = None,
):
    """A GenerationExperiment with smooth random maps (blobs per token), as a trace would produce."""
    import torch

    from daam_store.experiment import GenerationExperiment
    from daam_store.heatmap import PromptTokens

    rng = np.random.default_rng(seed + 7919 * len(prompt))
    prompt_tokens = PromptTokens.from_tokenizer(tokenizer, prompt)
    rows = len(prompt_tokens.tokens)
    maps = smooth_maps(rng, rows, size)
    image = PIL.Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8))
    info = {"steps": 5, "guidance_scale": 7.5, "scheduler": "DDIMScheduler", "dtype": "float32"}
    info.update(height=image_size, width=image_size, timings={"generate": 0.25, "maps": 0.01})
    info.update(metadata or {})

    def stack(count: int):
        return torch.from_numpy(np.stack([smooth_maps(rng, rows, size) for _ in range(count)])) if count else None

    return GenerationExperiment(
        image=image,
        global_heat_map=torch.from_numpy(maps),
        prompt=prompt,
        seed=seed,
        metadata=info,
        layer_heat_maps=stack(layers),
        layer_names=[f"up_blocks.{i}.attn2" for i in range(layers)],
        step_heat_maps=stack(steps),
        prompt_tokens=prompt_tokens,
    )


def smooth_maps(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """`count` non-negative (size x size) maps, each a few Gaussian blobs plus a little noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    maps = np.empty((count, size, size), dtype=np.float32)
    for i in range(count):
        field = 0.02 * rng.random((size, size))
        for _ in range(rng.integers(1, 4)):
            cx, cy, width = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
            field += rng.uniform(0.2, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width * width))
        maps[i] = field * rng.uniform(0.01, 0.2)
    return maps
