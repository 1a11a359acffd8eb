"""Entry point of the ``hub`` console script: the CLI with a Celery dispatcher.

``hub/`` knows nothing of Celery, so the process wires it in here; the Celery
app is only used to send by name (no task module is imported).
"""

from __future__ import annotations

from hub.cli.main import main as hub_main


def _dispatcher():
    from celerydispatch import CeleryDispatcher
    from tasks.app import app

    return CeleryDispatcher(app)


def main() -> None:
    hub_main(dispatcher_factory=_dispatcher)
