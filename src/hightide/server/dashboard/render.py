"""Server-rendered pages: the Jinja2 environment, the static files' versioned URLs, and the few
filters the templates use (times, durations)."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hightide.core.machines import preset

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_URL = "/static"


@cache
def static_version(name: str) -> str:
    """A short hash of the file: its URL changes when it does, so it may be cached for a year."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"{STATIC_URL}/{name}?v={static_version(name)}"


def moment(ts: float) -> datetime:
    """``ts`` as a UTC date-time, clamped to the dates that exist: a row stored before the API's
    limits, or by hand, must not break a page (as ``serialize.iso`` for the API)."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return (datetime.max if ts > 0 else datetime.min).replace(tzinfo=UTC)


def when(ts: float | None) -> str:
    """``2026-12-01 19:40:12`` (UTC)."""
    if ts is None:
        return ""
    return moment(ts).strftime("%Y-%m-%d %H:%M:%S")


def iso(ts: float | None) -> str:
    return "" if ts is None else moment(ts).isoformat(timespec="seconds")


def ago(ts: float | None, now: float | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``."""
    if ts is None:
        return ""
    seconds = max(0.0, (now if now is not None else time.time()) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def duration(start: float | None, end: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m 05s``, ``2h 10m``; empty when it has not started."""
    if start is None:
        return ""
    seconds = max(0.0, (end if end is not None else time.time()) - start)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


def status_label(status: str) -> str:
    """``TIMED_OUT`` → ``Timed out``."""
    return status.replace("_", " ").capitalize()


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.filters.update(when=when, iso=iso, ago=ago, status_label=status_label)
    env.globals["duration"] = duration
    env.globals["machine"] = preset
    return env


TEMPLATES = _environment()


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template ``name`` as a page; the context has ``request`` and what the caller passes."""
    html = TEMPLATES.get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)
