"""handoffs by claim time (the recent claim rate behind every ETA) and in queue order (a place in the queue)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handoffs_claimed_at"), ["claimed_at"], unique=False)
        batch_op.create_index(
            "ix_handoffs_queue", ["status", "priority", "sla_due_at", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index("ix_handoffs_queue")
        batch_op.drop_index(batch_op.f("ix_handoffs_claimed_at"))
