"""Training a built-in model: first the VAE on world images, then the UNet and text encoder on its latents.

The losses are the ordinary ones (VAE: reconstruction + KL; UNet: the denoising loss with min-SNR
weighting). No loss sees attention maps or object masks: the word maps that the evaluation scores
must emerge from denoising alone.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from daam_store.models import build_random_pipeline
from daam_store.models.configs import IMAGE_SIZE
from daam_store.training.bundle import TEXT_ENCODERS, compact_tokenizers, pipeline_configs, save_bundle
from daam_store.training.checkpoint import load_checkpoint, save_checkpoint
from daam_store.training.data import WorldBatches
from daam_store.training.ema import EMA
from daam_store.training.recipes import Recipe

CHECKPOINT_NAME = "checkpoint.pt"
PIPELINE_DIR = "pipeline"
# With a time budget, the UNet step count is fixed from the speed measured over these steps
# (inside the warm-up, whose learning rates do not depend on the step count).
BUDGET_PROBE = (20, 100)
# SDXL's size and crop conditioning as its pipeline passes it at the built-in size: original (32, 32),
# crop top-left (0, 0), target (32, 32).
SDXL_TIME_IDS = [IMAGE_SIZE, IMAGE_SIZE, 0, 0, IMAGE_SIZE, IMAGE_SIZE]


@dataclass
class TrainOptions:
    out: Path
    device: str = "cpu"
    resume: bool = True
    checkpoint_every: int = 250
    snapshot: Path | None = None  # a one-file bundle of the EMA weights, rewritten every snapshot_every
    snapshot_every: int = 500
    time_budget: float | None = None  # seconds for the whole run; sets the UNet step count
    log_file: Path | None = None
    progress: bool = True
    log_every: int = 100


@dataclass
class RunState:
    phase: str = "vae"  # "vae" -> "unet" -> "done"
    step: int = 0
    unet_steps: int = 0
    seconds: float = 0.0  # training time over all sessions of this run
    scaling_factor: float = 1.0
    history: list = field(default_factory=list)  # [phase, step, mean loss] every log_every steps


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    def __init__(self, recipe: Recipe, options: TrainOptions) -> None:
        self.recipe = recipe
        self.options = options
        self.device = torch.device(options.device)
        _speed_settings(self.device)

        # built before the output folder: a layout the configs refuse leaves no folder behind
        pipe = build_random_pipeline(
            recipe.family,
            seed=recipe.seed,
            text_layers=recipe.text_layers,
            attention_heads=recipe.attention_heads,
            transformer_layers=recipe.transformer_layers,
            unet_levels=recipe.unet_levels,
            prediction_type=recipe.prediction_type,
        )
        self.out = Path(options.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.pipe = pipe
        # channels_last speeds up CPU convolutions; on CUDA the default layout is the well-trodden path.
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.vae = pipe.vae.to(self.device, memory_format=self.memory_format)
        self.unet = pipe.unet.to(self.device, memory_format=self.memory_format)
        self.sdxl = recipe.family == "sdxl"
        encoder_names = TEXT_ENCODERS if self.sdxl else TEXT_ENCODERS[:1]
        self.text_encoders = {name: getattr(pipe, name).to(self.device) for name in encoder_names}
        if recipe.zero_text_residuals:
            for encoder in self.text_encoders.values():
                _zero_residual_branches(encoder)
        if recipe.text_embedding_std is not None:
            generator = torch.Generator().manual_seed(recipe.seed)
            for encoder in self.text_encoders.values():
                _redraw_embeddings(encoder, recipe.text_embedding_std, generator)
        self.sdxl_time_ids = torch.tensor([SDXL_TIME_IDS], device=self.device)
        # Noise is added as in DDPM training whichever sampler the pipeline ships (SDXL's Euler included).
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.data = WorldBatches(
            pipe.tokenizer,
            recipe.batch_size,
            recipe.seed,
            self.device,
            recipe.empty_caption_prob,
            tokenizer_2=pipe.tokenizer_2 if self.sdxl else None,
            colourless_phrase_prob=recipe.colourless_phrase_prob,
            extra_colours=recipe.extra_colours,
            shape_shading=recipe.shape_shading,
            object_counts=recipe.object_counts,
            extra_shapes=recipe.extra_shapes,
        )
        self.world_rows = _world_token_rows(self.data)
        self.state = RunState(unet_steps=recipe.unet_steps)
        self.ema = EMA(self._unet_and_text_parameters(), recipe.ema_decay)
        self.optimizer: torch.optim.Optimizer | None = None
        self._session_start = time.perf_counter()
        self._seconds_before = 0.0

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> Path:
        self._resume()
        if self.state.phase == "vae":
            self._train_vae()
        if self.state.phase == "unet":
            self._train_unet()
        return self._export()

    def _unet_and_text_parameters(self) -> dict[str, torch.nn.Parameter]:
        named = {f"unet.{n}": p for n, p in self.unet.named_parameters()}
        for module_name, module in self.text_encoders.items():
            named.update({f"{module_name}.{n}": p for n, p in module.named_parameters()})
        return named

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"vae": self.vae, "unet": self.unet, **self.text_encoders}

    def _train_vae(self) -> None:
        recipe = self.recipe
        self.vae.train()
        if self.optimizer is None:
            self.optimizer = torch.optim.AdamW(self.vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
        losses = []
        for step in self._steps("vae", recipe.vae_steps):
            batch = self.data.batch("vae", step)
            images, generator = batch.images.contiguous(memory_format=self.memory_format), batch.generator
            posterior = self.vae.encode(images).latent_dist
            reconstruction = self.vae.decode(posterior.sample(generator=generator)).sample
            kl = posterior.kl().mean() / posterior.mean[0].numel()  # per latent element
            loss = F.mse_loss(reconstruction, images) + recipe.kl_weight * kl
            self._optimizer_step(loss, learning_rate(step, recipe.vae_steps, recipe.vae_lr, 100))
            losses.append(loss.detach())
            self._after_step("vae", step, losses)
        self.state.scaling_factor = self._latent_scaling_factor()
        self.vae.register_to_config(scaling_factor=self.state.scaling_factor)
        self._log(f"vae done: latent scaling factor {self.state.scaling_factor:.4f}")
        self.state.phase, self.state.step, self.optimizer = "unet", 0, None
        self._checkpoint()

    @torch.no_grad()
    def _latent_scaling_factor(self) -> float:
        """1 / std of the latents, as Stable Diffusion scales them (unit variance for the UNet)."""
        self.vae.eval()
        batch = self.data.batch("vae", self.recipe.vae_steps)
        latents = self.vae.encode(batch.images).latent_dist.sample(generator=batch.generator)
        return float(1.0 / latents.float().std())

    def _train_unet(self) -> None:
        recipe = self.recipe
        self.vae.eval().requires_grad_(False)
        self.unet.train()
        for module in self.text_encoders.values():
            module.train()
        if self.optimizer is None:
            self.optimizer = self._unet_optimizer()
        alphas = self.scheduler.alphas_cumprod.to(self.device)
        snr = alphas / (1 - alphas)
        weights = torch.clamp(snr, max=recipe.min_snr_gamma) / (snr if self._epsilon() else snr + 1)
        losses = []
        probe_start = None
        for step in self._steps("unet", self.state.unet_steps):
            batch = self.data.batch("unet", step)
            generator = batch.generator
            with torch.no_grad():
                posterior = self.vae.encode(batch.images.contiguous(memory_format=self.memory_format)).latent_dist
                latents = posterior.sample(generator=generator) * self.state.scaling_factor
            noise = torch.randn(latents.shape, generator=generator, device=self.device)
            timesteps = torch.randint(0, len(alphas), (len(latents),), generator=generator, device=self.device)
            noisy = self.scheduler.add_noise(latents, noise, timesteps)
            target = noise if self._epsilon() else self.scheduler.get_velocity(latents, noise, timesteps)
            hidden, added = self._condition(batch)
            noisy = noisy.contiguous(memory_format=self.memory_format)
            prediction = self.unet(noisy, timesteps, hidden, added_cond_kwargs=added).sample
            per_sample = F.mse_loss(prediction.float(), target, reduction="none").mean(dim=(1, 2, 3))
            loss = (per_sample * weights[timesteps]).mean()
            lr = learning_rate(step, self.state.unet_steps, recipe.unet_lr, recipe.warmup_steps)
            self._optimizer_step(loss, lr)
            self.ema.update()
            losses.append(loss.detach())
            if self.options.time_budget and step == BUDGET_PROBE[0]:
                _synchronize(self.device)
                probe_start = time.perf_counter()
            if self.options.time_budget and step == BUDGET_PROBE[1] and probe_start is not None:
                self._fit_steps_to_budget(step, probe_start)
            self._after_step("unet", step, losses)
            if self.options.snapshot and (step + 1) % self.options.snapshot_every == 0:
                self._write_snapshot()
        self.state.phase, self.state.step = "done", self.state.unet_steps
        self._checkpoint()

    def _condition(self, batch) -> tuple[torch.Tensor, dict | None]:
        """The UNet's text conditioning for a batch, computed as the family's pipeline computes it."""
        if not self.sdxl:
            return self.text_encoders["text_encoder"](batch.ids)[0], None
        # SDXL: both encoders' penultimate hidden states side by side; the second one's pooled projection
        # and the size/crop ids as added conditioning; a dropped caption is all zeros, as the pipeline's
        # unconditional input is (force_zeros_for_empty_prompt).
        first = self.text_encoders["text_encoder"](batch.ids, output_hidden_states=True)
        second = self.text_encoders["text_encoder_2"](batch.ids_2, output_hidden_states=True)
        kept = (~batch.dropped).to(second.text_embeds.dtype)
        hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1) * kept[:, None, None]
        pooled_kept = torch.rand(len(kept), generator=batch.generator, device=self.device) >= self.recipe.pooled_dropout
        pooled = second.text_embeds * (kept * pooled_kept)[:, None]
        return hidden, {"text_embeds": pooled, "time_ids": self.sdxl_time_ids.expand(len(pooled), -1)}

    def _fit_steps_to_budget(self, step: int, probe_start: float) -> None:
        _synchronize(self.device)
        per_step = (time.perf_counter() - probe_start) / (BUDGET_PROBE[1] - BUDGET_PROBE[0])
        left = self.options.time_budget - self._elapsed()
        steps = step + 1 + int(0.9 * left / per_step)  # 10 % kept for checkpoints and export
        self.state.unet_steps = max(step + 1, steps)
        self._log(
            f"time budget: {per_step * 1000:.1f} ms per step, {left:.0f} s left -> {self.state.unet_steps} UNet steps"
        )
        self._bar.total = self.state.unet_steps
        self._bar.refresh()

    def _unet_optimizer(self) -> torch.optim.Optimizer:
        text_parameters = [p for module in self.text_encoders.values() for p in module.parameters()]
        groups = [
            {"params": list(self.unet.parameters()), "weight_decay": 0.01},
            {"params": text_parameters, "weight_decay": 0.0},
        ]
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(groups, lr=self.recipe.unet_lr, fused=fused)

    def _epsilon(self) -> bool:
        return self.scheduler.config.prediction_type == "epsilon"

    def _optimizer_step(self, loss: torch.Tensor, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()

    # -- steps, logging, checkpoints ----------------------------------------------------------------
    def _steps(self, phase: str, total: int):
        start = self.state.step
        non_tty = not _is_tty()
        self._bar = tqdm(
            total=total,
            initial=start,
            desc=f"{self.recipe.name} {phase}",
            disable=not self.options.progress,
            mininterval=10 if non_tty else 0.2,
            dynamic_ncols=True,
        )
        step = start
        while step < (self.state.unet_steps if phase == "unet" else total):
            yield step
            step += 1
        self._bar.close()

    def _after_step(self, phase: str, step: int, losses: list) -> None:
        self.state.step = step + 1
        self._bar.update(1)
        every = self.options.log_every
        if (step + 1) % every == 0 or step + 1 == self._bar.total:
            mean = float(torch.stack(losses).mean())
            losses.clear()
            self.state.history.append([phase, step + 1, round(mean, 6)])
            self._bar.set_postfix(loss=f"{mean:.4f}")
            self._log(f"{phase} step {step + 1}/{self._bar.total} loss {mean:.5f} elapsed {self._elapsed():.0f}s")
        if (step + 1) % self.options.checkpoint_every == 0:
            self._checkpoint()

    def _elapsed(self) -> float:
        return self._seconds_before + time.perf_counter() - self._session_start

    def _log(self, message: str) -> None:
        line = f"[{self.recipe.name} L{self.recipe.text_layers}] {message}"
        if self.options.progress:
            tqdm.write(line)
        if self.options.log_file:
            with open(self.options.log_file, "a") as handle:
                handle.write(line + "\n")

    def _checkpoint(self) -> None:
        self.state.seconds = self._elapsed()
        save_checkpoint(
            self.out / CHECKPOINT_NAME,
            recipe=self.recipe,
            state=self.state,
            modules=self._modules(),
            ema=self.ema,
            optimizer=self.optimizer,
        )

    def _resume(self) -> None:
        path = self.out / CHECKPOINT_NAME
        if not (self.options.resume and path.exists()):
            return
        saved = load_checkpoint(
            path,
            recipe=self.recipe,
            modules=self._modules(),
            ema=self.ema,
        )
        self.state = RunState(**saved["state"])
        if saved["recipe"]["unet_steps"] != self.recipe.unet_steps:  # the user asked for another length
            self.state.unet_steps = max(self.recipe.unet_steps, self.state.step)
            if self.state.phase == "done" and self.state.step < self.state.unet_steps:
                self.state.phase = "unet"
        self._seconds_before = self.state.seconds
        if self.state.phase in ("unet", "done"):
            self.vae.register_to_config(scaling_factor=self.state.scaling_factor)
        if saved["optimizer"] is not None:
            self.optimizer = (
                torch.optim.AdamW(self.vae.parameters(), lr=self.recipe.vae_lr, weight_decay=0.0)
                if self.state.phase == "vae"
                else self._unet_optimizer()
            )
            self.optimizer.load_state_dict(saved["optimizer"])
        self._log(f"resumed from {path}: {self.state.phase} step {self.state.step}")

    # -- outputs ------------------------------------------------------------------------------------
    def _ema_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        weights = {"vae": self.vae.state_dict()}
        for module_name, module in (("unet", self.unet), *self.text_encoders.items()):
            state = module.state_dict()
            state.update(self.ema.weights(f"{module_name}."))
            weights[module_name] = state
        return weights

    def info(self) -> dict:
        return {
            "recipe": self.recipe.to_dict(),
            "unet_steps_done": self.state.step if self.state.phase != "vae" else 0,
            "unet_steps": self.state.unet_steps,
            "training_seconds": round(self._elapsed(), 1),
            "time_budget_seconds": self.options.time_budget,
            "device": _device_name(self.device),
            "torch": torch.__version__,
            "loss_history": self.state.history,
            "ema": "weights are the exponential moving average of the UNet and text encoder",
        }

    def _write_snapshot(self) -> None:
        save_bundle(
            self.options.snapshot, self._ema_weights(), pipeline_configs(self.pipe), self.world_rows, self.info()
        )

    def _export(self) -> Path:
        """The EMA weights as a diffusers pipeline folder (safetensors), plus training.json."""
        weights = self._ema_weights()
        if self.options.snapshot:
            save_bundle(self.options.snapshot, weights, pipeline_configs(self.pipe), self.world_rows, self.info())
        for module_name, module in (("unet", self.unet), *self.text_encoders.items()):
            module.load_state_dict(weights[module_name])
        folder = self.out / PIPELINE_DIR
        self.pipe.to("cpu")
        self.unet.to(memory_format=torch.contiguous_format)
        self.vae.to(memory_format=torch.contiguous_format)
        self.pipe.save_pretrained(str(folder), safe_serialization=True)
        compact_tokenizers(folder)
        (folder / "training.json").write_text(json.dumps(self.info(), indent=2) + "\n")
        self._log(f"wrote {folder}")
        return folder


def train_builtin(recipe: Recipe, options: TrainOptions) -> Path:
    """Train (or resume training) `recipe` into `options.out`; returns the pipeline folder."""
    return Trainer(recipe, options).run()


def _world_token_rows(data: WorldBatches) -> list[int]:
    """The token ids the world's captions use (both tokenizers': SDXL's second pads with another token)."""
    tokens = data.tokens
    ids = [tokens.bos, tokens.eos, tokens.pad, tokens.a, tokens.comma, tokens.and_]
    if data.tokens_2 is not None:
        ids.append(data.tokens_2.pad)
    return ids + tokens.colour_ids.tolist() + tokens.shape_ids.tolist()


