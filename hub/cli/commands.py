"""Registers every command group on the root ``hub`` group (one line per module)."""

from hub.cli import adapters as _adapters  # noqa: F401
from hub.cli import cache as _cache  # noqa: F401
from hub.cli import db as _db  # noqa: F401
from hub.cli import deliveries as _deliveries  # noqa: F401
from hub.cli import dev as _dev  # noqa: F401
from hub.cli import dlq as _dlq  # noqa: F401
from hub.cli import events as _events  # noqa: F401
from hub.cli import integration_test as _integration_test  # noqa: F401
from hub.cli import integrations as _integrations  # noqa: F401
from hub.cli import keys as _keys  # noqa: F401
from hub.cli import logs as _logs  # noqa: F401
from hub.cli import oauth as _oauth  # noqa: F401
from hub.cli import subscriptions as _subscriptions  # noqa: F401
from hub.cli import usage as _usage  # noqa: F401
from hub.cli import webhooks as _webhooks  # noqa: F401
from hub.cli import worker as _worker  # noqa: F401
