"""The value budget of request bodies (``server.limits.parse_json``): counted before parsing, exact
where the quick count is in doubt, so text full of brackets or commas is not refused for them."""

from __future__ import annotations

import pytest

from hightide.errors import PayloadTooLargeError
from hightide.server.limits import parse_json


def test_more_values_than_the_budget_are_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError, match="holds more than 10 JSON values") as info:
        parse_json(b"[" + b",".join([b"1"] * 11) + b"]", max_values=10)
    assert info.value.details == {"field": "body", "limit": 10}
    assert parse_json(b"[" + b",".join([b"{}"] * 9) + b"]", max_values=10) == [{}] * 9  # 10 values


@pytest.mark.parametrize("text", ["a,b,c,d,e,f,g,h,i,j,k,l", "[[[[{{{{,,,,", 'quoted \\" ,,,,,,,,,, \\\\'])
def test_brackets_and_commas_inside_strings_are_not_values(text: str) -> None:
    raw = ('{"note": "' + text + '", "more": ["' + text + '"]}').encode()
    assert parse_json(raw, max_values=4) == {
        "note": text.replace('\\"', '"').replace("\\\\", "\\"),
        "more": [text.replace('\\"', '"').replace("\\\\", "\\")],
    }
