"""The ``hub`` command line (click).

A contract for scripts (DESIGN §8): human tables by default, ``--json`` prints
one JSON document; exit status 0 on success, 1 on a refused request, 2 on bad
usage. Each command group lives in its own module of this package.
"""

from __future__ import annotations

from hub.cli.main import main

__all__ = ["main"]
