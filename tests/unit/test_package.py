"""Package-level rules: damo never imports kfp; every CLI verb has its module; no import cycle; the
library never imports the steps."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

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


KNOWN = set(all_damo_modules())


def _imports(module: str) -> set[str]:
    """The damo modules ``module`` imports (at module level or inside functions), from its source."""
    import ast

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names}
            found = submodules & KNOWN
            # ``from pkg import submodule`` depends on the submodule; ``from m import name`` on m
            names |= found if found == submodules else {node.module, *found}
    return {n for n in names if n.startswith("damo.") or n == "damo"}


def _library_modules() -> list[str]:
    return [m for m in all_damo_modules() if not m.startswith(("damo.steps", "damo.cli"))]


def test_no_library_module_imports_the_steps() -> None:
    """damo.steps and damo.cli are the adapters' layer: the library below them never reaches up."""
    offenders = {m: sorted(i for i in _imports(m) if i.startswith(("damo.steps", "damo.cli")))
                 for m in _library_modules()}
    assert {m: found for m, found in offenders.items() if found} == {}


def test_no_import_cycle_among_damo_modules() -> None:
    modules = set(all_damo_modules())
    graph = {m: {i for i in _imports(m) if i in modules and i != m} for m in modules}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(module):], module])}")
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(modules):
        visit(module, [])
