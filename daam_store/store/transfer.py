"""Import experiment directories into the store and export stored generations back to directories.

Two directory layouts are read:
- daam-store's own (`GenerationExperiment.save()`): generation.pt holds tensors only and loads with
  `torch.load(weights_only=True)`, so everything comes back: maps, finer records, metadata.
- the original `daam` package's: output.png, prompt.txt, seed.txt and `<word>.heat_map.png` overlays,
  with a pickled generation.pt that is never unpickled. Its overlays are matplotlib renderings, not
  numbers, so such a generation is stored with its image, prompt, seed and words, keeps the overlay
  PNGs verbatim as attachments, and gets status "overlays-only" (no statistics, no charts).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import PIL.Image

from daam_store.errors import UserError
from daam_store.experiment import OVERLAY_SUFFIX
from daam_store.models.info import ModelInfo
from daam_store.store.reader import experiment_from_row, image_from_png
from daam_store.store.schema import STATUS_OVERLAYS_ONLY
from daam_store.store.writer import (
    UNKNOWN_MODEL,
    PreparedGeneration,
    PreparedWord,
    Store,
    load_generation,
    png_bytes,
)

MAX_PIXELS_VARIABLE = "DAAM_STORE_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 4096 * 4096
SEED_RANGE = range(-(2**63), 2**63)  # the seed column is a BIGINT; SQLite refuses larger ints with a traceback


@dataclass(frozen=True)
class ImportResult:
    path: Path
    generation_id: int
    overlays_only: bool


def experiment_directories(paths: Iterable[str | Path]) -> list[Path]:
    """Each path that is an experiment directory (has output.png), or the ones found below it."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"{path} is not a directory; give experiment directories (with output.png) to import")
        below = [path] if (path / "output.png").is_file() else sorted(p.parent for p in path.rglob("output.png"))
        if not below:
            raise UserError(f"{path} holds no experiment (no output.png in it or below it)")
        found.extend(below)
    return list(dict.fromkeys(found))


def import_directory(
    store: Store, path: Path, model_name: str | None = None, author: str | None = None, tags: Iterable[str] = ()
) -> ImportResult:
    _refuse_links_out(path)
    _refuse_special_files(path)
    _require_image_size(path / "output.png")
    if _is_own_layout(path):
        from daam_store.experiment import GenerationExperiment

        exp = GenerationExperiment.load(path)
        model = model_from_metadata(exp.metadata, model_name)
        generation_id = store.save(exp, model=model, author=author, tags=tags)
        return ImportResult(path, generation_id, overlays_only=False)
    prepared = prepare_original(path, model_from_metadata({}, model_name), author, tags)
    return ImportResult(path, store.save_prepared(prepared), overlays_only=True)


def _refuse_links_out(path: Path) -> None:
    """A link to a file outside its folder would store that file (e.g. /etc/passwd as prompt.txt)."""
    for file in [*path.iterdir(), path.parent / "prompt.txt", path.parent / "seed.txt"]:
        if file.is_symlink() and not file.resolve().is_relative_to(file.parent.resolve()):
            raise UserError(f"{file} is a link to a file outside its folder: refused; copy the file in instead")


SPECIAL_FILES = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def _refuse_special_files(path: Path) -> None:
    """Opening a named pipe waits for a writer that may never come: the whole import would hang on one folder.
    Everything in the folder, and the prompt.txt / seed.txt one level up that it would read, is a regular file
    or a folder (links inside the folder are followed: `stat` never opens the file)."""
    above = [path.parent / name for name in ("prompt.txt", "seed.txt") if not os.path.lexists(path / name)]
    for file in [*path.iterdir(), *(file for file in above if os.path.lexists(file))]:
        mode = file.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = SPECIAL_FILES.get(stat.S_IFMT(mode), "not a file")
            raise UserError(f"{file} is not a regular file ({kind}): refused; put the file itself there")


def max_image_pixels() -> int:
    text = os.environ.get(MAX_PIXELS_VARIABLE) or str(DEFAULT_MAX_PIXELS)
    if not text.isdigit() or int(text) == 0:
        raise UserError(f"{MAX_PIXELS_VARIABLE}={text!r}: give the largest width x height to import, e.g. 16777216")
    return int(text)


def _require_image_size(file: Path) -> None:
    """Read the size from the header, before anything decodes the pixels."""
    try:
        with PIL.Image.open(file) as image:
            width, height = image.size
    except PIL.Image.DecompressionBombError:
        raise UserError(f"{file} claims so many pixels that it looks like a decompression bomb: refused") from None
    except (OSError, ValueError):
        raise UserError(f"{file} is not a readable image; remove or replace it and import again") from None
    if width * height > max_image_pixels():
        raise UserError(
            f"{file} is {width} x {height} pixels, more than the {max_image_pixels()} allowed "
            f"(${MAX_PIXELS_VARIABLE}): refused"
        )


