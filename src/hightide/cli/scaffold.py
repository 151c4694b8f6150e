"""``hightide init``: write the starter files of a project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from hightide.errors import ConfigError

FILES = {"hightide.config.py": "hightide.config.py", "trigger/example.py": "example.py"}


def scaffold(root: Path, force: bool) -> list[str]:
    """Create the files; refuse (naming them) to overwrite any unless ``force``."""
    root = root.resolve()
    existing = [rel for rel in FILES if (root / rel).exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist in {root}; pass --force to overwrite")
    templates = resources.files("hightide.cli") / "templates"
    lines = []
    for rel, template in FILES.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(templates.joinpath(template).read_text())
        lines.append(f"created {target}")
    gitignore = root / ".gitignore"
    current = gitignore.read_text() if gitignore.exists() else ""
    if ".hightide/" not in current.splitlines():
        gitignore.write_text(current + ("" if current.endswith("\n") or not current else "\n") + ".hightide/\n")
        lines.append(f"added .hightide/ to {gitignore}")
    lines.append(
        "next: run `hightide dev`, then, in another shell in this folder: "
        """`hightide trigger hello-world --payload '{"name": "Ada"}' --wait`"""
    )
    return lines
