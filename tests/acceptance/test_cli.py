"""The shell side of Hightide as a new user meets it: the command `hightide init` prints, `trigger`
payloads from a file or a pipe, `runs list|get|logs|trace`, `tokens list|complete`, `queues ...`, `--json`,
one `hightide dev` per project on its own database, and `hightide server --concurrency-limit`."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

from hightide import Client
from tests.acceptance.conftest import Background, Dev, Server, hightide
from tests.support import assert_eventually, free_port, wait_finished

TIMEOUT = 30.0

APPROVAL = """
    from hightide import logger, task, wait


    @task(id="approve")
    async def approve(payload: dict) -> dict:
        token = await wait.create_token(timeout="10m", tags=["approval"])
        logger.info("waiting for approval", url=token.url, order=payload.get("order"))
        result = await wait.for_token(token)
        return {"approved": result.output}
"""

NAP = """
    import asyncio

    from hightide import task


    @task(id="nap")
    async def nap(payload: dict) -> str:
        await asyncio.sleep(1.5)
        return "rested"
"""


def _ok(done) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr
    return str(done.stdout)


def _one_line_error(done, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(lines[0])


def test_the_command_init_prints_works_and_payloads_come_from_json_a_file_or_stdin(
    tmp_path: Path, project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project()
    printed = hightide("init", str(tmp_path / "other"), cwd=tmp_path).stdout
    command = re.search(r"`(hightide trigger [^`]+)`", printed)
    assert command, printed
    running = dev(root)

    # The command exactly as `hightide init` prints it (it waits and shows the finished run).
    out = _ok(hightide(*shlex.split(command.group(1))[1:], cwd=root))
    assert "COMPLETED" in out and "Hello, Ada!" in out, out

    # No payload at all: the example task gets {} and greets the world.
    run_id = _ok(hightide("trigger", "hello-world", cwd=root)).strip()
    assert wait_finished(running.client, run_id).output == {"message": "Hello, world!"}

    (root / "payload.json").write_text('{"name": "File"}')
    from_file = _ok(hightide("trigger", "hello-world", "--payload", "@payload.json", cwd=root)).strip()
    from_stdin = _ok(hightide("trigger", "hello-world", "--payload", "-", cwd=root, stdin='{"name": "Pipe"}')).strip()
    assert wait_finished(running.client, from_file).output == {"message": "Hello, File!"}
    assert wait_finished(running.client, from_stdin).output == {"message": "Hello, Pipe!"}

    _one_line_error(
        hightide("trigger", "hello-world", "--payload", "@missing.json", cwd=root), "missing.json", "no such file"
    )
    _one_line_error(
        hightide("trigger", "hello-world", "--payload", "-", cwd=root, stdin="{oops"), "not valid JSON", "stdin"
    )
    (root / "bad.json").write_text("[1,")
    _one_line_error(
        hightide("trigger", "hello-world", "--payload", "@bad.json", cwd=root), "not valid JSON", "bad.json"
    )

    # Whole ids in a narrow terminal, and --json with the API's own fields.
    listed = _ok(hightide("runs", "list", cwd=root, env={"COLUMNS": "80"}))
    api_runs = [run.raw for run in running.client.runs.list()]
    assert len(api_runs) == 4
    for run in api_runs:
        assert run["id"] in listed, listed
    assert all(len(line) <= 80 for line in listed.splitlines()), listed
    as_json = json.loads(_ok(hightide("runs", "list", "--json", cwd=root, env={"COLUMNS": "80"})))
    assert [r["id"] for r in as_json] == [r["id"] for r in api_runs]
    assert set(as_json[0]) == set(api_runs[0])
    # A status in the case a person types it.
    completed = json.loads(_ok(hightide("runs", "list", "--status", "completed", "--json", cwd=root)))
    assert completed, api_runs
    assert sorted(r["id"] for r in completed) == sorted(r["id"] for r in api_runs if r["status"] == "COMPLETED")
    _one_line_error(hightide("runs", "list", "--status", "done", cwd=root), "unknown status", "COMPLETED")
    got = json.loads(_ok(hightide("runs", "get", run_id, "--json", cwd=root)))
    assert got["id"] == run_id and got["output"] == {"message": "Hello, world!"}
    assert set(got) == set(running.client.runs.retrieve(run_id).raw)

    # A run that has logged nothing yet says so (and --json prints no records).
    delayed = _ok(hightide("trigger", "hello-world", "--delay", "1h", cwd=root)).strip()
    assert _ok(hightide("runs", "logs", delayed, cwd=root)).strip() == "no logs"
    assert _ok(hightide("runs", "logs", delayed, "--json", cwd=root)) == ""


def test_a_waiting_run_names_its_token_which_the_shell_lists_and_completes(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project({"trigger/approve.py": APPROVAL})
    running = dev(root)
    run_id = _ok(hightide("trigger", "approve", "--payload", '{"order": 42}', cwd=root)).strip()

    def waiting() -> str:
        out = _ok(hightide("runs", "get", run_id, cwd=root))
        assert "WAITING" in out and "waiting for" in out, out
        return out

    shown = assert_eventually(waiting, timeout=TIMEOUT, interval=0.2)
    [token] = list(running.client.waitpoints.list_tokens())
    assert f"token {token.id}" in shown and token.url in shown, shown
    assert f"hightide tokens complete {token.id}" in shown
    assert running.client.runs.retrieve(run_id).waiting_for[0]["url"] == token.url

    # The dev console shows the log line with its attributes (the URL to complete the token).
    running.proc.wait_for_output(f'url="{token.url}"', timeout=TIMEOUT)
    assert "order=42" in running.output()

    listed = _ok(hightide("tokens", "list", cwd=root, env={"COLUMNS": "80"}))
    assert token.id in listed and "WAITING" in listed, listed
    tokens = json.loads(_ok(hightide("tokens", "list", "--json", "--status", "waiting", cwd=root)))
    assert [t["id"] for t in tokens] == [token.id] and tokens[0]["url"] == token.url

    (root / "answer.json").write_text('{"approved_by": "ada"}')
    _ok(hightide("tokens", "complete", token.id, "--data", "@answer.json", cwd=root))
    run = wait_finished(running.client, run_id)
    assert run.status == "COMPLETED" and run.output == {"approved": {"approved_by": "ada"}}
    assert run.waiting_for == []

    logs = _ok(hightide("runs", "logs", run_id, cwd=root))
    assert "waiting for approval" in logs and f'url="{token.url}"' in logs, logs
    followed = _ok(hightide("runs", "logs", run_id, "--follow", "--json", cwd=root))  # returns: it finished
    records = [json.loads(line) for line in followed.splitlines()]  # one JSON record per line
    assert "waiting for approval" in [r["message"] for r in records]
    assert records[0]["attributes"]["url"] == token.url

    trace = _ok(hightide("runs", "trace", run_id, cwd=root))
    assert run_id in trace and "attempt 1" in trace and "wait.for_token" in trace, trace
    assert "└──" in trace
    tree = json.loads(_ok(hightide("runs", "trace", run_id, "--json", cwd=root)))
    assert any(span["kind"] == "run" and span["run_id"] == run_id for span in tree["spans"])


def test_a_second_dev_is_refused_and_dev_never_uses_the_server_database(
    tmp_path: Path, project: Callable[..., Path], dev: Callable[..., Dev], background: Callable[..., Background]
) -> None:
    root = project()
    production = tmp_path / "production.db"
    first = dev(root, env={"HIGHTIDE_DATABASE_URL": str(production)})
    assert not production.exists()  # the server's variable did not become the dev database
    assert str(root / ".hightide" / "dev.db") in first.output()
    assert "HIGHTIDE_DATABASE_URL is set and not used" in first.output()
    dev_env = (root / ".hightide" / "dev.env").read_text()

    second = hightide("dev", "--port", str(free_port()), cwd=root)
    line = _one_line_error(second, "already running", f"pid {first.proc.pid}", first.api_url)
    assert "Traceback" not in line
    assert (root / ".hightide" / "dev.env").read_text() == dev_env  # untouched by the refused one

    # A dev killed with SIGKILL leaves no stale lock: the next one starts.
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    own_db = tmp_path / "elsewhere.db"
    again = dev(root, env={"HIGHTIDE_DEV_DATABASE_URL": str(own_db)})
    assert own_db.exists() and "HIGHTIDE_DEV_DATABASE_URL" in again.output()
    run_id = _ok(hightide("trigger", "hello-world", cwd=root)).strip()
    assert wait_finished(again.client, run_id).status == "COMPLETED"


def test_server_concurrency_limit_holds_runs_until_a_slot_frees(
    project: Callable[..., Path], server: Callable[..., Server], worker: Callable[..., Background]
) -> None:
    srv = server("--concurrency-limit", "1")
    key = srv.create_key()
    root = project({"trigger/nap.py": NAP})
    worker(root, srv.api_url, key, "--concurrency", "2")
    env = {"HIGHTIDE_API_URL": srv.api_url, "HIGHTIDE_SECRET_KEY": key}
    ids = [_ok(hightide("trigger", "nap", cwd=root, env=env)).strip() for _ in range(2)]
    with Client(api_url=srv.api_url, secret_key=key) as client:
        first, second = sorted((wait_finished(client, i) for i in ids), key=lambda r: r.started_at)
    assert first.status == second.status == "COMPLETED"
    # The worker had two free slots; the environment's limit of one made the second run wait.
    assert second.started_at >= first.finished_at, (first, second)


LANE = """
    from hightide import queue, task

    lane = queue("lane", concurrency_limit={limit})


    @task(id="in-lane", queue=lane)
    async def in_lane(payload: dict) -> str:
        return "done"
