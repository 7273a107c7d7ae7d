"""Alembic migrations of the registry database; `service.db.upgrade_database` applies them."""
