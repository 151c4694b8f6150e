"""How ``hightide dev`` and ``hightide worker`` print run events: one line each, and under dev a
run's line ends with its dashboard page."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hightide.cli import output
from hightide.cli.dev import run_page_url
from hightide.worker.events import RunEvent

RUN = "run_01jd8x3v5m7k9q2w4e6r8t0y1u"
URL = f"http://127.0.0.1:3030/projects/default/env/dev/runs/{RUN}"


def page(run_id: str) -> str:
    return run_page_url("http://127.0.0.1:3030/", "default", "dev", run_id)


def test_the_run_page_url() -> None:
    assert page(RUN) == URL


def test_a_runs_lines_end_with_its_page_and_its_logs_do_not(capsys: pytest.CaptureFixture[str]) -> None:
    printer = output.event_printer(page)
    printer(RunEvent("run", "send-invoice", RUN, 1, "EXECUTING", None, "started", time=0))
    printer(RunEvent("run", "send-invoice", RUN, 1, "FAILED", 0.0123, "ValueError: card declined", time=0))
    printer(RunEvent("log", "send-invoice", RUN, 1, message="charging", time=0))
    printer(RunEvent("version", message="version 20261201.1 registered (2 tasks)", time=0))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"{RUN}  #1  EXECUTING          {URL}")
    assert lines[1].endswith(f"{RUN}  #1  FAILED       12ms  ValueError: card declined  {URL}")
    assert lines[2].endswith(f"{RUN}  #1  charging") and URL not in lines[2]
    assert lines[3].endswith("version 20261201.1 registered (2 tasks)")


def test_without_a_run_url_the_lines_are_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    output.print_event(RunEvent("run", "send-invoice", RUN, 2, "COMPLETED", 0.5, time=0))
    assert capsys.readouterr().out.endswith(f"{RUN}  #2  COMPLETED   500ms\n")


def test_on_a_terminal_the_url_is_a_dim_link_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, color_system="standard", width=300, highlight=False)
    monkeypatch.setattr(output, "console", terminal)
    output.print_event(RunEvent("run", "send-invoice", RUN, 1, "COMPLETED", 0.5, time=0), page)
    shown = screen.getvalue()
    assert "\x1b]8;id=" in shown and URL in shown  # an OSC 8 hyperlink
    assert f"\x1b[2m{URL}\x1b[0m\x1b]8;;\x1b\\\n" in shown  # dim, and the last thing on the line
    assert shown.index("COMPLETED") < shown.index(URL)
