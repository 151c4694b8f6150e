"""JSON typed into a dashboard form: read with the API's own limits, refused with a message that
names the field and the place of the mistake."""

from __future__ import annotations

import json
from typing import Any

from hightide.errors import HightideError, ValidationError
from hightide.server.limits import parse_json


def read_json(text: str, field: str) -> Any:
    """The JSON value of ``text`` (the API's limits on nesting and size apply), or
    ``ValidationError``: "payload: not valid JSON: Expecting ',' delimiter (line 2, column 5)"."""
    try:
        json.loads(text)
    except RecursionError:
        pass  # parse_json says why
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        if not text.strip():
            raise ValidationError(f"{field}: empty; write a JSON value, e.g. {{}}", details={"field": field}) from exc
        raise ValidationError(f"{field}: not valid JSON: {reason}{where}", details={"field": field}) from exc
    try:
        return parse_json(text.encode())
    except HightideError as exc:
        message = f"{field}: {exc.message.replace('the request body ', '')}"
        raise type(exc)(message, details={**exc.details, "field": field}) from exc


def shown_message(exc: HightideError) -> str:
    """An engine error as a form shows it: the option names as the form labels them."""
    return exc.message.removeprefix("options.")
