"""Machine presets: the names a task's or a trigger's ``machine`` may take, and what each gives a
run (SPEC §6 "Machines"). The worker enforces the memory; the CPU is what the preset promises
where the runner is placed, and is shown to the run (``ctx.machine``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hightide.errors import ValidationError

MB = 1024 * 1024


@dataclass(frozen=True)
class Machine:
    name: str
    cpu: float  # vCPUs
    memory_gb: float

    def describe(self) -> str:
        """``"0.5 vCPU, 0.5 GB"``."""
        return f"{self.cpu:g} vCPU, {self.memory_gb:g} GB"

    def memory_limit(self, scale: float = 1.0) -> int:
        """The most resident memory, in bytes, a runner of this preset may use (``scale``: the
        worker's ``--machine-memory-scale``, for hosts smaller than the presets assume)."""
        return int(self.memory_gb * 1024 * MB * scale)


PRESETS: dict[str, Machine] = {
    m.name: m
    for m in (
        Machine("micro", 0.25, 0.25),
        Machine("small-1x", 0.5, 0.5),
        Machine("small-2x", 1, 1),
        Machine("medium-1x", 1, 2),
        Machine("medium-2x", 2, 4),
        Machine("large-1x", 4, 8),
        Machine("large-2x", 8, 16),
    )
}
MACHINES = tuple(PRESETS)
DEFAULT_MACHINE = "small-1x"
DEFAULT_PRESET = PRESETS[DEFAULT_MACHINE]


def check_machine(value: Any, field: str = "machine") -> str:
    """Return ``value`` if it names a preset; else raise ``ValidationError`` listing the presets."""
    if not isinstance(value, str) or value not in MACHINES:
        raise ValidationError(
            f"{field}: unknown machine {value!r}; expected one of {', '.join(MACHINES)}",
            details={"field": field, "allowed": list(MACHINES)},
        )
    return value


def preset(name: str | None) -> Machine:
    """The preset named ``name`` (the default for ``None``, or a name this version does not know)."""
    return PRESETS.get(name or DEFAULT_MACHINE) or PRESETS[DEFAULT_MACHINE]
