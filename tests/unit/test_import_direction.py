"""The direction of imports (STYLE.md): cli → server | worker → engine | sdk → store → core.

The worker and the SDK never import the engine or the store; importing ``hightide`` never imports
the server; ``core`` does no I/O.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "hightide"

# layer -> the hightide layers it must not import
FORBIDDEN = {
    "core": {"store", "engine", "server", "sdk", "worker", "cli"},
    "store": {"engine", "server", "sdk", "worker", "cli"},
    "engine": {"server", "sdk", "worker", "cli"},
    "sdk": {"store", "engine", "server", "worker", "cli"},
    "worker": {"store", "engine", "server", "cli"},
    "server": {"sdk", "worker", "cli"},
}
TOP_LEVEL = {"types", "errors", "config"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_respects_the_direction(layer: str) -> None:
    offences = []
    for path in (SRC / layer).rglob("*.py"):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "hightide" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                offences.append(f"{path.relative_to(SRC)} imports {module}")
    assert not offences, "\n".join(offences)


def test_shared_modules_import_no_layer() -> None:
    for name in TOP_LEVEL:
        for module in _imports(SRC / f"{name}.py"):
            parts = module.split(".")
            assert not (parts[0] == "hightide" and len(parts) > 1 and parts[1] not in TOP_LEVEL), (
                f"{name}.py imports {module}"
            )


def test_core_does_no_io() -> None:
    for path in (SRC / "core").rglob("*.py"):
        mods = _imports(path)
        assert not mods & {"time", "os", "socket", "sqlalchemy", "httpx", "asyncio"}, path.name


def test_importing_hightide_does_not_import_the_server() -> None:
    code = "import sys, hightide; bad = [m for m in sys.modules if m.startswith(('hightide.server', 'hightide.engine', 'hightide.store', 'fastapi', 'sqlalchemy'))]; print(bad); sys.exit(1 if bad else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_server_and_the_commands_start_without_the_sdk() -> None:
    code = "import sys, hightide.server.app, hightide.errors; bad = [m for m in sys.modules if m.startswith('hightide.sdk')]; print(bad); sys.exit(1 if bad else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_public_name_loads_from_where_type_checkers_see_it() -> None:
    import hightide

    tree = ast.parse((SRC / "__init__.py").read_text())
    (block,) = [node for node in tree.body if isinstance(node, ast.If)]  # if TYPE_CHECKING:
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == hightide._MODULE_OF
    assert sorted(seen) == sorted(hightide.__all__)
    eager: dict[str, object] = {}  # the same imports, run for real
    exec(compile(ast.Module(body=block.body, type_ignores=[]), "hightide/__init__.py", "exec"), eager)
    for name in hightide.__all__:
        assert getattr(hightide, name) is eager[name], name  # e.g. the object ``locals``, not its module
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = hightide.nothing_here  # type: ignore[attr-defined]
