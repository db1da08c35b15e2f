"""CUDA check of the tracer on full-size SD 1.x / 2.x UNets with random weights (no download needed).

Prints, per family: traced/untraced time ratio (median of interleaved runs, fp16), whether the traced
image equals the untraced one, whether the maps are finite, and peak GPU memory at 10 vs 30 steps.
Run: python benchmarks/gpu_check.py  (on a machine with a CUDA GPU)
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from daam_store import set_seed, trace
from daam_store.models.pipelines import assemble_pipeline

FAMILIES = {
    "SD1.5-size 512px": dict(
        unet=dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
        text_hidden=768,
        prediction="epsilon",
        size=512,
    ),
    "SD2.1-size 768px v-pred": dict(
        unet=dict(
            sample_size=96,
            cross_attention_dim=1024,
            attention_head_dim=[5, 10, 20, 20],
            use_linear_projection=True,
        ),
        text_hidden=1024,
        prediction="v_prediction",
        size=768,
    ),
}


def build(spec: dict):
    torch.manual_seed(0)
    with torch.device("cuda"):
        text = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=spec["text_hidden"], num_hidden_layers=1, num_attention_heads=8, vocab_size=49408
            )
        )
        unet = UNet2DConditionModel(**spec["unet"])
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=2,
        )
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        prediction_type=spec["prediction"],
    )
    pipe = assemble_pipeline(text, vae, unet, scheduler)
    return pipe.to("cuda", torch.float16)


def generate(pipe, steps: int, traced: bool, size: int):
    torch.cuda.synchronize()
    started = time.perf_counter()
    with trace(pipe) if traced else contextlib.nullcontext() as tc:
        image = pipe(
            "a red dog on a blue car",
            num_inference_steps=steps,
            generator=set_seed(0),
            output_type="np",
            height=size,
            width=size,
        ).images
        maps = tc.compute_global_heat_map().compute_word_heat_map("dog").value if traced else None
    torch.cuda.synchronize()
    return time.perf_counter() - started, image, maps


def peak_memory(pipe, steps: int, size: int) -> float:
    torch.cuda.reset_peak_memory_stats()
    generate(pipe, steps, True, size)
    return torch.cuda.max_memory_allocated() / 2**20


def main() -> None:
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for name, spec in FAMILIES.items():
        pipe = build(spec)
        size = spec["size"]
        generate(pipe, 2, True, size)  # warm-up
        times = {False: [], True: []}
        for _ in range(3):
            for traced in (False, True):
                seconds, image, maps = generate(pipe, 20, traced, size)
                times[traced].append(seconds)
                if traced:
                    traced_image, word_map = image, maps
                else:
                    plain_image = image
        ratio = statistics.median(times[True]) / statistics.median(times[False])
        print(
            f"{name}: untraced median {statistics.median(times[False]):.3f}s, traced median "
            f"{statistics.median(times[True]):.3f}s, ratio {ratio:.3f} (20 steps, fp16, CFG, 3 interleaved runs)"
        )
        print(
            f"{name}: traced image identical: {bool((traced_image == plain_image).all())}, "
            f"max abs pixel diff {abs(traced_image - plain_image).max():.2e}; "
            f"word map {tuple(word_map.shape)} finite: {bool(torch.isfinite(word_map).all())}"
        )
        print(
            f"{name}: peak GPU memory traced, 10 steps {peak_memory(pipe, 10, size):.0f} MiB, "
            f"30 steps {peak_memory(pipe, 30, size):.0f} MiB"
        )
        del pipe
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
