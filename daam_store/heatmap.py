"""Heat maps of a whole prompt (`GlobalHeatMap`) and of one word (`WordHeatMap`).

A *word* is what CLIP's tokenizer treats as one: a run of BPE tokens ending in a `</w>` token, so
"photorealistic" (two tokens) is one word and "dog," is two ("dog" and the punctuation ","). A word's map
is the mean of its tokens' maps, as in the original DAAM. Matching is case-insensitive because CLIP
lower-cases its input.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import PIL.Image
import regex
import torch
import torch.nn.functional as F

from daam_store.errors import UserError
from daam_store.wording import plural, some_of

MAX_PROMPT_TOKENS = 75  # CLIP's 77 positions minus <|startoftext|> and <|endoftext|>

# Perceptual colour maps (lightness rises evenly with the value) that people may pick for overlays. The
# default is 'inferno': it runs black -> purple -> orange -> pale yellow, so heat reads as brightness, and
# its two ends (black where the word is absent, pale yellow at its peak) are neither the saturated red and
# blue nor the mid grey that the images (the built-in world's shapes on grey) are made of. 'jet', the
# original's map, is itself blue-to-red: on such images heat could not be told from the picture.
COLORMAPS = ("inferno", "magma", "viridis", "cividis", "plasma")
DEFAULT_COLORMAP = COLORMAPS[0]


class UnknownWordError(UserError):
    """The word is not in the prompt (or was cut by the 77-token limit)."""


@dataclass(frozen=True)
class WordSpan:
    index: int  # position among the prompt's words; what `word_idx` refers to
    text: str
    token_indices: tuple[int, ...]  # rows of GlobalHeatMap.heat_maps (row 0 is <|startoftext|>)
    token_ids: tuple[int, ...]
    is_punctuation: bool


@dataclass(frozen=True)
class PromptTokens:
    """How the pipeline's own tokenizer split a prompt, made once at trace time and kept with the maps.

    `tokens` are the rows of the token maps (start token, the kept prompt tokens, end token); `words` group
    them; `cut_words` lost their maps to the token limit. Readers of stored maps use this, never a tokenizer.
    """

    tokens: tuple[str, ...]
    words: tuple[WordSpan, ...]
    cut_words: tuple[str, ...] = ()

    @classmethod
    def from_tokenizer(cls, tokenizer, prompt: str) -> PromptTokens:
        tokens = tokenizer.tokenize(prompt)
        words: list[WordSpan] = []
        cut: list[str] = []
        start = 0
        for end, token in enumerate(tokens, start=1):
            if not token.endswith("</w>") and end < len(tokens):
                continue
            ids = tokenizer.convert_tokens_to_ids(tokens[start:end])
            text = tokenizer.decode(ids).strip()
            if end > MAX_PROMPT_TOKENS:
                cut.append(text)
            else:
                punctuation = not any(ch.isalnum() for ch in text)
                words.append(WordSpan(len(words), text, tuple(range(start + 1, end + 1)), tuple(ids), punctuation))
            start = end
        kept = (tokenizer.bos_token, *tokens[:MAX_PROMPT_TOKENS], tokenizer.eos_token)
        return cls(tuple(kept), tuple(words), tuple(cut))

    def unmapped_note(self) -> str | None:
        """What of the prompt has no map, in one line: symbols and emoji (DAAM maps words only) and the words
        the 77-token limit cut. None when every word has its map."""
        symbols = [span.text for span in self.words if span.is_punctuation]
        parts = []
        if symbols:
            parts.append(f"symbols and emoji get no map: {some_of(dict.fromkeys(symbols))}")
        if self.cut_words:
            cut = some_of(self.cut_words)
            parts.append(f"{plural(len(self.cut_words), 'word')} cut by CLIP's 77-token limit: {cut}")
        note = "; ".join(parts)
        return note[:1].upper() + note[1:] if parts else None  # (str.capitalize would lower-case "CLIP")

    def to_json(self) -> dict:
        return {
            "tokens": list(self.tokens),
            "words": [
                {
                    "index": w.index,
                    "text": w.text,
                    "token_indices": list(w.token_indices),
                    "token_ids": list(w.token_ids),
                    "is_punctuation": w.is_punctuation,
                }
                for w in self.words
            ],
            "cut_words": list(self.cut_words),
        }

    @classmethod
    def from_json(cls, data: dict) -> PromptTokens:
        try:
            words = tuple(
                WordSpan(
                    int(w["index"]),
                    str(w["text"]),
                    tuple(int(i) for i in w["token_indices"]),
                    tuple(int(i) for i in w["token_ids"]),
                    bool(w["is_punctuation"]),
                )
                for w in data["words"]
            )
            return cls(tuple(str(t) for t in data["tokens"]), words, tuple(str(c) for c in data.get("cut_words", ())))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"the stored token list is malformed ({type(error).__name__}: {error})") from None


def split_words(tokenizer, prompt: str) -> tuple[list[WordSpan], list[str]]:
    """The prompt's words with their token rows, and the words cut by the token limit."""
    tokens = PromptTokens.from_tokenizer(tokenizer, prompt)
    return list(tokens.words), list(tokens.cut_words)