def _is_own_layout(path: Path) -> bool:
    """daam-store writes metadata.json beside a tensors-only generation.pt; the original package does not."""
    return (path / "generation.pt").is_file() and (path / "metadata.json").is_file()


def model_from_metadata(metadata: dict, name: str | None = None) -> ModelInfo:
    """The model recorded in an experiment's metadata (as `export` writes it), or an 'unknown' one."""
    info = metadata.get("model_info")
    if isinstance(info, dict):
        try:
            model = ModelInfo(**{k: info[k] for k in ModelInfo.__dataclass_fields__})
        except KeyError:
            model = None
        if model is not None:
            return model if name is None else replace(model, name=name)
    recorded = metadata.get("model") if isinstance(metadata.get("model"), str) else None
    if name or recorded:
        return ModelInfo(name or recorded, "imported", "", "unknown", "unknown", 0, "unknown")
    return UNKNOWN_MODEL


def prepare_original(path: Path, model: ModelInfo, author: str | None, tags: Iterable[str]) -> PreparedGeneration:
    """Rows for a directory in the original daam layout (no numeric maps: see the module docstring).

    Every pipeline the original traces (SD 1.x, 2.x, XL) splits prompts with CLIP's BPE, so the bundled CLIP
    tokenizer splits its prompts as its pipeline did.
    """
    from daam_store.heatmap import split_words
    from daam_store.models import load_clip_tokenizer

    prompt = _read_text(path, "prompt.txt").strip()
    if not prompt:
        raise UserError(f"{path}: prompt.txt is missing or empty, so the generation cannot be imported")
    seed = _parse_seed(_read_text(path, "seed.txt"), path)
    image = image_from_png((path / "output.png").read_bytes())
    overlays = {p.name: p.read_bytes() for p in sorted(path.glob(f"*{OVERLAY_SUFFIX}"))}
    for name, data in overlays.items():
        _require_image_size(path / name)
        _require_png(data, path / name)
    words, _cut = split_words(load_clip_tokenizer(), prompt)
    digest = hashlib.sha256(f"original-daam\0{prompt}\0{seed}".encode())
    digest.update(image.tobytes())
    for name, data in overlays.items():
        digest.update(name.encode() + data)
    return PreparedGeneration(
        model=model,
        prompt=prompt,
        seed=seed,
        metadata={"imported_from": str(path.resolve()), "layout": "original-daam"},
        image_png=png_bytes(image),
        image_size=image.size,
        words=[
            PreparedWord(w.index, w.text, list(w.token_indices), list(w.token_ids), w.is_punctuation) for w in words
        ],
        stacks=[],
        fingerprint=digest.hexdigest(),
        author=author,
        tags=sorted(set(tags)),
        status=STATUS_OVERLAYS_ONLY,
        attachments=overlays,
    )


def _read_text(path: Path, name: str) -> str:
    """The file in the directory, or in its parent (the original daam keeps prompt/seed one level up)."""
    for folder in (path, path.parent):
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    return ""


def _parse_seed(text: str, path: Path) -> int | None:
    text = text.strip()
    if text in ("", "None"):
        return None
    try:
        seed = int(text)
    except ValueError:
        raise UserError(f"{path}: seed.txt holds {text[:40]!r}, not a whole number") from None
    if seed not in SEED_RANGE:
        raise UserError(f"{path}: seed.txt holds {text[:40]!r}, outside the 64-bit range of seeds")
    return seed


def _require_png(data: bytes, path: Path) -> None:
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:  # PIL raises many types for damaged files
        raise UserError(f"{path} is not a readable PNG; remove or replace it and import again") from None


def export_generation(store: Store, generation_id: int, directory: Path) -> tuple[Path, bool]:
    """Write one generation as an experiment directory; (its path, whether it has numeric maps)."""
    target = directory / f"generation-{generation_id}"
    with store.session() as session:
        generation = load_generation(session, generation_id)
        if any(stack.kind == "tokens" for stack in generation.map_stacks):
            exp = experiment_from_row(generation)
            exp.save(target)
            return target, True
        target.mkdir(parents=True, exist_ok=True)
        image_from_png(generation.image.png).save(target / "output.png")
        (target / "prompt.txt").write_text(generation.prompt.text, encoding="utf-8")
        (target / "seed.txt").write_text("" if generation.seed is None else str(generation.seed), encoding="utf-8")
        for attachment in generation.attachments:
            (target / Path(attachment.name).name).write_bytes(attachment.data)
        return target, False
