"""Tags as people type them: one parser for the CLI, sweeps and the dashboard."""

from __future__ import annotations


def parse_tags(text: str | None) -> tuple[str, ...]:
    """Comma-separated tags, blanks removed, repeats dropped, first occurrence's order kept."""
    tags = (tag.strip() for tag in (text or "").split(","))
    return tuple(dict.fromkeys(tag for tag in tags if tag))
