"""Which path carries the caption in an SDXL-family model: cross-attention or the pooled embedding?

Generates prompts of training pairs three ways from the same noise: as the pipeline does, with the pooled text
embedding zeroed (only cross-attention sees the caption) and with the cross-attention inputs zeroed (only the
pooled embedding, added to the time embedding, does), and reads the images as `daam-store eval` does. If the
third way draws as well as the first, cross-attention is unused and DAAM maps of the model mean nothing.
Run: python benchmarks/pooled_only.py [--model sdxl-tiny] [--n 24] [--steps 25]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from daam_store import world
from daam_store.evaluation.benchmark import evaluation_items, training_world
from daam_store.models import load_pipeline

WAYS = ("as the pipeline does", "pooled embedding zeroed", "cross-attention inputs zeroed")


def conditioning(pipe, prompt: str, way: str) -> dict:
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=1)
    if way == WAYS[1]:
        pooled = torch.zeros_like(pooled)
    elif way == WAYS[2]:
        embeds = torch.zeros_like(embeds)
    return dict(
        prompt_embeds=embeds,
        pooled_prompt_embeds=pooled,
        negative_prompt_embeds=negative,
        negative_pooled_prompt_embeds=negative_pooled,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sdxl-tiny")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    if getattr(pipe, "text_encoder_2", None) is None:
        raise SystemExit(f"{args.model} is not an SDXL-family model: it has no pooled text embedding")
    shapes = training_world(pipe).shapes  # read as `daam-store eval` reads the model's images
    read = {way: [] for way in WAYS}
    for objects, seed in evaluation_items("train", args.n):
        prompt = world.caption(objects)
        for way in WAYS:
            inputs = conditioning(pipe, prompt, way)
            generator = torch.Generator().manual_seed(seed)
            image = pipe(**inputs, generator=generator, num_inference_steps=args.steps).images[0]
            found = world.read_objects(np.asarray(image.convert("RGB")), shapes)
            read[way] += [(colour in found, colour in found and found[colour][1] == shape) for colour, shape in objects]
    print(f"{args.model}: {args.n} prompts of training pairs, {args.steps} steps, guidance 5")
    print("| conditioning | colour present | shape correct |")
    print("|---|---|---|")
    for way, outcomes in read.items():
        present, correct = np.mean(outcomes, axis=0)
        print(f"| {way} | {present:.2f} | {correct:.2f} |")


if __name__ == "__main__":
    main()
