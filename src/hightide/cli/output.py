"""How commands print: one line per run event, errors as one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from hightide.cli.render import format_attributes
from hightide.worker.events import EventSink, RunEvent

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_STATUS_STYLE = {
    "EXECUTING": "cyan",
    "COMPLETED": "green",
    "QUEUED": "yellow",  # another attempt is scheduled
    "FAILED": "red",
    "CRASHED": "red",
    "TIMED_OUT": "red",
    "SYSTEM_FAILURE": "red",
    "CANCELED": "magenta",
    "RELEASED": "yellow",  # handed back to the queue by a stopping worker, to continue elsewhere
    "WAITING": "blue",  # suspended: no process held until what it waits for resolves
}
_LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "red"}


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def _fields(event: RunEvent) -> tuple[str, str, str, str]:
    """(prefix, status or level, styled part's style, rest) of one event line."""
    prefix = f"{_clock(event.time)}  {event.task_id:<20} {event.run_id}  #{event.attempt}"
    if event.kind == "run":
        status = "RETRYING" if event.status == "QUEUED" else event.status
        duration = f"{event.duration * 1000:.0f}ms" if event.duration is not None else ""
        extra = f"  {event.message}" if event.message and event.message != "started" else ""
        return prefix, f"{status:<9}", _STATUS_STYLE.get(event.status, ""), f" {duration:>7}{extra}"
    return prefix, "", _LEVEL_STYLE.get(event.level, ""), event.message + format_attributes(event.attributes)


def print_event(event: RunEvent, run_url: Callable[[str], str] | None = None) -> None:
    """One line per event. Colours on a terminal; plain text (cheap, for logs) otherwise. With
    ``run_url`` (``hightide dev``), a run's line ends with the address of its dashboard page."""
    if event.kind == "error":
        err_console.print(f"[red]{escape(event.message)}[/]")
        return
    if event.kind not in ("run", "log"):
        line = f"{_clock(event.time)}  {event.message}"
        if console.is_terminal:
            console.print(escape(line), style="dim")
        else:
            sys.stdout.write(line + "\n")
        return
    prefix, label, style, rest = _fields(event)
    url = run_url(event.run_id) if run_url is not None and event.kind == "run" and event.run_id else ""
    if not console.is_terminal:
        tail = f"  {url}" if url else ""
        sys.stdout.write(f"{prefix}  {label}{rest}{tail}\n" if event.kind == "run" else f"{prefix}  {rest}\n")
        return
    text = Text(prefix, style="dim")
    text.append("  ")
    if event.kind == "run":
        text.append(label, style=style or None)
        text.append(rest, style="dim")
        if url:  # last and dim, so the status stays what the eye finds; a link where terminals allow
            text.append("  ")
            text.append(url, style=f"dim link {url}")
    else:
        text.append(rest, style=style or None)
    console.print(text)


def event_printer(run_url: Callable[[str], str] | None = None) -> EventSink:
    """``print_event`` with ``run_url`` bound: what a worker is given to print with."""

    def sink(event: RunEvent) -> None:
        print_event(event, run_url)

    return sink


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/] {escape(message)}")
    sys.exit(code)