# CLIP's pre-tokenizer: every piece it cuts a prompt into becomes one word (the BPE tokens of one piece end in
# `</w>`). Used to split a query the way the prompt was split, without the tokenizer: English contractions,
# runs of letters, one number character, or a run of other symbols (Unicode classes, hence `regex`).
_WORD_PIECES = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+", regex.IGNORECASE)


def query_words(text: str) -> list[str]:
    """The words of a query as the prompt's tokenizer would have cut them: NFC (as ftfy leaves text), lower case."""
    return _WORD_PIECES.findall(" ".join(unicodedata.normalize("NFC", text).lower().split()))


def cut_message(prompt_tokens: int, cut: list[str] | tuple[str, ...]) -> str:
    return (
        f"prompt has {prompt_tokens} tokens but CLIP keeps {MAX_PROMPT_TOKENS}; "
        f"these words were cut and have no heat map: {some_of(cut)}"
    )


class WordHeatMap:
    def __init__(self, heat_map: torch.Tensor, word: str | None = None, word_idx: int | None = None):
        self.heatmap = heat_map
        self.word = word
        self.word_idx = word_idx

    @property
    def value(self) -> torch.Tensor:
        return self.heatmap

    def expand_as(self, image, absolute: bool = False, threshold: float | None = None) -> torch.Tensor:
        """The map resized (bicubic) to the image; min-max normalised unless `absolute`; binary with `threshold`."""
        width, height = _image_size(image)
        expanded = F.interpolate(self.heatmap[None, None].float(), size=(height, width), mode="bicubic")[0, 0]
        if not absolute:
            expanded = (expanded - expanded.min()) / (expanded.max() - expanded.min() + 1e-8)
        if threshold is not None:
            expanded = (expanded > threshold).float()
        return expanded.cpu()

    def overlay_image(
        self, image: PIL.Image.Image, alpha: float = 0.5, absolute: bool = False, cmap: str = DEFAULT_COLORMAP
    ) -> PIL.Image.Image:
        """The image blended with the map in colour map `cmap` (no matplotlib figure needed)."""
        from matplotlib import colormaps

        heat = self.expand_as(image, absolute=absolute).clamp(0, 1).numpy()
        colours = colormaps[cmap](heat)[..., :3]
        base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        blended = (1 - alpha) * base + alpha * colours
        return PIL.Image.fromarray((blended * 255).round().astype(np.uint8))

    def plot_overlay(
        self,
        image,
        ax=None,
        out_file: str | Path | None = None,
        color_normalize: bool = True,
        cmap: str = DEFAULT_COLORMAP,
        colorbar: bool = False,
        **expand,
    ):
        """Draw the map over the image with matplotlib, as the original DAAM does (title = the word);
        `colorbar` adds the colour scale beside it, its ends labelled with what they mean."""
        from matplotlib import pyplot as plt

        heat = self.expand_as(image, **expand)
        target = ax if ax is not None else plt.figure().gca()
        if color_normalize:
            drawn = target.imshow(heat.numpy(), cmap=cmap)
        else:
            drawn = target.imshow(heat.clamp(0, 1).numpy(), cmap=cmap, vmin=0.0, vmax=1.0)
        rgb = torch.from_numpy(np.array(image.convert("RGB"))).float() / 255
        target.imshow(torch.cat((rgb, 1 - heat.clamp(0, 1).unsqueeze(-1)), dim=-1).numpy())
        target.set_axis_off()
        if colorbar:
            self._colorbar(target, drawn, absolute=expand.get("absolute", False))
        if self.word is not None:
            target.set_title(self.word)
        if out_file is not None:
            target.figure.savefig(out_file, bbox_inches="tight")
            if ax is None:
                plt.close(target.figure)
        return target

    def _colorbar(self, ax, drawn, absolute: bool) -> None:
        """The colour scale, its ends labelled with what they stand for: the drawn limits themselves for an
        absolute map, the word's own lowest value and peak for a min-max scaled one."""
        low, high = drawn.get_clim()
        bar = ax.figure.colorbar(drawn, ax=ax, fraction=0.046, pad=0.04, ticks=[low, high])
        if absolute:
            bar.ax.set_yticklabels([f"{low:.3g}", f"{high:.3g}"])
        else:
            lowest, peak = float(self.heatmap.min()), float(self.heatmap.max())
            bar.ax.set_yticklabels([f"{lowest:.3g} (lowest)", f"{peak:.3g} (peak)"])
        bar.set_label("absolute value" if absolute else "scaled to this word's range")

    def save_overlay(
        self, image: PIL.Image.Image, out_file: str | Path | IO[bytes], cmap: str = DEFAULT_COLORMAP
    ) -> None:
        """The overlay with its colour scale beside it, as a PNG (the CLI's `<word>.heat_map.png`)."""
        from matplotlib.figure import Figure

        # A Figure, not pyplot: no global state, so saving works from any thread (the dashboard's). The map
        # keeps the image's resolution (at least 256 px, so a tiny image stays readable); the scale adds to it.
        side = max(256, *image.size) / 100
        figure = Figure(figsize=(side * 1.6, side * 1.15), dpi=100)
        self.plot_overlay(image, ax=figure.gca(), cmap=cmap, colorbar=True)
        figure.savefig(out_file, format="png", bbox_inches="tight")


