"""The numbers behind the dashboard's Compare page, as pandas tables (each one is also the page's CSV).

Charts over many generations read the statistics stored beside each map (no blob is decoded) and are
aggregated in SQL; only the views that need the maps themselves (stability, agreement, overlap, map
grids, per-step curves) decode them, and those cap how many generations they read (`max_*`), so a
store of 10,000 generations stays responsive. The page calls these functions and draws the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import PIL.Image

from daam_store.analysis.agreement import agreement, mean_agreement
from daam_store.analysis.edits import align_words, compare_edit
from daam_store.analysis.overlap import DEFAULT_TAU, mean_overlap_by_word, overlap_matrix
from daam_store.analysis.stability import mean_defined, stability
from daam_store.analysis.statistics import attribution_shares, total_attribution
from daam_store.store import queries
from daam_store.store.reader import image_from_png
from daam_store.sweep import TAG_PREFIX

MAX_MAPS = 64  # generations whose maps one view decodes at most (per group where it groups)


@dataclass(frozen=True)
class Selection:
    """Which generations the page compares: a tag (a sweep), models, prompts and seeds; empty = all. Maps made
    by different aggregation rules (rules.py) are never mixed: `heat_map_rule` picks one (None = any)."""

    tag: str | None = None
    model_ids: tuple[int, ...] = ()
    prompt_ids: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()
    heat_map_rule: str | None = None

    def filters(self) -> queries.GenerationFilter:
        return queries.GenerationFilter(
            tag=self.tag or None,
            model_ids=list(self.model_ids) or None,
            prompt_ids=list(self.prompt_ids) or None,
            seeds=list(self.seeds) or None,
            heat_map_rule=self.heat_map_rule,
        )

    def narrowed(self, **fields) -> Selection:
        return replace(self, **fields)


@dataclass(frozen=True)
class CompareOptions:
    """What the filter controls offer, within the chosen tag."""

    tags: list[str]  # sweeps ("sweep:<name>") first, then the other tags
    models: dict[int, str]  # model id -> label (name, plus revision when a name has several)
    prompts: dict[int, str]  # prompt id -> text, most generations first
    words: list[str]  # lower-case, most frequent first
    seeds: list[int]
    rules: list[str]  # aggregation rules of the maps, the most used first


def compare_options(store, tag: str | None = None) -> CompareOptions:
    filters = Selection(tag=tag).filters()
    with store.session() as session:
        tags = [name for name, _count in queries.list_tags(session)]
        models = [model for model in queries.list_models(session) if model.generations]
        prompts = {p.id: p.text for p in queries.list_prompts(session, filters)}
        words = [word for word, _count in queries.list_words(session, filters)]
        seeds = queries.list_seeds(session, filters)
        heat_map_rules = queries.list_heat_map_rules(session, filters)
    names = [model.name for model in models]
    return CompareOptions(
        tags=sorted(tags, key=lambda name: (not name.startswith(TAG_PREFIX), name)),
        # The same name with other weights is another model: the revision tells them apart.
        models={m.id: f"{m.name} ({m.revision[:8]})" if names.count(m.name) > 1 else m.name for m in models},
        prompts=prompts,
        words=words,
        seeds=seeds,
        rules=heat_map_rules,
    )


def store_version(store) -> tuple:
    """Changes whenever generations or tags are added: the page's cache key, so new rows show at once."""
    with store.session() as session:
        return queries.count_generations(session), tuple(queries.list_tags(session))


def generation_choices(store, selection: Selection, limit: int = 200) -> dict[int, str]:
    """The newest `limit` generations of the selection: id -> "#id · prompt · model · seed N"."""
    with store.session() as session:
        rows = queries.list_generations(session, selection.filters(), limit=limit)
    return {r.id: f"#{r.id} · {r.prompt} · {r.model} · seed {r.seed}" for r in rows}


# -- across prompts ----------------------------------------------------------------------------------
def word_share_per_generation(store, selection: Selection, word: str) -> pd.DataFrame:
    """One row per generation: the word's share (repeated occurrences summed), with prompt, model, seed."""
    with store.session() as session:
        rows = queries.word_shares(session, word, selection.filters())
    return pd.DataFrame(
        [
            {
                "generation_id": r.generation_id,
                "prompt_id": r.prompt_id,
                "prompt": r.prompt,
                "model_id": r.model_id,
                "model": r.model,
                "family": r.family,
                "seed": r.seed,
                "word": word.strip().lower(),
                "share": r.share,
            }
            for r in rows
        ],
        columns=["generation_id", "prompt_id", "prompt", "model_id", "model", "family", "seed", "word", "share"],
    )


