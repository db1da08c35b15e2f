"""Smoke test of benchmarks/jobs_scale.py at a tiny size (the real run: 12-job sweeps, 10,000 queued jobs)."""

from benchmark_support import run_benchmark


def test_jobs_scale_benchmark_measures_throughput_overhead_and_the_list_query():
    arguments = ["--jobs", "2", "--steps", "2", "--samples", "2", "--queued", "300", "--repeats", "3", "--workers", "1"]
    output = run_benchmark("jobs_scale.py", *arguments)
    assert "1. throughput, the same 2-job sweep:" in output and "1 worker :" in output
    assert "submit -> started" in output and "done -> visible" in output
    assert "the job list with 300 queued jobs" in output and "submit 300 jobs" in output
    for query in ("everyone's newest 100", "queued, newest 100", "one author's 100", "counts by status"):
        assert query in output, query