class GlobalHeatMap:
    """Maps of every token of a prompt: `heat_maps` is (tokens, h, w), row 0 = <|startoftext|>.

    The words come from `prompt_tokens` (made at trace time by the pipeline's tokenizer) or, when only a
    tokenizer is given as in the original package, from splitting `prompt` with it.
    """

    def __init__(self, tokenizer, prompt: str, heat_maps: torch.Tensor, prompt_tokens: PromptTokens | None = None):
        if prompt_tokens is None:
            if tokenizer is None:
                raise ValueError("GlobalHeatMap needs the prompt's tokens or the tokenizer that splits it")
            prompt_tokens = PromptTokens.from_tokenizer(tokenizer, prompt)
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.heat_maps = heat_maps
        self.prompt_tokens = prompt_tokens

    @property
    def tokens(self) -> list[str]:
        return list(self.prompt_tokens.tokens)

    @property
    def cut_words(self) -> list[str]:
        return list(self.prompt_tokens.cut_words)

    def words(self, include_punctuation: bool = False) -> list[WordSpan]:
        return [w for w in self.prompt_tokens.words if include_punctuation or not w.is_punctuation]

    def word_heat_maps(self) -> list[tuple[WordSpan, torch.Tensor]]:
        return [(span, self.heat_maps[list(span.token_indices)].mean(0)) for span in self.words()]

    def compute_word_heat_map(self, word: str, word_idx: int | None = None) -> WordHeatMap:
        """The map of `word` (several words allowed: "hot dog"); all its occurrences averaged unless `word_idx`."""
        length = len(query_words(word))
        starts = self._occurrences(word)
        if word_idx is not None:
            if word_idx not in starts:
                raise UnknownWordError(
                    f"word {word!r} is not at word_idx {word_idx}; it occurs at {starts or 'no index'} "
                    f"of the words {self._listing()}"
                )
            starts = [word_idx]
        spans = self.prompt_tokens.words
        rows = [i for s in starts for span in spans[s : s + length] for i in span.token_indices]
        return WordHeatMap(self.heat_maps[rows].mean(0), word, word_idx)

    def _occurrences(self, word: str) -> list[int]:
        query = query_words(word)
        prompt = [span.text.lower() for span in self.prompt_tokens.words]
        starts = [i for i in range(len(prompt) - len(query) + 1) if query and prompt[i : i + len(query)] == query]
        if starts:
            return starts
        if any(" ".join(query) == " ".join(query_words(cut)) for cut in self.cut_words):
            raise UnknownWordError(f"word {word!r} was cut by CLIP's 77-token limit and has no heat map")
        raise UnknownWordError(f"word {word!r} is not in the prompt; its words are: {self._listing()}")

    def _listing(self) -> str:
        return ", ".join(span.text for span in self.words())


def _image_size(image) -> tuple[int, int]:
    """(width, height) of a PIL image, an (H, W[, C]) array or tensor."""
    if isinstance(image, PIL.Image.Image):
        return image.size
    height, width = image.shape[:2]
    return width, height
