"""Tracing overhead on the CPU, measured side by side in one run.

Prints the median traced/untraced time ratio over rotated runs at STEPS steps next to an A/A control (two
untraced sides: run-to-run noise on a shared 2-core VM reaches +-5 % even for medians of 20), the same per
UNet call alternated hundreds of times, and the memory the trace holds (and the process's peak RSS, each in
a fresh subprocess) at 10 vs 50 steps (--memory-steps).
Run: python benchmarks/trace_overhead.py [--model sd1-tiny|FOLDER|random|random-sdxl] [--steps 25] [--runs 20]
--model random uses the built-in SD1 geometry with random weights; random-sdxl the SDXL-shaped tiny pipeline
(two text encoders, text_time conditioning, several transformer layers per block) the tests use.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from daam_store import set_seed, trace
from daam_store.models import build_random_pipeline, load_pipeline

PROMPT = "a red circle and a blue square"


RANDOM_FAMILIES = {"random": "sd1", "random-sdxl": "sdxl"}


def pipeline(model: str):
    return build_random_pipeline(RANDOM_FAMILIES[model]) if model in RANDOM_FAMILIES else load_pipeline(model)


def one_unet_call(pipe) -> tuple[tuple, dict]:
    """The arguments of the UNet's first call in a one-step generation (latents, timestep, context and, for
    SDXL, the added conditioning), to replay: the same call whatever the family."""
    captured = []
    handle = pipe.unet.register_forward_pre_hook(lambda _m, a, k: captured.append((a, k)), with_kwargs=True)
    try:
        pipe(PROMPT, num_inference_steps=1, generator=set_seed(0))
    finally:
        handle.remove()
    return captured[0]


def timed_generation(pipe, steps: int, traced: bool) -> float:
    started = time.perf_counter()
    if traced:
        with trace(pipe) as tc:
            pipe(PROMPT, num_inference_steps=steps, generator=set_seed(0))
            tc.compute_global_heat_map().word_heat_maps()
    else:
        pipe(PROMPT, num_inference_steps=steps, generator=set_seed(0))
    return time.perf_counter() - started


class WrappedSdpa(AttnProcessor2_0):
    """Computes exactly what AttnProcessor2_0 computes, but is not it: the tracer wraps it (hooks on to_q/to_k
    and a separate softmax), the general path that any other processor takes."""


def traced_copy(pipe, processor=None):
    """A pipeline sharing everything but a copy of the UNet (same weights), optionally with another processor."""
    copied = copy.copy(pipe)
    copied.unet = copy.deepcopy(pipe.unet)
    if processor is not None:
        copied.unet.set_attn_processor(processor)
    return copied


def unet_call_overhead(pipe, calls: int) -> dict[str, float]:
    """Median time of one UNet call (CFG batch): untraced, traced, and traced through the general wrapping path.

    Generations take ~1 s and vary +-10 % from run to run on a shared VM; single UNet calls alternated
    hundreds of times see the same machine state, so this isolates what the recording processors cost.
    Each traced side is a copy of the UNet inside a trace set up by a one-step generation.
    """
    pipes = {"untraced": pipe, "traced": traced_copy(pipe), "wrapped": traced_copy(pipe, WrappedSdpa())}
    args, kwargs = one_unet_call(pipe)
    times = {name: [] for name in pipes}
    with trace(pipes["traced"]), trace(pipes["wrapped"]), torch.no_grad():
        for name in ("traced", "wrapped"):
            pipes[name](PROMPT, num_inference_steps=1, generator=set_seed(0))
        for call in range(calls + 10):
            order = list(pipes)[call % 3 :] + list(pipes)[: call % 3]  # rotate: no side always runs first
            for name in order:
                started = time.perf_counter()
                pipes[name].unet(*args, **kwargs)
                if call >= 10:  # the first calls warm up
                    times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def generation_overhead(pipe, steps: int, runs: int) -> None:
    """Traced / untraced generation time, with an A/A control: a second untraced side measured the same way.

    Each round times the three sides back to back (in rotated order); a round's ratio (traced / the mean of
    its two untraced runs) compares runs seconds apart, so the machine's slow drifts cancel, and the median
    over rounds drops the rounds a burst of other load hit. The control (ideally 1.000) shows the resolution
    of this run.
    """
    timed_generation(pipe, 2, True)  # warm-up
    sides = {"untraced": False, "traced": True, "untraced again": False}
    times = {name: [] for name in sides}
    for run in range(runs):
        order = list(sides)[run % 3 :] + list(sides)[: run % 3]  # no side always runs first
        for name in order:
            times[name].append(timed_generation(pipe, steps, sides[name]))
    # Both untraced sides are the baseline: in the rotation the run after a traced one is "untraced again"
    # twice as often as "untraced", so either alone would carry any after-effect of tracing to one side.
    plain = statistics.median(times["untraced"] + times["untraced again"])
    traced = statistics.median(times["traced"])
    pooled = [(a + b) / 2 for a, b in zip(times["untraced"], times["untraced again"], strict=True)]
    per_round = statistics.median(t / p for t, p in zip(times["traced"], pooled, strict=True))
    control = statistics.median(a / b for a, b in zip(times["untraced again"], times["untraced"], strict=True))
    print(
        f"{steps} steps, {runs} rounds: untraced median {plain:.3f}s, traced median {traced:.3f}s (incl. computing "
        f"every word map), ratio of medians {traced / plain:.3f}; per round: ratio {per_round:.3f}, A/A "
        f"control (untraced again / untraced) {control:.3f}"
    )


def memory_probe(model: str, steps: int) -> dict:
    """Run in a subprocess: bytes held by the trace's state and the process's peak RSS after one generation."""
    pipe = pipeline(model)
    with trace(pipe) as tc:
        pipe(PROMPT, num_inference_steps=steps, generator=set_seed(0))
    state = tc._accumulator
    held = sum(t.numel() * t.element_size() for t in state.sums.values())
    held += sum(t.numel() * t.element_size() for step in state.steps for t in step.values())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"trace_bytes": held, "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sd1-tiny")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--runs", type=int, default=20, help="rounds of three generations (one traced)")
    parser.add_argument("--unet-calls", type=int, default=400)
    parser.add_argument(
        "--memory-steps",
        type=lambda text: [int(steps) for steps in text.split(",")],
        default=[10, 50],
        help="step counts whose trace state is measured, comma-separated",
    )
    parser.add_argument("--probe", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        print(json.dumps(memory_probe(args.model, args.probe)))
        return

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; model {args.model}"
    )
    pipe = pipeline(args.model)
    generation_overhead(pipe, args.steps, args.runs)
    call = unet_call_overhead(pipe, args.unet_calls)
    plain = call["untraced"]
    print(
        f"UNet call, {args.unet_calls} alternating calls each: untraced median {plain * 1e3:.2f} ms, traced "
        f"+{(call['traced'] - plain) * 1e3:.2f} ms, ratio {call['traced'] / plain:.3f}; through the general "
        f"wrapping path (other processors) ratio {call['wrapped'] / plain:.3f}"
    )
    for steps in args.memory_steps:
        command = [sys.executable, __file__, "--model", args.model, "--probe", str(steps)]
        probe = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(
            f"{steps} steps: trace state {probe['trace_bytes'] / 1024:.1f} KiB, "
            f"process peak RSS {probe['peak_rss_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
