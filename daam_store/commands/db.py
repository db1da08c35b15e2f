"""`daam-store db upgrade|check`: migrate the database's schema; verify its contents."""

from __future__ import annotations

import argparse

from daam_store.commands.common import add_db_option
from daam_store.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("db", help="manage the database: upgrade its schema, check its contents")
    commands = parser.add_subparsers(dest="db_command", required=True)

    upgrade = commands.add_parser("upgrade", help="migrate the schema to the version this daam-store needs")
    add_db_option(upgrade)
    upgrade.set_defaults(func=run_upgrade)

    check = commands.add_parser(
        "check", help="verify the schema version, that every generation is complete and every blob decodes"
    )
    add_db_option(check)
    check.set_defaults(func=run_check)


def run_upgrade(args: argparse.Namespace) -> int:
    from daam_store.store.migrate import schema_state, upgrade
    from daam_store.store.session import database_errors, display_url, make_engine, parse_database_url

    url = parse_database_url(args.db)
    engine = make_engine(url, maintenance=True)
    try:
        with database_errors(url):
            with engine.connect() as connection:
                before = schema_state(connection).current
            upgrade(engine)
            with engine.connect() as connection:
                after = schema_state(connection).current
    finally:
        engine.dispose()
    change = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    print(f"{display_url(url)}: {change} schema revision {after}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from daam_store.store.check import check_database, describe
    from daam_store.store.session import display_url, make_engine, parse_database_url, sqlite_file

    url = parse_database_url(args.db)
    path = sqlite_file(url)
    if path is not None and not path.exists():  # opening it would create an empty database
        raise UserError(f"database {display_url(url)} does not exist: nothing to check")
    engine = make_engine(url, maintenance=True)
    try:
        report = check_database(engine)
        print(describe(report, engine))
    finally:
        engine.dispose()
    return 0 if report.ok else 1
