"""The Home page: what is in the store and the latest generations."""

from __future__ import annotations

from dataclasses import dataclass

from daam_store.views.common import GenerationCard, generation_cards


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]  # label -> number, in display order
    database: str  # the URL with any password hidden
    latest: list[GenerationCard]


def store_overview(store, latest: int = 8) -> Overview:
    from daam_store.store import queries

    with store.session() as session:
        summary = queries.store_summary(session)
        cards = generation_cards(session, queries.list_generations(session, limit=latest))
    counts = {
        "Generations": summary.generations,
        "Prompts": summary.prompts,
        "Models": summary.models,
        "Distinct words": summary.words,
    }
    return Overview(counts=counts, database=store.url, latest=cards)


LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")


def single_user_note(address: str | None) -> str:
    """What Home says when no sign-in is configured, and a warning when the server listens beyond this machine."""
    note = "Single-user mode: no sign-in is configured"
    if address in LOCAL_ADDRESSES:
        return f"{note}, so the dashboard listens on this machine only ({address}). To share it, see Team deployment."
    where = address or "every network interface"
    return f"{note}, yet the dashboard listens on {where}: anyone who reaches it may use it. See Team deployment."
