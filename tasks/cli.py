"""The ``hub`` command line, for callers that import it from here.

The console script is :func:`celerydispatch.cli` (it loads no task module);
this alias stays for scripts and installs that still name ``tasks.cli:main``.
"""

from __future__ import annotations

from celerydispatch import cli as main

__all__ = ["main"]
