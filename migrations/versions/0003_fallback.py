"""fallback states, AI providers, webhook dead letters; events by type and time; signals in the learning log

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learning_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signals", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_type_at", ["type", "at"], unique=False)
    op.create_table(
        "ai_providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("integration_id", sa.String(length=32), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failure_rate", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ai_providers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ai_providers_integration_id"), ["integration_id"], unique=False)

    op.create_table(
        "webhook_dead_letters",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("integration_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replay_status", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_dead_letters_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_dead_letters_integration_id"), ["integration_id"], unique=False)

    op.create_table(
        "fallback_states",
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("collected", sa.JSON(), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
        ),
        sa.PrimaryKeyConstraint("conversation_id"),
    )


def downgrade() -> None:
    with op.batch_alter_table("learning_entries", schema=None) as batch_op:
        batch_op.drop_column("signals")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_at")
    op.drop_table("fallback_states")
    with op.batch_alter_table("webhook_dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_dead_letters_integration_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_dead_letters_created_at"))

    op.drop_table("webhook_dead_letters")
    with op.batch_alter_table("ai_providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ai_providers_integration_id"))

    op.drop_table("ai_providers")
