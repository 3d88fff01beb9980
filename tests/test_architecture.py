"""The package's shape: data flows one way, and each dependency stays in its one module.

Read from the source (``ast``), not from ``sys.modules``, so that an import placed inside a
function or under ``TYPE_CHECKING`` counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "unpod_async"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, with relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                if node.module:
                    found.add(".".join([*base, node.module]))
                else:
                    found.update(".".join([*base, alias.name]) for alias in node.names)
            elif node.module:
                found.add(node.module)
    return found


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _internal_graph() -> dict[str, set[str]]:
    return {m: {d for d in deps if d in MODULES and d != m} for m, deps in MODULES.items()}


def test_the_import_graph_has_no_cycle() -> None:
    graph = _internal_graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def _importers_of(top: str) -> set[str]:
    return {
        m for m, deps in MODULES.items() if any(d == top or d.startswith(top + ".") for d in deps)
    }


def test_only_the_transport_imports_aiohttp() -> None:
    # The simulator is a server: it may use aiohttp.web.
    outside = {m for m in _importers_of("aiohttp") if not m.startswith("unpod_async.testing")}
    assert outside <= {"unpod_async._transport", "unpod_async._client"}
    # The client names aiohttp only for the type of a caller's session.
    client = (PACKAGE / "_client.py").read_text()
    assert "import aiohttp" in client.split("if TYPE_CHECKING:")[1].split("\n\n")[0]


def test_only_the_retry_module_imports_tenacity() -> None:
    assert _importers_of("tenacity") == {"unpod_async._retry"}


def test_the_library_never_imports_the_command_line() -> None:
    cli_side = {"unpod_async.cli", "unpod_async._commands", "unpod_async.__main__"}
    for module, deps in _internal_graph().items():
        if module not in cli_side:
            assert not deps & cli_side, f"{module} imports {deps & cli_side}"


def test_the_export_never_imports_the_client() -> None:
    graph = _internal_graph()
    for module in (
        "_export",
        "_writers",
        "_checkpoint",
        "_atomic",
        "_paging",
        "_page",
        "_pull",
        "_repair",
        "_isolate",
        "_window",
        "_decode",
        "_iterate",
    ):
        assert "unpod_async._client" not in graph[f"unpod_async.{module}"], module
