"""The runner pool keeps at most one idle runner per slot (real runner processes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hightide.worker.processes import RunnerPool
from tests.support import eventually

PROJECT = Path(__file__).parent / "project"


async def test_runners_beyond_the_slots_are_shut_down_not_kept(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root)
    pool = RunnerPool(root, dict(os.environ), dev=False, runs_per_process=1000, max_idle=2)
    pool.current_version = "v1"
    runners = [await pool.spawn("v1") for _ in range(3)]
    try:
        for runner in runners:
            pool.add_idle(runner)  # e.g. a replacement arriving after its slot started its own

        async def surplus_gone() -> bool:
            assert [r.alive for r in runners] == [True, True, False]
            return True

        await eventually(surplus_gone, timeout=10)
        assert await pool.acquire("v1") in runners[:2]
    finally:
        await pool.close()
        for runner in runners:
            await runner.stop()


async def test_runners_that_served_their_runs_retire_one_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root)
    pool = RunnerPool(root, dict(os.environ), dev=False, runs_per_process=1, max_idle=2)
    pool.current_version = "v1"
    first, second = [await pool.spawn("v1") for _ in range(2)]
    fresh = None
    try:
        first.runs = second.runs = 1  # runners used in turn reach their limit together
        pool.release(first)  # retired: its replacement starts
        pool.release(second)  # goes on past its limit meanwhile, so the slots need not wait
        assert await pool.acquire("v1") is second
        fresh = await pool.acquire("v1")  # the replacement
        assert fresh not in (first, second) and fresh.alive
        pool.release(second)  # no replacement is starting now: retired

        async def both_retired() -> bool:
            assert not first.alive and not second.alive
            return True

        await eventually(both_retired, timeout=10)
    finally:
        await pool.close()
        for runner in (first, second, fresh):
            if runner is not None:
                await runner.stop()


async def test_each_preset_has_its_own_runners_within_one_idle_cap(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root)
    pool = RunnerPool(root, dict(os.environ), dev=False, runs_per_process=1000, max_idle=2)
    pool.current_version = "v1"
    micro = [await pool.spawn("v1", "micro") for _ in range(2)]
    large = await pool.spawn("v1", "large-1x")
    try:
        for runner in (*micro, large):
            pool.add_idle(runner)  # the third makes room by retiring a runner of the fullest preset

        async def one_micro_retired() -> bool:
            assert [r.alive for r in (*micro, large)] == [False, True, True]
            return True

        await eventually(one_micro_retired, timeout=10)
        assert await pool.acquire("v1", "large-1x") is large
        assert await pool.acquire("v1", "micro") is micro[1]
    finally:
        await pool.close()
        for runner in (*micro, large):
            await runner.stop()
