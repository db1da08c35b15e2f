"""Smoke test of benchmarks/store_scale.py on a few generations (the real run fills 10,000)."""

from benchmark_support import run_benchmark


def test_store_scale_benchmark_runs_on_both_backends(postgres_server):
    url = postgres_server.create_database("bench_smoke")
    arguments = ["--generations", "80", "--end-to-end", "6", "--repeats", "3", "--postgres-url", url]
    output = run_benchmark("store_scale.py", *arguments)
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
