"""`daam-store ls` (or `generations`): the stored generations, newest first, so their ids can be found."""

from __future__ import annotations

import argparse
import json

from daam_store.commands.common import add_db_option, check_limit, open_store, plural, stored_integer
from daam_store.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ls",
        aliases=["generations"],
        help="list stored generations (id, model, seed, prompt, tags), newest first",
        description="List stored generations, newest first; every filter narrows the list. "
        "The ids are what `daam-store export --generation` takes.",
    )
    parser.add_argument("--model", default=None, help="only this model (its name, e.g. sd1-tiny)")
    parser.add_argument("--prompt", default=None, help="only prompts containing this text (any case)")
    parser.add_argument("--word", default=None, help="only prompts with this word")
    parser.add_argument("--seed", type=stored_integer, nargs="+", default=None, metavar="SEED", help="only these seeds")
    parser.add_argument("--tag", default=None, help="only generations with this tag (e.g. sweep:order)")
    parser.add_argument("--author", default=None, help="only this author's generations")
    parser.add_argument("--limit", type=stored_integer, default=50, help="at most this many rows (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON array of rows instead of a table")
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from daam_store.store import queries

    check_limit(args.limit)
    with open_store(args.db) as store, store.session() as session:
        filters = queries.GenerationFilter(
            prompt_contains=args.prompt,
            word=args.word,
            model_ids=_model_ids(queries.list_models(session), args.model),
            seeds=args.seed,
            author=args.author,
            tag=args.tag,
        )
        rows = queries.list_generations(session, filters, limit=args.limit)
        total = queries.count_generations(session, filters)
    if args.json:
        print(json.dumps([_as_json(row) for row in rows], indent=2))
    else:
        _print_table(rows, total)
    return 0


def _model_ids(models, name: str | None) -> list[int] | None:
    if name is None:
        return None
    ids = [model.id for model in models if model.name == name]
    if not ids:
        known = ", ".join(sorted({model.name for model in models})) or "none yet"
        raise UserError(f"no stored model named {name!r}; stored models: {known}")
    return ids


def _as_json(row) -> dict:
    return {
        "id": row.id,
        "prompt": row.prompt,
        "model": row.model,
        "family": row.family,
        "seed": row.seed,
        "steps": row.steps,
        "guidance": row.guidance_scale,
        "width": row.width,
        "height": row.height,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "author": row.author,
        "status": row.status,
        "tags": list(row.tags),
    }


def _print_table(rows, total: int) -> None:
    for row in rows:
        created = row.created_at.strftime("%Y-%m-%d %H:%M") if row.created_at else "-"
        tags = f"  [{', '.join(row.tags)}]" if row.tags else ""
        print(f"{row.id:>6}  {created}  {row.model}  seed {row.seed}  {row.prompt!r}{tags}")
    shown = f"{len(rows)} of " if len(rows) < total else ""
    print(f"{shown}{plural(total, 'generation')}")
