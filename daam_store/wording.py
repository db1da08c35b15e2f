"""Counts and lists in words, for every message the CLI and the store print."""


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 generation', '2 generations' ('1 directory', '3 directories' with `nouns`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def some_of(items, most: int = 12) -> str:
    """The first `most` items joined by spaces, then how many more: a message stays one readable line."""
    items = list(items)
    shown = " ".join(items[:most])
    return shown if len(items) <= most else f"{shown} ... and {len(items) - most} more"
