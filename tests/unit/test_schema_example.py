"""The Test form's starting payload: an example value built from a task's JSON schema (its Pydantic
model's), which the server's own schema check accepts."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from hightide.engine.payloads import check_schema
from hightide.server.dashboard.examples import example_for


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    postcode: str = Field(min_length=8)
    country: str = "NO"


class Line(BaseModel):
    sku: str = Field(examples=["SKU-42"])
    quantity: int = Field(gt=0)


class Order(BaseModel):
    order_id: str
    quantity: int = Field(gt=0)
    price: float = Field(gt=0.5, le=100)
    rating: int = Field(ge=1, le=5, multiple_of=2)
    express: bool
    colour: Colour
    kind: Literal["gift", "normal"]
    ship_to: Address
    bill_to: Address | None = None
    lines: list[Line] = Field(min_length=1)
    labels: dict[str, int]
    placed: datetime
    due: date
    reference: UUID
    note: str | None
    pair: tuple[int, str]


class Tree(BaseModel):
    name: str
    children: list[Tree] = []
    parent: Tree | None


def test_an_example_has_every_required_field_and_the_defaults() -> None:
    example = example_for(Order.model_json_schema())
    assert example == {
        "order_id": "string",
        "quantity": 1,
        "price": 1.0,
        "rating": 2,
        "express": False,
        "colour": "red",
        "kind": "gift",
        "ship_to": {"street": "string", "postcode": "xxxxxxxx", "country": "NO"},
        "bill_to": None,
        "lines": [{"sku": "SKU-42", "quantity": 1}],
        "labels": {},
        "placed": "2026-01-01T00:00:00Z",
        "due": "2026-01-01",
        "reference": "00000000-0000-4000-8000-000000000000",
        "note": "string",
        "pair": [0, "string"],
    }
    check_schema(example, Order.model_json_schema(), "order")
    Order.model_validate(example)  # and the model takes it


def test_a_model_that_contains_itself_stops() -> None:
    schema = Tree.model_json_schema()
    example = example_for(schema)
    assert example["name"] == "string" and example["children"] == []
    check_schema(example, schema, "tree")


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (dict, {}),
        (dict[str, Any], {}),
        (list[int], []),
        (int, 0),
        (str, "string"),
        (bool, False),
        (int | None, 0),
        (Literal[3], 3),
    ],
)
def test_plain_types_get_a_placeholder_of_their_type(annotation: Any, expected: Any) -> None:
    schema = TypeAdapter(annotation).json_schema()
    assert example_for(schema) == expected
    check_schema(example_for(schema), schema, "t")


def test_no_schema_is_an_empty_object_and_a_broken_ref_is_null() -> None:
    assert example_for(None) == {}
    assert example_for({}) == {}
    assert example_for({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}, "required": ["a"]}) == {
        "a": None
    }
    assert example_for({"type": "string", "maxLength": 3}) == "str"
    assert example_for({"type": "integer", "exclusiveMaximum": -5}) == -6
