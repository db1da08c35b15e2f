"""Tags and authors as people type them: one parser for the CLI, sweeps and the dashboard, which refuses what the
store's columns cannot hold before anything is generated."""

from __future__ import annotations

from collections.abc import Iterable

from daam_store.errors import UserError

MAX_TAG_CHARS = 100  # the widths of the store's tag.name and generation.author columns
MAX_AUTHOR_CHARS = 200


def parse_tags(text: str | None) -> tuple[str, ...]:
    """Comma-separated tags, blanks removed, repeats dropped, first occurrence's order kept."""
    tags = (tag.strip() for tag in (text or "").split(","))
    return check_tags(dict.fromkeys(tag for tag in tags if tag))


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    tags = tuple(tags)
    for tag in tags:
        if len(tag) > MAX_TAG_CHARS:
            raise UserError(f"tag {tag[:24]!r}... has {len(tag)} characters: a tag has at most {MAX_TAG_CHARS}")
    return tags


def check_author(author: str | None) -> str | None:
    if author is not None and len(author) > MAX_AUTHOR_CHARS:
        raise UserError(f"author {author[:24]!r}... has {len(author)} characters: at most {MAX_AUTHOR_CHARS}")
    return author
