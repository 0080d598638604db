"""Alembic environment: always driven programmatically with a connection from Bastion's engine."""

from alembic import context

from bastion.db.base import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
