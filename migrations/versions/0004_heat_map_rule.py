"""generation.heat_map_rule: which layers a generation's maps average (daam_store/rules.py).

Rows written before it had numeric maps averaged over every cross-attention layer, mid block included:
they get "daam+mid". Rows imported from the original package's overlay images have no numeric maps: NULL.
The sweep's "already stored?" lookup filters on the rule, so maps of one rule never stand in for the other.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("generation", sa.Column("heat_map_rule", sa.String(length=16), nullable=True))
    generation = sa.table("generation", sa.column("status", sa.String), sa.column("heat_map_rule", sa.String))
    op.execute(generation.update().where(generation.c.status == "done").values(heat_map_rule="daam+mid"))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35), not batch mode: rebuilding the table would drop it first, and with
    # foreign keys on that cascades to every row below the generations.
    op.drop_column("generation", "heat_map_rule")
