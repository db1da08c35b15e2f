"""Parity with the original DAAM: word heat maps of `daam` 0.2.0 and daam-store on the same pipeline, prompts, seeds.

    python benchmarks/original_parity.py                      # SD1-like at 512 px, 4 prompts x 2 seeds, 10 steps
    python benchmarks/original_parity.py --check-rule         # also without/with the mid block (~2.5 min)
    python benchmarks/original_parity.py --models sd2 --prompts 1 --seeds 0 --check-rule   # 768 px: ~1 min a side

For each model it builds, offline and seeded, a small random Stable Diffusion pipeline with the geometry the
original supports (it only knows 64x64 and 96x96 latents: 512/1024 px and 768 px):
- sd1: 512x512, 4-level AutoencoderKL (factor 8), UNet sample_size 64 with SD1's blocks (cross-attention at
  64, 32 and 16 px in down and up blocks, mid block at 8 px), conv projection, epsilon, DDIM;
- sd2: 768x768 (96x96 latent), linear projection, per-block head counts, v-prediction, DDIM;
both with tiny channels, a 2-layer CLIP text encoder and the real CLIP tokenizer shipped in daam_store. It saves
the pipeline (safetensors), runs `original_parity_runner.py` on it in the original's venv, runs daam-store on the
same folder, and prints the Pearson correlation of each word's default heat map (and the mean absolute
difference of the two generated images, 0-255, which shows whether both ran the same denoising trajectory).
--check-rule adds two maps picked by layer index: daam-store's traced layers less the UNet mid block (the layers the
original traces), and all of them, mid block in (the rule daam-store used before it adopted the original's).

The original needs its own venv (old diffusers/transformers; daam 0.2.0's sdist pins diffusers 0.21.2 and
transformers 4.30.2). Built with, from the sdist in /tmp/daamorig:

    python3 -m venv /tmp/daam-orig-venv
    /tmp/daam-orig-venv/bin/pip install torch==2.13.0   # the local CPU wheel; any other version pulls CUDA
    /tmp/daam-orig-venv/bin/pip install "diffusers==0.21.2" "transformers==4.30.2" "huggingface_hub<0.26" \
        "numpy<2" safetensors scipy matplotlib spacy
    /tmp/daam-orig-venv/bin/pip install --no-deps /tmp/daamorig/daam-0.2.0.tar.gz

(huggingface_hub<0.26 keeps `cached_download`, which diffusers 0.21 imports; scipy, matplotlib and spacy are
imported by `import daam`; numpy<2 for transformers 4.30.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F

RUNNER = Path(__file__).with_name("original_parity_runner.py")
DEFAULT_PYTHON = "/tmp/daam-orig-venv/bin/python"
PROMPTS = [
    "a red circle and a blue square",
    "a dog running across the field",
    "a photo of a cat sitting on a wooden chair",
    "an astronaut riding a horse on the moon",
]
TEXT_HIDDEN = 32

# Per model: latent size (x8 = image size), UNet head counts (diffusers' `attention_head_dim` of SD1/SD2 is
# the number of heads), projection and prediction type.
MODELS = {
    "sd1": dict(sample_size=64, heads=4, linear_projection=False, prediction="epsilon"),
    "sd2": dict(sample_size=96, heads=(2, 2, 4, 4), linear_projection=True, prediction="v_prediction"),
}


def build_pipeline(model: str, seed: int = 0):
    """A random SD 1.x/2.x pipeline at the real geometry (image = 8 x sample_size) with tiny channels."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from daam_store.models.configs import scheduler_config, text_encoder_config
    from daam_store.models.pipelines import assemble_pipeline

    spec = MODELS[model]
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config(2, TEXT_HIDDEN)))
    vae = AutoencoderKL(  # 4 levels: factor 8, as in SD
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=8 * spec["sample_size"],
    )
    unet = UNet2DConditionModel(
        sample_size=spec["sample_size"],
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=spec["heads"],
        use_linear_projection=spec["linear_projection"],
    )
    scheduler = DDIMScheduler(**scheduler_config(model))  # sd1: epsilon, sd2: v-prediction
    return assemble_pipeline(text_encoder, vae, unet, scheduler)


def save_pipeline(pipe, folder: Path) -> None:
    """save_pretrained, then two fixes so that the original's transformers 4.30 reads the folder as it is meant:
    - the tokenizer as the shipped vocab.json/merges.txt (transformers 5 writes only a tokenizer.json, which a
      4.30 slow CLIPTokenizer cannot read);
    - the text encoder's weights under the `text_model.` prefix of the usual SD checkpoints (transformers 5's
      CLIPTextModel has no `text_model` submodule and writes its keys bare; 4.30 would silently leave them
      random). Transformers 5 maps the prefixed keys back when daam-store loads the folder."""
    from safetensors.torch import load_file, save_file

    from daam_store.models.pipelines import TOKENIZER_DIR

    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder / "tokenizer")
    shutil.copytree(TOKENIZER_DIR, folder / "tokenizer")
    weights = folder / "text_encoder" / "model.safetensors"
    state = load_file(weights)
    state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()}
    save_file(state, weights, metadata={"format": "pt"})


def run_original(python: str, folder: Path, prompts, seeds, steps: int, prefix: Path):
    """The original's maps (npz) and what it reported (json), from its venv."""
    command = [
        python,
        str(RUNNER),
        "--pipeline",
        str(folder),
        "--seeds",
        *map(str, seeds),
        "--steps",
        str(steps),
        "--out",
        str(prefix),
    ]
    for prompt in prompts:
        command += ["--prompt", prompt]
    # Nothing from this checkout on its path; no progress bars (diffusers 0.21 loads with a bare tqdm).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "TQDM_DISABLE": "1"}
    subprocess.run(command, check=True, env=env, cwd=tempfile.gettempdir())
    return np.load(f"{prefix}.npz"), json.loads(Path(f"{prefix}.json").read_text())


