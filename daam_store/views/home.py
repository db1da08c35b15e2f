"""The Home page: what is in the store and the latest generations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from daam_store.views.common import GenerationCard, generation_cards

if TYPE_CHECKING:
    pass


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
