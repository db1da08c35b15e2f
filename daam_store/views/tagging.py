"""Tagging a stored generation from Explore: members tag what they made, admins anything."""

from __future__ import annotations

from daam_store.access import Actor, Permission
from daam_store.errors import UserError
from daam_store.tags import parse_tags


def may_tag(store, generation_id: int, actor: Actor) -> bool:
    """Whether to offer the tag form at all (the check that counts is in `add_tags`)."""
    if actor.may(Permission.TAG_ANY):
        return True
    return actor.may(Permission.TAG_OWN) and actor.owns(_author(store, generation_id))


def add_tags(store, generation_id: int, text: str, actor: Actor) -> tuple[str, ...]:
    """Tag one generation with the comma-separated tags in `text`; the tags added."""
    from daam_store.store import queries

    tags = parse_tags(text)  # refuses a tag longer than the store keeps
    if not tags:
        raise UserError("enter one or more tags, comma-separated")
    actor.require_owner_or(_author(store, generation_id), Permission.TAG_OWN, Permission.TAG_ANY)
    store.require_writable()
    with store.write_session() as session:
        for tag in tags:
            queries.add_tag(session, [generation_id], tag)
    return tags


def _author(store, generation_id: int) -> str | None:
    from daam_store.store import GenerationNotFoundError, queries

    with store.session() as session:
        summary = queries.get_generation(session, generation_id)
    if summary is None:
        raise GenerationNotFoundError(f"no generation {generation_id} in the store")
    return summary.author