def run_store(folder: Path, prompts, words, seeds, steps: int, check_rule: bool):
    """daam-store's maps: {(prompt_idx, seed): (image, {variant: {word: map}})}, and its traced layer names.

    Variants: "default" (its default rule); with check_rule also "no mid" (every traced layer but the UNet mid
    block: the original's layers) and "all" (every traced layer, mid block in), picked by index in layer_names.
    """
    from daam_store import trace
    from daam_store.models import load_pipeline

    pipe = load_pipeline(str(folder))
    results, layer_names = {}, []
    for p_idx, prompt in enumerate(prompts):
        for seed in seeds:
            with trace(pipe) as tc:
                image = pipe(prompt, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps).images[0]
                layer_names = list(tc.layer_names)
                heat_maps = {"default": tc.compute_global_heat_map()}
                if check_rule:
                    no_mid = [i for i, name in enumerate(layer_names) if "mid_block" not in name]
                    heat_maps["no mid"] = tc.compute_global_heat_map(layer_idx=no_mid)
                    heat_maps["all"] = tc.compute_global_heat_map(layer_idx=list(range(len(layer_names))))
                maps = {
                    variant: {w: hm.compute_word_heat_map(w).value.numpy() for w in words[p_idx]}
                    for variant, hm in heat_maps.items()
                }
            results[p_idx, seed] = (np.asarray(image), maps)
    return results, layer_names


def pearson(original: np.ndarray, ours: np.ndarray) -> tuple[float, bool]:
    """Pearson r over pixels, ours resized (bicubic) to the original's size if they differ; (r, resized)."""
    resized = original.shape != ours.shape
    if resized:
        ours = F.interpolate(torch.from_numpy(ours)[None, None], size=original.shape, mode="bicubic")[0, 0].numpy()
    return float(np.corrcoef(original.ravel(), ours.ravel())[0, 1]), resized


def compare(model: str, args) -> None:
    prompts, seeds = PROMPTS[: args.prompts], args.seeds
    with tempfile.TemporaryDirectory(prefix=f"parity-{model}-") as tmp:
        folder = Path(tmp) / model
        save_pipeline(build_pipeline(model), folder)
        started = time.perf_counter()
        original, info = run_original(args.original_python, folder, prompts, seeds, args.steps, args.out / model)
        original_s = time.perf_counter() - started
        words = [p["words"] for p in info["prompts"]]
        started = time.perf_counter()
        ours, layer_names = run_store(folder, prompts, words, seeds, args.steps, args.check_rule)
        store_s = time.perf_counter() - started

    print(
        f"\n== {model}: {MODELS[model]['sample_size'] * 8} px, {args.steps} steps, seeds {seeds}; "
        f"original {original_s:.0f} s, daam-store {store_s:.0f} s"
    )
    print(
        f"original daam {info['versions']['daam']} (diffusers {info['versions']['diffusers']}, transformers "
        f"{info['versions']['transformers']}): {len(info['layer_modules'])} layers in this order: "
        f"{', '.join(info['layer_modules'])}; factors kept {info['factors']}, maps {info['map_shape']}"
    )
    print(f"daam-store: {len(layer_names)} layers traced: {', '.join(layer_names)}")
    variants = ["default", "no mid", "all"] if args.check_rule else ["default"]
    header = "".join(f" {f'r({v})':>12}" for v in variants)
    print(f"{'prompt':<44} {'seed':>4} {'image diff':>10}  {'word':<10}{header}")
    correlations = {v: [] for v in variants}
    any_resized = False
    for p_idx, prompt in enumerate(prompts):
        for seed in seeds:
            image, maps = ours[p_idx, seed]
            image_diff = np.abs(image.astype(float) - original[f"p{p_idx}_s{seed}_image"]).mean()
            for w_idx, word in enumerate(words[p_idx]):
                reference = original[f"p{p_idx}_s{seed}_w{w_idx}"]
                line = f"{prompt:<44} {seed:>4} {image_diff:>10.3f}  {word:<10}"
                for variant in variants:
                    r, resized = pearson(reference, maps[variant][word])
                    any_resized |= resized
                    correlations[variant].append(r)
                    line += f" {r:>12.4f}"
                print(line)
    if any_resized:
        print("(daam-store's maps were resized bicubic to the original's map size before correlating)")
    for variant, values in correlations.items():
        print(
            f"{model} r({variant}): min {min(values):.6f}, median {statistics.median(values):.6f}"
            f" over {len(values)} word maps"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["sd1"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help=f"use the first N of {len(PROMPTS)} prompts")
    parser.add_argument("--original-python", default=DEFAULT_PYTHON, help="python of the venv holding daam 0.2.0")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "daam-parity",
        help="folder for the original's maps (MODEL.npz, MODEL.json)",
    )
    parser.add_argument(
        "--check-rule",
        action="store_true",
        help="also correlate daam-store's maps without and with the UNet mid block (layers picked by index)",
    )
    args = parser.parse_args()
    if not Path(args.original_python).exists():
        sys.exit(
            f"no original-daam venv at {args.original_python}: build it as this file's docstring says "
            f"(python3 -m venv ...; pip install torch==2.13.0 diffusers==0.21.2 transformers==4.30.2 ...)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()  # the text encoder's "Writing model shards"
    for model in args.models:
        compare(model, args)


if __name__ == "__main__":
    main()
