"""The one place that reads ``HIGHTIDE_*`` variables, ``.hightide/dev.env`` and ``hightide.config.py``.

Precedence everywhere: explicit argument > ``HIGHTIDE_*`` environment variable > project file > default.
"""

from __future__ import annotations

import os
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hightide.errors import ConfigError

CONFIG_FILE = "hightide.config.py"
STATE_DIR = ".hightide"
DEV_ENV_FILE = "dev.env"
DEFAULT_PORT = 3030
DEFAULT_MAX_PAYLOAD_BYTES = 3 * 1024 * 1024


def env(name: str, default: str | None = None) -> str | None:
    """``HIGHTIDE_<name>`` from the environment, or ``default``."""
    return os.environ.get(f"HIGHTIDE_{name}", default)


def env_float(name: str, default: float) -> float:
    raw = env(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"HIGHTIDE_{name}={raw!r} is not a number") from exc


@dataclass(frozen=True)
class ProjectConfig:
    """What ``define_config`` returns; see SPEC §2 "Configuration"."""

    project: str | None = None
    dirs: tuple[str, ...] = ("trigger",)
    retries: dict[str, Any] = field(default_factory=lambda: {"enabled_in_dev": True, "default": {"max_attempts": 3}})
    max_duration: float | None = 3600
    checkpoint_threshold: float = 5
    build: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None


def define_config(
    *,
    project: str | None = None,
    dirs: list[str] | tuple[str, ...] = ("trigger",),
    retries: dict[str, Any] | None = None,
    max_duration: float | None = 3600,
    checkpoint_threshold: float = 5,
    build: dict[str, Any] | None = None,
    telemetry: dict[str, Any] | None = None,
) -> ProjectConfig:
    """Declare the project's configuration in ``hightide.config.py``.

    >>> config = define_config(dirs=["trigger"], max_duration=600)
    """
    if isinstance(dirs, str):
        raise ConfigError("define_config: dirs must be a list of folders, e.g. dirs=['trigger']")
    merged_retries = {"enabled_in_dev": True, "default": {"max_attempts": 3}}
    merged_retries.update(retries or {})
    return ProjectConfig(
        project=project,
        dirs=tuple(dirs),
        retries=merged_retries,
        max_duration=max_duration,
        checkpoint_threshold=checkpoint_threshold,
        build=dict(build or {}),
        telemetry=dict(telemetry or {}),
    )


def checkpoint_threshold(config: ProjectConfig) -> float:
    """Seconds: shorter waits sleep in place, longer ones suspend the run."""
    value = env_float("CHECKPOINT_THRESHOLD", float(config.checkpoint_threshold))
    if value < 0:
        raise ConfigError(f"checkpoint_threshold must be >= 0 seconds (got {value:g})")
    return value


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` holding ``hightide.config.py``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def load_project_config(root: Path | None = None) -> ProjectConfig:
    """Load ``hightide.config.py`` from ``root`` (or the nearest one above the working directory)."""
    found = root if root is not None else find_project_root()
    if found is None or not (found / CONFIG_FILE).is_file():
        raise ConfigError(f"no {CONFIG_FILE} found in {Path.cwd()} or any folder above it; run `hightide init` first")
    try:
        namespace = runpy.run_path(str(found / CONFIG_FILE))
    except Exception as exc:
        raise ConfigError(f"{found / CONFIG_FILE} failed to load: {type(exc).__name__}: {exc}") from exc
    config = namespace.get("config")
    if not isinstance(config, ProjectConfig):
        raise ConfigError(f"{found / CONFIG_FILE} must set `config = define_config(...)`")
    return ProjectConfig(**{**config.__dict__, "root": found})


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def find_dev_env(start: Path | None = None) -> Path | None:
    """``.hightide/dev.env`` in ``start`` or the nearest folder above it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / STATE_DIR / DEV_ENV_FILE
        if candidate.is_file():
            return candidate
    return None


DEV_DATABASE_FILE = "dev.db"


def dev_database(root: Path, explicit: str | None = None) -> tuple[str, str]:
    """The database of ``hightide dev`` and where that choice came from: ``--database-url`` or
    ``HIGHTIDE_DEV_DATABASE_URL``, else SQLite under ``.hightide/``. ``HIGHTIDE_DATABASE_URL`` is
    the server's: an exported production URL must never become the dev database by accident."""
    if explicit:
        return explicit, "--database-url / HIGHTIDE_DEV_DATABASE_URL"
    from_env = env("DEV_DATABASE_URL")
    if from_env:
        return from_env, "HIGHTIDE_DEV_DATABASE_URL"
    return str(root / STATE_DIR / DEV_DATABASE_FILE), "default"


@dataclass(frozen=True)
class ClientSettings:
    api_url: str
    secret_key: str


def client_settings(api_url: str | None = None, secret_key: str | None = None) -> ClientSettings:
    """Where the SDK talks to: arguments, then ``HIGHTIDE_API_URL``/``HIGHTIDE_SECRET_KEY``, then the
    ``.hightide/dev.env`` written by ``hightide dev`` in this folder or above."""
    url = api_url or env("API_URL")
    key = secret_key or env("SECRET_KEY")
    if not (url and key):
        dev_env = find_dev_env()
        if dev_env is not None:
            values = read_env_file(dev_env)
            url = url or values.get("HIGHTIDE_API_URL")
            key = key or values.get("HIGHTIDE_SECRET_KEY")
    if not key:
        raise ConfigError(
            "no secret key: set HIGHTIDE_SECRET_KEY, call hightide.configure(secret_key=...), "
            "or run `hightide dev` in this project so that .hightide/dev.env exists"
        )
    return ClientSettings(api_url=(url or f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/"), secret_key=key)
