"""The aggregation rules a generation's maps can have been made with; recorded with every generation.

- `DAAM`: the original DAAM's layers, the default: the cross-attention of the UNet's down and up blocks (no mid
  block), none at 1/8 of the latent size.
- `DAAM_WITH_MID_BLOCK`: every cross-attention layer, the mid block's too (`mid_block=True`). It is also what
  daam-store computed before the default followed the original, so rows and folders from then carry it.
- `CUSTOM`: maps restricted by hand (`to_experiment(layer_idx=..., factors=..., head_idx=..., time_idx=...)`).
"""

DAAM = "daam"
DAAM_WITH_MID_BLOCK = "daam+mid"
CUSTOM = "custom"

# In words, for the dashboard (None: a generation without numeric maps, or one saved without its rule).
DESCRIPTIONS = {
    DAAM: "down and up blocks (the original DAAM's layers)",
    DAAM_WITH_MID_BLOCK: "every layer, mid block included",
    CUSTOM: "layers, heads or steps chosen by hand",
    None: "unknown layers",
}
