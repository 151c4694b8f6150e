"""Fixtures for the acceptance suite: the real ``hightide`` command, run as a user runs it.

Every process is started with ``python -m hightide.cli`` in its own session, with its output in a
file (printed at teardown, so a failing test shows what the processes said). Runner processes start
their own sessions too, so teardown also finds them by the project folder they serve.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from hightide import Client
from tests.support import assert_eventually, free_port, probe_client

CLI = [sys.executable, "-m", "hightide.cli"]
STARTUP_TIMEOUT = 45.0  # a cold start imports FastAPI, SQLAlchemy and the tasks; a loaded 2-core box is slow


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the test runner's HIGHTIDE_* settings leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIGHTIDE_")}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", TERM="dumb", COLUMNS="200")
    env.update(extra)
    return env


def hightide(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one ``hightide`` command to completion (``stdin``: what is piped into it)."""
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=user_env(**(env or {})),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_app_script(root: Path, source: str, timeout: float = 60) -> Any:
    """Run ``source`` as an app would (a separate Python process in the project folder, no HIGHTIDE_*
    variables set) and return the JSON document it prints last."""
    script = root / "app_script.py"
    script.write_text(textwrap.dedent(source))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, env=user_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"app script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- processes ---------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def runner_pids(root: Path) -> list[int]:
    """The runner processes serving the project at ``root`` (they live in sessions of their own)."""
    wanted = str(root.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if "hightide.worker.runner" in args and "--root" in args:
            i = args.index("--root")
            if i + 1 < len(args) and args[i + 1] == wanted and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Background:
    """A ``hightide`` command running in the background, in its own session, output in a file."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.cwd = name, args, cwd
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            env=user_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown can signal all of it
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        """Raise at once (not an AssertionError, so that ``assert_eventually`` stops) if it exited."""
        if not self.running:
            raise RuntimeError(f"`hightide {' '.join(self.args)}` exited with {self.proc.returncode}:\n{self.output()}")

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 30.0) -> str:
        """Wait until ``text`` appears ``count`` times in the output; return the output."""

        def seen() -> str:
            out = self.output()
            if out.count(text) >= count:
                return out
            self.check_running()
            raise AssertionError(f"{text!r} x{count} not in the output of {self.name}:\n{out}")

        return assert_eventually(seen, timeout=timeout, interval=0.1)

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it to the command."""
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, grace: float = 15.0) -> None:
        """Ctrl-C, then SIGKILL the process group if it does not exit within ``grace`` seconds."""
        if self.running:
            self.interrupt()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.proc.wait(5)
        self.kill_group()  # anything left in its group
        self._log.close()


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Callable[..., Background]]:
    """Start ``hightide ARGS...`` in the background; stopped (and its output printed) at teardown."""
    started: list[Background] = []
    roots: set[Path] = set()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None, name: str | None = None) -> Background:
        name = name or f"{len(started) + 1}-{args[0]}"
        proc = Background(name, list(args), cwd, env or {}, log_dir)
        started.append(proc)
        roots.add(cwd)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
    for root in roots:
        kill_pids(runner_pids(root))  # runners orphaned by a killed supervisor
    for proc in started:
        print(f"----- {proc.name}: hightide {' '.join(proc.args)} (exit {proc.proc.returncode})\n{proc.output()}")


# -- projects ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``hightide init`` writes, run once per test process (its files are the same each time)."""
    root = tmp_path_factory.mktemp("scaffold")
    done = hightide("init", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def project(tmp_path: Path, scaffold: Path) -> Callable[..., Path]:
    """A folder scaffolded by ``hightide init``, plus the files (relative path -> source) given."""
    count = 0

    def make(files: dict[str, str] | None = None) -> Path:
        nonlocal count
        count += 1
        root = (tmp_path / f"app{count}").resolve()
        shutil.copytree(scaffold, root)
        for rel, source in (files or {}).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(textwrap.dedent(source))
        return root

    return make


# -- hightide dev ------------------------------------------------------------------------------


class Dev:
    """A running ``hightide dev`` and the blocking client an app in its project would use."""

    def __init__(self, proc: Background, root: Path, port: int) -> None:
        self.proc, self.root, self.port = proc, root, port
        self.api_url = f"http://127.0.0.1:{port}"
        self._client: Client | None = None
        self.browser_session: Any = None  # the browser tests' signed-in storage state, once there is one

    @property
    def secret_key(self) -> str:
        for line in (self.root / ".hightide" / "dev.env").read_text().splitlines():
            if line.startswith("HIGHTIDE_SECRET_KEY="):
                return line.partition("=")[2]
        raise AssertionError("no HIGHTIDE_SECRET_KEY in .hightide/dev.env")

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(api_url=self.api_url, secret_key=self.secret_key)
        return self._client

    def output(self) -> str:
        return self.proc.output()

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def wait_until_serving(proc: Background, url: str) -> None:
    with probe_client(2) as probe:

        def up() -> bool:
            proc.check_running()
            try:
                return probe.get(f"{url}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        assert_eventually(up, timeout=STARTUP_TIMEOUT, interval=0.1, what=f"{url}/healthz")


@pytest.fixture
def dev(background: Callable[..., Background]) -> Iterator[Callable[..., Dev]]:
    """Start ``hightide dev`` in a project on a free port; returns once its tasks are registered."""
    devs: list[Dev] = []

    def start(root: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> Dev:
        port = port or free_port()
        # Two runner slots: enough for every test, and kind to a loaded 2-core machine.
        env = {"HIGHTIDE_PORT": str(port), "HIGHTIDE_MAX_CONCURRENT_RUNS": "2", **(env or {})}
        proc = background("dev", *args, cwd=root, env=env, name=f"dev{len(devs) + 1}")
        handle = Dev(proc, root, port)
        devs.append(handle)
        wait_until_serving(proc, handle.api_url)
        proc.wait_for_output("registered", timeout=STARTUP_TIMEOUT)
        return handle

    yield start
    for handle in devs:
        handle.close_client()


# -- hightide server + hightide worker ---------------------------------------------------------


class Server:
    def __init__(self, proc: Background, database: Path, port: int) -> None:
        self.proc, self.database, self.port = proc, database, port
        self.api_url = f"http://127.0.0.1:{port}"

    def create_key(self, env: str = "dev") -> str:
        done = hightide("keys", "create", "--env", env, "--database-url", str(self.database), cwd=self.database.parent)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture
def server(background: Callable[..., Background], tmp_path: Path) -> Callable[..., Server]:
    """Start the self-hosted ``hightide server`` on a fresh SQLite file."""

    def start(*args: str) -> Server:
        port = free_port()
        database = tmp_path / "server" / "hightide.db"
        database.parent.mkdir(exist_ok=True)
        proc = background(
            "server", "--database-url", str(database), "--port", str(port), *args, cwd=database.parent, name="server"
        )
        handle = Server(proc, database, port)
        wait_until_serving(proc, handle.api_url)
        return handle

    return start


@pytest.fixture
def worker(background: Callable[..., Background]) -> Callable[..., Background]:
    """Start ``hightide worker`` in a project folder against a server; returns once it has registered."""
    count = 0

    def start(root: Path, api_url: str, secret_key: str, *args: str) -> Background:
        nonlocal count
        count += 1
        env = {"HIGHTIDE_API_URL": api_url, "HIGHTIDE_SECRET_KEY": secret_key}
        proc = background("worker", *args, cwd=root, env=env, name=f"worker{count}")
        proc.wait_for_output("connected to", timeout=STARTUP_TIMEOUT)
        return proc

    return start
