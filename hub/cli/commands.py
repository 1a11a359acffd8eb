"""Registers every command group on the root ``hub`` group (one line per module)."""

from hub.cli import db as _db  # noqa: F401
