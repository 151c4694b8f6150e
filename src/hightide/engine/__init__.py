"""The run engine: trigger, claim with lease, heartbeat, complete, retry, cancel, schedule.

It talks to ``store/`` and never to HTTP. The facade is ``hightide.engine.runs.RunEngine``; the
package imports nothing, so that a command needing one service (``environments``, say) loads
only that one.
"""
