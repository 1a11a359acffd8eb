"""The layering of DESIGN §2 holds: import-linter's contracts (setup.cfg) and the web
process's imports at run time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)

    status = lint_imports(config_filename=str(ROOT / "setup.cfg"),
                          cache_dir=str(tmp_path), no_logo=True)

    assert status == 0, "lint-imports found a broken contract (its report is above)"


def test_the_web_process_loads_nothing_of_tasks():
    # A fresh interpreter: this test session itself has imported tasks long ago.
    code = ("import sys, webhooks_web; app = webhooks_web.create_app(); "
            "print(sorted(m for m in sys.modules if m == 'tasks' or m.startswith('tasks.')))")

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)

    assert out.stdout.strip().splitlines()[-1] == "[]"
