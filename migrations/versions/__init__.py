"""Alembic revision scripts (a package so the wheel carries them; Alembic skips this file)."""
