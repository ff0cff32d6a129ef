"""No import inside a function but the documented lazy ones (CONTRIBUTING.md): each carries a `# lazy: <why>`
comment on its line or on the line above (which covers the imports right after it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rssr_cli"
LAZY = re.compile(r"#\s*lazy:")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
IMPORTS = (ast.Import, ast.ImportFrom)


def undocumented_imports(source: str) -> list[int]:
    """Line numbers of the imports inside a function (at any depth) without a `# lazy:` comment."""
    lines = source.splitlines()
    found: list[int] = []

    def documented(node: ast.stmt, previous: ast.stmt | None) -> bool:
        own = lines[node.lineno - 1 : node.end_lineno]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        if any(LAZY.search(line) for line in own) or (above.startswith("#") and LAZY.search(above)):
            return True
        # an import right after a documented one: the block shares its comment
        return isinstance(previous, IMPORTS) and previous.end_lineno == node.lineno - 1 and documented(previous, None)

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            previous = None
            for child in block:
                if in_function and isinstance(child, IMPORTS) and not documented(child, previous):
                    found.append(child.lineno)
                visit(child, in_function or isinstance(child, FUNCTIONS))
                previous = child

    visit(ast.parse(source), False)
    return found


def test_every_import_inside_a_function_says_why_it_is_lazy():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        offenders += [
            f"{path.relative_to(PACKAGE.parent)}:{n}: {lines[n - 1].strip()}" for n in undocumented_imports(source)
        ]
    assert not offenders, (
        "imports inside a function without a `# lazy: <why>` comment (move them to the top of the module, or say"
        " why they must wait: CONTRIBUTING.md):\n" + "\n".join(offenders)
    )


def test_the_checker_finds_what_it_should():
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import torch

def f():
    import os
    # lazy: torch, only when a model runs
    import torch
    from torch import nn
    import sys  # lazy: an example

class C:
    def method(self):
        try:
            import json
        except ImportError:
            pass

        def inner():
            import re
"""
    lines = source.splitlines()
    assert [lines[n - 1].strip() for n in undocumented_imports(source)] == ["import os", "import json", "import re"]
