"""The README says what the package does: its reference table is ``__all__``, every client
option is documented, its Python snippets use only names they define (and the FastAPI and
testing ones run), its exit codes are the command's, and ``.gitignore`` covers what an export
leaves beside its output."""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import symtable
import sys
import textwrap
import types
from pathlib import Path

import httpx
import pytest

import unpod_async
from unpod_async import UnpodClient, _commands
from unpod_async.testing import serve

from .helpers import child_env

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n") if f"\n## {title}\n" in README else -1
    if start < 0:
        start = README.index(f"\n### {title}\n")
    rest = README[start + 1 :]
    level = rest.split(" ", 1)[0]
    end = re.search(rf"\n{level} ", rest[3:])
    return rest if end is None else rest[: end.start() + 3]


def _first_cells(section: str) -> list[str]:
    cells = []
    for line in section.splitlines():
        if line.startswith("| `"):
            cells.append(line.split("|")[1])
    return cells


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def _snippet(marker: str) -> str:
    [code] = [s for s in _snippets() if marker in s]
    return code


# --- the documented surface ---------------------------------------------------------------------


def test_the_reference_table_is_all() -> None:
    names = re.findall(r"`([A-Za-z_]\w*)`", "".join(_first_cells(_section("Reference"))))
    assert sorted(names) == sorted(unpod_async.__all__)
    assert len(names) == len(set(names))


def test_every_client_option_is_documented() -> None:
    params = [p for p in inspect.signature(UnpodClient.__init__).parameters if p != "self"]
    assert len(params) == 16
    doc = UnpodClient.__doc__ or ""
    table = _first_cells(_section("Client options"))
    documented = [re.sub(r"`(\w+)`.*", r"\1", cell.strip()) for cell in table]
    for name in params:
        assert f"``{name}``" in doc, f"UnpodClient's docstring does not cover {name}"
    assert documented == params


def test_the_exit_codes_are_the_commands() -> None:
    section = _section("Command line")
    rows = re.findall(r"^\| (\d+) \| ", section, flags=re.MULTILINE)
    assert [int(code) for code in rows] == [code for code, _ in _commands.EXIT_CODES]


def test_gitignore_covers_what_an_export_leaves_beside_its_output() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    for name in (".t.jsonl.123-abc.unpod-tmp", ".t.jsonl.unpod-partial", ".t.jsonl.unpod-resume",
                 ".t.jsonl.unpod-resume.tmp"):  # fmt: skip
        assert any(Path(name).match(pattern) for pattern in ignored), name


def test_the_install_forms() -> None:
    install = _section("Install")
    assert "pip install '.[cli,parquet]'" in install
    assert "Once it is published" in install
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install . && unpod-async demo" in (
        README
    )
    assert "pip install -e '.[test]' && pytest" in README


# --- the snippets -------------------------------------------------------------------------------

CONTEXT = {"client"}  # a snippet may continue the one before it: `client` is the client there


def _undefined(code: str) -> set[str]:
    """Names a snippet reads that nothing in it defines (nor builtins)."""
    try:
        ast.parse(code)
    except SyntaxError:  # top-level await: look at it as a coroutine's body
        code = "async def __snippet__():\n" + textwrap.indent(code, "    ")
    top = symtable.symtable(code, "snippet", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    known = defined | set(dir(builtins)) | CONTEXT
    missing: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for symbol in table.get_symbols():
            name = symbol.get_name()
            if not symbol.is_referenced() or name in known:
                continue
            if table is top or symbol.is_global():
                missing.add(name)
        for child in table.get_children():
            walk(child)

    walk(top)
    return missing


@pytest.mark.parametrize("index", range(len(_snippets())))
def test_snippets_define_what_they_use(index: int) -> None:
    assert _undefined(_snippets()[index]) == set()


def test_the_checker_finds_an_undefined_name() -> None:
    assert _undefined("def f():\n    return encoder.encode(1)\n") == {"encoder"}


async def test_the_fastapi_snippet_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    async with serve(tasks=321) as sim:
        monkeypatch.setenv("UNPOD_API_TOKEN", sim.token)
        monkeypatch.setenv("UNPOD_ORG_HANDLE", sim.org_handle)
        monkeypatch.setenv("UNPOD_BASE_URL", sim.base_url)
        module = types.ModuleType("readme_fastapi")
        sys.modules[module.__name__] = module  # FastAPI resolves the annotations through it
        try:
            exec(compile(_snippet("FastAPI(lifespan"), "README", "exec"), module.__dict__)
            app = module.app
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                    response = await http.get(f"/spaces/{sim.space_token}/tasks/export")
        finally:
            del sys.modules[module.__name__]
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert len(response.text.splitlines()) == 321


async def test_the_testing_snippet_runs_in_strict_mode(tmp_path: Path) -> None:
    import asyncio

    (tmp_path / "test_snippet.py").write_text(_snippet("def test_my_pipeline"))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    env = child_env()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    assert "1 passed" in out.decode()
