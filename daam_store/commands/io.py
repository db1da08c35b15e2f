"""`daam-store import DIR...` and `daam-store export DIR [--generation ID ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daam_store.errors import UserError

URL_HELP = "database URL (default: $DAAM_STORE_URL or the local SQLite file)"


def register(subparsers) -> None:
    importer = subparsers.add_parser(
        "import",
        help="store experiment directories (daam-store's or the original daam package's layout)",
        description="Each DIR is an experiment directory (with output.png) or a folder holding some. "
        "Directories of the original daam package keep their image, prompt, seed and overlay PNGs; "
        "their pickled generation.pt is never read.",
    )
    importer.add_argument("directories", nargs="+", type=Path, metavar="DIR")
    importer.add_argument("--url", default=None, help=URL_HELP)
    importer.add_argument("--model", default=None, help="model name to record (default: from the metadata)")
    importer.add_argument("--author", default=None, help="author to record")
    importer.add_argument("--tags", default="", help="comma-separated tags to record")
    importer.set_defaults(func=run_import)

    exporter = subparsers.add_parser(
        "export",
        help="write stored generations as experiment directories that GenerationExperiment.load reads",
    )
    exporter.add_argument("directory", type=Path, metavar="DIR")
    exporter.add_argument(
        "--generation", type=int, action="append", default=None, metavar="ID", help="a generation id (repeatable)"
    )
    exporter.add_argument("--url", default=None, help=URL_HELP)
    exporter.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from daam_store.store import open_store
    from daam_store.store.transfer import experiment_directories, import_directory

    directories = experiment_directories(args.directories)
    tags = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
    failures = 0
    with open_store(args.url) as store:
        for directory in directories:
            try:
                result = import_directory(store, directory, args.model, args.author, tags)
            except UserError as error:
                failures += 1
                print(f"error: {directory}: {error}", file=sys.stderr)
                continue
            note = " (original daam layout: image, prompt, seed and overlays only)" if result.overlays_only else ""
            print(f"{directory} -> generation {result.generation_id}{note}")
    print(f"imported {len(directories) - failures} of {len(directories)} directories")
    return 2 if failures else 0


def run_export(args: argparse.Namespace) -> int:
    from daam_store.store import open_store
    from daam_store.store.queries import all_generation_ids
    from daam_store.store.transfer import export_generation

    with open_store(args.url) as store:
        if args.generation:
            ids = args.generation
        else:
            with store.session() as session:
                ids = all_generation_ids(session)
        args.directory.mkdir(parents=True, exist_ok=True)
        for generation_id in ids:
            path, has_maps = export_generation(store, generation_id, args.directory)
            note = "" if has_maps else " (image, prompt, seed and overlays only: it has no numeric maps)"
            print(f"generation {generation_id} -> {path}{note}")
    print(f"exported {len(ids)} generations to {args.directory}")
    return 0
