"""The benchmark's Hightide project: one no-op task (see trigger/noop.py)."""

from hightide import define_config

config = define_config(
    dirs=["trigger"],
    retries={"enabled_in_dev": True, "default": {"max_attempts": 1}},
    max_duration=60,
)
