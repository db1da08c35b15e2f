"""Which cross-attention layers does a model need the caption in, to draw colours, shapes and binding?

A word map shows where a layer attends; this asks what the image loses without it. For each group of
cross-attention layers (one latent resolution, the mid block, all down blocks, all up blocks) the group's
layers are given the unconditional context in place of the prompt's (the empty caption's states; SDXL's
pipelines use zeros), every other layer unchanged, and the held-out benchmark runs again on the same seeds:
colour present, shape correct, binding and the maps' mIoU (by the default rule, so a knocked-out layer's maps,
which no longer see the prompt, are averaged in). Only cross-attention is cut: SDXL's pooled text embedding still
reaches the UNet through its added conditioning. Needs classifier-free guidance (guidance > 1): the
unconditional context is the first half of its batch.
Run: python benchmarks/caption_knockout.py [--models sd1-tiny sd2-tiny sdxl-tiny] [--n 96]
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch

from daam_store.evaluation.benchmark import evaluate, lookup
from daam_store.evaluation.report import fmt
from daam_store.evaluation.settings import EvalSettings, benchmark_parser
from daam_store.families import family_of
from daam_store.models import load_pipeline


def unconditional_context(module, args, kwargs):
    """attn2 pre-hook: both halves of the guidance batch ([unconditional, conditional]) get the unconditional
    context."""
    context = kwargs["encoder_hidden_states"]
    if len(context) % 2:
        raise RuntimeError("caption knock-out needs classifier-free guidance: [unconditional, conditional] batches")
    half = len(context) // 2
    kwargs["encoder_hidden_states"] = context[:half].repeat(2, *([1] * (context.dim() - 1)))
    return args, kwargs


def cross_attention_groups(pipe) -> dict[str, list[torch.nn.Module]]:
    """Group name -> the cross-attention modules the tracer hooks (the family's), grouped by latent resolution in
    the down and up blocks, the mid block, then all down and all up blocks."""
    unet = pipe.unet
    levels, side = len(unet.config.down_block_types), unet.config.sample_size
    by_side, down, up, mid = {}, [], [], []
    for name, module in family_of(pipe).cross_attention_layers(pipe):
        block, index = name.split(".")[:2]
        if block == "mid_block":
            mid.append(module)
            continue
        level = int(index) if block == "down_blocks" else levels - 1 - int(index)
        by_side.setdefault(side // 2**level, []).append(module)
        (down if block == "down_blocks" else up).append(module)
    groups = {f"{s}x{s}": modules for s, modules in sorted(by_side.items(), reverse=True)}
    return groups | {"mid block": mid, "down blocks": down, "up blocks": up}


@contextmanager
def knocked_out(modules: list[torch.nn.Module]):
    handles = [module.register_forward_pre_hook(unconditional_context, with_kwargs=True) for module in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def row(group: str, layers: int, results: dict) -> str:
    value = partial(lookup, results)
    bound = " / ".join(fmt(value(f"binding.{outcome}")) for outcome in ("right", "swapped"))
    maps = " / ".join(fmt(value(f"miou.{kind}.word.mean")) for kind in ("colour", "shape"))
    return (
        f"| {group} | {layers} | {fmt(value('adherence.colour.all'))} | {fmt(value('adherence.shape.all'))} "
        f"({fmt(value('adherence.shape.one_object'))} / {fmt(value('adherence.shape.two_objects'))}) | "
        f"{bound} ({value('binding.n') or 0}) | {maps} |"
    )


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0], n_help="held-out images per model and group", n_default=96)
    args = parser.parse_args()
    if args.guidance <= 1:
        raise SystemExit("--guidance must be over 1: the knock-out takes the unconditional half of the guidance batch")
    settings = EvalSettings(n=args.n, steps=args.steps, guidance=args.guidance, split=args.split, influence_n=0)
    settings.validate()
    print(f"{args.split} prompts, {args.n} images, {args.steps} steps, guidance {args.guidance:g}; caption knocked out")
    for model in args.models:
        pipe = load_pipeline(model)
        print(f"\n{model}\n")
        print(
            "| knocked out | layers | colour present | shape correct (1 / 2 obj) | binding right / swapped (n) | "
            "mIoU colour / shape words |"
        )
        print("|---|---|---|---|---|---|")
        print(row("nothing", 0, evaluate(pipe, settings)), flush=True)
        for group, modules in cross_attention_groups(pipe).items():
            if not modules:  # e.g. a UNet whose mid block has no cross-attention
                continue
            with knocked_out(modules):
                print(row(group, len(modules), evaluate(pipe, settings)), flush=True)


if __name__ == "__main__":
    main()
