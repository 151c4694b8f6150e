"""Every flag of every command has its HIGHTIDE_* environment twin, and --help shows it."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from hightide.cli.main import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if getattr(command, "commands", None):  # a group (typer's own click types: duck-typed)
        found = []
        for name, sub in command.commands.items():
            found += _commands(sub, (*path, name))
        return found
    return [(path, command)]


def test_every_option_reads_a_hightide_variable_shown_in_help() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 15  # the walk found the sub-commands (runs, tokens, keys, db)
    runner = CliRunner()
    for path, command in commands:
        options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
        help_text = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "300"}).output
        for option in options:
            assert isinstance(option.envvar, str) and option.envvar.startswith("HIGHTIDE_"), (path, option.name)
            assert option.envvar in help_text, (path, option.envvar, help_text)


def test_retention_takes_a_duration_or_forever_and_refuses_less_than_a_minute() -> None:
    from hightide.cli.options import retention_seconds
    from hightide.errors import ConfigError, ValidationError

    assert retention_seconds("30d") == 30 * 86400
    assert retention_seconds("12h") == 12 * 3600
    assert retention_seconds("forever") is None and retention_seconds("Never") is None
    with pytest.raises(ConfigError, match="at least a minute"):
        retention_seconds("10s")
    with pytest.raises(ValidationError, match="--retention"):
        retention_seconds("soon")


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"hightide {version('hightide')}"
