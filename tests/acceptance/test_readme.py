"""The README's snippets run as pasted. Each Python block starts with a comment naming its file:
files under ``trigger/`` are task modules of a project; the others are an app's scripts, run in
that project against a real ``hightide dev``."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.conftest import Dev, hightide, user_env
from tests.support import assert_eventually, wait_finished

README = Path(__file__).resolve().parents[2] / "README.md"
TIMEOUT = 60.0


def python_blocks() -> dict[str, str]:
    """File name (from the block's first line, ``# trigger/orders.py``) -> source."""
    blocks = {}
    for source in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S):
        first = source.splitlines()[0]
        match = re.fullmatch(r"# ([\w/]+\.py)", first.strip())
        assert match, f"a README Python block does not start with its file name: {first!r}"
        blocks[match.group(1)] = source
    return blocks


def test_every_readme_block_compiles_and_imports_names_that_exist() -> None:
    blocks = python_blocks()
    assert {"trigger/example.py", "trigger/orders.py", "app.py", "views.py"} <= set(blocks)
    for name, source in blocks.items():
        tree = ast.parse(source, filename=name)  # no top-level await: it runs as pasted
        compile(tree, name, "exec")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("trigger"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{name}: {node.module} has no {alias.name}"


def _script(root: Path, name: str, source: str, *argv: str) -> str:
    (root / name).write_text(source)
    done = subprocess.run(
        [sys.executable, name, *argv], cwd=root, env=user_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_readme_snippets_run_against_hightide_dev(project: Callable[..., Path], dev: Callable[..., Dev]) -> None:
    blocks = python_blocks()
    root = project({name: source for name, source in blocks.items() if name.startswith("trigger/")})
    running = dev(root)

    # The scripts, as pasted.
    assert "COMPLETED {'message': 'Hello, Ada!'}" in _script(root, "views.py", blocks["views.py"])
    out = _script(root, "trigger_and_poll.py", blocks["trigger_and_poll.py"])
    assert "COMPLETED {'message': 'Hello, Ada!'}" in out and "DELAYED" in out, out

    # The FastAPI app, called the way a browser would call it.
    caller = "from fastapi.testclient import TestClient\nfrom app import app\n"
    caller += "print(TestClient(app).post('/greet/Grace').json()['run_id'])\n"
    (root / "app.py").write_text(blocks["app.py"])
    run_id = _script(root, "call_app.py", caller).strip()
    assert wait_finished(running.client, run_id).output == {"message": "Hello, Grace!"}

    # The order workflow, driven from the shell as the README shows.
    payload = json.dumps({"order_id": "ord_42", "amount": 1999})
    order = hightide("trigger", "process-order", "--payload", payload, cwd=root).stdout.strip()

    def token_id() -> str:
        waits = running.client.runs.retrieve(order).waiting_for
        assert waits and waits[0]["kind"] == "TOKEN", waits
        return str(waits[0]["token_id"])

    token = assert_eventually(token_id, timeout=TIMEOUT, interval=0.2)
    assert token in hightide("runs", "get", order, cwd=root).stdout
    done = hightide("tokens", "complete", token, "--data", '{"approved": true, "by": "ada"}', cwd=root)
    assert done.returncode == 0, done.stderr
    run = wait_finished(running.client, order, timeout=TIMEOUT)
    assert run.status == "COMPLETED", run.error
    assert run.output == {"charge": {"order_id": "ord_42", "charged": 1999}, "approved_by": "ada"}
