"""The layers call downwards only (STYLE.md): web and cli → actions → domain, store, bus. `domain` is pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "desk"

# module prefix -> prefixes it must never import
FORBIDDEN = {
    "desk.domain": (
        "starlette",
        "sqlalchemy",
        "sqlmodel",
        "httpx",
        "redis",
        "uvicorn",
        "anyio",
        "asyncio",
        "socket",
        "desk.store",
        "desk.web",
        "desk.actions",
        "desk.bus",
        "desk.realtime",
        "desk.runtime",
    ),
    "desk.store": ("starlette", "desk.web", "desk.actions", "desk.runtime", "desk.cli"),
    "desk.bus": ("starlette", "desk.web", "desk.actions", "desk.store", "desk.runtime"),
    "desk.actions": ("starlette", "desk.web", "desk.cli", "desk.runtime", "uvicorn"),
    "desk.realtime": ("starlette", "desk.web", "desk.cli"),
    "desk.fallback": ("starlette", "desk.web", "desk.cli"),
    "desk.webhooks": ("starlette", "desk.web", "desk.cli"),
    # The demo AI talks to Desk only through the public contract (HTTP), like any other AI agent.
    "desk.demo_ai": (
        "desk.actions",
        "desk.store",
        "desk.web",
        "desk.runtime",
        "desk.bus",
        "desk.realtime",
        "desk.domain",
        "desk.fallback",
        "desk.webhooks",
    ),
}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(("name", "path"), modules(), ids=[name for name, _ in modules()])
def test_module_imports_only_downwards(name: str, path: Path) -> None:
    for layer, forbidden in FORBIDDEN.items():
        if name == layer or name.startswith(layer + "."):
            bad = sorted(i for i in imports(path) if any(i == f or i.startswith(f + ".") for f in forbidden))
            assert not bad, f"{name} imports {bad}, above or beside its layer"


def test_modules_stay_small() -> None:
    too_long = {name: n for name, path in modules() if (n := len(path.read_text().splitlines())) > 800}
    assert not too_long, f"split these modules (over 800 lines): {too_long}"
