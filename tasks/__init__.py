"""Celery tasks of the hub: thin wrappers that call one ``hub`` function each."""

from tasks.app import app

__all__ = ["app"]
