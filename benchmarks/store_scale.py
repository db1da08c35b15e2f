"""The store at scale: fill SQLite and PostgreSQL with synthetic generations, time what the charts need.

    python benchmarks/store_scale.py                      # 10,000 generations, SQLite and PostgreSQL
    python benchmarks/store_scale.py --generations 500 --backends sqlite        # a quick look

Synthetic world: prompts "a <colour> <animal> <verb> next to a <object>" (8 words), 20 seeds each,
two models (SD1 and SD2), 64x64 maps per token (smooth blobs plus noise, as traces give) and a 32x32
image (the built-in models' size). PostgreSQL is a throwaway server started here, with fsync on, unless
--postgres-url names one.

What is timed, in this order, for each backend:
1. save(): the first --end-to-end generations through `store.save(exp)`, everything included
   (words, statistics, encoding, PNG, the transaction);
2. inserts: the rest through `store.save_prepared()` with rows prepared once per prompt variant and
   given their own seed, model and shares (encoding is what (1) adds on top; its rate is printed too);
3. bytes per generation: the database size over the number of generations;
4. the comparison-chart queries (queries.share_by_prompt / share_by_seed / share_by_model), each
   --repeats times on random words, prompts and models, fresh session each time: p50 / p95 in ms;
5. decoding 1000 word maps: fetched in one query, decoded one by one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from daam_store.models import load_clip_tokenizer  # noqa: E402
from daam_store.models.info import ModelInfo  # noqa: E402
from daam_store.store import codec, open_store, queries  # noqa: E402
from daam_store.store.schema import HeatMap  # noqa: E402
from daam_store.store.testing import PostgresServer, synthetic_experiment  # noqa: E402
from daam_store.store.writer import prepare_experiment  # noqa: E402

COLOURS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown"]
ANIMALS = ["cat", "dog", "horse", "bird", "rabbit", "fox", "bear", "sheep", "cow", "owl", "frog", "deer"]
VERBS = ["sitting", "sleeping", "standing", "running", "eating", "playing"]
OBJECTS = ["lamp", "chair", "tree", "car", "table", "window", "door", "boat", "fence", "bench"]
MODELS = [
    ModelInfo("sd1-tiny", "builtin", "", "SD1", "bench-sd1", 32, "epsilon"),
    ModelInfo("sd2-tiny", "builtin", "", "SD2", "bench-sd2", 32, "v_prediction"),
]
SEEDS_PER_PROMPT = 20


def make_prompts(count: int, rng: random.Random) -> list[str]:
    combos = [(c, a, v, o) for c in COLOURS for a in ANIMALS for v in VERBS for o in OBJECTS]
    return [f"a {c} {a} {v} next to a {o}" for c, a, v, o in rng.sample(combos, count)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def with_new_identity(prepared, seed: int, model: ModelInfo, rng: np.random.Generator):
    """A copy of prepared rows standing for another seed and model: own fingerprint, own shares."""
    mapped = [w for w in prepared.words if w.statistics is not None]
    shares = rng.dirichlet(np.ones(len(mapped)) * 4)
    share_of = {id(w): float(s) for w, s in zip(mapped, shares, strict=True)}
    words = [
        w
        if w.statistics is None
        else dataclasses.replace(w, statistics=dataclasses.replace(w.statistics, share=share_of[id(w)]))
        for w in prepared.words
    ]
    return dataclasses.replace(
        prepared, seed=seed, model=model, words=words, fingerprint=uuid.uuid4().hex + uuid.uuid4().hex
    )


def fill(store, plan, tokenizer, end_to_end: int, rng: np.random.Generator) -> dict:
    """Save every (prompt, seed, model) of the plan; time save() and the prepared inserts."""
    pool: dict[str, object] = {}
    save_times, prepare_times, insert_times = [], [], []
    for index, (prompt, seed, model) in enumerate(plan):
        if index < end_to_end:
            exp = synthetic_experiment(tokenizer, prompt, seed=seed, size=64, image_size=32)
            started = time.perf_counter()
            store.save(exp, model=model, tags=("bench",))
            save_times.append(time.perf_counter() - started)
            continue
        if prompt not in pool:
            exp = synthetic_experiment(tokenizer, prompt, seed=seed, size=64, image_size=32)
            started = time.perf_counter()
            pool[prompt] = prepare_experiment(exp, model, tags=("bench",))
            prepare_times.append(time.perf_counter() - started)
        prepared = with_new_identity(pool[prompt], seed, model, rng)
        started = time.perf_counter()
        store.save_prepared(prepared)
        insert_times.append(time.perf_counter() - started)
    return {"save": save_times, "prepare": prepare_times, "insert": insert_times}


def database_bytes(store) -> int:
    with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return Path(store.engine.url.database).stat().st_size
        return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar())


def time_queries(store, repeats: int, rng: random.Random) -> dict[str, list[float]]:
    with store.session() as session:
        prompts = queries.list_prompts(session)
        models = queries.list_models(session)
    timings: dict[str, list[float]] = {
        "across prompts": [],
        "across seeds": [],
        "across models": [],
        "explore page": [],
    }
    for _ in range(repeats):
        prompt = rng.choice(prompts)
        word = rng.choice(prompt.text.split()[1:4])  # colour, animal or verb of that prompt
        model = rng.choice(models)
        checks = {
            "across prompts": lambda s, w=word: queries.share_by_prompt(s, w),
            "across seeds": lambda s, w=word, p=prompt, m=model: queries.share_by_seed(s, w, p.id, m.id),
            "across models": lambda s, w=word, p=prompt: queries.share_by_model(
                s, w, queries.GenerationFilter(prompt_ids=[p.id])
            ),
            "explore page": lambda s, w=word: (
                queries.count_generations(s, queries.GenerationFilter(word=w)),
                queries.list_generations(s, queries.GenerationFilter(word=w), limit=24, offset=48),
            ),
        }
        for name, run in checks.items():
            started = time.perf_counter()
            with store.session() as session:
                result = run(session)
            timings[name].append(time.perf_counter() - started)
            if not result:
                raise SystemExit(f"{name} returned nothing for {word!r}: the benchmark data is wrong")
    started = time.perf_counter()
    with store.session() as session:
        queries.share_by_prompt(session, "a")  # the worst case: a word in every generation
    timings["across prompts, word 'a' (all rows)"] = [time.perf_counter() - started]
    return timings


def time_decoding(store, count: int = 1000) -> tuple[float, float, list[int]]:
    started = time.perf_counter()
    with store.session() as session:
        rows = session.execute(select(HeatMap.blob, HeatMap.codec, HeatMap.codec_version).limit(count)).all()
    fetched = time.perf_counter() - started
    started = time.perf_counter()
    for blob, name, version in rows:
        codec.decode(blob, name, version)
    decoded = time.perf_counter() - started
    return fetched, decoded, [len(blob) for blob, _, _ in rows]


def codec_figures(rng: np.random.Generator, count: int = 200) -> list[str]:
    """Bytes per 64x64 word map and the largest error, next to the lossless alternatives."""
    import zlib

    from daam_store.store.testing import smooth_maps

    maps = list(smooth_maps(rng, count, 64))
    noise = [rng.random((64, 64), dtype=np.float32) for _ in range(20)]
    lines = []
    for label, group in (("smooth maps", maps), ("white noise (worst case)", noise)):
        sizes = [len(codec.encode(m).blob) for m in group]
        errors = [np.abs(codec.decode(codec.encode(m).blob) - m).max() / np.abs(m).max() for m in group]
        f32 = [len(zlib.compress(m.tobytes(), 9)) for m in group]
        f16 = [len(zlib.compress(m.astype(np.float16).tobytes(), 9)) for m in group]
        lines.append(
            f"  {label:26s} q8z median {np.median(sizes):6.0f} B, max {max(sizes):5d} B, max error "
            f"{100 * max(errors):.3f} % of peak | float32+zlib {np.median(f32):6.0f} B | float16+zlib "
            f"{np.median(f16):6.0f} B"
        )
    return lines


def run_backend(name: str, url: str, plan, tokenizer, args) -> None:
    store = open_store(url)
    empty = database_bytes(store)
    started = time.perf_counter()
    times = fill(store, plan, tokenizer, args.end_to_end, np.random.default_rng(1))
    elapsed = time.perf_counter() - started
    size = database_bytes(store) - empty
    query_times = time_queries(store, args.repeats, random.Random(2))
    fetched, decoded, blob_sizes = time_decoding(store)
    with store.session() as session:
        summary = queries.store_summary(session)
    store.close()

    n = len(plan)
    print(f"\n== {name}: {summary.generations} generations, {summary.heat_maps} word maps, filled in {elapsed:.0f} s")
    save, prepare, insert = times["save"], times["prepare"], times["insert"]
    if save:
        rate, median = len(save) / sum(save), 1e3 * np.median(save)
        print(f"  save() end to end      {rate:7.1f} generations/s (median {median:.1f} ms)")
    if prepare:
        print(f"  prepare (stats+codec)  {len(prepare) / sum(prepare):7.1f} generations/s ({len(prepare)} timed)")
    if insert:
        rate, median = len(insert) / sum(insert), 1e3 * np.median(insert)
        print(f"  insert prepared rows   {rate:7.1f} generations/s (median {median:.1f} ms)")
    print(f"  database bytes         {size / n:7.0f} per generation ({size / 2**20:.0f} MiB in all)")
    print(f"  stored word-map blob   median {np.median(blob_sizes):.0f} B (64x64)")
    for label, values in query_times.items():
        if len(values) == 1:
            print(f"  query {label:34s} {1e3 * values[0]:7.1f} ms (once)")
        else:
            p50, p95 = 1e3 * percentile(values, 50), 1e3 * percentile(values, 95)
            print(f"  query {label:34s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({len(values)} runs)")
    print(f"  {len(blob_sizes)} word maps{'':9s}fetch {1e3 * fetched:.0f} ms, decode {1e3 * decoded:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=None, help="an existing (empty) database; default: start one")
    parser.add_argument("--end-to-end", type=int, default=200, help="generations saved through save() per backend")
    parser.add_argument("--repeats", type=int, default=50, help="runs of each chart query")
    args = parser.parse_args()

    tokenizer = load_clip_tokenizer()
    per_prompt = SEEDS_PER_PROMPT * len(MODELS)
    prompts = make_prompts(max(1, args.generations // per_prompt), random.Random(0))
    plan = [(p, s, m) for p in prompts for m in MODELS for s in range(SEEDS_PER_PROMPT)][: args.generations]
    random.Random(3).shuffle(plan)  # generations arrive in no particular order, as from several users
    print(f"{len(plan)} generations: {len(prompts)} prompts x {SEEDS_PER_PROMPT} seeds x {len(MODELS)} models")
    print("codec q8z v1 on 64x64 word maps:")
    for line in codec_figures(np.random.default_rng(0)):
        print(line)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with tempfile.TemporaryDirectory(prefix="daam-bench-") as scratch:
        if "sqlite" in backends:
            run_backend("SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{scratch}/bench.db", plan, tokenizer, args)
        if "postgresql" in backends:
            if args.postgres_url:
                run_backend("PostgreSQL", args.postgres_url, plan, tokenizer, args)
            else:
                server = PostgresServer.start(durable=True)
                try:
                    url = server.create_database("bench")
                    run_backend("PostgreSQL (local server, fsync on)", url, plan, tokenizer, args)
                finally:
                    server.stop()


if __name__ == "__main__":
    main()
