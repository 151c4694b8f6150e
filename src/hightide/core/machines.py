"""Machine presets: the names a task's or a trigger's ``machine`` may take (SPEC §6 "Machines")."""

from __future__ import annotations

from typing import Any

from hightide.errors import ValidationError

MACHINES = ("micro", "small-1x", "small-2x", "medium-1x", "medium-2x", "large-1x", "large-2x")
DEFAULT_MACHINE = "small-1x"


def check_machine(value: Any, field: str = "machine") -> str:
    """Return ``value`` if it names a preset; else raise ``ValidationError`` listing the presets."""
    if not isinstance(value, str) or value not in MACHINES:
        raise ValidationError(
            f"{field}: unknown machine {value!r}; expected one of {', '.join(MACHINES)}",
            details={"field": field, "allowed": list(MACHINES)},
        )
    return value
