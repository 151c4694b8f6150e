"""How runs, logs, traces and tokens read in a terminal. Ids are printed whole, always: they are
what a user copies into the next command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from hightide.core.ratelimits import RateLimit

_STATUS_STYLE = {
    "COMPLETED": "green",
    "EXECUTING": "cyan",
    "WAITING": "blue",
    "QUEUED": "yellow",
    "DELAYED": "yellow",
    "CANCELED": "magenta",
}
_FAILED = {"FAILED", "CRASHED", "TIMED_OUT", "SYSTEM_FAILURE", "EXPIRED"}


def _status(value: str) -> str:
    style = "red" if value in _FAILED else _STATUS_STYLE.get(value, "")
    return f"[{style}]{value}[/]" if style else value


def _when(value: str | None, with_date: bool = True) -> str:
    """Local time; ``with_date=False`` leaves the date out when it is today."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone()
    today = moment.date() == datetime.now().astimezone().date()
    return moment.strftime("%H:%M:%S" if today and not with_date else "%Y-%m-%d %H:%M:%S")


def _in(value: str | None) -> str:
    """' (in 4m 10s)' until a time in the future, '' once it passed."""
    if not value:
        return ""
    left = (datetime.fromisoformat(value.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()
    if left <= 0:
        return ""
    minutes, seconds = divmod(int(left), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes or hours else []
    return f" (in {' '.join([*parts, f'{seconds}s'])})"


def _id_table(ids: list[str], *headers: str, first: str = "id") -> Table:
    """A table whose first column holds ids (or names) that are never cut: the other columns wrap or shorten."""
    width = max([len(i) for i in ids] + [2])
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column(first, no_wrap=True, min_width=width)
    for header in headers:
        if header in ("task", "tags"):
            table.add_column(header, overflow="ellipsis")
        else:
            table.add_column(header, no_wrap=header in ("status", "created"), overflow="fold")
    return table


def _print_rows(
    console: Console,
    ids: list[str],
    headers: tuple[str, ...],
    rows: list[list[str]],
    first: str = "id",
    room: int = 50,
) -> None:
    """A table, or one line per item where the terminal has fewer than ``room`` columns beside the ids."""
    width = max([len(i) for i in ids] + [2])
    if console.width < width + room:  # too narrow for a table that keeps ids whole: one line per item
        for row in rows:
            console.print(f"{escape(row[0])}  " + "  ".join(cell for cell in row[1:] if cell), soft_wrap=True)
        return
    table = _id_table(ids, *headers, first=first)
    for row in rows:
        table.add_row(*row)
    console.print(table, soft_wrap=False)


def print_runs(console: Console, runs: list[dict[str, Any]]) -> None:
    headers = ("task", "status", "tries", "created", "finished")
    rows = [
        [
            run["id"],
            escape(run["task_id"]),
            _status(run["status"]),
            str(run.get("attempt_count", 0)),
            _when(run.get("created_at"), with_date=False),
            _when(run.get("finished_at"), with_date=False),
        ]
        for run in runs
    ]
    if not rows:
        console.print("[dim]no runs[/]")
        return
    _print_rows(console, [r["id"] for r in runs], headers, rows)


def print_tokens(console: Console, tokens: list[dict[str, Any]]) -> None:
    headers = ("status", "created", "times out", "tags")
    rows = [
        [
            token["id"],
            _status(token["status"]),
            _when(token.get("created_at"), with_date=False),
            _when(token.get("timeout_at"), with_date=False),
            escape(", ".join(token.get("tags") or [])),
        ]
        for token in tokens
    ]
    if not rows:
        console.print("[dim]no tokens[/]")
        return
    _print_rows(console, [t["id"] for t in tokens], headers, rows)


def queue_limit(queue: dict[str, Any]) -> str:
    """The limit in effect, saying when it is a user's override of the declared one."""
    limit = queue["concurrency_limit"]
    shown = "none" if limit is None else f"{limit:,}"
    if queue.get("concurrency_limit_override") is None:
        return shown
    declared = queue.get("declared_concurrency_limit")
    return f"{shown} (override; declared {'none' if declared is None else f'{declared:,}'})"


def queue_rate(queue: dict[str, Any]) -> str:
    rate = queue.get("rate_limit")
    if rate is None:
        return "none"
    return RateLimit.from_dict(rate).describe()


def print_queues(console: Console, queues: list[dict[str, Any]]) -> None:
    headers = ("state", "executing", "queued", "limit", "rate", "tasks")
    rows = [
        [
            escape(q["name"]),
            "[yellow]paused[/]" if q["paused"] else "[green]running[/]",
            f"{q['executing']:,}",
            f"{q['queued']:,}",
            queue_limit(q),
            queue_rate(q),
            escape(", ".join(q.get("tasks") or [])),
        ]
        for q in queues
    ]
    if not rows:
        console.print("[dim]no queues: they appear once a worker registers its tasks[/]")
        return
    _print_rows(console, [q["name"] for q in queues], headers, rows, first="queue")


def print_schedules(console: Console, schedules: list[dict[str, Any]]) -> None:
    headers = ("task", "cron", "timezone", "kind", "state", "next run", "external id")
    rows = [
        [
            escape(s["id"]),
            escape(s["task"]),
            escape(s["cron"]),
            escape(s["timezone"]),
            s["kind"],
            "[green]active[/]" if s["active"] else "[yellow]inactive[/]",
            _when(s.get("next_run_at")),
            escape(s.get("external_id") or ""),
        ]
        for s in schedules
    ]
    if not rows:
        console.print("[dim]no schedules: declare one with @schedules.task(cron=...) or `hightide schedules create`[/]")
        return
    _print_rows(console, [s["id"] for s in schedules], headers, rows)


def _short_json(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return escape(text if len(text) <= limit else text[: limit - 3] + "...")


def waiting_lines(waits: list[dict[str, Any]]) -> list[str]:
    """One line per thing a WAITING run waits for, each saying how to end the wait."""
    lines = []
    for wait in waits:
        if wait["kind"] == "TOKEN":
            timeout = f" (times out {_when(wait.get('timeout_at'))})" if wait.get("timeout_at") else ""
            lines.append(f"token {wait['token_id']}{timeout}")
            lines.append(
                f"  complete it: `hightide tokens complete {wait['token_id']} --data JSON`, "
                f"or POST JSON to {wait.get('url')}"
            )
        elif wait["kind"] == "RUN":
            lines.append(f"child run {wait['run_id']} to finish (`hightide runs get {wait['run_id']}`)")
        elif wait["kind"] == "DURATION":
            lines.append(f"a time: {_when(wait.get('resume_at'))}{_in(wait.get('resume_at'))}")
        else:
            lines.append(f"{wait['kind'].lower()} {wait.get('waitpoint_id')}")
    return lines


def print_run(console: Console, run: dict[str, Any]) -> None:
    """A run in a few lines: what it is, where it stands, and what it waits for if it is WAITING."""
    console.print(f"[bold]{run['id']}[/]  {escape(run['task_id'])}  {_status(run['status'])}", soft_wrap=True)
    fields: list[tuple[str, str]] = [
        ("attempts", f"{run.get('attempt_count', 0)} of {run.get('max_attempts', '?')}"),
        ("created", _when(run.get("created_at"))),
        ("started", _when(run.get("started_at"))),
        ("finished", _when(run.get("finished_at"))),
        ("delayed until", _when(run.get("delay_until")) + _in(run.get("delay_until"))),
        ("version", run.get("version") or ""),
        ("queue", run.get("queue") or ""),
        ("machine", run.get("machine") or ""),
        ("tags", ", ".join(run.get("tags") or [])),
        ("idempotency key", run.get("idempotency_key") or ""),
        ("parent", run.get("parent_run_id") or ""),
        ("trace", run.get("trace_id") or ""),
        ("payload", _short_json(run.get("payload"))),
    ]
    if run.get("output") is not None:
        fields.append(("output", _short_json(run["output"])))
    if run.get("metadata"):
        fields.append(("metadata", _short_json(run["metadata"])))
    error = run.get("error")
    if error:
        fields.append(("error", escape(f"{error.get('name', 'Error')}: {error.get('message', '')}")))
    for name, value in fields:
        if value:
            console.print(f"  [dim]{name:<16}[/]{value}", soft_wrap=True)
    waits = run.get("waiting_for") or []
    if waits:
        console.print("  [blue]waiting for[/]", soft_wrap=True)
        for line in waiting_lines(waits):
            console.print(f"    {escape(line)}", soft_wrap=True)


def format_attributes(attributes: dict[str, Any]) -> str:
    """``  key=value`` for each attribute of a log record, values as JSON (strings quoted)."""
    return "".join(f"  {k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in attributes.items())


def log_line(entry: dict[str, Any]) -> str:
    """``time  #attempt  level  message  key=value ...``."""
    extra = format_attributes(entry.get("attributes") or {})
    when = _when(entry.get("time"), with_date=False)
    return f"{when}  #{entry.get('attempt', 0)}  {entry.get('level', 'info'):<5}  {entry.get('message', '')}{extra}"


def trace_tree(trace: dict[str, Any]) -> Tree:
    """The trace's spans nested by parent, each with its duration ("running" while open)."""
    spans = trace.get("spans") or []
    known = {span["span_id"] for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_span_id") if span.get("parent_span_id") in known else None
        children.setdefault(parent, []).append(span)
    root = Tree(
        f"[bold]trace {trace.get('trace_id', '')}[/]" + ("  [yellow](truncated)[/]" if trace.get("truncated") else "")
    )

    def label(span: dict[str, Any]) -> str:
        duration = span.get("duration_ms")
        took = "running" if duration is None else _duration(duration)
        kind = span.get("kind") or ""
        text = f"{escape(span['name'])}  [dim]{kind}[/]  {took}"
        if kind == "run":
            status = (span.get("attributes") or {}).get("hightide.run.status", "")
            text += f"  {span.get('run_id')}  {_status(status)}"
        elif span.get("status") == "ERROR":
            text += "  [red]ERROR[/]"
        return text

    def add(node: Tree, parent: str | None, seen: set[str]) -> None:
        for span in children.get(parent, []):
            if span["span_id"] in seen:  # a cycle in malformed data must not loop for ever
                continue
            seen.add(span["span_id"])
            add(node.add(label(span)), span["span_id"], seen)

    add(root, None, set())
    return root


def _duration(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m {seconds}s"


def print_alerts(console: Console, alerts: list[dict[str, Any]]) -> None:
    headers = ("url", "events", "state", "description")
    rows = [
        [
            escape(a["id"]),
            escape(a["url"]),
            escape(", ".join(a["events"])),
            "[green]enabled[/]" if a["enabled"] else "[yellow]disabled[/]",
            escape(a.get("description") or ""),
        ]
        for a in alerts
    ]
    if not rows:
        console.print("[dim]no alerts: `hightide alerts create --url https://... --event run.failed`[/]")
        return
    _print_rows(console, [a["id"] for a in alerts], headers, rows)


def last_try(delivery: dict[str, Any]) -> str:
    """How a delivery's last try went: ``200``, ``HTTP 500: ...``, ``ConnectError: ...``."""
    if not delivery.get("log"):
        return ""
    last = delivery["log"][-1]
    return last["error"] or str(last["status_code"])


def print_deliveries(console: Console, deliveries: list[dict[str, Any]]) -> None:
    style = {"DELIVERED": "green", "PENDING": "yellow", "FAILED": "red"}
    headers = ("event", "run", "status", "tries", "created", "last try", "next try")
    rows = [
        [
            escape(d["id"]),
            escape(d["event"]),
            escape(d.get("run_id") or ""),
            f"[{style.get(d['status'], '')}]{d['status']}[/]",
            str(d["tries"]),
            _when(d.get("created_at"), with_date=False),
            escape(last_try(d)[:80]),
            _when(d.get("next_try_at"), with_date=False) + _in(d.get("next_try_at")),
        ]
        for d in deliveries
    ]
    if not rows:
        console.print(
            "[dim]no deliveries yet: a run that fails for good makes one (`hightide alerts test ID` sends one now)[/]"
        )
        return
    _print_rows(console, [d["id"] for d in deliveries], headers, rows, room=110)
