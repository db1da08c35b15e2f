"""Heat maps from the ORIGINAL `daam` package (0.2.0): the half of `original_parity.py` that runs in its venv.

It imports nothing from daam_store and uses the original's own `trace` with its defaults:

    /tmp/daam-orig-venv/bin/python benchmarks/original_parity_runner.py --pipeline DIR \
        --prompt "a dog running across the field" --seeds 0 1 --steps 10 --out PREFIX

writes PREFIX.npz (plain numpy arrays, keys p{prompt index}_s{seed}_w{word index} for a word's map and
p{prompt index}_s{seed}_image for the generated image) and PREFIX.json (prompts, their words, versions and what
the original traced: layer names, factors, map size).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import daam
import diffusers
import numpy as np
import torch
import transformers
from daam.trace import trace
from diffusers import StableDiffusionPipeline


def prompt_words(prompt: str) -> list[str]:
    """The prompt's distinct words in order (the benchmark's prompts have no punctuation)."""
    return list(dict.fromkeys(prompt.lower().split()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", required=True, help="diffusers StableDiffusionPipeline folder")
    parser.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", required=True, help="output prefix: writes PREFIX.npz and PREFIX.json")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # daam's torch.cuda.amp.autocast, once per map
    pipe = StableDiffusionPipeline.from_pretrained(args.pipeline, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    arrays: dict[str, np.ndarray] = {}
    info = {
        "versions": {
            "daam": daam.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "steps": args.steps,
        "seeds": args.seeds,
        "prompts": [{"prompt": p, "words": prompt_words(p)} for p in args.prompt],
    }
    for p_idx, prompt in enumerate(args.prompt):
        for seed in args.seeds:
            with trace(pipe) as tc:
                image = pipe(
                    prompt, generator=torch.Generator().manual_seed(seed), num_inference_steps=args.steps
                ).images[0]
                heat_map = tc.compute_global_heat_map()  # defaults: every factor, layer and head it kept
                for w_idx, word in enumerate(prompt_words(prompt)):
                    arrays[f"p{p_idx}_s{seed}_w{w_idx}"] = heat_map.compute_word_heat_map(word).value.float().numpy()
                arrays[f"p{p_idx}_s{seed}_image"] = np.asarray(image)
                # What the original recorded: its own layer list and the (factor, layer, head) keys it kept.
                info["layer_names"] = list(tc.layer_names)
                module_names = {id(m): n for n, m in pipe.unet.named_modules()}
                info["layer_modules"] = [module_names[id(h.module)] for h in tc.module if hasattr(h, "layer_idx")]
                info["factors"] = sorted(tc.all_heat_maps.factors())
                info["layers_kept"] = sorted(tc.all_heat_maps.layers())
                info["latent_hw"] = tc.latent_hw
                info["map_shape"] = list(heat_map.heat_maps.shape[1:])

    np.savez(args.out + ".npz", **arrays)
    with open(args.out + ".json", "w") as file:
        json.dump(info, file, indent=1)


if __name__ == "__main__":
    main()
