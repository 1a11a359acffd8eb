"""Integration hub core library.

Everything under ``hub`` is free of Celery and Flask: the task modules in
``tasks/`` and the web app in ``webhooks_web/`` are thin edges that call into it.
"""

__version__ = "0.1.0"
