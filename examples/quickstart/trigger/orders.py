"""Waiting without holding a process: subtasks, timers, tokens and steps.

    hightide trigger process-order --payload '{"order_id": "o-1", "amount": 42}' --wait

`process-order` is suspended (WAITING, no process held) while its children run and while it waits
for the approval token; `hightide runs get RUN_ID` shows the token and its URL. Complete it with
`hightide tokens complete TOKEN_ID --data '{"approved": true}'`, or from any webhook:
`curl -X POST <token url> -H 'content-type: application/json' -d '{"approved": true}'`.
"""

import time

from hightide import idempotency_keys, logger, step, task, wait


@task(id="charge-customer")
async def charge_customer(payload: dict) -> dict:
    logger.info("charging", order_id=payload["order_id"], amount=payload["amount"])
    return {"charge_id": f"ch_{payload['order_id']}"}


@task(id="fulfil-order")
async def fulfil_order(payload: dict) -> dict:
    return {"shipment": f"sh_{payload['order_id']}"}


@task(id="process-order", retry={"max_attempts": 5})
async def process_order(payload: dict) -> dict:
    # Retries and resumes replay this function: the key makes the children's triggers safe to repeat,
    # and what they returned comes back from the run's journal.
    key = await idempotency_keys.create(payload["order_id"])
    charge = await charge_customer.trigger_and_wait(payload, idempotency_key=key).unwrap()
    placed_at = await step("placed-at", time.time)  # read the clock once, the same on every replay
    if payload.get("amount", 0) > 100:
        token = await wait.create_token(timeout="1h", tags=[f"order:{payload['order_id']}"])
        logger.info("waiting for approval", token=token.id, url=token.url)
        approval = await wait.for_token(token)
        if not approval.ok:
            return {"status": "not approved in time"}
    fulfilment = await fulfil_order.trigger_and_wait(payload, idempotency_key=key).unwrap()
    await wait.for_(seconds=10)  # longer than the checkpoint threshold: suspended meanwhile
    return {**charge, **fulfilment, "placed_at": placed_at}
