from hightide import define_config

config = define_config(
    dirs=["trigger"],
    retries={"enabled_in_dev": True, "default": {"max_attempts": 3, "min_timeout": 1, "max_timeout": 10}},
    max_duration=3600,
)
