"""Component configs of the built-in small models (and of the random test pipelines).

Both families keep the real Stable Diffusion architecture at toy size: 32x32 images, a factor-2
AutoencoderKL (16x16x4 latents), a UNet with cross-attention at 16x16, 8x8 and the mid block
(7 `attn2` layers) and a CLIP text encoder over the full 49,408-token CLIP vocabulary. With `levels=4` the
SD UNet has SD 1.x's and 2.x's four levels instead: cross-attention at 1, 1/2 and 1/4 of the latent size (16x16,
8x8, 4x4), none at 1/8 (2x2) but in the mid block (10 `attn2` layers).

- SD1-like: conv projection in the transformer blocks, one head size, epsilon prediction.
- SD2-like: linear projection, `attention_head_dim` as a list, v-prediction.
- SDXL-like (`sdxl_*`): SDXL's layout at toy size: no attention in the first block, several transformer
  layers per block, two text encoders whose hidden states are concatenated (context 64 = 32 + 32), the
  second one's pooled projection and the size/crop ids as "text_time" added conditioning, Euler.
"""

from __future__ import annotations

from typing import Literal

from daam_store.errors import UserError

Family = Literal["sd1", "sd2", "sdxl"]

TEXT_HIDDEN = 64
IMAGE_SIZE = 32


def text_encoder_config(num_layers: int = 0, hidden: int = TEXT_HIDDEN) -> dict:
    return dict(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        projection_dim=hidden,
    )


def vae_config() -> dict:
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
    )


# The smallest attention block has 32 channels: a head count must split it evenly.
ATTENTION_HEAD_CHOICES = (1, 2, 4, 8, 16, 32)


def check_attention_heads(heads: int | None) -> None:
    if heads is not None and heads not in ATTENTION_HEAD_CHOICES:
        choices = ", ".join(map(str, ATTENTION_HEAD_CHOICES))
        raise UserError(f"--attention-heads must be one of {choices} (they split 32 channels), got {heads}")


# Each layer adds a self- and a cross-attention per block: past 4 a CPU step costs several times the shipped one.
MAX_TRANSFORMER_LAYERS = 4


def check_transformer_layers(layers: int | None) -> None:
    if layers is not None and not 1 <= layers <= MAX_TRANSFORMER_LAYERS:
        raise UserError(f"--transformer-layers must be between 1 and {MAX_TRANSFORMER_LAYERS}, got {layers}")


# UNet levels (resolutions): 3 in every built-in layout; 4 for SD 1.x/2.x, as in the real models.
UNET_LEVEL_CHOICES = (3, 4)


def check_unet_levels(levels: int, family: Family) -> None:
    if levels not in UNET_LEVEL_CHOICES:
        raise UserError(f"--unet-levels must be one of {', '.join(map(str, UNET_LEVEL_CHOICES))}, got {levels}")
    if family == "sdxl" and levels != 3:
        raise UserError("--unet-levels applies to SD 1.x/2.x recipes only (leave it out: SDXL has its own layout)")


def unet_config(
    family: Family,
    sample_size: int = IMAGE_SIZE // 2,
    attention_heads: int | None = None,
    transformer_layers: int | None = None,
    levels: int = 3,
) -> dict:
    """`attention_heads` sets one head count for every block and `transformer_layers` one depth for every
    cross-attention block, the mid block included (None: the family's own layout). `levels` 4 adds SD's fourth
    level: the 4x4 blocks get cross-attention and a plain block at 2x2 (1/8) follows, as in SD 1.x and 2.x,
    whose cross-attention is at 1, 1/2 and 1/4 of the latent size."""
    check_attention_heads(attention_heads)
    check_transformer_layers(transformer_layers)
    check_unet_levels(levels, family)
    attended = levels - 1  # the lowest level has no cross-attention
    config = dict(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * attended + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * attended,
        block_out_channels=(32,) + (64,) * attended,
        layers_per_block=1,
        norm_num_groups=16,
        cross_attention_dim=TEXT_HIDDEN,
        # diffusers' default written out: a recipe naming it then gives the same config (and resumes the run)
        transformer_layers_per_block=1 if transformer_layers is None else transformer_layers,
    )
    if family == "sd1":
        config.update(attention_head_dim=8, use_linear_projection=False)
    else:
        config.update(attention_head_dim=[2] + [4] * attended, use_linear_projection=True)
    if attention_heads is not None:
        # diffusers reads SD's `attention_head_dim` as the number of heads (a naming slip it keeps for old
        # configs) and gives an int to every block
        config.update(attention_head_dim=attention_heads)
    return config


SDXL_TEXT_HIDDEN = TEXT_HIDDEN // 2  # each of the two encoders; concatenated they make the 64-wide context
SDXL_TIME_EMBED = 8


def sdxl_text_encoder_config(num_layers: int = 1) -> dict:
    """Either SDXL encoder (the second adds a projection): SDXL reads the penultimate hidden state, so >= 1 layer."""
    return text_encoder_config(num_layers, SDXL_TEXT_HIDDEN)


def sdxl_unet_config(
    sample_size: int = IMAGE_SIZE // 2,
    attention_heads: int | None = None,
    transformer_layers: int | None = None,
    levels: int = 3,
) -> dict:
    check_attention_heads(attention_heads)
    check_transformer_layers(transformer_layers)
    check_unet_levels(levels, "sdxl")
    return dict(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        transformer_layers_per_block=(1, 1, 2) if transformer_layers is None else transformer_layers,
        attention_head_dim=(2, 4, 4) if attention_heads is None else attention_heads,
        use_linear_projection=True,
        norm_num_groups=16,
        cross_attention_dim=TEXT_HIDDEN,
        addition_embed_type="text_time",
        addition_time_embed_dim=SDXL_TIME_EMBED,
        # six size/crop ids, each embedded in SDXL_TIME_EMBED, plus the second encoder's pooled embedding
        projection_class_embeddings_input_dim=6 * SDXL_TIME_EMBED + SDXL_TEXT_HIDDEN,
    )


PREDICTION_TYPES = ("epsilon", "v_prediction")


def scheduler_config(family: Family, prediction_type: str | None = None) -> dict:
    """SD's DDIM settings; `prediction_type` None: the family's (SD 2.x v, SD 1.x and SDXL epsilon)."""
    if prediction_type is None:
        prediction_type = "v_prediction" if family == "sd2" else "epsilon"
    elif prediction_type not in PREDICTION_TYPES:
        raise UserError(f"--prediction-type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}")
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def sdxl_scheduler_config(prediction_type: str | None = None) -> dict:
    """SDXL's Euler scheduler: SD's betas, without DDIM's clipping options (epsilon unless told)."""
    config = scheduler_config("sd1", prediction_type)
    del config["clip_sample"], config["set_alpha_to_one"]
    return config | dict(timestep_spacing="leading")


def unet_and_scheduler_configs(
    family: Family,
    prediction_type: str | None = None,
    attention_heads: int | None = None,
    transformer_layers: int | None = None,
    levels: int = 3,
) -> tuple[dict, dict]:
    """The family's UNet and scheduler configs with a recipe's layout choices (None: the family's own). Two
    recipes that give the same configs build the same model, whether or not they named the family's defaults."""
    layout = dict(attention_heads=attention_heads, transformer_layers=transformer_layers, levels=levels)
    if family == "sdxl":
        return sdxl_unet_config(**layout), sdxl_scheduler_config(prediction_type)
    return unet_config(family, **layout), scheduler_config(family, prediction_type)