def word_share_by_prompt(store, selection: Selection, word: str) -> pd.DataFrame:
    """One row per prompt: mean, spread and range of the word's share over its generations (in SQL)."""
    with store.session() as session:
        rows = queries.share_by_prompt(session, word, selection.filters())
    return pd.DataFrame(
        [
            {"prompt_id": r.group_id, "prompt": r.label, "generations": r.generations, "mean_share": r.mean,
             "std_share": r.std, "min_share": r.min, "max_share": r.max}
            for r in rows
        ],
        columns=["prompt_id", "prompt", "generations", "mean_share", "std_share", "min_share", "max_share"],
    )  # fmt: skip


def all_words_by_prompt(store, selection: Selection) -> pd.DataFrame:
    """One row per (prompt, model, word): the mean share of every word of the selected prompts (in SQL)."""
    with store.session() as session:
        rows = queries.word_share_means(session, selection.filters())
    return pd.DataFrame(
        [
            {"prompt_id": r.prompt_id, "prompt": r.prompt, "model_id": r.model_id, "model": r.model,
             "word": r.word, "position": r.position, "generations": r.generations, "mean_share": r.mean,
             "std_share": r.std}
            for r in rows
        ],
        columns=["prompt_id", "prompt", "model_id", "model", "word", "position", "generations", "mean_share",
                 "std_share"],
    )  # fmt: skip


