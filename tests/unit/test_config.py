"""Where settings come from: argument > HIGHTIDE_* environment > .hightide/dev.env > default."""

from pathlib import Path

import pytest

from hightide.config import client_settings, define_config, find_project_root, load_project_config
from hightide.errors import ConfigError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HIGHTIDE_API_URL", raising=False)
    monkeypatch.delenv("HIGHTIDE_SECRET_KEY", raising=False)
    (tmp_path / ".hightide").mkdir()
    (tmp_path / ".hightide" / "dev.env").write_text(
        "HIGHTIDE_API_URL=http://127.0.0.1:4000\nHIGHTIDE_SECRET_KEY=ht_dev_file\n"
    )
    (tmp_path / "hightide.config.py").write_text(
        "from hightide import define_config\nconfig = define_config(dirs=['jobs'])\n"
    )
    (tmp_path / "app" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "app" / "deep")
    return tmp_path


def test_dev_env_is_found_walking_up(project: Path) -> None:
    settings = client_settings()
    assert (settings.api_url, settings.secret_key) == ("http://127.0.0.1:4000", "ht_dev_file")


def test_environment_beats_the_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIGHTIDE_SECRET_KEY", "ht_dev_env")
    assert client_settings().secret_key == "ht_dev_env"
    assert client_settings().api_url == "http://127.0.0.1:4000"


def test_arguments_beat_everything(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIGHTIDE_SECRET_KEY", "ht_dev_env")
    settings = client_settings("http://x:1/", "ht_dev_arg")
    assert (settings.api_url, settings.secret_key) == ("http://x:1", "ht_dev_arg")


def test_no_key_anywhere_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIGHTIDE_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="HIGHTIDE_SECRET_KEY"):
        client_settings()


def test_project_config_is_found_and_loaded(project: Path) -> None:
    assert find_project_root() == project
    config = load_project_config()
    assert config.dirs == ("jobs",) and config.root == project
    assert config.retries["default"] == {"max_attempts": 3}


def test_missing_config_is_a_one_line_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="hightide init"):
        load_project_config()


def test_broken_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hightide.config.py").write_text("config = 1/0\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        load_project_config()


def test_dirs_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="dirs"):
        define_config(dirs="trigger")  # type: ignore[arg-type]
