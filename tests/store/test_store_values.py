"""A value a column cannot hold is a ``ValidationError`` from the store (a 422), never a database
error (a 500): the API's limits refuse such values first, and this is the net under them."""

from __future__ import annotations

import pytest

from hightide.errors import ValidationError
from hightide.store import Store
from tests.store.factories import insert, make_env, new_run


def test_a_string_longer_than_its_column(store: Store) -> None:
    env_id = make_env(store)
    run = new_run(env_id, queue="q" * 300)
    if store.dialect == "postgresql":
        with pytest.raises(ValidationError, match="cannot store a value"):
            insert(store, run)
    else:  # SQLite does not enforce lengths: the API's limits are what keep the two alike
        assert insert(store, run)[0].queue == "q" * 300


def test_an_integer_beyond_the_database(store: Store) -> None:
    env_id = make_env(store)
    with pytest.raises(ValidationError, match="cannot store a value"):
        insert(store, new_run(env_id, max_attempts=2**63))


def test_a_nul_character(store: Store) -> None:
    env_id = make_env(store)
    if store.dialect == "postgresql":
        with pytest.raises(ValidationError, match="NUL"):
            store.runs.get_run("run_a\x00b", env_id)
    else:
        assert store.runs.get_run("run_a\x00b", env_id) is None
