"""Smoke test of benchmarks/store_scale.py on a few generations (the real run fills 10,000)."""

import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "store_scale.py"


def test_store_scale_benchmark_runs_on_both_backends(postgres_server, monkeypatch, capsys):
    url = postgres_server.create_database("bench_smoke")
    arguments = ["--generations", "80", "--end-to-end", "6", "--repeats", "3", "--postgres-url", url]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *arguments])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    output = capsys.readouterr().out
    assert "80 generations: 2 prompts x 20 seeds x 2 models" in output
    assert output.count("80 generations, 640 word maps") == 2  # SQLite, then PostgreSQL
    for line in (
        "save() end to end",
        "insert prepared rows",
        "database bytes",
        "query across seeds",
        "640 word maps         fetch",
    ):
        assert output.count(line) == 2, line
