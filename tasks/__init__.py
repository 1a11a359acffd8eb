"""Celery tasks of the hub: thin wrappers that call one ``hub`` function each."""

from tasks import workermetrics

# Before the hub makes its first metric family (the worker's start-up does).
workermetrics.prepare()

from tasks.app import app

workermetrics.connect_signals()

__all__ = ["app"]
