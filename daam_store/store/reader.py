"""Turning stored rows back into arrays, images and GenerationExperiments."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image

from daam_store.errors import first_line
from daam_store.store import codec
from daam_store.store.errors import CorruptBlobError, StoreError, UnknownCodecError
from daam_store.store.schema import STATUS_OVERLAYS_ONLY, Generation, HeatMap, MapStack


def decode_heat_map(row: HeatMap) -> np.ndarray:
    """A word's (h, w) map; the error names the row so `daam-store db check` output can be acted on."""
    values = _decode(row.blob, row.codec, row.codec_version, f"heat map {row.id}")
    if values.shape != (row.height, row.width):
        raise CorruptBlobError(f"heat map {row.id} decodes to {values.shape}, not ({row.height}, {row.width})")
    return values


def decode_stack(row: MapStack) -> np.ndarray:
    values = _decode(row.blob, row.codec, row.codec_version, f"{row.kind} maps of generation {row.generation_id}")
    if list(values.shape) != list(row.shape):
        raise CorruptBlobError(f"{row.kind} maps of generation {row.generation_id} have the wrong shape")
    return values


def _decode(blob: bytes, name: str, version: int, what: str) -> np.ndarray:
    try:
        return codec.decode(blob, name, version)
    except (CorruptBlobError, UnknownCodecError) as error:
        raise type(error)(f"{what}: {error}") from None


def undecodable_image(error: Exception) -> CorruptBlobError:
    # PIL's "cannot identify image file <_io.BytesIO object at 0x...>" names a buffer's address, not the problem
    reason = "not an image" if isinstance(error, PIL.UnidentifiedImageError) else first_line(error)
    return CorruptBlobError(f"stored image does not decode ({reason}); re-import the generation")


def image_from_png(data: bytes) -> PIL.Image.Image:
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:  # the bomb check is no OSError
        raise undecodable_image(error) from None


def thumbnail_from_png(data: bytes, size: int) -> PIL.Image.Image:
    """The image shrunk to fit size x size: the full-size decode is dropped at once, never kept or converted."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            image.thumbnail((size, size))
            return image.convert("RGB")
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:  # the bomb check is no OSError
        raise undecodable_image(error) from None


def missing_token_maps(generation: Generation) -> str:
    """Why a generation has no token-map stack: imported from overlays, or stored before stacks were kept."""
    if generation.status == STATUS_OVERLAYS_ONLY:
        return (
            f"generation {generation.id} has no numeric heat maps (status {generation.status!r}: it was "
            "imported from rendered overlay images only); its image and overlays are in the store"
        )
    return (
        f"generation {generation.id} was stored before token maps were kept (schema 0001); "
        "its word maps are in the store, its token maps are not"
    )


def metadata_of(generation: Generation) -> dict:
    """The experiment metadata: settings from their columns, the rest as it was saved, plus the model."""
    metadata = dict(generation.extra or {})
    metadata.update(
        steps=generation.steps,
        guidance_scale=generation.guidance_scale,
        negative_prompt=generation.negative_prompt or None,
        scheduler=generation.scheduler,
        dtype=generation.dtype,
        height=generation.height,
        width=generation.width,
        timings=dict(generation.timings or {}),
        heat_map_rule=generation.heat_map_rule,
    )
    model = generation.model
    metadata["model"] = model.name
    metadata["model_info"] = {
        "name": model.name,
        "source": model.source,
        "location": model.location,
        "family": model.family,
        "revision": model.revision,
        "resolution": model.resolution,
        "prediction_type": model.prediction_type,
    }
    metadata["store"] = {
        "generation_id": generation.id,
        "author": generation.author,
        "tags": sorted(tag.name for tag in generation.tags),
        "status": generation.status,
        "created_at": generation.created_at.isoformat() if generation.created_at else None,
    }
    return {k: v for k, v in metadata.items() if v is not None}


def experiment_from_row(generation: Generation):
    """A GenerationExperiment with the stored token maps; needs a generation that has numeric maps."""
    import torch

    from daam_store.experiment import GenerationExperiment

    stacks = {stack.kind: stack for stack in generation.map_stacks}
    if "tokens" not in stacks:
        raise StoreError(missing_token_maps(generation))
    layers = stacks.get("layers")
    steps = stacks.get("steps")
    return GenerationExperiment(
        image=image_from_png(generation.image.png),
        global_heat_map=torch.from_numpy(decode_stack(stacks["tokens"]).copy()),
        prompt=generation.prompt.text,
        seed=generation.seed,
        metadata=metadata_of(generation),
        layer_heat_maps=torch.from_numpy(decode_stack(layers).copy()) if layers else None,
        layer_names=list(layers.labels) if layers else [],
        step_heat_maps=torch.from_numpy(decode_stack(steps).copy()) if steps else None,
        prompt_tokens=prompt_tokens_of(generation, stacks["tokens"]),
    )


def prompt_tokens_of(generation: Generation, token_stack: MapStack):
    """The prompt's tokens as the pipeline's tokenizer split them at trace time: the token stack's labels,
    the word rows and the cut words in the metadata. No tokenizer is involved."""
    from daam_store.heatmap import PromptTokens, WordSpan

    words = tuple(
        WordSpan(w.position, w.text, tuple(w.token_indices), tuple(w.token_ids), w.is_punctuation)
        for w in generation.words
    )
    cut = (generation.extra or {}).get("cut_words") or ()
    return PromptTokens(tuple(token_stack.labels), words, tuple(str(word) for word in cut))
