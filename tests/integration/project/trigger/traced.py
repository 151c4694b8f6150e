"""Tasks whose traces the tests read (the worker runs with a 1 s checkpoint threshold)."""

import asyncio
import time
from pathlib import Path

from opentelemetry import trace

from hightide import Context, logger, step, task, wait


@task(id="traced-child")
async def traced_child(payload: dict) -> int:
    return await step("child-work", lambda: payload["n"] + 1)


@task(id="traced-parent")
async def traced_parent(payload: dict) -> dict:
    with logger.trace("prepare", order=7) as span:
        span.set_attribute("prepared", True)
        logger.info("inside prepare")
    charged = await step("charge", lambda: 100)
    child = await traced_child.trigger_and_wait({"n": 1}).unwrap()
    await wait.for_(seconds=2)  # past the threshold: the run suspends and replays
    done = await step("finish", lambda: charged + child)
    logger.info("finished")
    return {"total": done}


def _flaky(path: str) -> str:
    marker = Path(path)
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("the step fails on its first call")
    return "ok"


@task(id="traced-retry", retry={"max_attempts": 2, "min_timeout": 0.05, "max_timeout": 0.1})
async def traced_retry(payload: dict, ctx: Context) -> str:
    return await step("flaky", _flaky, payload["path"])


@task(id="traced-phase")
async def traced_phase(payload: dict) -> str:
    with logger.trace("phase"):
        await step("before", lambda: 1)
        await wait.for_(seconds=2)  # suspends inside the span: the replay starts "phase" again
        await step("after", lambda: 2)
    return "done"


# A tracer made at import time, as instrumentation libraries do: its spans join the run's trace.
_tracer = trace.get_tracer("the-project")


@task(id="traced-otel")
async def traced_otel(payload: dict) -> str:
    with _tracer.start_as_current_span("query", attributes={"db.system": "sqlite"}):
        logger.info("querying")
    return "ok"


def _charge_once(path: str) -> str:
    marker = Path(path)
    if not marker.exists():
        marker.write_text("failed once")
        time.sleep(0.5)  # after the email step has been recorded
        raise RuntimeError("the charge fails on its first call")
    return "charged"


@task(id="traced-branches", retry={"max_attempts": 2, "min_timeout": 0.05, "max_timeout": 0.1})
async def traced_branches(payload: dict) -> list:
    # On the retry, the email branch replays its recorded step while the charge branch runs for real.
    return list(await asyncio.gather(step("charge", _charge_once, payload["path"]), step("email", lambda: "sent")))


@task(id="traced-odd")
async def traced_odd(payload: dict) -> str:
    with logger.trace("x" * 2000, ratio=float("nan"), big="y" * 10_000):
        logger.info("odd values", ratio=float("inf"))
    return "ok"


@task(id="traced-chatty")
async def traced_chatty(payload: dict) -> str:
    """Many log records in a first span, then one in a second (the Run page's logs of a span)."""
    with logger.trace("first"):
        for i in range(payload["lines"]):
            logger.info(f"line {i} of the first span")
    with logger.trace("second"):
        logger.info("said in the second span")
    return "said"
