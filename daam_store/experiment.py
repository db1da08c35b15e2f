"""`GenerationExperiment`: one traced generation on disk, in the original DAAM's directory layout.

    output.png              the generated image
    prompt.txt, seed.txt    the prompt and seed (seed.txt is empty when the seed is unknown)
    <word>.heat_map.png     one overlay per word of the prompt
    generation.pt           tensors and plain values only: `torch.load(path, weights_only=True)` reads it
    metadata.json           model, steps, guidance, scheduler, ... (human-readable copy of the metadata)
    tokens.json             the prompt's tokens and words as the pipeline's tokenizer split them

No pickle anywhere: generation.pt is a dict of tensors, strings and numbers; the metadata and tokens are JSON.
Folders written before tokens.json existed (all CLIP-tokenised SD 1/2) are read with the bundled CLIP tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image
import torch

from daam_store import rules
from daam_store.errors import UserError, first_line
from daam_store.heatmap import DEFAULT_COLORMAP, GlobalHeatMap, PromptTokens

FORMAT = "daam-store/1"
OVERLAY_SUFFIX = ".heat_map.png"  # `<word>.heat_map.png`, the original DAAM's overlay files


@dataclass
class GenerationExperiment:
    image: PIL.Image.Image
    global_heat_map: torch.Tensor  # (tokens, h, w), row 0 = <|startoftext|>
    prompt: str
    seed: int | None = None
    path: Path | None = None
    metadata: dict = field(default_factory=dict)
    layer_heat_maps: torch.Tensor | None = None  # (layers, tokens, h, w)
    layer_names: list[str] = field(default_factory=list)
    step_heat_maps: torch.Tensor | None = None  # (steps, tokens, h, w)
    prompt_tokens: PromptTokens | None = None  # None only for folders saved before tokens travelled

    def heat_map(self) -> GlobalHeatMap:
        if self.prompt_tokens is not None:
            return GlobalHeatMap(None, self.prompt, self.global_heat_map, self.prompt_tokens)
        from daam_store.models import load_clip_tokenizer

        return GlobalHeatMap(load_clip_tokenizer(), self.prompt, self.global_heat_map)

    def save(self, path: str | Path | None = None, heat_maps: bool = True) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise UserError("no directory given to save the experiment to")
        target.mkdir(parents=True, exist_ok=True)
        self._remove_other_prompts_overlays(target)
        self.image.save(target / "output.png")
        (target / "prompt.txt").write_text(self.prompt, encoding="utf-8")
        (target / "seed.txt").write_text("" if self.seed is None else str(self.seed), encoding="utf-8")
        (target / "metadata.json").write_text(json.dumps(self.metadata, indent=2, default=str), encoding="utf-8")
        tokens = self.heat_map().prompt_tokens
        (target / "tokens.json").write_text(json.dumps(tokens.to_json(), indent=1), encoding="utf-8")
        torch.save(self._tensors(), target / "generation.pt")
        if heat_maps:
            self.save_heat_maps(target)
        self.path = target
        return target

    def _remove_other_prompts_overlays(self, target: Path) -> None:
        """A folder holds one experiment: overlays of another prompt saved there before would pass for words
        of this one. Only in an experiment's folder (the CLI writes to "." by default) and only other words'."""
        if not (target / "generation.pt").is_file():
            return
        own = {heat_map_file_name(span.text) for span in self.heat_map().words()}
        for overlay in target.glob(f"*{OVERLAY_SUFFIX}"):
            if overlay.name not in own:
                overlay.unlink()

    def save_heat_maps(
        self, directory: Path, words: list[str] | None = None, cmap: str = DEFAULT_COLORMAP
    ) -> list[Path]:
        """One `<word>.heat_map.png` per word: the overlay with its colour scale beside it, as the original
        DAAM's matplotlib figures have, so the file says what its colours mean."""
        global_map = self.heat_map()
        chosen = words if words is not None else _unique(span.text for span in global_map.words())
        paths = []
        for word in chosen:
            out = directory / heat_map_file_name(word)
            global_map.compute_word_heat_map(word).save_overlay(self.image, out, cmap=cmap)
            paths.append(out)
        return paths

    def _tensors(self) -> dict:
        data = {
            "format": FORMAT,
            "prompt": self.prompt,
            "seed": -1 if self.seed is None else int(self.seed),
            "global_heat_map": self.global_heat_map.detach().cpu().float().contiguous(),
            "layer_names": list(self.layer_names),
        }
        if self.layer_heat_maps is not None:
            data["layer_heat_maps"] = self.layer_heat_maps.detach().cpu().float().contiguous()
        if self.step_heat_maps is not None:
            data["step_heat_maps"] = self.step_heat_maps.detach().cpu().float().contiguous()
        return data

    @classmethod
    def load(cls, path: str | Path) -> GenerationExperiment:
        directory = Path(path)
        if not (directory / "generation.pt").exists():
            raise UserError(f"{directory} is not an experiment directory (no generation.pt)")
        try:
            data = torch.load(directory / "generation.pt", weights_only=True, map_location="cpu")
        except Exception as error:  # torch's own message suggests weights_only=False: never here
            raise UserError(
                f"{directory / 'generation.pt'} does not load as a daam-store file ({type(error).__name__}): it is "
                "damaged, or a pickle such as the original daam package writes, which is never unpickled"
            ) from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f"{directory / 'generation.pt'} has an unknown format")
        metadata_file = directory / "metadata.json"
        metadata = _read_json(metadata_file) if metadata_file.exists() else {}
        tokens_file = directory / "tokens.json"
        prompt_tokens = PromptTokens.from_json(_read_json(tokens_file)) if tokens_file.exists() else None
        if prompt_tokens is None:  # written before tokens travelled, when maps averaged every layer
            metadata.setdefault("heat_map_rule", rules.DAAM_WITH_MID_BLOCK)
        rows = data["global_heat_map"].shape[0]
        if prompt_tokens is not None and len(prompt_tokens.tokens) != rows:
            raise UserError(f"{tokens_file} lists {len(prompt_tokens.tokens)} tokens but the maps have {rows} rows")
        with PIL.Image.open(directory / "output.png") as image:
            image.load()
            return cls(
                image=image.convert("RGB"),
                global_heat_map=data["global_heat_map"],
                prompt=data["prompt"],
                seed=None if data["seed"] < 0 else int(data["seed"]),
                path=directory,
                metadata=metadata,
                layer_heat_maps=data.get("layer_heat_maps"),
                layer_names=list(data.get("layer_names", [])),
                step_heat_maps=data.get("step_heat_maps"),
                prompt_tokens=prompt_tokens,
            )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not readable JSON: {first_line(error)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return data


def heat_map_file_name(word: str) -> str:
    """`<word>.heat_map.png` with a file-name-safe form of the word (lower case, as the original DAAM names them)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in word.lower())
    return f"{safe or '_'}{OVERLAY_SUFFIX}"


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
