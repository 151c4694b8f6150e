"""An example task. Trigger it from your app:

    from trigger.example import hello_world
    handle = await hello_world.trigger({"name": "Ada"})

or from a shell:  hightide trigger hello-world --payload '{"name": "Ada"}'
"""

from hightide import Context, logger, task


@task(id="hello-world")
async def hello_world(payload: dict, ctx: Context) -> dict:
    name = payload.get("name", "world")
    logger.info("Saying hello", name=name, attempt=ctx.attempt.number)
    return {"message": f"Hello, {name}!"}
