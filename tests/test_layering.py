"""The layering of DESIGN §2 holds: import-linter's contracts (setup.cfg) and the web
process's imports at run time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept(tmp_path):
    # In a subprocess: import-linter configures logging for its own output, which would
    # silence the loggers of every test that runs after it in this process.
    lint = [sys.executable, "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--config", str(ROOT / "setup.cfg"), "--cache-dir", str(tmp_path), "--no-logo"]

    out = subprocess.run(lint, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)

    assert out.returncode == 0, out.stdout + out.stderr


def test_the_web_process_loads_nothing_of_tasks():
    # A fresh interpreter: this test session itself has imported tasks long ago.
    code = ("import sys, webhooks_web; app = webhooks_web.create_app(); "
            "print(sorted(m for m in sys.modules if m == 'tasks' or m.startswith('tasks.')))")

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)

    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_readme_layout_names_every_module_of_the_core():
    """README's Layout is where a newcomer looks for a module: a module added to a
    domain package without a word there is a module nobody finds (issue 8)."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    unnamed = []
    for package in sorted(p for p in (ROOT / "hub").iterdir()
                          if p.is_dir() and (p / "__init__.py").exists()):
        if f"{package.name}/" not in layout:
            unnamed.append(f"{package.name}/")
            continue
        if package.name == "cli":  # "one module per command group": `hub --help` lists them
            continue
        for module in sorted(package.glob("*.py")):
            if module.stem != "__init__" and module.stem not in layout:
                unnamed.append(f"{package.name}/{module.name}")
    assert not unnamed, f"README Layout does not name: {unnamed}"
