"""Who may do what: roles for the dashboard's team mode, checked wherever an action runs.

Local use (no sign-in configured) has one person, the `LOCAL_ACTOR`, who may do everything. In team mode the
person is whoever the OpenID Connect provider signed in, and their role comes from the store's `user_account`
table:

    viewer   browse, compare, download
    member   also generate, sweep, tag what they made, cancel their own jobs
    admin    also register models, manage roles, cancel anyone's jobs

Someone signed in for the first time gets `$DAAM_STORE_DEFAULT_ROLE` (default "none": they see nothing until an
admin grants a role; a provider that lets the whole world sign in must not open the store to it). The first admin
is named from a shell: `daam-store users set alice@example.com admin`.

Every action checks `actor.require(...)` itself, in the function that does the work: hiding a button is for
comfort, the check is what keeps a viewer from generating.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select

from daam_store.errors import UserError
from daam_store.store.schema import UserAccount, utc_now

DEFAULT_ROLE_VARIABLE = "DAAM_STORE_DEFAULT_ROLE"


class Role(StrEnum):
    NONE = "none"
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"


class Permission(StrEnum):
    BROWSE = "browse, compare and download"
    GENERATE = "generate and sweep"
    TAG_OWN = "tag your own generations"
    CANCEL_OWN_JOBS = "cancel or retry your own jobs"
    TAG_ANY = "tag anyone's generations"
    CANCEL_ANY_JOB = "cancel or retry anyone's jobs"
    REGISTER_MODELS = "register models"
    MANAGE_ROLES = "manage roles"


_VIEWER = {Permission.BROWSE}
_MEMBER = _VIEWER | {Permission.GENERATE, Permission.TAG_OWN, Permission.CANCEL_OWN_JOBS}
_ADMIN = set(Permission)
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.NONE: frozenset(),
    Role.VIEWER: frozenset(_VIEWER),
    Role.MEMBER: frozenset(_MEMBER),
    Role.ADMIN: frozenset(_ADMIN),
}


class PermissionDeniedError(UserError):
    """The signed-in person's role does not allow the action."""


@dataclass(frozen=True)
class Actor:
    """The person behind an action: their identity (what is recorded as author) and role."""

    identity: str | None  # None: the local user, who types an author if they want one
    role: Role
    name: str = ""

    @property
    def team_mode(self) -> bool:
        return self.identity is not None

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            who = self.identity or "this user"
            raise PermissionDeniedError(
                f"{who} ({self.role} role) may not {permission}: ask an admin for a role that may"
            )

    def owns(self, author: str | None) -> bool:
        """Whether something recorded with `author` is this person's (local mode: everything is)."""
        return not self.team_mode or (author is not None and normalize_identity(author) == self.identity)

    def require_owner_or(self, author: str | None, own: Permission, anyone: Permission) -> None:
        """For actions on one thing: allowed with `anyone`, or with `own` on what this person made."""
        if self.may(anyone):
            return
        self.require(own)
        if not self.owns(author):
            raise PermissionDeniedError(f"{self.identity} ({self.role} role) may not {anyone}, only their own")

    def author(self, typed: str | None = None) -> str | None:
        """What to record as the author: the signed-in identity in team mode, never typed text."""
        return self.identity if self.team_mode else (typed or None)


LOCAL_ACTOR = Actor(identity=None, role=Role.ADMIN)


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise UserError(f"unknown role {text!r}: use one of {', '.join(role.value for role in Role)}") from None


def normalize_identity(identity: str) -> str:
    """E-mail addresses compare without case; `sub:<id>` subject ids are case-sensitive (Okta's are mixed)."""
    text = identity.strip()
    if not text.startswith("sub:"):
        text = text.lower()
    if not text or len(text) > 320 or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise UserError("an identity is the e-mail address (or subject id) the sign-in provider gives, no spaces")
    return text


def default_role() -> Role:
    text = os.environ.get(DEFAULT_ROLE_VARIABLE, "")
    return parse_role(text) if text.strip() else Role.NONE


def actor_for(store, identity: str, name: str = "") -> Actor:
    """The signed-in person as the store knows them now (a role changed by an admin counts at once).

    Someone new is recorded with the default role, so that admins see them in the list and can grant one.
    """
    identity = normalize_identity(identity)
    with store.session() as session:
        account = session.scalar(select(UserAccount).where(UserAccount.identity == identity))
        if account is not None:
            return Actor(identity, Role(account.role), account.name or name)
    role = default_role()
    if not store.read_only:
        _insert_account(store, identity, name, role)
    return Actor(identity, role, name)


def _insert_account(store, identity: str, name: str, role: Role) -> None:
    from daam_store.store.writer import insert_if_absent

    now = utc_now()
    with store.write_session() as session:  # two first page loads at once: the second finds the row
        values = {"identity": identity, "name": name[:200], "role": role.value, "updated_at": now}
        insert_if_absent(session, UserAccount, values, unique=["identity"])


def record_visit(store, identity: str) -> None:
    """When this person last opened the dashboard (once per browser session; shown to admins)."""
    if store.read_only:
        return
    with store.write_session() as session:
        account = session.scalar(select(UserAccount).where(UserAccount.identity == normalize_identity(identity)))
        if account is not None:
            account.last_seen_at = utc_now()


@dataclass(frozen=True)
class Account:
    identity: str
    name: str
    role: Role
    last_seen_at: object


def list_accounts(store) -> list[Account]:
    with store.session() as session:
        rows = session.scalars(select(UserAccount).order_by(UserAccount.identity)).all()
        return [Account(row.identity, row.name, Role(row.role), row.last_seen_at) for row in rows]


def set_role(store, identity: str, role: Role, by: Actor | None = None, name: str | None = None) -> None:
    """Give `identity` a role (recording them if new). `by`: the admin doing it on the dashboard; None: the
    operator at a shell, who owns the database anyway. The last admin cannot be demoted: nobody could undo it."""
    if by is not None:
        by.require(Permission.MANAGE_ROLES)
    identity = normalize_identity(identity)
    store.require_writable()
    with store.write_session() as session:
        account = session.scalar(select(UserAccount).where(UserAccount.identity == identity))
        if account is None:
            now = utc_now()
            account = UserAccount(identity=identity, name=name or "", role=role.value, created_at=now, updated_at=now)
            session.add(account)
            return
        if account.role == Role.ADMIN and role != Role.ADMIN and _admin_count(session) <= 1:
            raise UserError(f"{identity} is the only admin: make someone else admin first")
        account.role = role.value
        if name is not None:
            account.name = name


def _admin_count(session) -> int:
    """Admins now, their rows locked (PostgreSQL) until the change commits: two admins demoting each other at
    once take turns, and the second sees that the first is no longer an admin."""
    admins = session.scalars(select(UserAccount.id).where(UserAccount.role == Role.ADMIN).with_for_update()).all()
    return len(admins)


def roles_table(accounts: Iterable[Account]) -> list[dict]:
    return [
        {
            "identity": account.identity,
            "name": account.name,
            "role": account.role.value,
            "last seen": account.last_seen_at.strftime("%Y-%m-%d %H:%M") if account.last_seen_at else "",
        }
        for account in accounts
    ]
