"""The run engine: trigger, claim with lease, heartbeat, complete, retry, cancel, schedule.

It talks to ``store/`` and never to HTTP.
"""

from hightide.engine.runs import RunEngine

__all__ = ["RunEngine"]
