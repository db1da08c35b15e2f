"""Covering index on heat_map (word_id, share): chart queries read shares without the blobs' pages.

Measured on 10,000 generations in SQLite: attribution share of "a" across all prompts 120 -> 42 ms,
across seeds 12 -> 2.5 ms, mean share of every word 571 -> 296 ms.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_heat_map_word_id_share", "heat_map", ["word_id", "share"])


def downgrade() -> None:
    op.drop_index("ix_heat_map_word_id_share", table_name="heat_map")
