"""Core tables: models, prompts, generations, their words, word heat maps, images and tags.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=1000), nullable=False),
        sa.Column("family", sa.String(length=8), nullable=False),
        sa.Column("revision", sa.String(length=64), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=True),
        sa.Column("prediction_type", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model")),
        sa.UniqueConstraint("name", "revision", name=op.f("uq_model_name_revision")),
    )
    op.create_table(
        "prompt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt")),
        sa.UniqueConstraint("text_hash", name=op.f("uq_prompt_text_hash")),
    )
    op.create_table(
        "generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("guidance_scale", sa.Double(), nullable=True),
        sa.Column("scheduler", sa.String(length=100), nullable=True),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("dtype", sa.String(length=32), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_generation_model_id_model")),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], name=op.f("fk_generation_prompt_id_prompt")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_generation_fingerprint")),
    )
    op.create_index("ix_generation_created_at", "generation", ["created_at"])
    op.create_index("ix_generation_model_id_seed", "generation", ["model_id", "seed"])
    op.create_index("ix_generation_prompt_id_model_id_seed", "generation", ["prompt_id", "model_id", "seed"])
    op.create_table(
        "image",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generation.id"], name=op.f("fk_image_generation_id_generation"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("generation_id", name=op.f("pk_image")),
    )
    op.create_table(
        "tag",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generation.id"], name=op.f("fk_tag_generation_id_generation"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("generation_id", "name", name=op.f("pk_tag")),
    )
    op.create_index("ix_tag_name", "tag", ["name"])
    op.create_table(
        "word",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("token_indices", sa.JSON(), nullable=False),
        sa.Column("token_ids", sa.JSON(), nullable=False),
        sa.Column("is_punctuation", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generation.id"], name=op.f("fk_word_generation_id_generation"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_word")),
        sa.UniqueConstraint("generation_id", "position", name=op.f("uq_word_generation_id_position")),
    )
    op.create_index("ix_word_key_generation_id", "word", ["key", "generation_id"])
    op.create_table(
        "heat_map",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("word_id", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(length=16), nullable=False),
        sa.Column("codec_version", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.Column("share", sa.Double(), nullable=True),
        sa.Column("peak", sa.Double(), nullable=False),
        sa.Column("entropy", sa.Double(), nullable=True),
        sa.Column("centroid_x", sa.Double(), nullable=True),
        sa.Column("centroid_y", sa.Double(), nullable=True),
        sa.Column("area_above_tau", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["word_id"], ["word.id"], name=op.f("fk_heat_map_word_id_word"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heat_map")),
        sa.UniqueConstraint("word_id", name=op.f("uq_heat_map_word_id")),
    )


def downgrade() -> None:
    op.drop_table("heat_map")
    op.drop_index("ix_word_key_generation_id", table_name="word")
    op.drop_table("word")
    op.drop_index("ix_tag_name", table_name="tag")
    op.drop_table("tag")
    op.drop_table("image")
    op.drop_index("ix_generation_prompt_id_model_id_seed", table_name="generation")
    op.drop_index("ix_generation_model_id_seed", table_name="generation")
    op.drop_index("ix_generation_created_at", table_name="generation")
    op.drop_table("generation")
    op.drop_table("prompt")
    op.drop_table("model")
