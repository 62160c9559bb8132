"""The public surface: `headrace.__all__` is complete and sorted, and importing headrace (what
every step script that logs metrics does) loads no database driver."""

from __future__ import annotations

import subprocess
import sys

import headrace


def test_all_is_sorted_and_complete() -> None:
    assert headrace.__all__ == sorted(headrace.__all__)
    public = {
        name
        for name, value in vars(headrace).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("headrace")
    }
    assert public - set(headrace.__all__) == set(), "exported but missing from __all__"
    for name in headrace.__all__:
        assert hasattr(headrace, name), name


def test_importing_headrace_loads_no_database_layer() -> None:
    code = (
        "import sys, headrace; from headrace import Run; Run.get_context();"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'rich', 'typer') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_importing_headrace_loads_nothing_until_a_name_is_used() -> None:
    code = (
        "import sys, headrace;"
        "print(sorted(m for m in sys.modules if m.startswith('headrace')), 'typing' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['headrace'] False", out.stdout + out.stderr


def test_the_lazy_names_are_the_ones_type_checkers_see() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(headrace.__file__).read_text())
    guarded = next(n for n in tree.body if isinstance(n, ast.If))  # `if TYPE_CHECKING:`
    seen = {
        alias.asname or alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == headrace._HOMES
    assert sorted(seen) == headrace.__all__
