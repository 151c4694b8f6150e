"""A task with a nested payload model, for the dashboard's Tasks page and its Test form
(tests/integration/test_dashboard_tasks.py)."""

from pydantic import BaseModel, Field

from hightide import task


class Address(BaseModel):
    city: str
    postcode: str = Field(min_length=4, examples=["10115"])


class Shipment(BaseModel):
    order_id: str
    quantity: int = Field(gt=0)
    express: bool = False
    address: Address


@task(id="ship", description="Ship an order to its address", machine="small-2x", retry={"max_attempts": 1})
async def ship(payload: Shipment) -> dict:
    return {"shipped": payload.order_id, "to": payload.address.city}
