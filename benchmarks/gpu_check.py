"""CUDA check of the tracer on full-size SD 1.5, SD 2.1 and SDXL UNets with random weights (no download needed).

Prints, per family: traced/untraced time ratio (median of interleaved runs, fp16, classifier-free guidance,
30 steps), whether the traced image equals the untraced one, whether the maps are finite, which attention path
the tracer took (a fused kernel's log-sum-exp, checked against SDPA, or a separate softmax), and peak GPU
memory at 10 vs 30 steps (flat means the trace does not grow with steps).
Run: python benchmarks/gpu_check.py [--steps 30] [--runs 3] [--families sd15,sd21,sdxl]  (needs a CUDA GPU)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from daam_store import set_seed, trace
from daam_store.models import load_clip_tokenizer
from daam_store.models.pipelines import assemble_pipeline
from daam_store.tracing import processor

PROMPT = "a red dog on a blue car"
SCHEDULER = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)

# The UNet configs of the released checkpoints (runwayml SD 1.5, SD 2.1, SDXL base 1.0).
UNETS = {
    "sd15": dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
    "sd21": dict(
        sample_size=96, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20], use_linear_projection=True
    ),
    "sdxl": dict(
        sample_size=128,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        use_linear_projection=True,
        cross_attention_dim=2048,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    ),
}
NAMES = {"sd15": "SD1.5-size 512px", "sd21": "SD2.1-size 768px v-pred", "sdxl": "SDXL-size 1024px"}


def text_encoder(hidden: int, projection: bool = False):
    config = CLIPTextConfig(
        hidden_size=hidden, projection_dim=hidden, num_hidden_layers=1, num_attention_heads=8, vocab_size=49408
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def vae():
    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
    )


def build(family: str):
    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNet2DConditionModel(**UNETS[family])
        if family == "sdxl":
            pipe = StableDiffusionXLPipeline(
                vae=vae(),
                text_encoder=text_encoder(768),
                text_encoder_2=text_encoder(1280, projection=True),
                tokenizer=load_clip_tokenizer(),
                tokenizer_2=load_clip_tokenizer(pad_token="!"),
                unet=unet,
                scheduler=EulerDiscreteScheduler(**SCHEDULER),
            )
            pipe.set_progress_bar_config(disable=True)
        else:
            prediction = "v_prediction" if family == "sd21" else "epsilon"
            scheduler = DDIMScheduler(**SCHEDULER, clip_sample=False, prediction_type=prediction)
            hidden = UNETS[family]["cross_attention_dim"]
            pipe = assemble_pipeline(text_encoder(hidden), vae(), unet, scheduler)
    return pipe.to("cuda", torch.float16)


def generate(pipe, steps: int, traced: bool):
    torch.cuda.synchronize()
    started = time.perf_counter()
    with trace(pipe) if traced else contextlib.nullcontext() as tc:
        image = pipe(PROMPT, num_inference_steps=steps, generator=set_seed(0), output_type="np").images
        maps = tc.compute_global_heat_map().compute_word_heat_map("dog").value if traced else None
    torch.cuda.synchronize()
    return time.perf_counter() - started, image, maps


def peak_memory(pipe, steps: int) -> float:
    torch.cuda.reset_peak_memory_stats()
    generate(pipe, steps, True)
    return torch.cuda.max_memory_allocated() / 2**20


def check(family: str, steps: int, runs: int) -> None:
    name = NAMES[family]
    pipe = build(family)
    generate(pipe, 2, True)  # warm-up (and the one-time check of the fused kernels)
    generate(pipe, 2, False)
    times = {False: [], True: []}
    for run in range(runs):
        for traced in (False, True) if run % 2 == 0 else (True, False):
            seconds, image, maps = generate(pipe, steps, traced)
            times[traced].append(seconds)
            if traced:
                traced_image, word_map = image, maps
            else:
                plain_image = image
    plain, traced = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"{name}: untraced median {plain:.3f}s, traced median {traced:.3f}s, ratio {traced / plain:.3f} "
        f"({steps} steps, fp16, CFG, {runs} interleaved runs)"
    )
    print(
        f"{name}: traced image identical: {bool((traced_image == plain_image).all())}, max abs pixel diff "
        f"{abs(traced_image - plain_image).max():.2e}; word map {tuple(word_map.shape)} finite: "
        f"{bool(torch.isfinite(word_map).all())}; fused kernels checked (shape -> trusted): "
        f"{sum(processor._CHECKED_KERNELS.values())} of {len(processor._CHECKED_KERNELS)} trusted"
    )
    print(
        f"{name}: peak GPU memory traced, 10 steps {peak_memory(pipe, 10):.0f} MiB, {steps} steps "
        f"{peak_memory(pipe, steps):.0f} MiB"
    )
    processor._CHECKED_KERNELS.clear()
    del pipe
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--families", default="sd15,sd21,sdxl")
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for family in args.families.split(","):
        check(family, args.steps, args.runs)


if __name__ == "__main__":
    main()
