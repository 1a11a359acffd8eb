"""``hub dev`` and the test suite's local servers.

``embedded`` uses the PostgreSQL and Redis that answer, or starts embedded ones
from PyPI; ``server`` starts the hub's processes on top of them.
"""
