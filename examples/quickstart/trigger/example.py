"""Example tasks. With `hightide dev` running in this folder, trigger them from Python:

    import asyncio
    from trigger.example import hello_world
    from hightide import runs

    async def main():
        handle = await hello_world.trigger({"name": "Ada"})
        print((await runs.poll(handle.id)).output)

    asyncio.run(main())

or from a shell:  hightide trigger hello-world --payload '{"name": "Ada"}' --wait
"""

import asyncio

from pydantic import BaseModel

from hightide import AbortTaskRunError, Context, logger, task


@task(id="hello-world")
async def hello_world(payload: dict, ctx: Context) -> dict:
    name = payload.get("name", "world")
    logger.info("Saying hello", name=name, attempt=ctx.attempt.number)
    return {"message": f"Hello, {name}!"}


class Resize(BaseModel):
    url: str
    width: int = 800


@task(id="resize-image", queue={"concurrency_limit": 2}, retry={"max_attempts": 5})
async def resize_image(payload: Resize) -> dict:
    """Payloads are validated against the model when the run is triggered (HTTP 422 if invalid)."""
    if not payload.url.startswith("https://"):
        raise AbortTaskRunError("only https URLs are accepted")  # fails at once, no retry
    await asyncio.sleep(0.5)  # pretend to work
    print(f"resized {payload.url} to {payload.width}px")  # print() lines become run logs
    return {"url": payload.url, "width": payload.width}


@task(id="flaky-report")
def flaky_report(payload: dict, ctx: Context) -> str:
    """A plain `def` runs in a thread. Fails on its first attempt to show retries."""
    if ctx.attempt.number == 1:
        raise RuntimeError("the report service is warming up")
    return "report ready"
