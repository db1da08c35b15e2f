"""Smoke test of benchmarks/compare_scale.py: a tiny store, every timing printed, nothing failing."""

from benchmark_support import run_benchmark


def test_compare_scale_benchmark_runs_on_a_tiny_store(tmp_path):
    out = run_benchmark("compare_scale.py", "--sizes", "30,60", "--repeats", "1", "--db", str(tmp_path / "s.db"))
    assert "== 30 generations" in out and "== 60 generations" in out
    for view in ("Across prompts", "Across seeds", "Across models", "Word overlap", "Per step"):
        assert out.count(f"page  {view}") == 2, view
    assert out.count("data  across models: share scatter") == 2
    assert "ratio 60 / 30 generations" in out
