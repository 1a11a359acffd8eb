"""hub/ is the core: it imports neither Celery, Flask, tasks nor webhooks_web."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HUB = Path(__file__).resolve().parent.parent / "hub"
FORBIDDEN = ("celery", "kombu", "flask", "werkzeug", "tasks", "webhooks_web")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(HUB.rglob("*.py")), ids=lambda p: str(p.relative_to(HUB)))
def test_hub_module_stays_free_of_edges(path):
    bad = {n for n in _imports(path) if n.split(".")[0] in FORBIDDEN}

    assert bad == set()
