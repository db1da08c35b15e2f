"""Smoke test of benchmarks/trace_overhead.py: a few steps on random weights (the real run takes minutes)."""

import re
import subprocess
import sys

from benchmark_support import BENCHMARKS, run_benchmark


def test_trace_overhead_benchmark_prints_its_measurements():
    arguments = ["--model", "random", "--steps", "2", "--runs", "1", "--unet-calls", "4", "--memory-steps", "2,6"]
    output = run_benchmark("trace_overhead.py", *arguments)
    ratios = [float(r) for r in re.findall(r"ratio (?:of medians )?(\d+\.\d+)", output)]
    # generations (of medians, per round), UNet calls, wrapped path
    assert len(ratios) == 4 and all(0.2 < r < 5 for r in ratios), output
    control = re.findall(r"A/A control \(untraced again / untraced\) (\d+\.\d+)", output)
    assert len(control) == 1 and 0.2 < float(control[0]) < 5, output
    state = {int(s): float(kib) for s, kib in re.findall(r"(\d+) steps: trace state ([\d.]+) KiB", output)}
    assert set(state) == {2, 6} and state[2] == state[6] > 0, output  # the trace does not grow with steps


def test_original_parity_benchmark_says_how_to_build_the_original_venv():
    """The parity run needs daam 0.2.0 in its own venv (not in CI): without it, one line saying how to build it."""
    script = BENCHMARKS / "original_parity.py"
    result = subprocess.run(
        [sys.executable, str(script), "--original-python", "/nonexistent/python"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "no original-daam venv at /nonexistent/python: build it" in result.stderr
