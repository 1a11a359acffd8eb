"""Celery tasks of the hub: thin wrappers that call one ``hub`` function each."""

from tasks import workermetrics

# Before anything imports prometheus_client (the app's task modules do).
workermetrics.prepare()

from tasks.app import app

workermetrics.connect_signals()

__all__ = ["app"]
