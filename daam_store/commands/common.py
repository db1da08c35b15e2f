"""What every command shares: the database option, the device check, counts in words, error reporting.

`daam_store.cli` and each module of `daam_store.commands` import this one and never each other. Nothing here
imports torch at module level: `-h` and argument errors answer without loading it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings

from daam_store.errors import UserError, first_line
from daam_store.wording import plural  # noqa: F401  (the commands' one import for what they share)

URL_HELP = "database URL, sqlite:///file.db or postgresql://user@host/db (default: $DAAM_STORE_URL or the local file)"
TAGS_HELP = "comma-separated tags to record"


def add_db_option(parser: argparse.ArgumentParser, help: str = URL_HELP) -> None:
    parser.add_argument("--db", default=None, metavar="URL", help=help)
    # Some commands called it --url; old scripts keep working while the help shows one name.
    parser.add_argument("--url", dest="db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def finite_float(text: str) -> float:
    """argparse type: a number, not nan or inf (nan would pass every range check and write invalid JSON)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


MAX_STORED_INTEGER = 2**63 - 1  # ids, seeds and counts are signed 64-bit columns


def stored_integer(text: str) -> int:
    """argparse type for ids, seeds and limits that reach a query: a whole number a 64-bit column holds (SQLite's
    driver fails on a larger one with an OverflowError instead of matching nothing)."""
    shown = text if len(text) <= 24 else f"{text[:24]}..."
    try:
        value = int(text)
    except ValueError:  # also past Python's limit on digits, where the text is digits, only too many
        if not text.strip().lstrip("+-").isdigit():
            raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number") from None
        value = None
    if value is None or abs(value) > MAX_STORED_INTEGER:
        raise argparse.ArgumentTypeError(f"{shown} is out of range: a database holds at most {MAX_STORED_INTEGER}")
    return value


def check_limit(limit: int) -> int:
    """`--limit` of the listing commands: at least 1 (the job list read 0 or less as no limit at all)."""
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    return limit


def check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but torch sees no CUDA GPU here: use --device cpu")


def open_store(url: str | None, write: bool = False):
    """The store at `url`; with `write`, refuse a read-only one before any work is done for it."""
    from daam_store.store import open_store as open_any

    store = open_any(url)
    if write:
        try:
            store.require_writable()
        except UserError:
            store.close()
            raise
    return store


class OneLineErrorParser(argparse.ArgumentParser):
    """Argument errors as one line, `error: ...` (exit 2), like every other error of the CLI."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} -h)\n")


def quiet_libraries() -> None:
    """transformers warns at import about optional image backends the CLI never uses; diffusers repeats an
    over-long prompt's whole cut text, which the CLI says in one line of its own."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def run_reporting_errors(func, args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings():  # only while the command runs: a process that calls it keeps its own
            warnings.showwarning = _print_note
            return int(func(args) or 0)
    except (UserError, OSError) as error:  # OSError: unwritable output folder, full disk; it names the path
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _print_note(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as the CLI's other notes: one line, no source location."""
    print(f"note: {first_line(message)}", file=sys.stderr)


def single_command_main(register, argv: list[str] | None = None) -> int:
    """One subcommand on its own (`python -m daam_store.commands.NAME ...`), e.g. on a bare training machine."""
    quiet_libraries()
    parser = OneLineErrorParser(prog="daam-store")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return run_reporting_errors(args.func, args)
