"""Alembic migrations of the registry database; `warmzoo.service.registry.db.upgrade_database` applies them."""
