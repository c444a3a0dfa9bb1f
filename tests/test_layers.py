"""The floors of docs/architecture.md: each package imports only the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src" / "swarmguard"

ALLOWED = {
    "resilience": set(),
    "crypto": set(),
    "codec": set(),
    "validators": {"crypto", "codec"},
    "storage": {"crypto", "codec", "validators"},
    "consensus": {"crypto", "codec", "validators", "storage"},
    "sim": {"crypto", "codec", "validators", "storage", "consensus"},
    "node": {"crypto", "codec", "validators", "storage", "consensus", "resilience"},
    "api": {"crypto", "codec", "validators", "storage", "consensus", "resilience", "node"},
    "demos": {"resilience"},
}


def swarmguard_imports(path: Path) -> set[str]:
    """The top-level swarmguard packages a module imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "swarmguard":
                names = [f"swarmguard.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "swarmguard" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_floors(package: str) -> None:
    """No module of a package imports a package that is not below it."""
    target = SOURCE / package
    modules = sorted(target.rglob("*.py")) if target.is_dir() else [SOURCE / f"{package}.py"]
    assert modules
    for module in modules:
        imported = swarmguard_imports(module) - {package}
        assert imported <= ALLOWED[package], f"{module.name} imports {imported}"


SANS_IO_FORBIDDEN = {"asyncio", "socket", "time", "random", "secrets", "threading", "datetime"}


def test_consensus_core_is_sans_io() -> None:
    """The consensus core gets time, messages and randomness from its caller, never by itself."""
    for module in sorted((SOURCE / "consensus").rglob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
        forbidden = imported & SANS_IO_FORBIDDEN
        assert not forbidden, f"{module.name} imports {forbidden}"
