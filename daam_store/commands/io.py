"""`daam-store import DIR...` and `daam-store export DIR [--generation ID ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daam_store.commands.common import TAGS_HELP, add_db_option, open_store, plural, stored_integer
from daam_store.errors import UserError
from daam_store.tags import check_author, parse_tags


def register(subparsers) -> None:
    importer = subparsers.add_parser(
        "import",
        help="store experiment directories (daam-store's or the original daam package's layout)",
        description="Each DIR is an experiment directory (with output.png) or a folder holding some. "
        "Directories of the original daam package keep their image, prompt, seed and overlay PNGs; "
        "their pickled generation.pt is never read.",
    )
    importer.add_argument("directories", nargs="+", type=Path, metavar="DIR")
    add_db_option(importer)
    importer.add_argument("--model", default=None, help="model name to record (default: from the metadata)")
    importer.add_argument("--author", default=None, help="author to record")
    importer.add_argument("--tags", default="", help=TAGS_HELP)
    importer.set_defaults(func=run_import)

    exporter = subparsers.add_parser(
        "export",
        help="write stored generations as experiment directories that GenerationExperiment.load reads",
    )
    exporter.add_argument("directory", type=Path, metavar="DIR")
    exporter.add_argument(
        "--generation",
        "--generations",
        type=stored_integer,
        nargs="+",
        action="extend",
        default=None,
        metavar="ID",
        help="generation ids, e.g. --generation 12 13 (default: all; `daam-store ls` lists them)",
    )
    add_db_option(exporter)
    exporter.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from daam_store.store.transfer import experiment_directories, import_directory

    failures = 0
    with open_store(args.db, write=True) as store:  # a read-only database fails before any folder is read
        directories = experiment_directories(args.directories)
        tags, author = parse_tags(args.tags), check_author(args.author)
        for directory in directories:
            try:
                result = import_directory(store, directory, args.model, author, tags)
            except (UserError, OSError) as error:  # OSError: an unreadable file; either way the rest go on
                failures += 1
                print(f"error: {directory}: {error}", file=sys.stderr)
                continue
            except (ValueError, OverflowError, KeyError, TypeError, RuntimeError) as error:
                # Hostile or broken content past the checks (a 70-bit number, a missing tensor, a link loop):
                # still this folder's one line, and the rest go on.
                failures += 1
                print(f"error: {directory}: cannot be imported ({type(error).__name__}: {error})", file=sys.stderr)
                continue
            note = " (original daam layout: image, prompt, seed and overlays only)" if result.overlays_only else ""
            print(f"{directory} -> generation {result.generation_id}{note}")
    print(f"imported {len(directories) - failures} of {plural(len(directories), 'directory', 'directories')}")
    return 2 if failures else 0


def run_export(args: argparse.Namespace) -> int:
    from daam_store.store.queries import all_generation_ids
    from daam_store.store.transfer import export_generation

    failures = 0
    with open_store(args.db) as store:
        if args.generation:
            ids = args.generation
        else:
            with store.session() as session:
                ids = all_generation_ids(session)
        args.directory.mkdir(parents=True, exist_ok=True)
        for generation_id in ids:
            try:
                path, has_maps = export_generation(store, generation_id, args.directory)
            except UserError as error:  # a damaged or missing generation: its one line, and the rest go on
                failures += 1
                print(f"error: generation {generation_id}: {error}", file=sys.stderr)
                continue
            note = "" if has_maps else " (image, prompt, seed and overlays only: it has no numeric maps)"
            print(f"generation {generation_id} -> {path}{note}")
    done = f"{len(ids) - failures} of " if failures else ""
    print(f"exported {done}{plural(len(ids), 'generation')} to {args.directory}")
    return 2 if failures else 0