@torch.no_grad()
def _zero_residual_branches(text_encoder) -> None:
    """Make each CLIP layer add nothing to its residual stream, so the encoder starts as its embeddings
    (then the final layer norm). Gradients still reach the zeroed projections, so the layers can grow."""
    # CLIPTextModelWithProjection (and CLIPTextModel before transformers 5) wrap their layers in text_model
    text_model = getattr(text_encoder, "text_model", text_encoder)
    for layer in text_model.encoder.layers:
        for projection in (layer.self_attn.out_proj, layer.mlp.fc2):
            projection.weight.zero_()
            projection.bias.zero_()


@torch.no_grad()
def _redraw_embeddings(text_encoder, std: float, generator: torch.Generator) -> None:
    """Draw the token and position embeddings again at `std`: the scale the UNet's cross-attention first reads
    where nothing normalises them (SDXL's penultimate states)."""
    embeddings = getattr(text_encoder, "text_model", text_encoder).embeddings
    for table in (embeddings.token_embedding.weight, embeddings.position_embedding.weight):
        noise = torch.randn(table.shape, generator=generator) * std
        table.copy_(noise.to(table.device, table.dtype))


def _speed_settings(device: torch.device) -> None:
    torch.set_flush_denormal(True)  # tiny weights otherwise slow CPU training 3-5x after a few hundred steps
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _is_tty() -> bool:
    return sys.stderr.isatty()
