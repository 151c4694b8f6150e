from hightide import define_config

config = define_config(
    dirs=["trigger"], retries={"default": {"max_attempts": 2, "min_timeout": 0.05, "max_timeout": 0.1}}
)
