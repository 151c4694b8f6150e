from hightide import define_config

config = define_config(
    # project="proj_...",            # needed only to deploy to a server
    dirs=["trigger"],  # every module under these folders is imported; its tasks register
    retries={"enabled_in_dev": True, "default": {"max_attempts": 3}},
    max_duration=3600,  # seconds of compute per attempt
)
