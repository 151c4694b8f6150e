"""Import a project's task modules (the folders named by ``dirs`` in hightide.config.py)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from hightide.config import ProjectConfig
from hightide.errors import ConfigError
from hightide.sdk.task import registry

INIT_FILE = "init.py"
"""``trigger/init.py`` (in each task folder): imported before the folder's other modules, so the
global hooks and middleware it registers (``tasks.on_failure(...)``) are there for every task."""


def task_files(root: Path, dirs: tuple[str, ...]) -> list[Path]:
    """The modules to import, each task folder's ``init.py`` first."""
    inits: list[Path] = []
    files: list[Path] = []
    for folder in dirs:
        base = (root / folder).resolve()
        if not base.is_dir():
            raise ConfigError(f"task folder {folder!r} (from `dirs` in hightide.config.py) does not exist in {root}")
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            (inits if path.parent == base and path.name == INIT_FILE else files).append(path)
    return inits + files


def module_name(root: Path, path: Path) -> str:
    rel = path.resolve().relative_to(root.resolve()).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def load_tasks(config: ProjectConfig, dev: bool = False) -> dict[str, Any]:
    """Import every module under the task folders; return the manifest of the tasks they define."""
    root = config.root or Path.cwd()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    for path in task_files(root, config.dirs):
        importlib.import_module(module_name(root, path))
    if not registry:
        raise ConfigError(f"no tasks found under {', '.join(config.dirs)} in {root}; define one with @task(id=...)")
    default_retry = dict(config.retries.get("default") or {})
    # `retries={"enabled_in_dev": False}`: under `hightide dev`, one attempt for every task, its own
    # retry policy included.
    retries_enabled = not dev or bool(config.retries.get("enabled_in_dev", True))
    return {"tasks": [t.manifest(default_retry, config.max_duration, retries_enabled) for t in registry.values()]}
