"""Schedules: cron schedules of tasks, made from the API (imperative) or declared by tasks
(declarative, synced when a version registers), and firing their ticks (the scheduler's pass).

A tick fires as a run of the schedule's task whose payload is a ``ScheduledPayload``
(``timestamp``, ``last_timestamp``, ``timezone``, ``schedule_id``, ``external_id``, ``upcoming``),
tagged ``schedule:<id>`` and with the idempotency key ``schedule:<id>:<tick>``. Each tick fires once
however many servers run the scheduler (``store.schedules.fire_due``); after downtime only the latest
missed tick fires; the next tick always comes from the pattern, never from when a run ended.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hightide.core.cron import UPCOMING, Cron, iso, parse_cron
from hightide.core.ids import new_id
from hightide.core.limits import MAX_ID_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH, MAX_PAGE, MAX_TASK_ID_LENGTH, check_text
from hightide.core.states import RunStatus
from hightide.engine.base import EngineCore
from hightide.engine.control import Control
from hightide.engine.options import TriggerSpec
from hightide.engine.triggering import Triggering
from hightide.errors import AlreadyExistsError, ConflictError, HightideError, NotFoundError, ValidationError
from hightide.store.records import Environment, NewRun, RunFilter, Schedule
from hightide.store.schedules import DECLARATIVE, IMPERATIVE, Firing

log = logging.getLogger(__name__)

DUE_BATCH = 500
"""Due schedules fired per transaction of a pass."""
FIRE_AHEAD = 5.0
"""Seconds before a tick its run is made: queued, and not started before the tick (its
``available_at``), so that thousands of schedules on one minute all start on the minute."""


def schedule_tag(schedule_id: str) -> str:
    """The tag of every run a schedule fires: list them with ``runs.list(tag="schedule:<id>")``."""
    return f"schedule:{schedule_id}"


@dataclass(frozen=True)
class ScheduleState:
    """A schedule with its ``upcoming`` ticks (the next five, none while it is inactive)."""

    schedule: Schedule
    upcoming: builtins.list[float]

    @property
    def id(self) -> str:
        return self.schedule.id


class Schedules:
    def __init__(self, core: EngineCore, triggering: Triggering, control: Control) -> None:
        self.core = core
        self.store = core.store
        self.triggering = triggering
        self.control = control

    # -- imperative schedules ------------------------------------------------------------------
    def create(
        self,
        env: Environment,
        task: str,
        cron: str,
        timezone: str = "UTC",
        external_id: str | None = None,
        deduplication_key: str | None = None,
    ) -> tuple[ScheduleState, bool]:
        """A schedule firing ``task`` at each tick of ``cron`` in ``timezone``; with a
        ``deduplication_key`` another schedule of the environment already has, that one is updated
        in place. Returns it and whether it was created."""
        self._check_task(env, task)
        parsed = parse_cron(cron, timezone)
        if external_id is not None:
            check_text(external_id, "external_id", MAX_IDEMPOTENCY_KEY_LENGTH)
        if deduplication_key is not None:
            check_text(deduplication_key, "deduplication_key", MAX_IDEMPOTENCY_KEY_LENGTH)
        now = self.core.clock()
        schedule = Schedule(
            id=new_id("sched", now),
            environment_id=env.id,
            task_id=task,
            cron=parsed.pattern,
            timezone=parsed.timezone,
            external_id=external_id,
            deduplication_key=deduplication_key,
            kind=IMPERATIVE,
            active=True,
            next_tick_at=parsed.next_after(now),
            last_tick_at=None,
            created_at=now,
            updated_at=now,
        )
        try:
            stored, created = self.store.schedules.create(schedule)
        except AlreadyExistsError:  # another request created the same key at the same moment: update it
            stored, created = self.store.schedules.create(schedule)
        self.core.due(stored.next_tick_at)
        return self._state(stored), created

    def list(
        self,
        env: Environment,
        limit: int = 50,
        cursor: str | None = None,
        task: str | None = None,
        kind: str | None = None,
    ) -> tuple[builtins.list[ScheduleState], str | None]:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit: expected 1 to {MAX_PAGE}", details={"field": "limit"})
        if kind is not None and kind not in (DECLARATIVE, IMPERATIVE):
            raise ValidationError("kind: expected 'declarative' or 'imperative'", details={"field": "kind"})
        found, next_cursor = self.store.schedules.list(env.id, limit=limit, cursor=cursor, task_id=task, kind=kind)
        return [self._state(s) for s in found], next_cursor

    def get(self, env: Environment, schedule_id: str) -> ScheduleState:
        return self._state(self._get(env, schedule_id))

    def update(
        self,
        env: Environment,
        schedule_id: str,
        *,
        task: str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        external_id: str | None = None,
    ) -> ScheduleState:
        """Change an imperative schedule (what is not given stays); a new pattern or timezone moves
        its next tick to the pattern's next after now."""
        current = self._imperative(env, schedule_id, "changed")
        values: dict[str, Any] = {}
        if task is not None and task != current.task_id:
            self._check_task(env, task)
            values["task_id"] = task
        parsed = parse_cron(cron or current.cron, timezone or current.timezone)
        if (parsed.pattern, parsed.timezone) != (current.cron, current.timezone):
            values.update(
                cron=parsed.pattern, timezone=parsed.timezone, next_tick_at=parsed.next_after(self.core.clock())
            )
        if external_id is not None:
            values["external_id"] = check_text(external_id, "external_id", MAX_IDEMPOTENCY_KEY_LENGTH)
        if not values:
            return self._state(current)
        updated = self.store.schedules.update(env.id, schedule_id, values, self.core.clock())
        if updated is None:
            raise self._not_found(schedule_id)
        if {"task_id", "next_tick_at"} & set(values):
            self._withdraw(env, schedule_id)
        self.core.due(updated.next_tick_at)
        return self._state(updated)

    def delete(self, env: Environment, schedule_id: str) -> None:
        self._imperative(env, schedule_id, "deleted")
        if not self.store.schedules.delete(env.id, schedule_id):
            raise self._not_found(schedule_id)
        self._withdraw(env, schedule_id)

    def activate(self, env: Environment, schedule_id: str) -> ScheduleState:
        """Fire again, from the next tick after now (ticks missed while inactive do not fire)."""
        current = self._get(env, schedule_id)
        now = self.core.clock()
        nxt = _cron(current).next_after(now)
        changed = self.store.schedules.set_active(env.id, schedule_id, True, nxt, now)
        if changed is None:
            raise self._not_found(schedule_id)
        self.core.due(changed.next_tick_at)
        return self._state(changed)

    def deactivate(self, env: Environment, schedule_id: str) -> ScheduleState:
        self._get(env, schedule_id)
        changed = self.store.schedules.set_active(env.id, schedule_id, False, 0.0, self.core.clock())
        if changed is None:
            raise self._not_found(schedule_id)
        self._withdraw(env, schedule_id)
        return self._state(changed)

    # -- firing (the scheduler's pass) -----------------------------------------------------------
    def fire_due(self) -> int:
        """Fire every schedule whose next tick came or comes within ``FIRE_AHEAD``: its latest tick
        at or before now, or that next one, once; in batches of ``DUE_BATCH``, one transaction each
        (servers firing at once take different schedules). A run made ahead of its tick waits
        queued until it. Returns how many runs were created."""
        now = self.core.clock()
        envs: dict[str, Environment | None] = {}
        ticks: dict[tuple[str, str, float], _Tick] = {}  # schedules of one pattern and tick share it
        fired = 0
        planned: list[NewRun] = []

        def plan(due: Sequence[Schedule]) -> builtins.list[Firing]:
            by_env: dict[str, builtins.list[tuple[Schedule, _Tick]]] = {}
            for schedule in due:
                if schedule.environment_id not in envs:
                    envs[schedule.environment_id] = self.store.environments.get_environment_by_id(
                        schedule.environment_id
                    )
                # A tick that came (after downtime: the latest that came), or the next one, soon.
                at = max(schedule.next_tick_at, now)
                key = (schedule.cron, schedule.timezone, at)
                tick = ticks.get(key) or ticks.setdefault(key, _Tick.latest(_cron(schedule), at))
                by_env.setdefault(schedule.environment_id, []).append((schedule, tick))
            firings = []
            for env_id, items in by_env.items():
                env = envs[env_id]
                if env is None:  # no such environment (any more): its schedules move on, firing nothing
                    firings += [Firing(schedule, tick.at, tick.upcoming[0], None) for schedule, tick in items]
                else:
                    firings += self._plan(env, items)
            planned[:] = [f.run for f in firings if f.run is not None]
            return firings

        while True:
            try:
                taken, runs = self.store.schedules.fire_due(now + FIRE_AHEAD, DUE_BATCH, plan)
            except HightideError:
                log.exception("a batch of schedules could not fire; it is tried again at the next pass")
                break
            inserted = {run.id for run in runs}
            self.triggering.announce([new for new in planned if new.id in inserted])
            fired += len(runs)
            if taken < DUE_BATCH:
                break
        return fired

    def _plan(self, env: Environment, items: Sequence[tuple[Schedule, _Tick]]) -> builtins.list[Firing]:
        """The firings of schedules of ``env``, each at its ``tick`` (its latest at or before now:
        after downtime, only the latest missed tick fires), with their runs, prepared as one batch;
        a tick whose run cannot be made (its task is gone, or refuses the payload) is skipped, and
        the schedule moves on (it would otherwise be due again at every pass)."""
        specs = [self._spec(schedule, tick) for schedule, tick in items]
        try:
            runs: builtins.list[NewRun | None] = builtins.list(self.triggering.prepare(env, specs))
        except (NotFoundError, ValidationError):  # one of them is refused: find which, one by one
            runs = []
            for (schedule, tick), spec in zip(items, specs, strict=True):
                try:
                    runs += self.triggering.prepare(env, [spec])
                except (NotFoundError, ValidationError) as exc:
                    log.warning("schedule %s skipped its tick %s: %s", schedule.id, tick.text, exc)
                    runs.append(None)
        return [
            Firing(schedule, tick.at, tick.upcoming[0], _not_before(run, tick.at))
            for (schedule, tick), run in zip(items, runs, strict=True)
        ]

    @staticmethod
    def _spec(schedule: Schedule, tick: _Tick) -> TriggerSpec:
        payload = {
            "timestamp": tick.text,
            "last_timestamp": iso(schedule.last_tick_at, schedule.timezone) if schedule.last_tick_at else None,
            "timezone": schedule.timezone,
            "schedule_id": schedule.id,
            "external_id": schedule.external_id,
            "upcoming": tick.upcoming_texts,
        }
        return TriggerSpec(
            task_id=schedule.task_id,
            payload=payload,
            tags=(schedule_tag(schedule.id),),
            idempotency_key=f"schedule:{schedule.id}:{int(tick.at)}",
        )

    def next_due_in(self, cap: float) -> float:
        """Seconds until the earliest next tick of an active schedule is to be fired (``FIRE_AHEAD``
        before it), at most ``cap``."""
        now = self.core.clock()
        nxt = self.next_fire_at()
        return cap if nxt is None else max(0.0, min(cap, nxt - now))

    def next_fire_at(self) -> float | None:
        """When ``fire_due`` next has a tick to fire (``FIRE_AHEAD`` before it); ``None``: no schedule is active."""
        nxt = self.store.schedules.next_tick_time()
        return None if nxt is None else nxt - FIRE_AHEAD

    # -- helpers ---------------------------------------------------------------------------------
    def _withdraw(self, env: Environment, schedule_id: str) -> None:
        """Cancel the run the schedule made ahead of a tick that has not come (at most
        ``FIRE_AHEAD`` ago): deactivated, deleted or moved, it no longer fires that tick."""
        now = self.core.clock()
        flt = RunFilter(statuses=(RunStatus.QUEUED.value,), tag=schedule_tag(schedule_id), created_from=now - 60)
        waiting, _ = self.store.runs.list_runs(env.id, flt, 10)
        for run in waiting:
            if run.available_at > now:
                try:
                    self.control.cancel(env, run.id)
                except ConflictError:  # its tick came and a worker took it meanwhile
                    pass

    def _check_task(self, env: Environment, task: Any) -> None:
        check_text(task, "task", MAX_TASK_ID_LENGTH)
        if self.store.environments.get_task(env.id, task) is None:
            raise NotFoundError(
                f"task {task!r} is not registered in environment {env.slug!r}; start a worker "
                "(`hightide dev` or `hightide worker`) whose code defines it, then create the schedule",
                details={"task": task},
            )

    def _get(self, env: Environment, schedule_id: str) -> Schedule:
        check_text(schedule_id, "schedule_id", MAX_ID_LENGTH)
        found = self.store.schedules.get(env.id, schedule_id)
        if found is None:
            raise self._not_found(schedule_id)
        return found

    def _imperative(self, env: Environment, schedule_id: str, what: str) -> Schedule:
        found = self._get(env, schedule_id)
        if found.kind == DECLARATIVE:
            raise ConflictError(
                f"schedule {schedule_id} is declared by task {found.task_id!r} in code and cannot be {what} "
                "here; change or remove the task's `cron` and deploy (it can be deactivated)",
                details={"schedule": schedule_id, "kind": DECLARATIVE},
            )
        return found

    @staticmethod
    def _not_found(schedule_id: str) -> NotFoundError:
        return NotFoundError(f"no schedule {schedule_id!r} in this environment", details={"schedule": schedule_id})

    def _state(self, schedule: Schedule) -> ScheduleState:
        if not schedule.active:
            return ScheduleState(schedule, [])
        cron = _cron(schedule)
        first = schedule.next_tick_at
        return ScheduleState(schedule, [first, *cron.upcoming(first, UPCOMING - 1)])


def _not_before(run: NewRun | None, tick: float) -> NewRun | None:
    """``run``, made ahead of its ``tick``, queued and not started before it (its ttl counting
    from then): as a retried attempt waits out its backoff."""
    if run is None or run.available_at >= tick:
        return run
    ttl_expires_at = run.ttl_expires_at + (tick - run.available_at) if run.ttl_expires_at is not None else None
    return replace(run, available_at=tick, ttl_expires_at=ttl_expires_at)


@dataclass(frozen=True)
class _Tick:
    """A pattern's latest tick at or before a moment, and the ticks after it, as times and as the
    payload's texts (in the schedule's timezone)."""

    at: float
    upcoming: builtins.list[float]
    text: str
    upcoming_texts: builtins.list[str]

    @classmethod
    def latest(cls, cron: Cron, now: float) -> _Tick:
        at = cron.latest_at_or_before(now)
        upcoming = cron.upcoming(at, UPCOMING)
        return cls(at, upcoming, iso(at, cron.timezone), [iso(t, cron.timezone) for t in upcoming])


def _cron(schedule: Schedule) -> Cron:
    return Cron(schedule.cron, schedule.timezone)