def prompt_edit(
    store, selection: Selection, prompt_a: int, prompt_b: int, model_id: int, max_pairs: int = MAX_MAPS
) -> pd.DataFrame:
    """How attribution moves from prompt A to prompt B ("a dog" -> "a red dog") on one model: one row
    per word of either prompt (aligned by text), its mean share under each over the seeds both have,
    and for words in both, how alike their maps stay (IoU, correlation; same seed, same model)."""
    columns = ["word", "status", "position_a", "position_b", "pairs", "share_a", "share_b", "share_change",
               "iou", "correlation"]  # fmt: skip
    keys = _keys(store, selection.narrowed(prompt_ids=(prompt_a, prompt_b), model_ids=(model_id,)))
    first = keys.sort_values("generation_id").drop_duplicates(["prompt_id", "seed"])
    side_a = first[first["prompt_id"] == prompt_a][["seed", "generation_id"]]
    side_b = first[first["prompt_id"] == prompt_b][["seed", "generation_id"]]
    pairs = side_a.merge(side_b, on="seed", suffixes=("_a", "_b")).sort_values("seed").head(max_pairs)
    if pairs.empty or prompt_a == prompt_b:
        return pd.DataFrame(columns=columns)
    maps = _generation_maps(store, [*pairs["generation_id_a"], *pairs["generation_id_b"]])
    moves: dict[tuple, list] = {}
    for a, b in zip(pairs["generation_id_a"], pairs["generation_id_b"], strict=True):
        words_a, words_b = maps.get(a, []), maps.get(b, [])
        edit = compare_edit(
            [w.word for w in words_a], [_or_nan(w.share) for w in words_a],
            [w.word for w in words_b], [_or_nan(w.share) for w in words_b],
            [w.heat_map for w in words_a], [w.heat_map for w in words_b],
        )  # fmt: skip
        for move in edit.moves:
            moves.setdefault((move.word.lower(), move.status, move.index_a, move.index_b), []).append(move)
    rows = [
        {"word": word, "status": status, "position_a": index_a, "position_b": index_b, "pairs": len(found),
         "share_a": mean_defined([m.share_a for m in found]), "share_b": mean_defined([m.share_b for m in found]),
         "share_change": mean_defined([m.share_change for m in found]), "iou": mean_defined([m.iou for m in found]),
         "correlation": mean_defined([m.correlation for m in found])}
        for (word, status, index_a, index_b), found in moves.items()
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _keys(store, selection: Selection) -> pd.DataFrame:
    with store.session() as session:
        keys = queries.generation_keys(session, selection.filters())
    return pd.DataFrame(
        [(k.generation_id, k.prompt_id, k.prompt, k.model_id, k.seed) for k in keys],
        columns=["generation_id", "prompt_id", "prompt", "model_id", "seed"],
    )


# -- across seeds ------------------------------------------------------------------------------------
def seed_stability(store, selection: Selection, word: str, max_seeds: int = MAX_MAPS) -> pd.DataFrame:
    """One row per (prompt, model): how alike the word's maps are across seeds (mean pairwise
    correlation and tau-mask IoU), over at most `max_seeds` seeds each (the lowest)."""
    shares = word_share_per_generation(store, selection, word)
    if shares.empty:
        return _empty_stability()
    chosen = (
        shares.sort_values(["prompt_id", "model_id", "seed", "generation_id"])
        .drop_duplicates(["prompt_id", "model_id", "seed"])
        .groupby(["prompt_id", "model_id"], sort=False)
        .head(max_seeds)
    )
    maps = _word_maps(store, chosen["generation_id"].tolist(), word)
    rows = []
    for (prompt_id, model_id), group in chosen.groupby(["prompt_id", "model_id"], sort=False):
        group_maps = [maps[g] for g in group["generation_id"] if g in maps]
        result = stability(group_maps)
        rows.append(
            {"prompt_id": prompt_id, "prompt": group["prompt"].iloc[0], "model_id": model_id,
             "model": group["model"].iloc[0], "seeds": result.n_maps, "mean_share": group["share"].mean(),
             "mean_correlation": result.mean_correlation, "mean_iou": result.mean_iou}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=_empty_stability().columns)


def _empty_stability() -> pd.DataFrame:
    return pd.DataFrame(
        columns=["prompt_id", "prompt", "model_id", "model", "seeds", "mean_share", "mean_correlation", "mean_iou"]
    )


@dataclass(frozen=True)
class SeedMap:
    seed: int | None
    generation_id: int
    heat_map: np.ndarray = field(repr=False)
    image: PIL.Image.Image | None = field(default=None, repr=False)  # what the map is drawn over


def seed_maps(
    store, selection: Selection, word: str, prompt_id: int, model_id: int, max_seeds: int = MAX_MAPS
) -> list[SeedMap]:
    """The word's map for each seed of one prompt and model (lowest seeds first, at most `max_seeds`)."""
    narrowed = selection.narrowed(prompt_ids=(prompt_id,), model_ids=(model_id,))
    shares = word_share_per_generation(store, narrowed, word)
    chosen = shares.sort_values(["seed", "generation_id"]).drop_duplicates(["seed"]).head(max_seeds)
    maps = _word_maps(store, chosen["generation_id"].tolist(), word)
    images = _images(store, list(maps))
    return [
        SeedMap(seed=None if pd.isna(seed) else int(seed), generation_id=int(g), heat_map=maps[g], image=images[g])
        for g, seed in zip(chosen["generation_id"], chosen["seed"], strict=True)
        if g in maps
    ]


def _images(store, generation_ids: Sequence[int]) -> dict[int, PIL.Image.Image | None]:
    with store.session() as session:
        pngs = {g: queries.image_png(session, int(g)) for g in generation_ids}
    return {g: image_from_png(png) if png else None for g, png in pngs.items()}


def _word_maps(store, generation_ids: Sequence[int], word: str) -> dict[int, np.ndarray]:
    """The word's map in each generation; a word that occurs twice gets the mean of its maps, as
    `GlobalHeatMap.compute_word_heat_map` gives without `word_idx`."""
    with store.session() as session:
        found = queries.word_heat_maps(session, [int(g) for g in generation_ids], word)
    return {g: np.mean(np.stack(maps), axis=0) for g, maps in found.items()}


# -- across models -----------------------------------------------------------------------------------
def model_pairs(store, selection: Selection, model_a: int, model_b: int) -> pd.DataFrame:
    """(prompt, seed) pairs generated by both models, with the generation of each (the lowest id)."""
    frame = _keys(store, selection.narrowed(model_ids=(model_a, model_b)))
    frame = frame.sort_values("generation_id").drop_duplicates(["prompt_id", "model_id", "seed"])
    side_a = frame[frame["model_id"] == model_a].drop(columns="model_id")
    side_b = frame[frame["model_id"] == model_b].drop(columns=["model_id", "prompt"])
    pairs = side_a.merge(side_b, on=["prompt_id", "seed"], suffixes=("_a", "_b"))
    return pairs.sort_values(["prompt_id", "seed"]).reset_index(drop=True)[
        ["prompt_id", "prompt", "seed", "generation_id_a", "generation_id_b"]
    ]


def model_share_scatter(store, selection: Selection, model_a: int, model_b: int) -> pd.DataFrame:
    """One row per (prompt, seed, word) generated by both models: the word's share under A and under B."""
    pairs = model_pairs(store, selection, model_a, model_b)
    columns = ["prompt_id", "prompt", "seed", "word", "share_a", "share_b", "generation_id_a", "generation_id_b"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    narrowed = selection.narrowed(model_ids=(model_a, model_b))
    with store.session() as session:
        rows = queries.all_word_shares(session, narrowed.filters())
    shares = pd.DataFrame(
        [(r.generation_id, r.word, r.share) for r in rows], columns=["generation_id", "word", "share"]
    )
    merged = pairs.merge(shares.add_suffix("_a"), on="generation_id_a").merge(
        shares.add_suffix("_b"), left_on=["generation_id_b", "word_a"], right_on=["generation_id_b", "word_b"]
    )
    return merged.rename(columns={"word_a": "word"})[columns].reset_index(drop=True)


def model_share_means(store, selection: Selection, model_a: int, model_b: int) -> pd.DataFrame:
    """One row per (prompt, word): its mean share under A and under B over the seeds both models ran,
    and the A generation of the lowest such seed (what a click on the point opens)."""
    pairs = model_share_scatter(store, selection, model_a, model_b)
    columns = ["prompt_id", "prompt", "word", "pairs", "share_a", "share_b", "std_a", "std_b", "generation_id_a"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    grouped = pairs.sort_values("seed").groupby(["prompt_id", "prompt", "word"], sort=False)
    means = grouped.agg(
        pairs=("seed", "size"),
        share_a=("share_a", "mean"),
        share_b=("share_b", "mean"),
        std_a=("share_a", lambda values: values.std(ddof=0)),
        std_b=("share_b", lambda values: values.std(ddof=0)),
        generation_id_a=("generation_id_a", "first"),
    )
    return means.reset_index()[columns]


def model_agreement(
    store, selection: Selection, model_a: int, model_b: int, tau: float = DEFAULT_TAU, max_pairs: int = MAX_MAPS
) -> pd.DataFrame:
    """One row per (prompt, word): agreement of the two models' maps over the seeds both generated
    (at most `max_pairs` per prompt): correlation, tau-mask IoU, and the shares under each model."""
    pairs = model_pairs(store, selection, model_a, model_b).groupby("prompt_id", sort=False).head(max_pairs)
    columns = [
        "prompt_id", "prompt", "word", "position", "pairs", "correlation", "iou", "share_a", "share_b",
        "share_difference",
    ]  # fmt: skip
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    maps = _generation_maps(store, [*pairs["generation_id_a"], *pairs["generation_id_b"]])
    per_word: dict[tuple[int, str, int], list] = {}
    for prompt_id, a, b in zip(pairs["prompt_id"], pairs["generation_id_a"], pairs["generation_id_b"], strict=True):
        words_a, words_b = maps.get(a, []), maps.get(b, [])
        for i, j in align_words([w.word for w in words_a], [w.word for w in words_b]):
            if i is None or j is None:
                continue
            first, second = words_a[i], words_b[j]
            per_word.setdefault((prompt_id, first.word.lower(), first.position), []).append(
                agreement(first.heat_map, second.heat_map, _or_nan(first.share), _or_nan(second.share), tau)
            )
    prompts = dict(zip(pairs["prompt_id"], pairs["prompt"], strict=False))
    rows = []
    for (prompt_id, word, position), results in per_word.items():
        mean = mean_agreement(results)
        rows.append(
            {"prompt_id": prompt_id, "prompt": prompts[prompt_id], "word": word, "position": position,
             "pairs": len(results),
             "correlation": mean.correlation, "iou": mean.iou, "share_a": mean.share_a, "share_b": mean.share_b,
             "share_difference": mean.share_difference}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class GenerationMaps:
    generation_id: int
    image_png: bytes | None
    words: list  # StoredWordMap rows in prompt order

    @property
    def image(self) -> PIL.Image.Image | None:
        return image_from_png(self.image_png) if self.image_png else None


def generation_maps(store, generation_id: int) -> GenerationMaps:
    """A generation's image and every word map, for showing two models side by side."""
    with store.session() as session:
        png = queries.image_png(session, generation_id)
    return GenerationMaps(generation_id, png, _generation_maps(store, [generation_id]).get(generation_id, []))


def _generation_maps(store, generation_ids: Sequence[int]) -> dict[int, list]:
    with store.session() as session:
        return queries.generation_heat_maps(session, [int(g) for g in generation_ids])


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


# -- word x word overlap -----------------------------------------------------------------------------
def overlap_of_generation(store, generation_id: int, tau: float = DEFAULT_TAU) -> pd.DataFrame:
    """Word x word IoU of tau-masks in one generation (rows and columns: the words in prompt order)."""
    words = _generation_maps(store, [generation_id]).get(generation_id, [])
    labels = _unique_labels([w.word for w in words])
    matrix = overlap_matrix([w.heat_map for w in words], tau)
    return pd.DataFrame(matrix, index=labels, columns=labels)


def mean_overlap(
    store, selection: Selection, tau: float = DEFAULT_TAU, max_generations: int = MAX_MAPS
) -> pd.DataFrame:
    """Word x word IoU averaged over the selection's newest `max_generations` generations; words are
    matched by text, each cell averaged over the generations that have both words."""
    with store.session() as session:
        keys = queries.generation_keys(session, selection.filters(), limit=max_generations)
    maps = _generation_maps(store, [k.generation_id for k in keys])
    words, matrix = mean_overlap_by_word(
        [([w.word for w in words], overlap_matrix([w.heat_map for w in words], tau)) for words in maps.values()]
    )
    return pd.DataFrame(matrix, index=words, columns=words)


def _unique_labels(words: Sequence[str]) -> list[str]:
    """Axis labels must differ: a repeated word gets its position ("a", "dog", "a (3)")."""
    seen: set[str] = set()
    labels = []
    for position, word in enumerate(words):
        labels.append(word if word not in seen else f"{word} ({position})")
        seen.add(word)
    return labels


# -- per step ----------------------------------------------------------------------------------------
def generations_with_steps(store, selection: Selection, limit: int = 50) -> dict[int, str]:
    """The newest `limit` generations of the selection that have per-step maps: id -> label."""
    with store.session() as session:
        ids = queries.generations_with_maps(session, "steps", selection.filters(), limit=limit)
        rows = [queries.get_generation(session, generation_id) for generation_id in ids]
    return {r.id: f"#{r.id} · {r.prompt} · {r.model} · seed {r.seed}" for r in rows if r is not None}


def step_shares(store, generation_id: int) -> pd.DataFrame:
    """One row per (step, word): the word's share of the prompt's attribution at that denoising step,
    from the stored per-step maps (empty when the generation was traced without `save_steps`)."""
    columns = ["step", "word", "position", "share"]
    with store.session() as session:
        stack = queries.map_stack(session, generation_id, "steps")
        words = [w for w in queries.word_statistics(session, generation_id) if w.has_map]
    if stack is None or not words:
        return pd.DataFrame(columns=columns)
    _labels, steps = stack  # (steps, tokens, h, w)
    rows = []
    for step, token_maps in enumerate(steps):
        totals = [total_attribution(token_maps[list(w.token_indices)].mean(axis=0)) for w in words]
        for word, share in zip(words, attribution_shares(totals), strict=True):
            rows.append({"step": step + 1, "word": word.word, "position": word.word_idx, "share": share})
    return pd.DataFrame(rows, columns=columns)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_csv(frame: pd.DataFrame) -> bytes:
    """The table as the CSV download of the chart drawn from it (a matrix keeps its row labels).

    Prompts and words are user text: one starting like a formula would run when the file is opened in a
    spreadsheet, so such text cells, labels and headers get OWASP's leading quote. Numbers stay numbers.
    """
    safe = frame.map(_defused).rename(index=_defused, columns=_defused)
    # RFC 4180's CRLF rows: with "\n" alone a text cell holding a CR went out unquoted and split its row.
    return safe.to_csv(index=not isinstance(frame.index, pd.RangeIndex), lineterminator="\r\n").encode()


def _defused(cell):
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell
