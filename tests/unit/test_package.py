"""Package-level rules: damo never imports kfp; every CLI verb has its module."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import damo
from damo.cli import VERBS


def all_damo_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(damo.__path__, prefix="damo.")
                  if not m.name.endswith("__main__"))


def test_importing_every_damo_module_never_imports_kfp() -> None:
    modules = all_damo_modules()
    assert len(modules) > 10
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m == 'kfp' or m.startswith('kfp.'))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"damo imported kfp modules: {out.stdout.strip()}"


def test_every_verb_has_an_adapter() -> None:
    for verb, (module, _help) in VERBS.items():
        mod = importlib.import_module(f"damo.cli.{module}")
        assert callable(mod.add_arguments) and callable(mod.run), verb
