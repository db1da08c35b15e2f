"""`daam-store users`: who may use a team dashboard, and with which role (see daam_store/access.py).

The shell operator owns the database, so these commands need no sign-in: this is how the first admin is named.
"""

from __future__ import annotations

import argparse
import json

from daam_store.commands.common import add_db_option, open_store


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "users",
        help="list the dashboard's users or set a role (viewer, member, admin; none revokes)",
        description="Roles for the dashboard's team mode (sign-in configured). viewer: browse, compare, download; "
        "member: also generate, sweep, tag their own generations, cancel their own jobs; admin: also register "
        "models, manage roles, cancel anyone's jobs. Name the first admin here.",
    )
    actions = parser.add_subparsers(dest="users_action")
    listing = actions.add_parser("ls", help="list users and roles (the default)")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    add_db_option(listing)
    setting = actions.add_parser("set", help="give someone a role, e.g. `users set alice@example.com admin`")
    setting.add_argument("identity", help="the e-mail address the sign-in provider gives (or sub:<subject id>)")
    setting.add_argument("role", help="none, viewer, member or admin")
    setting.add_argument("--name", default=None, help="a display name")
    add_db_option(setting)
    add_db_option(parser)
    parser.set_defaults(func=run, json=False)


def run(args: argparse.Namespace) -> int:
    from daam_store.access import list_accounts, normalize_identity, parse_role, roles_table, set_role

    if args.users_action == "set":
        role = parse_role(args.role)
        with open_store(args.db, write=True) as store:
            set_role(store, args.identity, role, name=args.name)
        print(f"{normalize_identity(args.identity)}: {role}")
        return 0
    with open_store(args.db) as store:
        rows = roles_table(list_accounts(store))
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no users yet: `daam-store users set EMAIL admin` names the first admin")
    else:
        for row in rows:
            print(f"{row['role']:<7} {row['identity']}  {row['name']}  {row['last seen']}".rstrip())
    return 0
