"""The webhook web app: a thin Flask edge over ``hub.webhooks.intake`` (DESIGN §5).

Serve it with ``gunicorn -c webhooks_web/gunicorn.conf.py "webhooks_web:create_app()"``.
"""

from webhooks_web.app import create_app

__all__ = ["create_app"]
