"""How commands print: one line per run event, errors as one line."""

from __future__ import annotations

import sys
from datetime import datetime

from rich.console import Console
from rich.markup import escape

from hightide.worker.supervisor import RunEvent

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
}
_LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "red"}


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def print_event(event: RunEvent) -> None:
    when = _clock(event.time)
    if event.kind == "run":
        status = "RETRYING" if event.status == "QUEUED" else event.status
        style = _STATUS_STYLE.get(event.status, "")
        duration = f"{event.duration * 1000:.0f}ms" if event.duration is not None else ""
        extra = f"  [dim]{escape(event.message)}[/]" if event.message and event.message != "started" else ""
        # An unstyled status (DISCARDED, WAITING...) must not become "[]...[/]": rich rejects that markup.
        shown = f"[{style}]{status:<9}[/]" if style else escape(f"{status:<9}")
        console.print(
            f"[dim]{when}[/]  {escape(event.task_id):<20} {event.run_id}  #{event.attempt}  {shown} {duration:>7}{extra}"
        )
    elif event.kind == "log":
        style = _LEVEL_STYLE.get(event.level, "")
        text = escape(event.message)
        console.print(
            f"[dim]{when}  {escape(event.task_id):<20} {event.run_id}  #{event.attempt}[/]  "
            + (f"[{style}]{text}[/]" if style else text)
        )
    elif event.kind == "error":
        err_console.print(f"[red]{escape(event.message)}[/]")
    else:
        console.print(f"[dim]{when}[/]  {escape(event.message)}")


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/] {escape(message)}")
    sys.exit(code)