"""


def test_queues_pause_and_override_from_the_shell_and_a_new_version_keeps_both(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project({"trigger/lane.py": LANE.format(limit=2)})
    running = dev(root)
    out = _ok(hightide("queues", "pause", "lane", cwd=root))
    assert out.split() == ["lane", "paused", "executing", "0", "queued", "0", "limit", "2"], out
    _ok(hightide("queues", "override", "lane", "1", cwd=root))
    held = running.client.trigger("in-lane", {}).id

    # A new version declares another limit: the pause and the override stay.
    (root / "trigger" / "lane.py").write_text(textwrap.dedent(LANE.format(limit=5)))
    running.proc.wait_for_output("registered", count=2)
    listed = _ok(hightide("queues", "list", cwd=root, env={"COLUMNS": "120"}))
    [line] = [line for line in listed.splitlines() if line.startswith("lane ")]
    assert line.split()[:4] == ["lane", "paused", "0", "1"] and "1 (override; declared 5)" in line, listed
    assert running.client.runs.retrieve(held).status == "QUEUED"

    shown = json.loads(_ok(hightide("queues", "resume", "lane", "--json", cwd=root)))
    assert (shown["paused"], shown["concurrency_limit"], shown["declared_concurrency_limit"]) == (False, 1, 5)
    assert wait_finished(running.client, held).status == "COMPLETED"
    reset = json.loads(_ok(hightide("queues", "reset", "lane", "--json", cwd=root)))
    assert (reset["concurrency_limit"], reset["concurrency_limit_override"]) == (5, None)
    _one_line_error(hightide("queues", "pause", "task/nope", cwd=root), "no queue 'task/nope'")
    refused = hightide("queues", "override", "lane", "--", "-1", cwd=root)
    assert refused.returncode == 2 and "greater than or equal to 0" in refused.stderr, refused.stderr
