"""An example value for a JSON schema (a task's ``payload_schema``, from its Pydantic model): what
the Test form starts with, so that a person edits a payload of the right shape instead of typing
one from nothing.

Each value is, in order of preference: the schema's ``default``, its first ``examples`` entry, its
``const`` or first ``enum`` choice, or a placeholder of its type that meets its simple bounds
(``minimum``, ``exclusiveMinimum``, ``minLength``, ``minItems``, a ``format``). An object holds its
required properties and those with a default or an example; ``$ref`` (Pydantic's ``$defs`` for
nested models) is followed, and a model that contains itself stops at ``null``."""

from __future__ import annotations

from typing import Any

from hightide.types import JSON

MAX_DEPTH = 12  # nested models deeper than this (or a model that contains itself) become null

_FORMATS: dict[str, str] = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00",
    "duration": "PT1M",
    "email": "ada@example.com",
    "idn-email": "ada@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "iri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


def example_for(schema: Any) -> JSON:
    """An example value of ``schema``; ``{}`` when there is no schema (a task that takes any dict)."""
    if not isinstance(schema, dict) or not schema:
        return {}
    return _Builder(schema).value(schema, 0)


class _Builder:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.active: list[str] = []  # the $refs being built, outermost first: one seen again is a cycle

    def _lookup(self, ref: str) -> dict[str, Any] | None:
        if not ref.startswith("#"):
            return None  # a remote schema: nothing to follow here
        node: Any = self.root
        for part in [p.replace("~1", "/").replace("~0", "~") for p in ref[1:].split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, dict) else None

    def value(self, node: Any, depth: int) -> JSON:
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            return None
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._lookup(ref)
            if target is None or ref in self.active:
                return None  # unknown, or a model inside itself: stop here
            self.active.append(ref)
            try:
                return self.value({**target, **{k: v for k, v in node.items() if k != "$ref"}}, depth + 1)
            finally:
                self.active.pop()
        for key in ("default", "const"):
            if key in node:
                return node[key]
        examples = node.get("examples")
        if isinstance(examples, list) and examples:
            return examples[0]
        if "example" in node:
            return node["example"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            choices = node.get(key)
            if isinstance(choices, list) and choices:
                return self.value(self._first_choice(choices), depth + 1)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged: dict[str, Any] = {}
            for part in all_of:
                if isinstance(part, dict) and isinstance(part.get("$ref"), str):
                    part = self._lookup(part["$ref"])
                if isinstance(part, dict):
                    merged = _merge(merged, part)
            return self.value(_merge(merged, {k: v for k, v in node.items() if k != "allOf"}), depth + 1)
        return self.typed(node, _type_of(node), depth)

    def _first_choice(self, choices: list[Any]) -> Any:
        """``Optional[X]`` is ``anyOf: [X, {"type": "null"}]``: the example shows an X, unless X is
        a model being built already (a tree's parent), where it is null."""
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("type") == "null":
                continue
            if isinstance(choice.get("$ref"), str) and choice["$ref"] in self.active:
                continue
            return choice
        return next((c for c in choices if isinstance(c, dict) and c.get("type") == "null"), choices[0])

    def typed(self, node: dict[str, Any], kind: str | None, depth: int) -> JSON:
        if kind == "object":
            return self.object(node, depth)
        if kind == "array":
            return self.array(node, depth)
        if kind == "string":
            return _string(node)
        if kind == "integer":
            return _number(node, integer=True)
        if kind == "number":
            return _number(node, integer=False)
        if kind == "boolean":
            return False
        return None  # "null", or a schema that says nothing about its type

    def object(self, node: dict[str, Any], depth: int) -> JSON:
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = node.get("required")
        wanted = set(required) if isinstance(required, list) else set()
        out: dict[str, JSON] = {}
        for name, sub in properties.items():
            if name in wanted or _has_value(sub):
                out[name] = self.value(sub, depth + 1)
        return out

    def array(self, node: dict[str, Any], depth: int) -> JSON:
        prefix = node.get("prefixItems")
        if isinstance(prefix, list) and prefix:  # a tuple
            return [self.value(item, depth + 1) for item in prefix]
        count = node.get("minItems")
        items = node.get("items")
        if isinstance(count, int) and count > 0 and isinstance(items, dict):
            return [self.value(items, depth + 1) for _ in range(min(count, 10))]
        return []


def _type_of(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(kind, str):
        return kind
    if "properties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return None


def _has_value(node: Any) -> bool:
    return isinstance(node, dict) and any(key in node for key in ("default", "examples", "example", "const"))


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a, **b}
    if isinstance(a.get("properties"), dict) and isinstance(b.get("properties"), dict):
        out["properties"] = {**a["properties"], **b["properties"]}
    if isinstance(a.get("required"), list) and isinstance(b.get("required"), list):
        out["required"] = [*a["required"], *b["required"]]
    return out


def _string(node: dict[str, Any]) -> str:
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    text = "string"
    low, high = node.get("minLength"), node.get("maxLength")
    if isinstance(low, int) and low > len(text):
        text = "x" * min(low, 1000)
    if isinstance(high, int) and high < len(text):
        text = text[: max(high, 0)]
    return text


def _number(node: dict[str, Any], integer: bool) -> int | float:
    value = 0.0
    low, high = _bound(node, "minimum"), _bound(node, "maximum")
    above, below = _bound(node, "exclusiveMinimum"), _bound(node, "exclusiveMaximum")
    if low is not None:
        value = max(value, low)
    if above is not None and value <= above:
        value = above + 1 if integer or above == int(above) else above + 0.5
    if high is not None and value > high:
        value = high
    if below is not None and value >= below:
        value = below - 1
    step = _bound(node, "multipleOf")
    if step is not None and step > 0 and value % step:
        value = (value // step + 1) * step
    if integer:
        return int(value) if value == int(value) else int(value) + 1
    return value


def _bound(node: dict[str, Any], key: str) -> float | None:
    value = node.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
