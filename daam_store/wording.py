"""Counts in words, for every message the CLI and the store print."""


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 generation', '2 generations' ('1 directory', '3 directories' with `nouns`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
