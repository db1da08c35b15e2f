"""Subcommands of `daam-store`: one module each, exposing `register(subparsers)`."""


def register_all(subparsers) -> None:
    # Imported here, not at package import, so `python -m daam_store.commands.train` runs on a
    # training machine that lacks the store's packages.
    from daam_store.commands import db, evaluate, io, jobs, ls, sweep, train, users

    for module in (db, ls, io, sweep, jobs, train, evaluate, users):
        module.register(subparsers)
